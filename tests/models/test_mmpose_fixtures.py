"""Our HRNet against MMPose 1.3.2 itself, through the fixtures of tests/fixtures/mmpose/ (README.md there says how
make_fixtures.py made them): narrowed networks with seeded weights in MMPose 1.x's own key names, loaded with
strict=True, give MMPose's heatmaps for the same input; and the real networks' key names and shapes, as MMPose builds
them, map onto our presets."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hrnet.config import ModelConfig, StageConfig, model_preset
from hrnet.keypoints import load_keypoint_set
from hrnet.models.checkpoint import check_state_dict, convert_state_dict, load_weights
from hrnet.models.hrnet import build_model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mmpose"
# The HRNet-W32 fixtures (the body control and two more keypoint sets) and the keypoint set each one predicts.
HRNET = {"hrnet_w32_coco": "coco17", "hrnet_w32_coco_wholebody": "coco_wholebody133", "hrnet_w32_ap10k": "ap10k17"}
TOLERANCE = 1e-4  # of max |heatmap|: the bar for "equal to MMPose"


def settings(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def narrowed_model_config(fixture: dict) -> ModelConfig:
    """Our ModelConfig of the network a fixture's MMPose settings describe (an HRNet backbone, a 1×1 head)."""
    model = fixture["model"]
    assert model["backbone"]["type"] == "HRNet" and "neck" not in model
    assert model["head"]["type"] == "HeatmapHead" and model["head"]["deconv_out_channels"] is None
    extra = model["backbone"]["extra"]
    assert "upsample" not in extra and not extra["stage4"].get("multiscale_output", False)  # MMPose's defaults
    stages = tuple(
        StageConfig(
            num_modules=s["num_modules"],
            num_branches=s["num_branches"],
            block=s["block"].lower(),
            num_blocks=tuple(s["num_blocks"]),
            num_channels=tuple(s["num_channels"]),
        )
        for s in (extra[f"stage{i}"] for i in range(1, 5))
    )
    return ModelConfig(
        num_keypoints=model["head"]["out_channels"], input_size=tuple(fixture["input_size"]), stages=stages
    )


@pytest.mark.parametrize("name", sorted(HRNET))
def test_mmpose_1x_weights_give_mmposes_heatmaps(name):
    fixture = settings(name)
    model = build_model(narrowed_model_config(fixture))
    load_weights(model, FIXTURES / f"{name}.safetensors")  # strict=True, MMPose 1.x names → ours
    io = load_file(str(FIXTURES / f"{name}_io.safetensors"))
    expected = io["heatmaps"]
    assert expected.shape[1] == load_keypoint_set(HRNET[name]).num_keypoints
    with torch.no_grad():
        ours = model.eval()(io["inputs"].float())
    assert ours.shape == expected.shape
    peak = float(expected.abs().max())
    assert peak > 0.1 and float(expected.std()) > 0.05 * peak, "a flat reference would compare nothing"
    error = float((ours - expected).abs().max())
    assert error <= TOLERANCE * peak, f"max |ours - MMPose| = {error:.3g}, {error / peak:.2g} of max |heatmap|"


@pytest.mark.parametrize("name", sorted(HRNET))
def test_mmpose_1x_names_of_the_real_network_map_onto_our_preset(name):
    """The full-width HRNet-W32 as MMPose builds it (names and shapes only: meta tensors) loads strictly into our
    W32 preset with the keypoint set's count."""
    with gzip.open(FIXTURES / f"{name}_full_keys.json.gz", "rt") as f:
        keys = json.load(f)["keys"]
    assert not any(k.startswith("neck.") for k in keys)
    state = {k: torch.empty(shape, device="meta") for k, shape in keys.items()}
    config = dataclasses.replace(model_preset("w32"), num_keypoints=load_keypoint_set(HRNET[name]).num_keypoints)
    with torch.device("meta"):
        model = build_model(config)
    check_state_dict(model, convert_state_dict(state, name), source=name, strict=True)
