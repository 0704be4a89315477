"""Lite-HRNet (src/hrnet/models/litehrnet.py) against MMPose 1.3.2: its real key layout at full width, its heatmaps
on seeded narrow networks (tests/fixtures/mmpose/ and tests/fixtures/litehrnet_variants/, READMEs there) in both
MMPose checkpoint layouts, through the fast path and ONNX; the paper's sizes; the config's checks."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from hrnet.cli import main
from hrnet.config import LITEHRNET_18, LiteHRNetConfig, ModelConfig, load_config, model_preset, to_dict
from hrnet.errors import ConfigError
from hrnet.models.checkpoint import convert_state_dict, load_weights
from hrnet.models.complexity import count_macs, count_parameters
from hrnet.models.fuse import prepare_for_inference
from hrnet.models.hrnet import build_model
from hrnet.models.litehrnet import LiteHRNet

FIXTURES = Path(__file__).parents[1] / "fixtures"
MMPOSE = FIXTURES / "mmpose"
VARIANTS = FIXTURES / "litehrnet_variants" / "variants"
TOLERANCE = 1e-4  # of max |heatmap|: float32 reordering stays near 1e-6 of it, a wiring mistake moves it by percents


def _spec(backbone: dict[str, Any]) -> LiteHRNetConfig:
    """MMPose's ``LiteHRNet`` backbone settings (``extra``) as our ``model.litehrnet``."""
    extra = backbone["extra"]
    stages = extra["stages_spec"]
    assert extra["num_stages"] == len(stages["num_modules"])
    assert stages["num_branches"] == [len(c) for c in stages["num_channels"]]
    return LiteHRNetConfig(
        stem_channels=extra["stem"]["stem_channels"],
        stem_out_channels=extra["stem"]["out_channels"],
        stem_expand_ratio=float(extra["stem"]["expand_ratio"]),
        num_modules=tuple(stages["num_modules"]),
        num_blocks=tuple(stages["num_blocks"]),
        num_channels=tuple(tuple(c) for c in stages["num_channels"]),
        reduce_ratios=tuple(stages["reduce_ratios"]),
        module_type=tuple(kind.lower() for kind in stages["module_type"]),
        with_fuse=tuple(stages["with_fuse"]),
        with_head=extra["with_head"],
    )


def _fixture(stem: Path) -> tuple[ModelConfig, list[tuple[str, list[int]]], torch.Tensor, torch.Tensor]:
    """The narrow network a fixture describes, its keys in MMPose's order with their shapes, the input batch and
    MMPose's heatmaps for it."""
    settings = json.loads(stem.with_suffix(".json").read_text())
    backbone = settings["model"]["backbone"] if "model" in settings else settings["backbone"]
    keys = settings["keys"]
    keys = list(keys.items()) if isinstance(keys, dict) else [tuple(k) for k in keys]
    io = load_file(str(stem.parent / f"{stem.name}_io.safetensors"))
    heatmaps = io["heatmaps"]
    config = ModelConfig(
        variant="litehrnet",
        litehrnet=_spec(backbone),
        num_keypoints=heatmaps.shape[1],
        input_size=tuple(io["inputs"].shape[-2:]),  # type: ignore[arg-type]
    )
    return config, keys, io["inputs"].float(), heatmaps


def _close(got: torch.Tensor | np.ndarray, expected: torch.Tensor) -> float:
    """max |got − expected| as a fraction of max |expected|."""
    got = torch.as_tensor(got)
    assert got.shape == expected.shape
    return float((got - expected).abs().max() / expected.abs().max())


NARROW = [MMPOSE / "litehrnet18_coco", MMPOSE / "litehrnet30_coco", VARIANTS]


@pytest.mark.parametrize("stem", NARROW, ids=lambda p: p.name)
def test_mmpose_heatmaps_are_reproduced(stem):
    """MMPose 1.x's state_dict loads strict, its key order is ours, and our heatmaps are MMPose's (the variants
    fixture: shuffle modules, a stage without fusion, a wider stem output, no iterative head)."""
    config, keys, inputs, expected = _fixture(stem)
    model = build_model(config)
    assert isinstance(model, LiteHRNet)
    assert list(convert_state_dict(dict.fromkeys((k for k, _ in keys), torch.empty(0)))) == list(model.state_dict())
    load_weights(model, stem.with_suffix(".safetensors"))
    with torch.no_grad():
        assert _close(model.eval()(inputs), expected) <= TOLERANCE


@pytest.mark.parametrize("head", ["keypoint_head", "head"], ids=["mmpose-0.x", "mmpose-1.x"])
def test_both_mmpose_checkpoint_layouts_load_strict(tmp_path, head):
    """A .pth as MMPose publishes it ({"meta", "state_dict"}, backbone.* and <head>.final_layer.*) loads strict."""
    config, _, inputs, expected = _fixture(MMPOSE / "litehrnet18_coco")
    state = load_file(str(MMPOSE / "litehrnet18_coco.safetensors"))
    state = {k.replace("head.final_layer.", f"{head}.final_layer.", 1): v for k, v in state.items()}
    path = tmp_path / "litehrnet18_coco_256x192-00000000_20211230.pth"
    torch.save({"meta": {"epoch": 210}, "state_dict": state}, path)
    model = build_model(config)
    load_weights(model, path)
    with torch.no_grad():
        assert _close(model.eval()(inputs), expected) <= TOLERANCE


def test_the_fast_path_and_the_exported_onnx_reproduce_mmpose(tmp_path, capsys):
    """BatchNorm folded into the depthwise and 1×1 convs, channels-last: MMPose's heatmaps. And `hrnet export` of
    the MMPose 1.x file: ONNX Runtime gives MMPose's heatmaps too (channel shuffle, adaptive pooling, both
    upsamplings exported)."""
    pytest.importorskip("onnxruntime")
    from hrnet.runtime.onnx import OnnxRunner

    config, _, inputs, expected = _fixture(MMPOSE / "litehrnet18_coco")
    model = build_model(config)
    load_weights(model, MMPOSE / "litehrnet18_coco.safetensors")
    assert _close(prepare_for_inference(model)(inputs), expected) <= TOLERANCE
    weights = tmp_path / "lite.pth"
    torch.save({"state_dict": load_file(str(MMPOSE / "litehrnet18_coco.safetensors"))}, weights)
    experiment = tmp_path / "lite.yaml"
    experiment.write_text(yaml.safe_dump({"model": to_dict(config)}))
    out = tmp_path / "lite.onnx"
    assert main(["export", str(experiment), "--weights", str(weights), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert _close(OnnxRunner(out)(inputs.numpy()), expected) <= TOLERANCE


@pytest.mark.parametrize(("preset", "name"), [("litehrnet18", "litehrnet18_coco"), ("litehrnet30", "litehrnet30_coco")])
def test_real_width_names_and_shapes_are_mmpose_s(preset, name):
    """Every key of MMPose's real Lite-HRNet-18/30 COCO network (built by init_model from its config), in its order,
    in both layouts, maps 1:1 onto our preset's state_dict, shapes included: the released checkpoints load strict."""
    listing = json.loads(gzip.decompress((MMPOSE / f"{name}_full_keys.json.gz").read_bytes()))
    assert listing["config"].endswith("coco-256x192.py")
    with torch.device("meta"):
        model = build_model(model_preset(preset))
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    for head in ("head", "keypoint_head"):
        state = {
            k.replace("head.final_layer.", f"{head}.final_layer.", 1): torch.empty(s, device="meta")
            for k, s in listing["keys"].items()
        }
        assert [(k, list(v.shape)) for k, v in convert_state_dict(state).items()] == ours


@pytest.mark.parametrize(
    ("preset", "params", "macs", "paper"),
    [("litehrnet18", 1_130_769, 198_626_688, (1.1, 0.20)), ("litehrnet30", 1_763_717, 309_451_488, (1.8, 0.31))],
)
def test_sizes_are_the_paper_s(preset, params, macs, paper):
    """Yu et al. 2021, Table 3 (COCO, 256×192): Lite-HRNet-18 has 1.1M parameters and 0.20 GFLOPs, -30 1.8M and
    0.31 (multiply-adds in units of 10^9); ours count conv multiply-adds only, as `hrnet info` does."""
    config = model_preset(preset)
    with torch.device("meta"):
        model = build_model(config)
    assert (count_parameters(model), count_macs(model, config.input_size)) == (params, macs)
    assert (round(params / 1e6, 1), round(macs / 1e9, 2)) == paper
    assert config.heatmap_size == (64, 48)  # a quarter of the input, as HRNet's


def test_info_prints_the_network(capsys):
    assert main(["info", "litehrnet18"]) == 0
    out = capsys.readouterr().out
    assert "parameters         1,130,769" in out and "multiply-adds      0.199 G" in out
    assert "stage 4            4 branches, widths 40/80/160/320, 2 module(s) × 2 conditional channel weighting" in out


def test_shipped_configs_are_the_presets():
    for name, preset in (("coco/litehrnet18_384x288", "litehrnet18"), ("coco/litehrnet30_256x192", "litehrnet30")):
        assert load_config(name).model.litehrnet == model_preset(preset).litehrnet
    hand = load_config("hand/litehrnet18_coco_wholebody_hand_256x256")
    assert (hand.model.num_keypoints, hand.model.litehrnet, hand.data.keypoint_set) == (
        21,
        LITEHRNET_18,
        "coco_wholebody_hand21",
    )


def test_initialisation_is_mmpose_s():
    torch.manual_seed(0)
    model = LiteHRNet(model_preset("litehrnet18"))
    big = model.stage2[1].fuse_layers[2][3][0].weight  # the 1×1 conv 320→160: a large sample
    assert big.std().item() == pytest.approx(0.001, rel=0.02)
    assert torch.all(model.final_layer.bias == 0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.variant=hrnet"], r"model\.litehrnet describes variant litehrnet's network"),
        (["model.litehrnet.num_blocks=[2, 2]"], r"num_modules has 3 entries .* need as many"),
        (["model.litehrnet.num_channels=[[40, 80], [40, 80], [40, 80, 160]]"], r"each later stage one more"),
        (["model.litehrnet.num_channels=[[40], [40, 80], [40, 80, 160]]"], r"stage 1 needs ≥ 2 branches"),
        (["model.litehrnet.stem_out_channels=31"], r"widths must be even"),
        (["model.litehrnet.stem_out_channels=16"], r"stem_out_channels must be at least stem_channels"),
        (["model.litehrnet.reduce_ratios=[80, 8, 8]"], r"half their sum ≥ reduce_ratio"),
        (["model.litehrnet.module_type=[lite, shuffle, lite]"], r"must be one of \['lite', 'naive'\]"),
        (["model.input_size=[256, 200]"], r"multiples of 32"),
    ],
)
def test_config_checks_name_the_fault(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("litehrnet18", overrides)


def test_a_variant_without_its_spec_is_refused():
    with pytest.raises(ConfigError, match="give both"):
        load_config(None, ["model.variant=litehrnet"])
    three_branches = dataclasses.replace(LITEHRNET_18, num_modules=(2, 4), num_blocks=(2, 2), reduce_ratios=(8, 8),
                                         num_channels=((40, 80), (40, 80, 160)), module_type=("lite", "lite"),
                                         with_fuse=(True, True))  # fmt: skip
    config = ModelConfig(variant="litehrnet", litehrnet=three_branches, input_size=(48, 32))
    assert config.input_step == 16
    with torch.no_grad():
        assert build_model(config).eval()(torch.zeros(1, 3, 48, 32)).shape == (1, 17, 12, 8)
