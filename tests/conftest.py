"""Shared fixtures: the real-format samples and reference outputs in ../shared (never copied into the repo), the
tiny experiment with random weights and the `hrnet predict` command line on it, a folder that cannot be written."""

import errno
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# The demo's network as it was until 2026-12-07 (configs/demo.yaml with two residual units a branch and two
# bottlenecks in stage 1: 1.5 M parameters, 128×96; TRAINED_STAGES) as `hrnet demo` trained it on the built-in
# synthetic data set (validation AP 0.938), stored in float16 (loaded into fp32; the fp32 reference of the tests is
# these weights); regenerate on purpose with `python tests/runtime/test_precision.py RUN_FOLDER`.
TRAINED = Path(__file__).parent / "golden" / "demo_trained_fp16.safetensors"
TRAINED_STAGES = [
    "model.stages.0.num_blocks=[2]",
    "model.stages.1.num_blocks=[2, 2]",
    "model.stages.2.num_blocks=[2, 2, 2]",
    "model.stages.3.num_blocks=[2, 2, 2, 2]",
]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two xdist workers on a 2-core machine: one thread each avoids oversubscription.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path, monkeypatch):
    """Every test runs in its own temporary folder, so that a command's default outputs (runs/, predictions/, an
    evaluation folder made before a failure) never land in the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the tests read the shared samples and references from there")
    return SHARED


@pytest.fixture(scope="session")
def datasets_dir(shared_dir: Path) -> Path:
    return shared_dir / "datasets"


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"


def tiny_model_config(num_keypoints: int = 17, variant: str = "hrnet", head: str = "simple"):
    """The full 4-stage topology at widths 8/16/32/64 with one module and one block a branch: fast on CPU;
    ``head="hrnetv2"`` concatenates the four branches (120 channels) before the heatmaps; ``variant="litehrnet"``
    a Lite-HRNet of widths 8/16/32/64 with one module a stage."""
    from hrnet.config import LiteHRNetConfig, ModelConfig, StageConfig

    if variant == "litehrnet":
        widths = ((8, 16), (8, 16, 32), (8, 16, 32, 64))
        spec = LiteHRNetConfig(
            stem_channels=8, stem_out_channels=8, num_modules=(1, 1, 1), num_blocks=(1, 1, 1), num_channels=widths
        )
        return ModelConfig(variant="litehrnet", num_keypoints=num_keypoints, input_size=(64, 64), litehrnet=spec)

    stages = (
        StageConfig(num_modules=1, num_branches=1, block="bottleneck", num_blocks=(1,), num_channels=(8,)),
        StageConfig(num_modules=1, num_branches=2, block="basic", num_blocks=(1, 1), num_channels=(8, 16)),
        StageConfig(num_modules=1, num_branches=3, block="basic", num_blocks=(1, 1, 1), num_channels=(8, 16, 32)),
        StageConfig(
            num_modules=1, num_branches=4, block="basic", num_blocks=(1, 1, 1, 1), num_channels=(8, 16, 32, 64)
        ),
    )
    return ModelConfig(
        variant=variant,
        num_keypoints=num_keypoints,
        input_size=(64, 64),
        stages=stages,
        final_conv_kernel=3 if variant == "tf_port" else 1,
        head=head,
    )


@pytest.fixture(scope="session")
def synthetic_experiment(tmp_path_factory):
    """Fresh synthetic images (another seed than the demo trained on) and the demo's experiment, for ``TRAINED``."""
    from hrnet.config import CONFIG_DIR, load_config
    from hrnet.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, 24, 6, seed=7)
    overrides = [f"data.root={root}", "runtime.num_workers=0", "runtime.device=cpu", *TRAINED_STAGES]
    return load_config(CONFIG_DIR / "demo.yaml", overrides)


@pytest.fixture(scope="session")
def random_experiment(datasets_dir, tmp_path_factory):
    """The tiny experiment on the COCO sample with random weights of non-trivial outputs, made once a session
    (tests read its files, never change them): (config, config path, weights path, model)."""
    from tests.engine.conftest import random_weights_experiment

    return random_weights_experiment(datasets_dir, tmp_path_factory.mktemp("random_experiment"))


@pytest.fixture(scope="session")
def predict_argv(random_experiment):
    """``predict_argv(*args)``: ``hrnet predict``'s argv on ``random_experiment`` with the plain PyTorch backend and
    no person detector (a ``--detector`` in ``args`` replaces it), then ``args``."""
    _, config_path, weights, _ = random_experiment

    def argv(*args: str | Path) -> list[str]:
        base = ["predict", str(config_path), "--weights", str(weights), "--backend", "pytorch", "--detector", "none"]
        return [*base, *map(str, args)]

    return argv


def task_keypoint_set(task: str, num_keypoints: int = 5):
    """A user's own keypoint set for ``task`` (hrnet.keypoints.TASKS): plain names, no pairs, COCO's nose sigma."""
    from hrnet.keypoints import KeypointSet

    names = tuple(f"point_{i}" for i in range(num_keypoints))
    return KeypointSet(name=f"own_{task}", names=names, flip_pairs=(), skeleton=(), sigmas=(0.026,) * len(names),
                       task=task)  # fmt: skip


@pytest.fixture(scope="session")
def task_experiment(datasets_dir, tmp_path_factory):
    """``task_experiment(task)``: the tiny experiment with random weights for a keypoint set of ``task``, its set
    written as a metainfo file that the config names (made once a task a session; tests never change its files):
    (config path, weights path, keypoint set)."""
    from hrnet.config import dump_config
    from hrnet.keypoints import metainfo_text
    from hrnet.models.checkpoint import save_weights
    from hrnet.models.hrnet import build_model
    from tests.engine.conftest import tiny_experiment

    made: dict[str, tuple[Path, Path, object]] = {}

    def experiment(task: str) -> tuple[Path, Path, object]:
        if task not in made:
            folder = tmp_path_factory.mktemp(f"{task}_experiment")
            keypoint_set = task_keypoint_set(task)
            set_file = folder / f"{task}.yaml"
            set_file.write_text(metainfo_text(keypoint_set))
            extra = [f"data.keypoint_set={set_file}", f"model.num_keypoints={keypoint_set.num_keypoints}"]
            config = tiny_experiment(datasets_dir, folder / "runs", extra)
            torch.manual_seed(0)
            weights = folder / "w.safetensors"
            save_weights(build_model(config.model), weights)
            config_path = folder / "config.yaml"
            config_path.write_text(dump_config(config))
            made[task] = (config_path, weights, keypoint_set)
        return made[task]

    return experiment


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch) -> Path:
    """``tmp_path/ro``, a folder in which no file can be created: simulated by refusing ``os.open`` with
    ``O_CREAT`` there, as the tests may run as root, whom a folder's mode does not stop."""
    folder = tmp_path / "ro"
    folder.mkdir()
    real_open = os.open

    def refusing(path, flags, mode=0o777, **kwargs):
        if flags & os.O_CREAT and Path(path).parent == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    return folder


@pytest.fixture(scope="session")
def free_port():
    """``free_port()``: a TCP port of 127.0.0.1 that nothing listens on (a closed port, or one to serve on)."""

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return port


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` serving on 127.0.0.1 (in a thread) while the block runs; yields its URL. Tests never reach the
    internet: downloads are tested against this."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
