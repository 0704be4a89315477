"""The training loop: run folder, resume after SIGKILL, DDP on CPU, non-finite loss."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors import safe_open

from hrnet.config import dump_config, load_config
from hrnet.engine import train as train_module
from hrnet.engine.evaluate import Evaluator
from hrnet.engine.train import train
from hrnet.errors import DataError, TrainingError
from hrnet.models.checkpoint import load_weights, read_state_dict, save_weights
from hrnet.models.hrnet import build_model
from tests.engine.conftest import tiny_experiment

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_writes_its_folder(experiment):
    result = train(experiment, progress=False)
    run = result.run_dir
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "last.safetensors", "best.safetensors", "log.csv", "curves.png", "train.log"} <= names
    assert "tensorboard" in names and any((run / "tensorboard").iterdir())
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(float(r["train_loss"]) > 0 for r in rows)
    assert "val_AP" in rows[0] and (run / "eval_epoch002" / "keypoints_results.json").is_file()
    model = build_model(experiment.model)
    load_weights(model, run / "last.safetensors")  # a training checkpoint is a weights file too
    load_weights(model, run / "best.safetensors")
    assert (run / "config.yaml").read_text() == dump_config(experiment)
    assert not [p for p in run.rglob("*.tmp")]


def _progress(path: Path) -> tuple[int, int] | None:
    """(epoch, step) of a training checkpoint, None while there is none."""
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        state = json.loads(f.metadata()["state"])
    return state["epoch"], state["step"]


def _train_process(config_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "hrnet", "train", str(config_path), "--set", "runtime.device=cpu", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_run(datasets_dir, tmp_path):
    configs = {}
    for name in ("whole", "killed"):
        config = tiny_experiment(datasets_dir, tmp_path / name, epochs=3, checkpoint_every=1, seed=5)
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(dump_config(config))
    whole = _train_process(configs["whole"])
    killed = _train_process(configs["killed"])
    last = tmp_path / "killed" / "tiny" / "last.safetensors"
    deadline = time.monotonic() + 120
    while _progress(last) is None and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    at_kill = _progress(last)
    assert at_kill is not None and at_kill < (3, 0), f"the run was not interrupted mid-way: {at_kill}"
    resumed = _train_process(configs["killed"], "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read() if resumed.stderr else ""
    assert whole.wait(timeout=300) == 0, whole.stderr.read() if whole.stderr else ""
    a = read_state_dict(tmp_path / "whole" / "tiny" / "last.safetensors")
    b = read_state_dict(last)
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key].double() - b[key].double()).abs().max() <= 1e-6, key
    assert _progress(last) == (3, 0)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(datasets_dir, tmp_path, monkeypatch):
    config = tiny_experiment(datasets_dir, tmp_path, epochs=2, checkpoint_every=1)
    calls = {"n": 0}
    real = train_module.HeatmapLoss.forward

    def flaky(self, output, target, weight):
        calls["n"] += 1
        loss = real(self, output, target, weight)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(train_module.HeatmapLoss, "forward", flaky)
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 1, step 3.*last good checkpoint"):
        train(config, progress=False)
    assert _progress(tmp_path / "tiny" / "last.safetensors") == (0, 2)


def _ddp_worker(rank: int, world_size: int, port: int, datasets_dir: Path, tmp_path: Path) -> None:
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank),
         "WORLD_SIZE": str(world_size)}
    )  # fmt: skip
    torch.set_num_threads(1)
    # Rank 1 is told to write elsewhere: the folder must still not appear, since only rank 0 writes.
    config = tiny_experiment(datasets_dir, tmp_path / f"out_rank{rank}", ["runtime.device=cpu"], epochs=1)
    result = train(config, progress=False)
    torch.save({k: v.clone() for k, v in result.model.state_dict().items()}, tmp_path / f"weights_rank{rank}.pt")


@pytest.mark.slow
def test_ddp_on_cpu_keeps_ranks_identical_and_only_rank0_writes(datasets_dir, tmp_path):
    port = 29500 + os.getpid() % 1000
    mp.start_processes(_ddp_worker, args=(2, port, datasets_dir, tmp_path), nprocs=2, start_method="spawn")
    w0 = torch.load(tmp_path / "weights_rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "weights_rank1.pt", weights_only=True)
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    assert (tmp_path / "out_rank0" / "tiny" / "last.safetensors").is_file()
    assert not (tmp_path / "out_rank1").exists()
    # Evaluation gathered both ranks' persons: the AP rank 0 logged is that of all 12 persons.
    run = tmp_path / "out_rank0" / "tiny"
    logged = float(next(csv.DictReader((run / "log.csv").open()))["val_AP"])
    model = build_model(tiny_experiment(datasets_dir, tmp_path).model)
    load_weights(model, run / "last.safetensors")
    config = tiny_experiment(datasets_dir, tmp_path)
    alone = Evaluator.from_config(config, torch.device("cpu"), progress=False).evaluate(model)
    assert alone["AP"] == pytest.approx(logged, abs=1e-9)


def _coco_with_a_missing_image(datasets_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for image in (datasets_dir / "coco").glob("*.jpg"):
        if image.name != "000000000785.jpg":  # its 1 person's image is missing
            (folder / image.name).symlink_to(image)
    return folder


def test_unreadable_training_images_are_skipped_counted_and_warned_once(datasets_dir, tmp_path, caplog):
    folder = _coco_with_a_missing_image(datasets_dir, tmp_path)
    config = tiny_experiment(datasets_dir, tmp_path / "runs", epochs=1)
    config = load_config(None, [f"data.train_images={folder}"], base=config)
    with caplog.at_level("WARNING", logger="hrnet"):
        train(config, progress=False)
    warnings = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 1 samples" in warnings[0] and "000000000785.jpg" in warnings[0]
    rows = list(csv.DictReader((tmp_path / "runs" / "tiny" / "log.csv").open()))
    assert rows[0]["skipped_images"] == "1"
    strict = load_config(None, ["data.skip_bad_images=false"], base=config)
    with pytest.raises(DataError, match=r"000000000785\.jpg"):
        train(strict, progress=False)


def test_resume_compares_the_network_not_where_its_start_weights_were(datasets_dir, tmp_path):
    start = tmp_path / "start.safetensors"
    save_weights(build_model(tiny_experiment(datasets_dir, tmp_path).model), start)
    config = tiny_experiment(datasets_dir, tmp_path, [f"train.pretrained={start}"], epochs=1)
    train(config, progress=False)
    moved = tmp_path / "moved" / "start.safetensors"
    moved.parent.mkdir()
    start.rename(moved)
    more = tiny_experiment(
        datasets_dir, tmp_path, [f"train.pretrained={moved}", "runtime.num_workers=1"], epochs=2
    )  # the weights moved, the loader changed: the same run
    assert len(train(more, resume=True, progress=False).history) == 2
    other = tiny_experiment(datasets_dir, tmp_path, ["model.input_size=[96, 64]"], epochs=3)  # another network
    with pytest.raises(TrainingError, match="saved by a run with another model config"):
        train(other, resume=True, progress=False)
