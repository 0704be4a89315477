"""`hrnet demo` end to end at a toy size: data → train → evaluate → pictures."""

import dataclasses
import json

import cv2

from hrnet.apps.demo import DEMO_CONFIG, run_demo
from hrnet.config import load_config
from tests.conftest import tiny_model_config


def test_demo_writes_everything_it_promises(tmp_path):
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
    assert cv2.imread(str(run / "predictions.png")) is not None
    marker = json.loads((tmp_path / "synthetic" / "synthetic.json").read_text())
    assert marker["train"] == 16 and marker["val"] == 4
    stamp = (tmp_path / "synthetic" / "annotations" / "train.json").stat().st_mtime_ns
    run_demo(config, num_train=16, num_val=4, progress=False)  # the data set is cached, not rewritten
    assert (tmp_path / "synthetic" / "annotations" / "train.json").stat().st_mtime_ns == stamp
