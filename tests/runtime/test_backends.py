"""The backend registry (hrnet.runtime.backends): the rule that picks a backend from the weights, its errors, and every
backend's heatmaps and keypoints pinned to the network as trained in fp32, on the demo's trained network."""

import hashlib

import numpy as np
import pytest
import torch

from hrnet.errors import ConfigError
from hrnet.models.checkpoint import save_weights
from hrnet.models.hrnet import build_model
from hrnet.runtime.backends import BACKENDS, PRECISIONS, open_backend, parse_precisions, select_backend
from tests.conftest import TRAINED, tiny_model_config

# Each backend's heatmaps against the network as trained (backend "pytorch"), on real crops of the synthetic
# validation split: the largest difference as a fraction of the largest |heatmap|, and the keypoints' deviation
# in image pixels (mean, 99th percentile). Measured on this network: fast path 2e-6 / 0 px; ONNX Runtime fp32
# 3e-6 / 0 px; bf16 0.02 / mean 0.025, p99 0.08 px; int8 0.07 / mean 0.20, p99 0.55 px. An int8 file calibrated
# on crops at half their scale gave mean 1.55, p99 10.3 px and fails.
HEATMAP_TOLERANCE = {"fp32": 1e-4, "bf16": 0.05, "int8": 0.2}
KEYPOINT_TOLERANCE = {"fp32": (0.01, 0.05), "bf16": (0.08, 0.5), "int8": (0.4, 1.5)}  # (mean, p99) pixels


@pytest.fixture(scope="module")
def files(synthetic_experiment, tmp_path_factory):
    """The trained network as a PyTorch file, an fp32 ONNX file and an int8 ONNX file."""
    from hrnet.runtime.export import export_from_config

    folder = tmp_path_factory.mktemp("backends")
    config = synthetic_experiment
    return {
        "checkpoint": TRAINED,
        "fp32": export_from_config(config, TRAINED, folder / "fp32.onnx"),
        "int8": export_from_config(config, TRAINED, folder / "int8.onnx", precision="int8", calibration_crops=16),
    }


@pytest.fixture(scope="module")
def reference(synthetic_experiment):
    """The evaluator, 8 of its crops, and the network as trained (backend "pytorch"): its heatmaps and keypoints."""
    from hrnet.engine.evaluate import Evaluator

    config = synthetic_experiment
    evaluator = Evaluator.from_config(config, torch.device("cpu"), progress=False)
    crops = torch.stack([evaluator.dataset[i].image for i in range(8)])
    network = open_backend(config.model, TRAINED, backend="pytorch", device="cpu")
    with torch.inference_mode():
        heatmaps = network(crops).float()
    return evaluator, crops, heatmaps, evaluator.predict(network).keypoints


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_backend_matches_the_network_as_trained(name, files, reference, synthetic_experiment):
    evaluator, crops, expected, keypoints = reference
    entry = BACKENDS[name]
    weights = files["checkpoint"] if entry.runs == "checkpoint" else files[entry.precision]
    backend = open_backend(synthetic_experiment.model, weights, backend=name, device="cpu")
    assert (backend.name, backend.precision) == (name, entry.precision)
    with torch.inference_mode():
        got = backend(crops)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    error = float((got - expected).abs().max() / expected.abs().max())
    assert error <= HEATMAP_TOLERANCE[backend.precision], (name, error)

    distance = np.linalg.norm(evaluator.predict(backend).keypoints - keypoints, axis=-1)
    mean, p99 = float(distance.mean()), float(np.percentile(distance, 99))
    bound = KEYPOINT_TOLERANCE[backend.precision]
    assert mean <= bound[0] and p99 <= bound[1], (name, mean, p99)
    if backend.precision != "fp32":
        assert mean > 0  # really another precision


def test_the_file_picks_the_backend(files):
    assert select_backend(files["checkpoint"]).name == "pytorch-fast"
    assert select_backend(files["checkpoint"], reference=True).name == "pytorch"
    assert select_backend(files["checkpoint"], "bf16").name == "pytorch-bf16"
    assert select_backend(files["fp32"]).name == "onnxruntime"
    assert select_backend(files["int8"]).name == "onnxruntime-int8"  # the file's metadata, no flag needed
    assert select_backend(files["int8"], "int8", "onnxruntime-int8").name == "onnxruntime-int8"
    assert set(PRECISIONS) == {"fp32", "bf16", "int8"}


def test_a_network_given_is_left_as_it_is_and_one_loaded_is_folded_without_a_copy(tmp_path, monkeypatch):
    """``hrnet bench`` opens one network on several backends; ``hrnet predict`` opens the network it loads, which a
    copy before folding would only slow down."""
    import copy

    from hrnet.models.hrnet import HRNet
    from tests.models.test_fuse import randomised

    config = tiny_model_config()
    model = randomised(build_model(config))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name in ("pytorch-fast", "pytorch-bf16"):
        open_backend(config, None, backend=name, device="cpu", module=model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())

    save_weights(model, tmp_path / "w.safetensors")
    copied: list[type] = []
    deepcopy = copy.deepcopy
    monkeypatch.setattr(copy, "deepcopy", lambda obj, *args: copied.append(type(obj)) or deepcopy(obj, *args))
    x = torch.randn(2, 3, *config.input_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got = open_backend(config, tmp_path / "w.safetensors", backend="pytorch-fast", device="cpu")(x)
        expected = open_backend(config, None, backend="pytorch", device="cpu", module=model)(x)
    assert HRNet not in copied
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_an_upper_case_onnx_suffix_is_an_onnx_file(files, tmp_path):
    upper = tmp_path / "MODEL.ONNX"
    upper.write_bytes(files["fp32"].read_bytes())
    assert select_backend(upper).name == "onnxruntime"


@pytest.mark.parametrize(
    ("weights", "precision", "backend", "message"),
    [
        ("checkpoint", "int8", None, "int8 runs an .onnx file quantized by hrnet export"),
        ("int8", "fp32", None, "holds a int8 network; pass --precision int8"),
        ("int8", None, "onnxruntime", r"holds a int8 network \(its hrnet.runtime.precision metadata\), not fp32"),
        ("checkpoint", None, "onnxruntime", "runs an .onnx file; make one with hrnet export"),
        ("fp32", None, "pytorch-fast", "an .onnx file runs on ONNX Runtime"),
        ("checkpoint", "bf16", "pytorch", "backend pytorch runs fp32, not bf16"),
        ("checkpoint", None, "tensorrt", "backend 'tensorrt': not one of pytorch, pytorch-fast"),
        ("checkpoint", "fp16", None, "precision must be one of fp32, bf16, int8"),
    ],
)
def test_contradictions_are_one_clear_error(files, weights, precision, backend, message):
    with pytest.raises(ConfigError, match=message):
        select_backend(files[weights], precision, backend)


def test_onnx_runtime_runs_on_the_cpu(files, synthetic_experiment):
    with pytest.raises(ConfigError, match="runs on the CPU"):
        open_backend(synthetic_experiment.model, files["fp32"], device="cuda")
    assert open_backend(synthetic_experiment.model, files["fp32"]).device == torch.device("cpu")


def test_parse_precisions():
    assert parse_precisions("fp32, BF16,int8,fp32") == ["fp32", "bf16", "int8"]
    with pytest.raises(ConfigError, match="fp32, bf16, int8"):
        parse_precisions("fp16")
    with pytest.raises(ConfigError, match="one or more"):
        parse_precisions(" , ")


def test_a_registered_name_is_resolved_everywhere(tmp_path, monkeypatch, capsys):
    """``--weights NAME`` of a file already in the cache (prepared on disk: no download) opens in open_backend,
    and so in every command, ``hrnet bench --precision`` included."""
    from hrnet.cli import main
    from hrnet.config import ExperimentConfig, dump_config
    from hrnet.hub.registry import REGISTRY, WeightsFile, cached_path

    config = tiny_model_config()
    torch.manual_seed(0)
    model = build_model(config)
    source = tmp_path / "w.safetensors"
    save_weights(model, source)
    data = source.read_bytes()
    entry = WeightsFile(
        "test-cached", "pose", "http://127.0.0.1:9/none.safetensors", "tiny", "test",
        sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    monkeypatch.setenv("HRNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    cached_path(entry).parent.mkdir(parents=True)
    cached_path(entry).write_bytes(data)

    backend = open_backend(config, "test-cached", device="cpu", backend="pytorch")
    assert backend.weights == cached_path(entry)
    loaded = backend.run.state_dict()  # type: ignore[attr-defined]
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())

    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(dump_config(ExperimentConfig(model=config)))
    bench = [
        "bench",
        str(config_path),
        "--weights",
        "test-cached",
        "--batch",
        "1",
        "--rounds",
        "1",
        "--seconds",
        "0.01",
    ]
    assert main([*bench, "--precision", "fp32"]) == 0
    assert "pytorch-fast" in capsys.readouterr().out
    assert main([*bench, "--backend", "pytorch,pytorch-fast"]) == 0
    assert capsys.readouterr().out.count("images/s") == 2
