"""configs/aic/tf_w32_original.yaml, the TF port as it was, trains and evaluates end to end on the AI Challenger
sample (a narrow network and a small input keep it fast; every pipeline setting is the config's own)."""

import json
from pathlib import Path

import numpy as np
import pytest

from hrnet.cli import main
from hrnet.codec import codec_from_config
from hrnet.config import CONFIG_DIR, load_config
from hrnet.data.dataset import TopDownDataset
from hrnet.data.sources import load_split

CONFIG = CONFIG_DIR / "aic" / "tf_w32_original.yaml"
TINY_STAGES = (
    "model.stages=["
    "{num_modules: 1, num_branches: 1, block: bottleneck, num_blocks: [1], num_channels: [8]},"
    "{num_modules: 1, num_branches: 2, block: basic, num_blocks: [1, 1], num_channels: [8, 16]},"
    "{num_modules: 1, num_branches: 3, block: basic, num_blocks: [1, 1, 1], num_channels: [8, 16, 32]},"
    "{num_modules: 1, num_branches: 4, block: basic, num_blocks: [1, 1, 1, 1], num_channels: [8, 16, 32, 64]}]"
)


def _overrides(datasets_dir: Path, out_dir: Path) -> list[str]:
    aic = datasets_dir / "aic"
    return [
        TINY_STAGES,
        "model.input_size=[64, 48]",
        f"data.root={aic}",
        "data.train_annotations=keypoint_annotations_raw_sample.json",
        "data.train_images=.",
        "data.val_annotations=keypoint_annotations_raw_sample.json",
        "data.val_images=.",
        f"train.out_dir={out_dir}",
        "train.epochs=1",
        "train.batch_size=3",
        "runtime.num_workers=0",
        "runtime.device=cpu",
    ]


def test_the_config_is_the_ports_pipeline():
    config = load_config(CONFIG)
    assert config.model.variant == "tf_port" and config.model.batch_norm == "batch"
    assert (config.data.crop, config.data.pixels, config.data.target) == ("stretch", "unit", "tf_port")
    assert (config.test.decode, config.test.metric, config.test.flip_test) == ("tf_port", "tf_port", False)
    assert (config.train.loss, config.train.optimizer, config.train.lr, config.train.lr_steps) == (
        "sum_squared", "adam", 1e-3, ()
    )  # fmt: skip


def test_samples_are_the_ports_crops_and_targets(datasets_dir, tmp_path):
    config = load_config(CONFIG, _overrides(datasets_dir, tmp_path))
    split = load_split(config.data, "train", config.model.num_keypoints)
    codec = codec_from_config(config.model, config.data, float32_regions=split.format.float32_regions)
    sample = TopDownDataset(split.records, split.keypoint_set, codec)[0]
    assert sample.image.shape == (3, 64, 48) and 0.0 <= float(sample.image.min()) <= float(sample.image.max()) <= 1.0
    assert sample.target.shape == (14, 64, 48)
    # each drawn map holds (part of) one 3×3 kernel that sums to 1
    sums = sample.target.sum(dim=(1, 2)).numpy()
    assert np.all(sums <= 1.0 + 1e-6) and np.isclose(sums.max(), 1.0, atol=1e-6)
    assert int((sample.target[int(np.argmax(sums))] > 0).sum()) == 9


@pytest.mark.slow
def test_train_then_eval_end_to_end(datasets_dir, tmp_path, capsys):
    overrides = [item for o in _overrides(datasets_dir, tmp_path / "runs") for item in ("--set", o)]
    assert main(["train", str(CONFIG), *overrides]) == 0
    run = tmp_path / "runs" / "aic_tf_w32_original"
    assert (run / "best.safetensors").is_file()
    out = tmp_path / "eval"
    weights = str(run / "best.safetensors")
    assert main(["eval", str(CONFIG), "--weights", weights, "--out", str(out), *overrides]) == 0
    printed = capsys.readouterr().out
    assert "TF port's evaluate.py: AP50" in printed and "Average Precision" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["tf_port_AP50"] <= 1.0 and 0.0 <= metrics["tf_port_AP75"] <= metrics["tf_port_AP50"]
    assert metrics["tf_port_persons"] == 9 and -1.0 <= metrics["AP"] <= 1.0
