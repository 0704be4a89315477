"""ONNX export: ONNX Runtime equals PyTorch, with a dynamic batch axis; the onnxruntime backend of predict."""

import numpy as np
import pytest
import torch
from torch import nn

from hrnet.config import model_preset
from hrnet.errors import ConfigError
from hrnet.export import OnnxRunner, export_from_config, export_onnx
from hrnet.models.checkpoint import save_weights
from hrnet.models.hrnet import build_model
from tests.conftest import tiny_model_config


def _check(model: nn.Module, path, size, batches=(1, 3)):
    runner = OnnxRunner(path)
    g = torch.Generator().manual_seed(1)
    for n in batches:
        x = torch.randn(n, 3, *size, generator=g)
        with torch.no_grad():
            ref = model.eval()(x).numpy()
        got = runner(x.numpy())
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("variant", ["hrnet", "tf_port"])
def test_tiny_networks_export(tmp_path, variant):
    torch.manual_seed(0)
    model = build_model(tiny_model_config(14 if variant == "tf_port" else 17, variant))
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    path = export_onnx(model, tmp_path / "tiny.onnx", (64, 64))
    _check(model, path, (64, 64))
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.onnx"]


def test_w32_exports_from_config(tmp_path):
    torch.manual_seed(0)
    model = build_model(model_preset("w32"))
    for m in model.modules():  # official init gives near-zero outputs: perturb BN so the check means something
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(5, 10)
            m.running_var.uniform_(0.5, 2)
    weights = tmp_path / "w32.safetensors"
    save_weights(model, weights)
    path = export_from_config(model_preset("w32"), weights, tmp_path / "w32.onnx")
    _check(model, path, (256, 192), batches=(2,))


def test_unloadable_model_is_a_clear_error(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"nope")
    with pytest.raises(ConfigError, match=r"bad\.onnx: ONNX Runtime cannot load"):
        OnnxRunner(tmp_path / "bad.onnx")
