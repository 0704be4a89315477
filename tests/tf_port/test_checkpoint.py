"""The TF port's variable names ⇄ ours, on dicts of arrays (no TensorFlow needed): round trip and error paths.

The real checkpoint is converted in ``test_tf_port_parity.py``."""

import dataclasses

import numpy as np
import pytest
import torch

from hrnet.config import ModelConfig
from hrnet.errors import CheckpointError
from hrnet.models.hrnet import build_model
from hrnet.tf_port.checkpoint import (
    convert_tf_port,
    is_optimizer_state,
    last_fusion_variable_names,
    load_port_variables,
    port_model_config,
    port_variable_names,
    read_tf_checkpoint,
)
from hrnet.tf_port.model import Fusion
from tests.conftest import tiny_model_config


def _randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in module.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.rand(value.shape, generator=g) + 0.5)
    return module


def _port_variables(cfg: ModelConfig) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    """A randomised network and the variables the port would have saved for it (kernels HWIO), including the
    last fusion's paths that our network does not build."""
    model = _randomised(build_model(cfg), seed=0)
    state = model.state_dict()
    variables = {}
    for key, name in port_variable_names(cfg).items():
        value = state[key].numpy()
        variables[name] = value.transpose(2, 3, 1, 0) if name.endswith("/kernel") else value
    full = _randomised(Fusion(list(cfg.stages[-1].num_channels)), seed=1).state_dict()
    for key, name in last_fusion_variable_names(cfg).items():
        value = full[key].numpy()
        variables[name] = value.transpose(2, 3, 1, 0) if name.endswith("/kernel") else value
    return model, variables


@pytest.fixture(scope="module")
def tiny() -> tuple[ModelConfig, torch.nn.Module, dict[str, np.ndarray]]:
    cfg = tiny_model_config(num_keypoints=14, variant="tf_port")
    model, variables = _port_variables(cfg)
    return cfg, model, variables


def test_names_follow_the_ports_scopes():
    names = port_variable_names(tiny_model_config(num_keypoints=14, variant="tf_port"))
    assert names["stage1.0.reduce.conv.weight"] == "stage1/rs1_conv1x1_1_conv/kernel"
    assert names["stage1_out.bn.running_var"] == "stage1/stage1_output_conv_bn/moving_variance"
    assert names["stages.0.0.new_branch.0.conv.bias"] == "stage2/new_resolutiondown_sampling_x2_conv/bias"
    assert names["stages.0.1.branches.1.0.conv2.bn.weight"] == "stage2/exchange_block/level1RU1_conv3x3_2_conv_bn/gamma"
    assert names["stages.1.0.fusion.paths.0.1.1.bn.bias"] == "stage3/i_1_o_0_upsampling_align_channels_conv_bn/beta"
    # the k-th conv of a down chain is suffixed _x2, _x4, _x6
    assert names["stages.2.0.fusion.paths.2.0.1.conv.weight"] == "stage4/i_0_o_2down_sampling_x4_conv/kernel"
    unused = last_fusion_variable_names(tiny_model_config(num_keypoints=14, variant="tf_port"))
    down = "stage4/exchange_block1/exchange_within_stage/i_0_o_3down_sampling_x6_conv/kernel"
    assert unused["paths.3.0.2.conv.weight"] == down
    assert not any(key.startswith("paths.0.") for key in unused)  # branch 0's paths are the network's own
    assert names["head.weight"] == "change_channel_conv/kernel"


def test_every_tensor_of_the_network_has_a_port_name():
    cfg = tiny_model_config(num_keypoints=14, variant="tf_port")
    names = port_variable_names(cfg)
    own = [k for k in build_model(cfg).state_dict() if not k.endswith("num_batches_tracked")]
    assert sorted(names) == sorted(own)
    assert len(set(names.values())) == len(names)


def test_config_and_weights_round_trip(tiny):
    cfg, model, variables = tiny
    derived = port_model_config(variables)
    assert derived.batch_norm == "batch" and derived.variant == "tf_port"
    assert dataclasses.replace(derived, input_size=cfg.input_size, batch_norm=cfg.batch_norm) == cfg
    loaded = build_model(derived)
    load_port_variables(loaded, variables, derived)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_optimizer_entries_are_skipped(tiny):
    cfg, model, variables = tiny
    with_adam = dict(variables, global_step=np.array(7), beta1_power=np.array(0.9), beta2_power=np.array(0.99))
    for name, value in variables.items():
        with_adam[f"{name}/Adam"] = np.full_like(value, np.nan)
        with_adam[f"{name}/Adam_1"] = np.full_like(value, np.nan)
    assert is_optimizer_state("head/kernel/Adam_1") and not is_optimizer_state("stage1/rs1_conv3x3_conv/kernel")
    loaded = build_model(port_model_config(with_adam))
    load_port_variables(loaded, with_adam, cfg)
    assert torch.equal(loaded.state_dict()["head.weight"], model.state_dict()["head.weight"])


def test_a_missing_variable_is_named(tiny):
    cfg, _, variables = tiny
    name = "stage3/exchange_block1/level2RU1_conv3x3_2_conv_bn/moving_mean"
    broken = {k: v for k, v in variables.items() if k != name}
    with pytest.raises(CheckpointError, match=rf"ckpt: 1 variables of the network are missing: {name} \(for "):
        load_port_variables(build_model(cfg), broken, cfg, source="ckpt")


def test_a_misshapen_variable_is_named(tiny):
    cfg, _, variables = tiny
    name = "stage3/i_0_o_1down_sampling_x2_conv/kernel"
    broken = dict(variables, **{name: np.zeros((3, 3, 8, 17), np.float32)})
    with pytest.raises(
        CheckpointError, match=rf"'{name}' has shape \[3, 3, 8, 17\], the network needs \[3, 3, 8, 16\]"
    ):
        load_port_variables(build_model(cfg), broken, cfg)
    broken = dict(variables, **{"change_channel_conv/bias": np.zeros(14, np.int32)})
    with pytest.raises(CheckpointError, match="'change_channel_conv/bias' holds int32"):
        load_port_variables(build_model(cfg), broken, cfg)


def test_a_foreign_variable_is_refused(tiny):
    cfg, _, variables = tiny
    with pytest.raises(CheckpointError, match="1 variables are not part of the TF port's network: extra/dense/kernel"):
        load_port_variables(build_model(cfg), dict(variables, **{"extra/dense/kernel": np.zeros(3)}), cfg)


def test_not_a_port_checkpoint_is_named(tiny):
    _, _, variables = tiny
    broken = {k: v for k, v in variables.items() if not k.startswith("change_channel")}
    with pytest.raises(
        CheckpointError, match="'change_channel_conv/kernel' is missing; is this a checkpoint of the TF"
    ):
        port_model_config(broken)
    with pytest.raises(CheckpointError, match="'stage1/rs1_conv1x1_1_conv/kernel' is missing"):
        port_model_config({})


def test_a_missing_prefix_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"model\.ckpt: no TensorFlow checkpoint with this prefix"):
        read_tf_checkpoint(tmp_path / "model.ckpt")
    with pytest.raises(CheckpointError, match=r"model\.ckpt\.index is missing"):
        convert_tf_port(tmp_path / "model.ckpt.index", tmp_path / "out")
    assert not (tmp_path / "out").exists()
