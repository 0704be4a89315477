"""The TensorFlow-port variant (tf_w32): shapes, normalised heatmaps, gradients, and its distinctive wiring."""

import torch
from torch import nn

from hrnet.config import model_preset
from hrnet.models.hrnet import build_model
from hrnet.models.tf_port import BN_EPS, LEAKY_SLOPE, TFPortHRNet
from tests.conftest import tiny_model_config


def test_full_resolution_heatmaps_that_each_sum_to_one():
    torch.manual_seed(0)
    model = build_model(tiny_model_config(num_keypoints=14, variant="tf_port")).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 256, 192))
    assert out.shape == (2, 14, 256, 192)
    assert (out >= 0).all()
    torch.testing.assert_close(out.sum(dim=(2, 3)), torch.ones(2, 14), atol=1e-4, rtol=0)


def test_preset_is_the_ports_network():
    cfg = model_preset("tf_w32")
    assert cfg.num_keypoints == 14 and cfg.heatmap_size == cfg.input_size == (256, 192)
    model = build_model(cfg)
    assert isinstance(model, TFPortHRNet)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)  # the port's convolutions keep their bias
    assert convs[0].in_channels == 3 and convs[0].stride == (1, 1)  # no stem: stage 1 runs at full resolution
    acts = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert acts and all(a.negative_slope == LEAKY_SLOPE == 0.1 for a in acts)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())  # the head's ReLU is functional
    assert all(m.eps == BN_EPS for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.head.kernel_size == (3, 3)
    # stage 2-4: 1, 4 and 3 exchange blocks after the between-stage exchange
    assert [len(s) - 1 for s in model.stages] == [1, 4, 3]


def test_up_path_upsamples_before_the_1x1_conv():
    model = build_model(tiny_model_config(num_keypoints=14, variant="tf_port"))
    up = model.stages[1][1].fusion.paths[0][2]  # branch 2 → branch 0 in a stage-3 block
    assert isinstance(up[0], nn.Upsample) and up[0].scale_factor == 4
    assert up[1][0].kernel_size == (1, 1)


def test_init_std_is_the_ports():
    torch.manual_seed(0)
    model = build_model(model_preset("tf_w32"))
    w = model.stages[2][1].branches[3][0].conv1[0].weight  # 256×256×3×3
    assert abs(w.std().item() - 0.01) < 0.0005


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_model(tiny_model_config(num_keypoints=14, variant="tf_port")).train()
    out = model(torch.randn(2, 3, 64, 64))
    ((out - torch.rand_like(out) / out[0, 0].numel()) ** 2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
