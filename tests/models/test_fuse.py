"""The fast path: folded BatchNorm and channels-last give the plain network's outputs."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from hrnet.config import ModelConfig, hrnet_stages
from hrnet.models.fuse import fold_batchnorm, prepare_for_inference
from hrnet.models.hrnet import HRNet, build_model
from tests.conftest import tiny_model_config


def _randomise_bn(model: nn.Module) -> nn.Module:
    """BN statistics far from identity, so that a wrong fold cannot pass."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.normal_(0, 0.3, generator=g)
        elif isinstance(m, nn.Conv2d):
            m.weight.data.normal_(0, (2 / m.weight[0].numel()) ** 0.5, generator=g)
    return model.eval()


@pytest.mark.parametrize("variant", ["hrnet", "tf_port"])
def test_folding_keeps_outputs_and_leaves_no_batchnorm(variant):
    torch.manual_seed(0)
    model = _randomise_bn(build_model(tiny_model_config(14 if variant == "tf_port" else 17, variant)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = model(x)
        folded = fold_batchnorm(model)
        fast = prepare_for_inference(model)(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the caller's model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    scale = plain.abs().max()
    with torch.no_grad():
        assert (folded(x) - plain).abs().max() <= 1e-4 * scale
    assert (fast - plain).abs().max() <= 1e-4 * scale


def test_folding_the_parity_network(reference_dir):
    parity = reference_dir / "parity"
    model = HRNet(ModelConfig(stages=hrnet_stages(8)))
    model.load_state_dict(load_file(str(parity / "hrnet_w8_parity.safetensors")))
    model.eval()
    x = torch.from_numpy(np.load(parity / "parity_io.npz")["input"])
    with torch.inference_mode():
        ref = model(x)
        fast = prepare_for_inference(model)(x)
    assert (fast - ref).abs().max() <= 1e-4 * ref.abs().max()
