"""Checkpoints of the original TensorFlow port (VXallset/deep-high-resolution-net.TensorFlow) converted to ours.

The port saves with ``tf.compat.v1.train.Saver``: a TF V2 checkpoint (``PREFIX.index`` + ``PREFIX.data-*``) keyed
by graph variable names. Reading one needs TensorFlow (the ``tf`` extra: ``pip install 'hrnet[tf]'``); everything
after ``read_tf_checkpoint`` works on a plain dict of NumPy arrays.

``_conv_scopes`` maps the port's scopes (its ``hrnet.py`` / ``utils.py``) to ``TFPortHRNet``'s module paths; a
conv-BN scope ``S`` holds ``S_conv/{kernel,bias}`` (kernels HWIO) and ``S_conv_bn/{gamma,beta,moving_mean,
moving_variance}``. Left out: Adam's slots and step counters, which the port's ``train.py`` saves too, and the last
exchange block's fusion into branches 1-3, which the port computes and throws away (our network does not build
them; ``last_fusion_variable_names`` maps them for a full ``Fusion``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hrnet.config import DataConfig, ExperimentConfig, ModelConfig, StageConfig, TestConfig, TrainConfig, dump_config
from hrnet.errors import CheckpointError, ConfigError
from hrnet.io.files import write_text_atomic
from hrnet.models.checkpoint import load_state_dict_checked, save_weights
from hrnet.models.hrnet import build_model

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
OPTIMIZER_VARIABLES = ("global_step", "beta1_power", "beta2_power")  # tf.train.AdamOptimizer + train.py's step
OPTIMIZER_SLOT_SUFFIXES = ("/Adam", "/Adam_1")  # Adam's first and second moments of every variable
HEAD_SCOPE = "change_channel"
# The port's BatchNorm variables → ours.
_BN_FIELDS = (
    ("gamma", "weight"),
    ("beta", "bias"),
    ("moving_mean", "running_mean"),
    ("moving_variance", "running_var"),
)
_SHOWN = 5  # how many offending names an error message lists


def is_optimizer_state(name: str) -> bool:
    """True for the optimizer's entries of a checkpoint written by the port's ``train.py`` (not the network's)."""
    return name in OPTIMIZER_VARIABLES or name.endswith(OPTIMIZER_SLOT_SUFFIXES)


def read_tf_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """The network variables of TF checkpoint ``prefix`` (``PREFIX.index`` + ``PREFIX.data-*``; a path ending in
    ``.index`` is taken as its prefix), by variable name; optimizer entries are not read. Needs TensorFlow."""
    prefix = _checkpoint_prefix(prefix)
    try:
        import tensorflow as tf
    except ImportError:
        raise CheckpointError(
            f"{prefix}: reading a TensorFlow checkpoint needs TensorFlow: pip install 'hrnet[tf]' "
            "(tensorflow-cpu, about 300 MB to download)"
        ) from None
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        names = [n for n in reader.get_variable_to_shape_map() if not is_optimizer_state(n)]
        return {name: np.asarray(reader.get_tensor(name)) for name in sorted(names)}
    except (tf.errors.OpError, ValueError) as err:
        raise CheckpointError(f"{prefix}: not a readable TensorFlow checkpoint ({_first_line(err)})") from None


def _checkpoint_prefix(prefix: str | Path) -> Path:
    prefix = Path(prefix)
    if prefix.name.endswith(".index"):
        prefix = prefix.with_name(prefix.name.removesuffix(".index"))
    if not prefix.with_name(prefix.name + ".index").is_file():
        raise CheckpointError(
            f"{prefix}: no TensorFlow checkpoint with this prefix ({prefix.name}.index is missing); pass the prefix "
            "the files share, e.g. models/model.ckpt for model.ckpt.index and model.ckpt.data-00000-of-00001"
        )
    return prefix


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


# --------------------------------------------------------------------------------------------- names


def _exchange_blocks(stage: int, num_modules: int) -> list[str]:
    """The port's scopes of stage ``stage``'s exchange blocks (``stage2`` names its single block without a number)."""
    if stage == 2:
        if num_modules != 1:
            raise CheckpointError(f"the port's stage 2 has one exchange block, the config asks for {num_modules}")
        return ["stage2/exchange_block"]
    return [f"stage{stage}/exchange_block{m + 1}" for m in range(num_modules)]


def _fusion_scopes(ours: str, theirs: str, num_inputs: int, outputs: Iterable[int]) -> dict[str, str]:
    """Conv-BN paths of a ``Fusion`` (``ours`` ends with ``paths.``) → the port's scopes (``theirs`` + ``i_…``)."""
    scopes = {}
    for o in outputs:
        for i in range(num_inputs):
            if i < o:  # the k-th conv of a down chain is suffixed _x2, _x4, _x6: twice its index, not its rate
                for k in range(o - i):
                    scopes[f"{ours}{o}.{i}.{k}"] = f"{theirs}i_{i}_o_{o}down_sampling_x{2 * (k + 1)}"
            elif i > o:
                scopes[f"{ours}{o}.{i}.1"] = f"{theirs}i_{i}_o_{o}_upsampling_align_channels"
    return scopes


def _conv_scopes(cfg: ModelConfig) -> dict[str, str]:
    """Our path of every ``ConvBNAct`` of ``TFPortHRNet(cfg)`` → the port's scope (without ``_conv``)."""
    stage1, *later = cfg.stages
    scopes = {}
    for u in range(stage1.num_blocks[0]):
        for ours, theirs in (("reduce", "conv1x1_1"), ("conv", "conv3x3"), ("expand", "conv1x1_2")):
            scopes[f"stage1.{u}.{ours}"] = f"stage1/rs{u + 1}_{theirs}"
    scopes["stage1_out"] = "stage1/stage1_output"
    for s, stage in enumerate(later):
        number, num_inputs = s + 2, stage.num_branches - 1
        scopes.update(_fusion_scopes(f"stages.{s}.0.fusion.paths.", f"stage{number}/", num_inputs, range(num_inputs)))
        scopes[f"stages.{s}.0.new_branch.0"] = f"stage{number}/new_resolutiondown_sampling_x2"
        blocks = _exchange_blocks(number, stage.num_modules)
        for m, block in enumerate(blocks, start=1):
            for level, num_units in enumerate(stage.num_blocks):
                for r in range(num_units):
                    for c in (1, 2):
                        scopes[f"stages.{s}.{m}.branches.{level}.{r}.conv{c}"] = (
                            f"{block}/level{level}RU{r + 1}_conv3x3_{c}"
                        )
            # The network's last fusion builds branch 0 only (see last_fusion_variable_names).
            outputs = range(1) if s == len(later) - 1 and m == len(blocks) else range(stage.num_branches)
            scopes.update(
                _fusion_scopes(
                    f"stages.{s}.{m}.fusion.paths.", f"{block}/exchange_within_stage/", stage.num_branches, outputs
                )
            )
    return scopes


def _variable_names(scopes: Mapping[str, str]) -> dict[str, str]:
    """State-dict keys of conv-BN modules at ``scopes``' paths → the port's variable names."""
    names = {}
    for path, scope in scopes.items():
        names[f"{path}.conv.weight"] = f"{scope}_conv/kernel"
        names[f"{path}.conv.bias"] = f"{scope}_conv/bias"
        for theirs, ours in _BN_FIELDS:
            names[f"{path}.bn.{ours}"] = f"{scope}_conv_bn/{theirs}"
    return names


def port_variable_names(cfg: ModelConfig) -> dict[str, str]:
    """Every parameter and BatchNorm statistic of ``TFPortHRNet(cfg)`` (state-dict key) → the port's variable."""
    names = _variable_names(_conv_scopes(cfg))
    names["head.weight"] = f"{HEAD_SCOPE}_conv/kernel"
    names["head.bias"] = f"{HEAD_SCOPE}_conv/bias"
    return names


def last_fusion_variable_names(cfg: ModelConfig) -> dict[str, str]:
    """The port's last exchange block fused into *every* branch; our network builds branch 0 only, the one its
    head reads. State-dict keys of a full ``hrnet.tf_port.model.Fusion`` over the last stage's widths → the
    port's variable names, for the paths into branches 1 and up (branch 0's are in ``port_variable_names``)."""
    last = cfg.stages[-1]
    block = _exchange_blocks(len(cfg.stages), last.num_modules)[-1]
    outputs = range(1, last.num_branches)
    return _variable_names(_fusion_scopes("paths.", f"{block}/exchange_within_stage/", last.num_branches, outputs))


# --------------------------------------------------------------------------------------------- config


def port_model_config(variables: Mapping[str, np.ndarray], source: str = "<checkpoint>") -> ModelConfig:
    """The ``ModelConfig`` of a port checkpoint: widths, units and blocks read from its names and shapes.

    ``batch_norm`` is ``batch``, as the port's ``test.py`` runs the network; ``input_size`` is the port's 256×192
    (the network itself works at any multiple of 8).
    """

    def shape(name: str) -> tuple[int, ...]:
        if name not in variables:
            raise CheckpointError(f"{source}: variable {name!r} is missing; is this a checkpoint of the TF port?")
        return tuple(variables[name].shape)

    def count(pattern: str) -> int:
        n = 0
        while pattern.format(n + 1) in variables:
            n += 1
        return n

    num_units = count("stage1/rs{}_conv1x1_1_conv/kernel")
    if num_units == 0:
        raise CheckpointError(
            f"{source}: variable 'stage1/rs1_conv1x1_1_conv/kernel' is missing; is this a checkpoint of the TF port?"
        )
    inner = shape("stage1/rs1_conv1x1_1_conv/kernel")[-1]
    stages = [
        StageConfig(num_modules=1, num_branches=1, block="bottleneck", num_blocks=(num_units,), num_channels=(inner,))
    ]
    for number in (2, 3, 4):
        num_modules = 1 if number == 2 else count(f"stage{number}/exchange_block{{}}/level0RU1_conv3x3_1_conv/kernel")
        first = _exchange_blocks(number, max(num_modules, 1))[0]
        num_blocks = tuple(count(f"{first}/level{level}RU{{}}_conv3x3_1_conv/kernel") for level in range(number))
        widths = tuple(shape(f"{first}/level{level}RU1_conv3x3_1_conv/kernel")[-1] for level in range(number))
        stages.append(
            StageConfig(
                num_modules=num_modules,
                num_branches=number,
                block="basic",
                num_blocks=num_blocks,
                num_channels=widths,
            )
        )
    head = shape(f"{HEAD_SCOPE}_conv/kernel")  # (k, k, C, K)
    try:
        return ModelConfig(
            variant="tf_port",
            num_keypoints=head[3],
            input_size=(256, 192),
            stages=tuple(stages),
            final_conv_kernel=head[0],
            batch_norm="batch",
        )
    except ConfigError as err:
        raise CheckpointError(f"{source}: the checkpoint's network does not fit a TF-port config: {err}") from None


def port_experiment(model: ModelConfig, name: str) -> ExperimentConfig:
    """An experiment around a converted network, everything as the port did it (as
    ``configs/aic/tf_w32_original.yaml``): input uint8 / 255, the box-stretch crop without augmentation, its
    targets, integer-argmax decoding and its metric, no flip test. Data paths are the defaults: set ``data.*`` for
    your data before training or evaluating."""
    return ExperimentConfig(
        model=model,
        data=DataConfig(
            keypoint_set="aic14" if model.num_keypoints == 14 else "from_annotations",
            crop="stretch",
            pixels="unit",
            flip=False,
            scale_factor=0.0,
            rotation_factor=0.0,
            half_body_prob=-1.0,
            target="tf_port",
            sigma=1.0,  # the port's 3×3 Gaussian, σ = 1, at input resolution
        ),
        train=TrainConfig(name=name, loss="sum_squared", use_target_weight=False, lr_steps=()),
        test=TestConfig(flip_test=False, shift_heatmap=False, decode="tf_port", metric="tf_port"),
    )


# --------------------------------------------------------------------------------------------- conversion


def load_port_variables(
    model: nn.Module, variables: Mapping[str, np.ndarray], cfg: ModelConfig, source: str = "<checkpoint>"
) -> None:
    """Fill ``model`` (``build_model(cfg)``, a ``TFPortHRNet``) with the port's variables, ``strict=True``:
    kernels HWIO → OIHW, the rest as they are.

    Optimizer entries and the last fusion's unused paths are skipped. A missing variable, a shape that does not
    fit, a non-float variable or a variable that is none of these is a ``CheckpointError`` naming it.
    """
    names = port_variable_names(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k in names}
    missing = [f"{names[k]} (for {k})" for k in expected if names[k] not in variables]
    if missing:
        raise CheckpointError(
            f"{source}: {len(missing)} variables of the network are missing: " + ", ".join(missing[:_SHOWN])
            + (" ..." if len(missing) > _SHOWN else "") + "; is it a checkpoint of the TF port with this structure?"
        )  # fmt: skip
    known = set(names.values()) | set(last_fusion_variable_names(cfg).values())
    unexpected = sorted(n for n in variables if n not in known and not is_optimizer_state(n))
    if unexpected:
        raise CheckpointError(
            f"{source}: {len(unexpected)} variables are not part of the TF port's network: "
            + ", ".join(unexpected[:_SHOWN]) + (" ..." if len(unexpected) > _SHOWN else "")
        )  # fmt: skip
    state = {}
    for key, shape in expected.items():
        name = names[key]
        array = np.asarray(variables[name])
        if not np.issubdtype(array.dtype, np.floating):
            raise CheckpointError(f"{source}: variable {name!r} holds {array.dtype}, expected floating-point values")
        is_kernel = name.endswith("/kernel")
        want = (shape[2], shape[3], shape[1], shape[0]) if is_kernel else shape  # HWIO for kernels
        if array.shape != want:
            raise CheckpointError(
                f"{source}: variable {name!r} has shape {list(array.shape)}, the network needs {list(want)}"
                + (" (HWIO)" if is_kernel else "") + f" for {key}; its shapes do not fit the structure its names give"
            )  # fmt: skip
        if is_kernel:
            array = array.transpose(3, 2, 0, 1)
        state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    load_state_dict_checked(model, state, source=source)


@dataclass(frozen=True)
class ConvertedCheckpoint:
    """What ``convert_tf_port`` wrote."""

    weights: Path  # <out>/model.safetensors
    config: Path  # <out>/config.yaml
    model: ModelConfig  # the converted network's config (also in ``config``)
    num_tensors: int  # tensors written (parameters and BatchNorm statistics)


def convert_tf_port(prefix: str | Path, out_dir: str | Path) -> ConvertedCheckpoint:
    """Convert the TF port's checkpoint ``prefix`` to ``out_dir/model.safetensors`` and ``out_dir/config.yaml``.

    The config is a full experiment (``hrnet.config.load_config`` reads it) whose model section comes from the
    checkpoint (``port_model_config``); the weights load into ``build_model`` of it with ``strict=True``. Both
    files are written atomically. Writing into the checkpoint's own folder is refused when it would replace a
    file there.
    """
    prefix = _checkpoint_prefix(prefix)
    out_dir = Path(out_dir)
    targets = [out_dir / WEIGHTS_FILE, out_dir / CONFIG_FILE]
    existing = [t.name for t in targets if t.exists()]
    if existing and out_dir.resolve() == prefix.parent.resolve():
        raise CheckpointError(
            f"{out_dir}: this is the checkpoint's folder and it already holds {', '.join(existing)}; "
            "pass another --out folder"
        )
    variables = read_tf_checkpoint(prefix)
    model_cfg = port_model_config(variables, str(prefix))
    model = build_model(model_cfg)
    load_port_variables(model, variables, model_cfg, str(prefix))
    save_weights(model, targets[0], metadata={"converted_from": "tf_port", "checkpoint": prefix.name})
    experiment = port_experiment(model_cfg, name=out_dir.resolve().name or "tf_port")
    write_text_atomic(targets[1], dump_config(experiment))
    return ConvertedCheckpoint(targets[0], targets[1], model_cfg, len(model.state_dict()))
