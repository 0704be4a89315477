"""The TensorFlow-port variant (tf_w32): shapes, normalised heatmaps, gradients, and its distinctive wiring."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrnet.config import model_preset
from hrnet.models.fuse import fold_batchnorm
from hrnet.models.hrnet import build_model
from hrnet.tf_port.model import BN_EPS, LEAKY_SLOPE, ConvBNAct, PortBatchNorm, TFPortHRNet, tf_same_padding
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


@pytest.mark.parametrize(
    ("size", "kernel_size", "stride", "padding"),
    [
        (64, 3, 2, (0, 1)),
        (63, 3, 2, (1, 1)),
        (6, 3, 2, (0, 1)),
        (64, 1, 2, (0, 0)),
        (64, 3, 1, (1, 1)),
        (7, 4, 3, (1, 2)),
    ],
)
def test_tf_same_padding(size, kernel_size, stride, padding):
    assert tf_same_padding(size, kernel_size, stride) == padding


@pytest.mark.parametrize(("height", "width"), [(8, 6), (7, 5), (8, 5)])
def test_stride_2_convs_sample_as_tensorflow(height, width):
    """TF's 'same' padding for a stride-2 3×3 conv: 0 before and 1 after on an even size, 1 and 1 on an odd."""
    torch.manual_seed(0)
    layer = ConvBNAct(2, 4, 3, stride=2).eval()
    x = torch.randn(1, 2, height, width)
    pads = (0 if width % 2 == 0 else 1, 1, 0 if height % 2 == 0 else 1, 1)
    expected = layer.act(layer.bn(F.conv2d(F.pad(x, pads), layer.conv.weight, layer.conv.bias, stride=2)))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)
    assert layer(x).shape[-2:] == (-(-height // 2), -(-width // 2))


def _tiny_pair() -> tuple[TFPortHRNet, TFPortHRNet]:
    """The same random tiny network with batch_norm running and batch, BatchNorm statistics far from 0/1."""
    cfg = tiny_model_config(num_keypoints=14, variant="tf_port")
    torch.manual_seed(0)
    running = build_model(cfg)
    g = torch.Generator().manual_seed(1)
    for m in running.modules():
        if isinstance(m, PortBatchNorm):
            m.running_mean.normal_(0, 0.5, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
        elif isinstance(m, nn.Conv2d):
            m.weight.data.normal_(0, (1 / m.weight[0].numel()) ** 0.5, generator=g)
    batch = build_model(dataclasses.replace(cfg, batch_norm="batch"))
    batch.load_state_dict(running.state_dict())
    return running, batch


def test_batch_norm_batch_uses_each_batchs_statistics_at_test_time():
    running, batch = _tiny_pair()
    running.eval(), batch.eval()
    bn = batch.stage1_out.bn
    x = torch.randn(3, 8, 5, 4)
    var, mean = x.var(dim=(0, 2, 3), unbiased=False), x.mean(dim=(0, 2, 3))
    manual = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + BN_EPS) * bn.weight[:, None, None]
    with torch.no_grad():
        torch.testing.assert_close(bn(x), manual + bn.bias[:, None, None])
    before = {k: v.clone() for k, v in batch.state_dict().items()}
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        pair, single, plain = batch(images)[:1], batch(images[:1]), running(images[:1])
    assert all(torch.equal(before[k], v) for k, v in batch.state_dict().items())  # statistics left alone
    assert (pair - single).abs().max() > 1e-3 * single.abs().max()  # a person's output depends on the batch
    assert (plain - single).abs().max() > 1e-3 * single.abs().max()


def test_in_training_both_modes_are_pytorchs():
    running, batch = _tiny_pair()
    images = torch.rand(2, 3, 32, 32)
    out_running, out_batch = running.train()(images), batch.train()(images)
    torch.testing.assert_close(out_batch, out_running, rtol=0, atol=0)
    assert torch.equal(batch.stage1_out.bn.running_mean, running.stage1_out.bn.running_mean)
    assert batch.stage1_out.bn.num_batches_tracked.item() == 1  # the running statistics were updated


def test_folding_keeps_batch_statistics():
    _, batch = _tiny_pair()
    folded = fold_batchnorm(batch)
    assert sum(isinstance(m, PortBatchNorm) for m in folded.modules()) == sum(
        isinstance(m, PortBatchNorm) for m in batch.modules()
    )
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(images), batch.eval()(images), rtol=0, atol=0)
