"""`hrnet demo` end to end at a toy size: data → train → evaluate → pictures."""

import dataclasses
import json

import cv2
import pytest

from hrnet.apps import demo
from hrnet.apps.demo import DEMO_CONFIG, run_demo
from hrnet.config import load_config
from tests.conftest import tiny_model_config


def test_demo_writes_everything_it_promises(tmp_path, capsys):
    config = load_config(
        DEMO_CONFIG,
        [
            f"data.root={tmp_path / 'synthetic'}",
            f"train.out_dir={tmp_path / 'runs'}",
            "train.epochs=1",
            "train.batch_size=8",
            "runtime.num_workers=0",
        ],
    )
    config = dataclasses.replace(config, model=tiny_model_config())
    metrics = run_demo(config, num_train=16, num_val=4, progress=False)
    run = tmp_path / "runs" / "demo"
    for name in ("best.safetensors", "metrics.json", "curves.png", "predictions.png", "log.csv"):
        assert (run / name).is_file(), name
    assert json.loads((run / "metrics.json").read_text())["AP"] == metrics["AP"]
    out = capsys.readouterr().out
    assert out.startswith("hrnet demo: about ") and " minutes on this machine (" in out  # said before it starts
    assert f"(estimated {metrics['estimated_minutes']:.1f})" in out
    assert cv2.imread(str(run / "predictions.png")) is not None
    marker = json.loads((tmp_path / "synthetic" / "synthetic.json").read_text())
    assert marker["train"] == 16 and marker["val"] == 4
    stamp = (tmp_path / "synthetic" / "annotations" / "train.json").stat().st_mtime_ns
    run_demo(config, num_train=16, num_val=4, progress=False)  # the data set is cached, not rewritten
    assert (tmp_path / "synthetic" / "annotations" / "train.json").stat().st_mtime_ns == stamp


def test_the_estimate_counts_the_runs_training_steps(monkeypatch):
    # 3 epochs of ceil(1000 images × 1.75 persons / 32) = 55 steps, at 0.5 s a step plus the other parts' share.
    monkeypatch.setattr(demo, "training_step_seconds", lambda config: 0.5)
    config = load_config(DEMO_CONFIG, ["train.epochs=3", "train.batch_size=32"])
    assert demo.estimate_seconds(config, 1000, 100, data_ready=True) == pytest.approx(
        165 * 0.5 * (1 + demo.OTHER_PARTS)
    )
    # Images still to draw add their drawing time, measured on a few of them.
    assert demo.estimate_seconds(config, 1000, 100, data_ready=False) > 165 * 0.5 * (1 + demo.OTHER_PARTS)


def test_a_training_step_is_timed_as_training_runs_it():
    config = load_config(DEMO_CONFIG, ["train.batch_size=2"])
    config = dataclasses.replace(config, model=tiny_model_config())
    assert 0 < demo.training_step_seconds(config) < 30
