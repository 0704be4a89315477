"""A network's structure read from the built network: parts, shapes and costs that add up to the totals."""

import dataclasses

import pytest
import torch

from hrnet.config import MODEL_PRESETS, StageConfig
from hrnet.errors import ConfigError
from hrnet.models.complexity import count_macs, count_parameters
from hrnet.models.hrnet import build_model
from hrnet.models.structure import describe_exchange, describe_network
from tests.conftest import tiny_model_config


def stage_costs(cfg):
    """Parameters and multiply-adds of the stem, each stage (with the transition that opens it) and the head."""
    net = describe_network(cfg, 1)
    parts = {"stem": net.stem_cost} if net.stem else {}
    parts.update({f"stage {s.number}": s.cost for s in net.stages})
    return {**parts, "head": net.head_cost}


@pytest.mark.parametrize("variant", ["hrnet", "tf_port"])
def test_stage_figures_add_up_to_the_totals(variant):
    cfg = tiny_model_config(variant=variant)
    costs = stage_costs(cfg)
    assert list(costs) == [
        *(["stem"] if variant == "hrnet" else []),
        "stage 1",
        "stage 2",
        "stage 3",
        "stage 4",
        "head",
    ]
    with torch.device("meta"):
        model = build_model(cfg)
    assert sum(c.params for c in costs.values()) == count_parameters(model)
    assert sum(c.macs for c in costs.values()) == count_macs(model, cfg.input_size)


def test_w32_figures_add_up_to_hrnet_info():
    costs = stage_costs(MODEL_PRESETS["w32"])
    assert sum(c.params for c in costs.values()) == 28_536_113  # as `hrnet info w32` prints (tests/cli/test_cli.py)
    assert round(sum(c.macs for c in costs.values()) / 1e9, 3) == 7.645
    assert costs["stem"].params == 38_848 and costs["stage 4"].params == 20_702_656


def test_network_shapes_follow_the_batch_and_the_input_size():
    net = describe_network(dataclasses.replace(tiny_model_config(), input_size=(96, 64)), batch_size=3)
    assert net.input_shape == (3, 3, 96, 64) and net.heatmap_shape == (3, 17, 24, 16)
    assert [b.shape for b in net.stages[3].modules[0].branches] == [
        (3, 8, 24, 16),
        (3, 16, 12, 8),
        (3, 32, 6, 4),
        (3, 64, 3, 2),
    ]
    assert net.stem[-1].shape == (3, 64, 24, 16) and net.stages[0].opening is None


def test_exchange_paths_step_by_step():
    exchange = describe_exchange(tiny_model_config(), 3)
    assert exchange.inputs == ((1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4))
    down_two = exchange.paths[2][0]  # branch 1 → branch 3: one stride-2 conv per factor of 2
    assert down_two is not None and [s.title for s in down_two] == ["3×3 conv /2, 8→8", "3×3 conv /2, 8→32"]
    assert [s.extras for s in down_two] == [("BN", "ReLU"), ("BN",)] and down_two[-1].shape == (1, 32, 4, 4)
    assert exchange.paths[1][1] is None and exchange.after_sum == "ReLU"

    port_down = describe_exchange(tiny_model_config(variant="tf_port"), 3).paths[2][0]
    assert port_down is not None and [s.title for s in port_down] == ["3×3 conv /2, 8→16", "3×3 conv /2, 16→32"]
    assert all(s.extras[0] == "TF 'same' padding" for s in port_down)  # the padding belongs to its conv


def test_a_module_the_stage_does_not_have_is_a_clear_error():
    with pytest.raises(ConfigError, match="stage 3 has modules 1 to 1"):
        describe_exchange(tiny_model_config(), 3, module=2)


def test_a_custom_stage_with_more_blocks_in_one_branch():
    tiny = tiny_model_config()
    stage2 = dataclasses.replace(tiny.stages[1], num_blocks=(3, 1))
    assert isinstance(stage2, StageConfig)
    cfg = dataclasses.replace(tiny, stages=(tiny.stages[0], stage2, *tiny.stages[2:]))
    exchange = describe_exchange(cfg, 2)
    assert exchange.units.units == 3 and exchange.units.unit == "BasicBlock"
