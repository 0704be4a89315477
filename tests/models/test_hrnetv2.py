"""HRNetV2 (``model.head: hrnetv2``): the layers as MMPose builds them, both MMPose checkpoint layouts loaded strict,
the real W18 key lists mapped one to one, and heatmaps equal to MMPose 1.3.2's on its own seeded checkpoints
(tests/fixtures/mmpose/, README.md there says how they were made)."""

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from hrnet.config import ModelConfig, StageConfig, load_config, model_preset
from hrnet.errors import ConfigError
from hrnet.models.checkpoint import convert_state_dict, load_weights, read_state_dict
from hrnet.models.hrnet import build_model
from tests.conftest import tiny_model_config
from tests.models.test_fuse import randomised

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mmpose"
# MMPose 1.3.2's seeded, narrowed HRNetV2-W18 models, with the shipped config of the real network each narrows.
MMPOSE_MODELS = {
    "hrnetv2_w18_wflw": "face/hrnetv2_w18_wflw_256x256",
    "hrnetv2_w18_onehand10k": "hand/hrnetv2_w18_onehand10k_256x256",
}


def _v2(**changes: object) -> ModelConfig:
    return dataclasses.replace(tiny_model_config(21, head="hrnetv2"), **changes)  # type: ignore[arg-type]


def test_the_head_takes_all_four_branches_and_the_fusions_upsample_bilinearly():
    """Stage 4 keeps its four outputs; every upward fusion path ends in a bilinear upsampling (align_corners False);
    the head is a 1×1 conv with bias, BN and ReLU over the 8+16+32+64 = 120 concatenated channels, then the final
    1×1 conv. The simple head keeps the official nearest upsampling and one output."""
    model = build_model(_v2())
    assert len(model.stage4[-1].fuse_layers) == 4
    ups = [m for m in model.modules() if isinstance(m, nn.Upsample)]
    assert ups and all(m.mode == "bilinear" and m.align_corners is False for m in ups)
    conv, bn, relu = model.conv_layers
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.bias is not None) == (120, 120, (1, 1), True)
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    assert (model.final_layer.in_channels, model.final_layer.out_channels) == (120, 21)
    simple = build_model(tiny_model_config())
    assert len(simple.stage4[-1].fuse_layers) == 1 and simple.conv_layers is None and simple.neck is None
    assert all(m.mode == "nearest" for m in simple.modules() if isinstance(m, nn.Upsample))


def test_the_concatenation_is_mmposes_resize_to_branch_0():
    """Our scale factors give what MMPose's ``resize(x, size=inputs[0].shape[2:], mode='bilinear',
    align_corners=False)`` of every branch, branch 0 included, gives."""
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(2, 4 * 2**b, 16 // 2**b, 8 // 2**b, generator=g) for b in range(4)]
    model = build_model(_v2()).eval()
    expected = torch.cat([F.interpolate(x, size=(16, 8), mode="bilinear", align_corners=False) for x in xs], dim=1)
    assert torch.equal(model.neck(xs), expected)


def test_hrnetv2_trains_forward_and_backward():
    torch.manual_seed(0)
    model = build_model(_v2()).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 21, 16, 16)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_hrnetv2_is_only_built_on_the_official_network():
    with pytest.raises(ConfigError, match="head 'hrnetv2' is built on variant 'hrnet', not 'tf_port'"):
        dataclasses.replace(tiny_model_config(14, "tf_port"), head="hrnetv2")
    with pytest.raises(ConfigError, match=r"model\.head.*must be one of \['simple', 'hrnetv2'\]"):
        load_config(None, ["model.head=v2"])


def _mmpose_layouts(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Our state_dict as MMPose 1.x names it (``backbone.``; ``head.conv_layers.``, ``head.final_layer.``) and as
    0.x's TopdownHeatmapSimpleHead does (its one Sequential ``final_layer``: conv 0, BN 1, ReLU 2, conv 3)."""
    v1 = {("head." if k.startswith(("conv_layers.", "final_layer.")) else "backbone.") + k: v for k, v in state.items()}
    v0 = {}
    for key, value in v1.items():
        if key.startswith("head.conv_layers."):
            key = key.replace("head.conv_layers.", "keypoint_head.final_layer.")
        elif key.startswith("head.final_layer."):
            key = key.replace("head.final_layer.", "keypoint_head.final_layer.3.")
        v0[key] = value
    return {"mmpose-1.x": v1, "mmpose-0.x": v0}


@pytest.mark.parametrize("layout", ["mmpose-0.x", "mmpose-1.x"])
def test_both_mmpose_layouts_load_strict(tmp_path, layout):
    """A checkpoint as MMPose saves it ({"meta", "state_dict"}, a data preprocessor's tensors beside the model's)
    loads with strict=True and gives the saved network's heatmaps."""
    source = randomised(build_model(_v2()))
    state = _mmpose_layouts(source.state_dict())[layout]
    state["data_preprocessor.mean"] = torch.zeros(1, 3, 1, 1)
    path = tmp_path / "hrnetv2.pth"
    torch.save({"meta": {"mmpose_version": layout}, "state_dict": state}, path)
    model = build_model(_v2())
    load_weights(model, path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), source(x))


def _read_keys(path: Path) -> dict[str, list[int]]:
    return json.loads(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_text())["keys"]


def _fixture(name: str, suffix: str) -> Path:
    found = sorted(FIXTURES.glob(f"{name}{suffix}*"))
    if not found:
        pytest.fail(f"{FIXTURES}/{name}{suffix}: missing; make it with make_fixtures.py (README.md there)")
    return found[0]


@pytest.mark.parametrize("name", list(MMPOSE_MODELS))
def test_the_real_w18_keys_map_one_to_one(name):
    """MMPose 1.3.2's real HRNetV2-W18 model (its key names and shapes, in its order), renamed by our loader from
    its 1.x names and from the 0.x names of the same tensors, is exactly the network our shipped config builds."""
    keys = _read_keys(_fixture(name, "_full_keys.json"))
    with torch.device("meta"):
        model = build_model(load_config(MMPOSE_MODELS[name]).model)
        state = {k: torch.empty(shape) for k, shape in keys.items()}
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours[-9][0] == "conv_layers.0.weight" and ours[-9][1] == [270, 270, 1, 1]
    v0 = _mmpose_layouts(convert_state_dict(state))["mmpose-0.x"]
    for layout in (state, v0):
        assert [(k, list(v.shape)) for k, v in convert_state_dict(layout, name).items()] == ours


def _mmpose_model_config(settings: dict) -> ModelConfig:
    """Our config of a fixture's narrowed network, read from the MMPose model settings it records."""
    extra = settings["model"]["backbone"]["extra"]
    stages = tuple(
        StageConfig(
            num_modules=extra[f"stage{s}"]["num_modules"],
            num_branches=extra[f"stage{s}"]["num_branches"],
            block=extra[f"stage{s}"]["block"].lower(),
            num_blocks=tuple(extra[f"stage{s}"]["num_blocks"]),
            num_channels=tuple(extra[f"stage{s}"]["num_channels"]),
        )
        for s in range(1, 5)
    )
    assert extra["upsample"] == {"mode": "bilinear", "align_corners": False}
    assert settings["model"]["neck"] == {"type": "FeatureMapProcessor", "concat": True}
    return dataclasses.replace(
        model_preset("w18"),
        head="hrnetv2",
        stages=stages,
        num_keypoints=settings["num_keypoints"],
        input_size=tuple(settings["input_size"]),
    )


@pytest.mark.parametrize("name", list(MMPOSE_MODELS))
def test_heatmaps_equal_mmposes(tmp_path, name):
    """MMPose 1.3.2's seeded checkpoint (its own 1.x names) and the same tensors in 0.x names load strict; our
    heatmaps on its input equal MMPose's within 1e-4 of max |output|, in PyTorch and through ONNX Runtime."""
    from hrnet.runtime.export import OnnxRunner, export_onnx

    settings = json.loads(_fixture(name, ".json").read_text())
    config = _mmpose_model_config(settings)
    io = load_file(str(_fixture(name, "_io.safetensors")))
    inputs, expected = io["inputs"].float(), io["heatmaps"]
    scale = float(expected.abs().max())
    v0 = tmp_path / f"{name}_0x.pth"
    v1_state = read_state_dict(_fixture(name, ".safetensors"))
    torch.save({"state_dict": _mmpose_layouts(v1_state)["mmpose-0.x"]}, v0)
    for weights in (_fixture(name, ".safetensors"), v0):
        model = build_model(config)
        load_weights(model, weights)
        with torch.no_grad():
            got = model.eval()(inputs)
        assert got.shape == expected.shape == (2, settings["num_keypoints"], *settings["heatmap_size"])
        assert float((got - expected).abs().max()) <= 1e-4 * scale
    onnx = export_onnx(model, tmp_path / f"{name}.onnx", config.input_size)
    got_onnx = OnnxRunner(onnx)(inputs.numpy())
    assert float(np.abs(got_onnx - expected.numpy()).max()) <= 1e-4 * scale
