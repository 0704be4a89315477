"""The TF port's own outputs, reproduced by our network loaded from its converted checkpoint.

Every fixture set under ../shared/reference/ (a ``*.ckpt.index`` with ``io.npz``, ``intermediates.npz`` and
``variables.json`` beside it; README in tf_port_parity/) is converted with ``hrnet convert tf_port`` and checked.
The width comes from the checkpoint and the input size from ``io.npz``. Inputs are NHWC in [0, 1), fed as they
are. Needs TensorFlow (the ``tf`` extra); in CI its absence is a failure, elsewhere a skip.
"""

import dataclasses
import importlib.util
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hrnet.cli import main
from hrnet.config import load_config
from hrnet.models.checkpoint import load_weights
from hrnet.models.hrnet import build_model
from hrnet.tf_port.checkpoint import last_fusion_variable_names, read_tf_checkpoint
from hrnet.tf_port.model import Fusion, PortBatchNorm, TFPortHRNet
from tests.conftest import SHARED

# Every TF-port fixture set: a checkpoint with the port's outputs beside it, wherever under reference/ it lies.
CHECKPOINTS = sorted(p for p in (SHARED / "reference").rglob("*.ckpt.index") if (p.parent / "io.npz").is_file())
RUNNING_BOUND = 1e-4  # × max |TF output|: running statistics
BATCH_BOUND = 2e-4  # × max |TF output|: batch statistics, where hundreds of layers amplify float noise


def _require_tensorflow() -> None:
    if importlib.util.find_spec("tensorflow") is None:
        message = "needs TensorFlow: pip install -e '.[tf]' (make setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclasses.dataclass
class Converted:
    prefix: Path
    out: Path
    model: TFPortHRNet  # as loaded from out/ (batch_norm batch, eval mode)
    io: dict[str, np.ndarray]


@pytest.fixture(scope="module", params=CHECKPOINTS, ids=lambda p: p.parent.name + "/" + p.name)
def converted(request, tmp_path_factory) -> Converted:
    _require_tensorflow()
    index: Path = request.param
    prefix = index.with_name(index.name.removesuffix(".index"))
    out = tmp_path_factory.mktemp("converted")
    assert main(["convert", "tf_port", str(prefix), "--out", str(out)]) == 0
    config = load_config(out / "config.yaml")
    model = build_model(config.model)
    load_weights(model, out / "model.safetensors", strict=True)
    assert isinstance(model, TFPortHRNet)
    with np.load(index.parent / "io.npz") as io:
        return Converted(prefix, out, model.eval(), dict(io))


def _nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(0, 3, 1, 2)


def _relative_error(ours: torch.Tensor, theirs: np.ndarray) -> float:
    """max |ours − TF| / max |TF|, ours (N, C, H, W) against TF's (N, H, W, C)."""
    expected = _nchw(theirs)
    assert ours.shape == expected.shape
    return (ours - expected).abs().max().item() / expected.abs().max().item()


def _with_batch_norm(converted: Converted, mode: str) -> TFPortHRNet:
    for m in converted.model.modules():
        if isinstance(m, PortBatchNorm):
            m.batch_statistics = mode == "batch"
    return converted.model


RUNS = ("is_training_true", "is_training_false", "b1_is_training_true")  # io.npz's outputs, by how TF ran


def check_fixture_set(index: Path, io: dict[str, np.ndarray], intermediates: dict[str, np.ndarray]) -> None:
    """What the tests below read from one fixture set, with the shapes and agreements they rely on (README in
    tf_port_parity/): NHWC float32 arrays; inputs in [0, 1) with ``input_b1`` = ``input[:1]``; outputs and
    pre-norm maps of the input's size with one channel a keypoint of the checkpoint's head; each output map the
    pre-norm map (a ReLU output) divided by its sum + 1e-10; stage outputs of the checkpoint's width per level.
    An AssertionError names what is wrong."""
    variables = json.loads((index.parent / "variables.json").read_text())["variables"]
    shapes = {v["name"]: v["shape"] for v in variables}
    branch_width = shapes["stage1/stage1_output_conv/kernel"][-1]  # every later width is a multiple of it
    num_keypoints = shapes["change_channel_conv/kernel"][-1]
    prefix = index.name.removesuffix(".index")
    assert list(index.parent.glob(f"{prefix}.data-*")), f"no {prefix}.data-* beside {index.name}"
    assert all(a.dtype == np.float32 for a in [*io.values(), *intermediates.values()])
    images = io["input"]
    num, height, width, channels = images.shape
    assert channels == 3 and images.min() >= 0 and images.max() < 1
    np.testing.assert_array_equal(io["input_b1"], images[:1])
    for run in RUNS:
        batch = 1 if run.startswith("b1") else num
        output, pre_norm = io[f"output_{run}"], io[f"pre_norm_{run}"]
        assert output.shape == pre_norm.shape == (batch, height, width, num_keypoints), run
        assert (pre_norm >= 0).all(), run
        sums = pre_norm.sum(axis=(1, 2), keepdims=True, dtype=np.float64)
        np.testing.assert_allclose(output, pre_norm / (sums + 1e-10), rtol=0, atol=1e-6, err_msg=run)
    assert intermediates["stage1_output_is_training_true"].shape == (num, height, width, branch_width)
    for level in range(4):
        size = (num, -(-height // 2**level), -(-width // 2**level), branch_width * 2**level)  # 'same' padding: ceil
        assert intermediates[f"stage4_output_level{level}_is_training_true"].shape == size, level


def _fixture_set(index: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with np.load(index.parent / "io.npz") as io, np.load(index.parent / "intermediates.npz") as intermediates:
        return dict(io), dict(intermediates)


def test_every_fixture_set_holds_what_the_tests_read():
    # An empty list would not fail: every test below would be skipped for want of a parameter.
    assert CHECKPOINTS, f"no *.ckpt.index with an io.npz beside it under {SHARED / 'reference'}"
    for index in CHECKPOINTS:
        check_fixture_set(index, *_fixture_set(index))


@pytest.mark.parametrize("how", ["an output map doubled", "input_b1", "a keypoint dropped", "a level's width"])
def test_a_tampered_fixture_set_is_caught(how):
    index = CHECKPOINTS[0]
    io, intermediates = _fixture_set(index)
    if how == "an output map doubled":
        io["output_is_training_true"][0, ..., 0] *= 2
    elif how == "input_b1":
        io["input_b1"] = io["input"][1:2]
    elif how == "a keypoint dropped":
        io["pre_norm_is_training_false"] = io["pre_norm_is_training_false"][..., :-1]
    elif how == "a level's width":
        level3 = intermediates["stage4_output_level3_is_training_true"]
        intermediates["stage4_output_level3_is_training_true"] = level3[..., : level3.shape[-1] // 2]
    with pytest.raises(AssertionError):
        check_fixture_set(index, io, intermediates)


def test_config_is_read_from_the_checkpoint(converted):
    variables = json.loads((converted.prefix.parent / "variables.json").read_text())["variables"]
    shapes = {v["name"]: v["shape"] for v in variables}
    width = shapes["stage1/stage1_output_conv/kernel"][-1]
    model_cfg = load_config(converted.out / "config.yaml").model
    assert model_cfg.variant == "tf_port" and model_cfg.batch_norm == "batch"
    assert [list(s.num_channels) for s in model_cfg.stages[1:]] == [[width * 2**b for b in range(n)] for n in (2, 3, 4)]
    assert model_cfg.num_keypoints == shapes["change_channel_conv/kernel"][-1] and model_cfg.final_conv_kernel == 3
    # Every variable is written but the last fusion's paths into branches 1-3, which the port throws away.
    unused = set(last_fusion_variable_names(model_cfg).values())
    written = load_file(converted.out / "model.safetensors")
    assert len([k for k in written if not k.endswith("num_batches_tracked")]) == len(shapes) - len(unused)
    assert sum(v.numel() for v in written.values() if v.is_floating_point()) == sum(
        math.prod(shape) for name, shape in shapes.items() if name not in unused
    )


@pytest.mark.parametrize(
    ("mode", "inputs", "name", "bound"),
    [
        ("running", "input", "is_training_false", RUNNING_BOUND),
        ("batch", "input", "is_training_true", BATCH_BOUND),
        ("batch", "input_b1", "b1_is_training_true", BATCH_BOUND),
    ],
)
def test_outputs_and_pre_norm_values_match_tensorflow(converted, mode, inputs, name, bound):
    model = _with_batch_norm(converted, mode)
    x = _nchw(converted.io[inputs])
    with torch.no_grad():
        out = model(x)
        pre_norm = torch.relu(model.head(model.forward_features(x)[0]))
    assert _relative_error(out, converted.io[f"output_{name}"]) <= bound
    assert _relative_error(pre_norm, converted.io[f"pre_norm_{name}"]) <= bound


def test_stage_outputs_match_tensorflow(converted):
    """Stage 1's output and all four branches of the last fusion (three of them computed by the port only for
    this comparison: a full ``Fusion`` loaded with the variables our network leaves out)."""
    model = _with_batch_norm(converted, "batch")
    with np.load(converted.prefix.parent / "intermediates.npz") as npz:
        expected = dict(npz)
    seen: dict[str, object] = {}

    def keep_stage1(module, args, output) -> None:
        seen["stage1"] = output

    def keep_branches(module, args) -> None:
        seen["branches"] = list(args[0])

    last = model.stages[-1][-1]
    hooks = [model.stage1_out.register_forward_hook(keep_stage1), last.fusion.register_forward_pre_hook(keep_branches)]
    try:
        with torch.no_grad():
            level0 = model.forward_features(_nchw(converted.io["input"]))[0]
    finally:
        for hook in hooks:
            hook.remove()
    assert _relative_error(seen["stage1"], expected["stage1_output_is_training_true"]) <= BATCH_BOUND

    model_cfg = load_config(converted.out / "config.yaml").model
    full = Fusion(list(model_cfg.stages[-1].num_channels)).eval()
    state = {f"paths.0.{k}": v for k, v in last.fusion.paths[0].state_dict().items()}
    variables = read_tf_checkpoint(converted.prefix)
    for key, name in last_fusion_variable_names(model_cfg).items():
        value = torch.from_numpy(variables[name])
        state[key] = value.permute(3, 2, 0, 1) if name.endswith("/kernel") else value
    missing, unexpected = full.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    for m in full.modules():
        if isinstance(m, PortBatchNorm):
            m.batch_statistics = True
    with torch.no_grad():
        levels = full(seen["branches"])
    torch.testing.assert_close(levels[0], level0, rtol=0, atol=0)
    for level, ours in enumerate(levels):
        assert _relative_error(ours, expected[f"stage4_output_level{level}_is_training_true"]) <= BATCH_BOUND, level


def test_convert_cli(converted, tmp_path, capsys):
    assert main(["info", str(converted.out / "config.yaml")]) == 0
    assert "variant tf_port" in capsys.readouterr().out

    # Optimizer entries of a checkpoint written by the port's train.py are skipped: write one, convert it.
    import tensorflow as tf

    variables = read_tf_checkpoint(converted.prefix)
    extra = {"global_step": np.array(100, np.int64), "beta1_power": np.float32(0.9), "beta2_power": np.float32(0.99)}
    for name in list(variables)[:3]:
        extra[f"{name}/Adam"] = np.zeros_like(variables[name])
        extra[f"{name}/Adam_1"] = np.ones_like(variables[name])
    everything = {**variables, **extra}
    prefix = tmp_path / "ckpt" / "model.ckpt"
    prefix.parent.mkdir()
    names = sorted(everything)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(everything[n]) for n in names],
    )
    assert main(["convert", "tf_port", f"{prefix}.index", "--out", str(prefix.parent)]) == 0  # .index accepted
    capsys.readouterr()
    ours, reference = load_file(prefix.parent / "model.safetensors"), load_file(converted.out / "model.safetensors")
    assert ours.keys() == reference.keys() and all(torch.equal(ours[k], reference[k]) for k in ours)

    # The checkpoint's own folder now holds the outputs: converting into it again is refused.
    assert main(["convert", "tf_port", str(prefix), "--out", str(prefix.parent)]) == 2
    err = capsys.readouterr().err
    assert "this is the checkpoint's folder and it already holds model.safetensors, config.yaml" in err
    assert main(["convert", "tf_port", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "out")]) == 2
    assert "missing.ckpt.index is missing" in capsys.readouterr().err

    # Another folder that holds someone's model.safetensors: refused before the conversion, kept as it was.
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"a trained checkpoint")
    assert main(["convert", "tf_port", str(prefix), "--out", str(other)]) == 2
    assert "model.safetensors: the converted model.safetensors would replace a file that hrnet convert" in (
        capsys.readouterr().err
    )
    assert (other / "model.safetensors").read_bytes() == b"a trained checkpoint"
