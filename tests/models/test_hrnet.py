"""The official network: checkpoint layouts, numerical parity with the official code, init, gradients."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hrnet.config import MODEL_PRESETS, ModelConfig, hrnet_stages, model_preset
from hrnet.models.complexity import count_parameters
from hrnet.models.hrnet import HRNet, build_model
from tests.conftest import tiny_model_config

LAYOUTS = ["coco_w32_256x192", "coco_w32_384x288", "coco_w48_256x192", "coco_w48_384x288", "mpii_w32_256x256"]


@pytest.mark.parametrize("name", LAYOUTS)
def test_state_dict_equals_official_layout(reference_dir, name):
    ref = json.loads((reference_dir / "official_state_dict" / f"{name}.json").read_text())
    width = ref["stages"]["STAGE2"]["NUM_CHANNELS"][0]
    w, h = ref["image_size_wh"]
    cfg = dataclasses.replace(model_preset(f"w{width}"), num_keypoints=ref["num_joints"], input_size=(h, w))
    assert list(cfg.heatmap_size) == ref["heatmap_size_wh"][::-1]
    with torch.device("meta"):  # names, shapes and counts need no memory
        model = HRNet(cfg)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, list(s)) for k, s in ref["state_dict"]]
    assert count_parameters(model) == ref["num_parameters"]


def test_parameter_counts_of_the_paper():
    with torch.device("meta"):
        assert count_parameters(HRNet(model_preset("w32"))) == 28_536_113
        assert count_parameters(HRNet(model_preset("w48"))) == 63_595_745


def test_official_weights_load_strict_and_reproduce_official_output(reference_dir):
    parity = reference_dir / "parity"
    settings = json.loads((parity / "hrnet_w8_parity_config.json").read_text())
    assert settings["MODEL"]["EXTRA"]["STAGE4"]["NUM_CHANNELS"] == [8, 16, 32, 64]
    model = HRNet(ModelConfig(stages=hrnet_stages(8)))
    model.load_state_dict(load_file(str(parity / "hrnet_w8_parity.safetensors")), strict=True)
    model.eval()
    io = np.load(parity / "parity_io.npz")
    with torch.no_grad():
        out = model(torch.from_numpy(io["input"])).numpy()
    ref = io["output"]
    assert out.shape == ref.shape == (2, 17, 64, 48)
    # fp32 reordering moves outputs by ~2e-5 of max|ref|; any wiring mistake by 9 % or more (fixtures.json).
    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()


def test_initialisation_is_the_official_one():
    torch.manual_seed(0)
    model = HRNet(model_preset("w32"))
    big = model.stage4[0].branches[3][0].conv1.weight  # 256×256×3×3: a large sample
    assert big.std().item() == pytest.approx(0.001, rel=0.02)
    assert big.mean().abs().item() < 1e-5
    assert torch.all(model.final_layer.bias == 0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_heatmaps_are_a_quarter_of_the_input():
    cfg = tiny_model_config()
    model = HRNet(cfg).eval()
    with torch.no_grad():
        assert model(torch.zeros(3, 3, 128, 96)).shape == (3, 17, 32, 24)


@pytest.mark.parametrize("preset", sorted(MODEL_PRESETS))
def test_every_preset_trains_forward_and_backward(preset):
    """Every parameter of every preset gets a finite, non-zero gradient at a tiny input."""
    torch.manual_seed(0)
    cfg = model_preset(preset)
    model = build_model(cfg).train()
    size = (32, 32) if cfg.variant == "tf_port" else (64, 64)
    x = torch.randn(2, 3, *size)
    out = model(x)
    stride = cfg.heatmap_stride
    assert out.shape == (2, cfg.num_keypoints, size[0] // stride, size[1] // stride)
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(out).all()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
