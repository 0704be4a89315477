"""The fast path: folded BatchNorm and channels-last give the plain network's outputs."""

import copy
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from hrnet.config import ModelConfig, hrnet_stages
from hrnet.models.fuse import FastModel, fold_batchnorm, fold_conv_bn, prepare_for_inference
from hrnet.models.hrnet import HRNet, build_model
from tests.conftest import tiny_model_config


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` in eval mode with He-initialised convs and BatchNorm far from identity (statistics, scale and
    shift), so that a wrong or missing fold changes the outputs by far more than the tolerance."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.3, generator=g)
            elif isinstance(m, nn.Conv2d):
                m.weight.normal_(0, (2 / m.weight[0].numel()) ** 0.5, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0, 0.1, generator=g)
    return model.eval()


def _tiny(variant: str) -> nn.Module:
    model = randomised(build_model(tiny_model_config(14 if variant == "tf_port" else 17, variant)))
    if variant != "tf_port":
        # Sums of He-initialised units grow to ~100 (HRNet) or ~1000 (Lite-HRNet) here; trained heatmaps peak near
        # 1. Scaling the head brings the outputs to that range, where an absolute bound of 1e-4 means what it says.
        with torch.no_grad():
            peak = model(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))).abs().max()
            model.final_layer.weight.div_(peak)
            model.final_layer.bias.div_(peak)
    return model


def _assert_close(got: torch.Tensor, expected: torch.Tensor, absolute: bool = False) -> None:
    assert got.shape == expected.shape
    error = (got - expected).abs().max().item()
    assert error <= 1e-4 * expected.abs().max().item()
    if absolute:
        assert error <= 1e-4


def test_folding_one_pair_is_exact():
    g = torch.Generator().manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=True), nn.BatchNorm2d(5, eps=1e-3)
    randomised(nn.Sequential(conv, bn))
    x = torch.randn(2, 3, 9, 7, generator=g)
    with torch.no_grad():
        _assert_close(fold_conv_bn(conv, bn)(x), bn(conv(x)), absolute=True)


def test_a_batchnorm_without_statistics_is_refused():
    with pytest.raises(ValueError, match="without running statistics"):
        fold_conv_bn(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False))


@pytest.mark.parametrize("variant", ["hrnet", "tf_port", "litehrnet"])
def test_folding_keeps_outputs_and_leaves_no_batchnorm(variant):
    model = _tiny(variant)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # the copy must get eval semantics whatever the caller's mode
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    folded = fold_batchnorm(model)
    assert model.training  # the caller's model is untouched: mode, modules and values
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not folded.training
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        plain = model.eval()(x)
        _assert_close(folded(x), plain, absolute=True)
        # Dropping the BatchNorms instead of folding them would change the outputs far beyond the tolerance.
        unnormalised = copy.deepcopy(model)
        for m in unnormalised.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
        assert (unnormalised(x) - plain).abs().max() > 1e-2 * plain.abs().max()
    fast = prepare_for_inference(model)(x)
    _assert_close(fast, plain, absolute=True)
    assert fast.is_contiguous()


@pytest.mark.parametrize("variant", ["hrnet", "tf_port", "litehrnet"])
def test_folding_in_place_gives_the_copy_s_outputs_exactly(variant):
    """``inplace=True`` (for a network nobody uses unfolded again) folds the network itself, to the bit as a copy."""
    model = _tiny(variant)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        copied = fold_batchnorm(model)(x)
    fast = prepare_for_inference(model)(x)
    folded = fold_batchnorm(model, inplace=True)
    assert folded is model and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        assert torch.equal(folded(x), copied)
    assert torch.equal(prepare_for_inference(_tiny(variant), inplace=True)(x), fast)


def test_a_conv_in_two_places_is_folded_for_each():
    """One conv before two different BatchNorms: folding the conv itself for the first would fold it twice."""

    class TwoNorms(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            conv = nn.Conv2d(3, 4, 3, padding=1)
            self.a, self.b = nn.Sequential(conv, nn.BatchNorm2d(4)), nn.Sequential(conv, nn.BatchNorm2d(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(x)

    model = randomised(TwoNorms())
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        _assert_close(fold_batchnorm(model, inplace=True)(x), expected, absolute=True)


def test_an_unknown_module_keeps_its_batchnorm():
    """Only known conv → BN wiring is folded: here ``bn1`` normalises the input, not ``conv1``'s output."""

    class PreNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv1(self.bn1(x))

    model = randomised(PreNorm())
    x = torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        _assert_close(fold_batchnorm(model)(x), model(x), absolute=True)


def test_folding_the_parity_network(reference_dir):
    """The official W8 parity network, whose BN statistics are randomised, on the parity input."""
    parity = reference_dir / "parity"
    model = HRNet(ModelConfig(stages=hrnet_stages(8)))
    model.load_state_dict(load_file(str(parity / "hrnet_w8_parity.safetensors")))
    model.eval()
    x = torch.from_numpy(np.load(parity / "parity_io.npz")["input"])
    with torch.no_grad():
        ref = model(x)
        _assert_close(fold_batchnorm(model)(x), ref)
    fast = prepare_for_inference(model)
    assert isinstance(fast, FastModel)
    _assert_close(fast(x), ref)
    _assert_close(prepare_for_inference(model, channels_last=False)(x), ref)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="torch.compile needs a C++ compiler")
def test_compiled_fast_path():
    """Inductor with freezing: about 10 s on 2 cores with a cold compile cache."""
    model = _tiny("hrnet")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model(x)
    _assert_close(prepare_for_inference(model, compile=True)(x), plain, absolute=True)
