"""ONNX export: ONNX Runtime equals PyTorch, with a dynamic batch axis; the onnxruntime backend of predict."""

import os
import stat
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from hrnet.cli import main
from hrnet.config import ModelConfig, hrnet_stages, model_preset
from hrnet.errors import ConfigError, OutputError
from hrnet.models.checkpoint import onnx_metadata, save_weights
from hrnet.models.hrnet import HRNet, build_model
from hrnet.runtime.export import ExportError, OnnxRunner, export_from_config, export_onnx
from hrnet.runtime.onnx import META_EXPORTED_BY
from tests.conftest import tiny_model_config
from tests.models.test_fuse import randomised


def _assert_runtime_equals_torch(model: nn.Module, path, size, batches=(1, 3)):
    runner = OnnxRunner(path, threads=2)
    g = torch.Generator().manual_seed(1)
    for n in batches:
        x = torch.randn(n, 3, *size, generator=g)
        with torch.no_grad():
            expected = model.eval()(x).numpy()
        got = runner(x.numpy())
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize("variant", ["hrnet", "tf_port", "litehrnet"])
def test_tiny_networks_export(tmp_path, variant):
    model = randomised(build_model(tiny_model_config(14 if variant == "tf_port" else 17, variant)))
    path = export_onnx(model, tmp_path / "tiny.onnx", (64, 64))
    assert path == tmp_path / "tiny.onnx"
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.onnx"]  # no temporary file left behind
    _assert_runtime_equals_torch(model, path, (64, 64))
    runner = OnnxRunner(path)
    assert [i.name for i in runner.session.get_inputs()] == ["image"]
    assert [o.name for o in runner.session.get_outputs()] == ["heatmaps"]
    # Its threads stop spinning when a run returns, leaving the cores to a video's decoding and encoding threads.
    assert runner.session.get_session_options().get_session_config_entry("session.force_spinning_stop") == "1"


def test_export_leaves_the_model_as_it_was(tmp_path):
    model = randomised(build_model(tiny_model_config())).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "tiny.onnx", (64, 64))
    assert model.training
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_fixed_batch_export_refuses_another_batch(tmp_path):
    model = randomised(build_model(tiny_model_config()))
    path = export_onnx(model, tmp_path / "fixed.onnx", (64, 64), dynamic_batch=False, fold_bn=False)
    _assert_runtime_equals_torch(model, path, (64, 64), batches=(2,))
    with pytest.raises(ValueError, match=r"fixed\.onnx: the model takes inputs of shape \(2, 3, 64, 64\), got"):
        OnnxRunner(path)(np.zeros((1, 3, 64, 64), np.float32))


def test_w32_exports_from_config(tmp_path):
    """The full W32 network with non-trivial weights, through the function the CLI calls."""
    torch.manual_seed(0)
    model = randomised(build_model(model_preset("w32")))
    weights = tmp_path / "w32.safetensors"
    save_weights(model, weights)
    path = export_from_config(model_preset("w32"), weights, tmp_path / "w32.onnx")
    _assert_runtime_equals_torch(model, path, (256, 192))


def test_the_parity_network_exports(tmp_path, reference_dir):
    parity = reference_dir / "parity"
    model = HRNet(ModelConfig(stages=hrnet_stages(8)))
    model.load_state_dict(load_file(str(parity / "hrnet_w8_parity.safetensors")))
    x = np.load(parity / "parity_io.npz")["input"]
    path = export_onnx(model, tmp_path / "w8.onnx", x.shape[2:])
    _assert_runtime_equals_torch(model, path, x.shape[2:])


def test_a_graph_that_differs_from_torch_is_not_written(tmp_path):
    class Noisy(nn.Module):  # exported as ONNX RandomNormalLike: ONNX Runtime draws other numbers
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.randn_like(x)

    with pytest.raises(ExportError, match=r"noisy\.onnx: ONNX Runtime's outputs differ from PyTorch's by"):
        export_onnx(Noisy(), tmp_path / "noisy.onnx", (8, 8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("package", ["onnx", "onnxruntime"])
def test_missing_packages_name_the_extra(tmp_path, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` raise ImportError
    with pytest.raises(ConfigError, match=rf"needs the package '{package}': pip install 'hrnet\[onnx\]'"):
        export_onnx(build_model(tiny_model_config()), tmp_path / "tiny.onnx", (64, 64))
    assert list(tmp_path.iterdir()) == []


def test_unloadable_model_is_a_clear_error(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"nope")
    with pytest.raises(ConfigError, match=r"bad\.onnx: ONNX Runtime cannot load"):
        OnnxRunner(tmp_path / "bad.onnx")


def test_export_never_replaces_its_weights(tmp_path):
    config = tiny_model_config()
    weights = tmp_path / "w.safetensors"
    save_weights(build_model(config), weights)
    before = weights.read_bytes()
    with pytest.raises(
        OutputError, match=r"w\.safetensors is the input .*w\.safetensors: the --out file would replace"
    ):
        export_from_config(config, weights, weights)
    assert weights.read_bytes() == before


def test_export_never_replaces_a_device_or_a_named_pipe(tmp_path, capsys):
    """``--out /dev/null`` run as root replaced the device with a file; a FIFO stands in for it here."""
    fifo = tmp_path / "null"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match=r"null: the --out file is a named pipe \(FIFO\), not a regular file"):
        export_from_config(tiny_model_config(), None, fifo, overwrite=True)
    assert main(["export", "w18", "--out", str(fifo), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a named pipe (FIFO), not a regular file" in err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_export_replaces_only_an_earlier_export_unless_overwrite(tmp_path, capsys):
    """An unrelated file or a trained checkpoint at --out is refused; an earlier export (its metadata says so) is
    replaced; --overwrite replaces any regular file."""
    config = tiny_model_config()
    weights = tmp_path / "last.safetensors"
    save_weights(build_model(config), weights)
    notes, best = tmp_path / "notes.txt", tmp_path / "best.safetensors"
    notes.write_text("mine")
    best.write_bytes(weights.read_bytes())
    for target in (notes, best):
        with pytest.raises(OutputError, match=rf"{target.name}: the --out file would replace a file that hrnet export"):
            export_from_config(config, weights, target)
    assert notes.read_text() == "mine" and best.read_bytes() == weights.read_bytes()
    onnx = export_from_config(config, weights, tmp_path / "m.onnx", check=False)
    assert onnx_metadata(onnx)[META_EXPORTED_BY].startswith("hrnet export")
    export_from_config(config, weights, onnx, check=False)  # an earlier export: replaced without asking
    export_from_config(config, weights, notes, overwrite=True, check=False)
    assert META_EXPORTED_BY in onnx_metadata(notes)
    best_before = best.read_bytes()
    args = ["export", "w18", "--out", str(best)]
    assert main(args) == 2
    assert "pass --overwrite to replace it" in capsys.readouterr().err and best.read_bytes() == best_before


def test_onnx_input_size_and_keypoints_must_match_the_config(tmp_path):
    import dataclasses

    from hrnet.config import ExperimentConfig
    from hrnet.pose.estimator import PoseEstimator

    model = build_model(tiny_model_config())
    path = export_onnx(model, tmp_path / "tiny.onnx", (64, 64), check=False)
    config = ExperimentConfig(model=dataclasses.replace(tiny_model_config(), input_size=(96, 64)))
    with pytest.raises(
        ConfigError,
        match=r"tiny\.onnx: the ONNX model takes 64 × 64 crops .* model\.input_size is "
        r"96 × 64",
    ):
        PoseEstimator.from_config(config, path, backend="onnxruntime")
    config = ExperimentConfig(model=tiny_model_config(num_keypoints=14), data=ExperimentConfig().data)
    with pytest.raises(
        ConfigError,
        match=r"tiny\.onnx: the ONNX model predicts 17 keypoints but the config's "
        r"model\.num_keypoints is 14",
    ):
        OnnxRunner(path, input_size=(64, 64), num_keypoints=14)
    runner = OnnxRunner(path, input_size=(64, 64), num_keypoints=17)  # a matching config is accepted
    assert runner(np.zeros((2, 3, 64, 64), np.float32)).shape == (2, 17, 16, 16)


# ------------------------------------------------------------------ HRNetV2: all four branches to the head


def test_hrnetv2_exports_and_every_backend_runs_it(tmp_path):
    """A tiny HRNetV2 (bilinear fusions, four branches resized and concatenated): ONNX Runtime equals PyTorch, and
    every backend (fast path, bf16, ONNX Runtime fp32 and int8) gives the plain network's heatmaps within its
    precision's tolerance."""
    from hrnet.runtime.backends import BACKENDS, open_backend
    from hrnet.runtime.export import export_int8

    cfg = tiny_model_config(21, head="hrnetv2")
    model = randomised(build_model(cfg))
    weights = tmp_path / "v2.safetensors"
    save_weights(model, weights)
    files = {"fp32": export_from_config(cfg, weights, tmp_path / "fp32.onnx")}
    _assert_runtime_equals_torch(model, files["fp32"], (64, 64))
    crops = np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32)
    files["int8"] = export_int8(model, tmp_path / "int8.onnx", (64, 64), [crops])
    x = torch.from_numpy(crops)
    with torch.no_grad():
        expected = model(x)
    tolerance = {"fp32": 1e-4, "bf16": 0.05, "int8": 0.25}  # of max |output|; int8 as export_int8's own check
    for name, entry in BACKENDS.items():
        backend = open_backend(cfg, weights if entry.runs == "checkpoint" else files[entry.precision], backend=name)
        with torch.inference_mode():
            got = backend(x).float()
        assert got.shape == (4, 21, 16, 16)
        error = float((got - expected).abs().max() / expected.abs().max())
        assert error <= tolerance[entry.precision], (name, error)
        if entry.precision != "fp32":
            assert error > 1e-6  # really another precision


def test_hrnetv2_needs_an_opset_with_half_pixel_resize(tmp_path):
    """Opsets 9 and 10 sample bilinear upsampling elsewhere than PyTorch: refused before anything is written."""
    model = build_model(tiny_model_config(head="hrnetv2"))
    with pytest.raises(ConfigError, match=r"opset 10 cannot express the network's bilinear upsampling .* opset 11"):
        export_onnx(model, tmp_path / "v2.onnx", (64, 64), opset=10)
    assert not list(tmp_path.iterdir())
    _assert_runtime_equals_torch(model, export_onnx(model, tmp_path / "v2.onnx", (64, 64), opset=11), (64, 64))
