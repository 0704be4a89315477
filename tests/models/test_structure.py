"""A network's structure read from the built network: parts, shapes and costs that add up to the totals."""

import dataclasses
from typing import cast

import pytest
import torch
from torch import nn

from hrnet.config import MODEL_PRESETS, LiteHRNetConfig, ModelConfig, StageConfig
from hrnet.errors import ConfigError
from hrnet.models.complexity import count_macs, count_parameters
from hrnet.models.hrnet import build_model
from hrnet.models.structure import Branch, describe_exchange, describe_network
from tests.conftest import tiny_model_config


def stage_costs(cfg):
    """Parameters and multiply-adds of the stem, each stage (with the transition that opens it) and the head."""
    net = describe_network(cfg, 1)
    parts = {"stem": net.stem_cost} if net.stem else {}
    parts.update({f"stage {s.number}": s.cost for s in net.stages})
    return {**parts, "head": net.head_cost}


@pytest.mark.parametrize("variant", ["hrnet", "tf_port", "litehrnet"])
def test_stage_figures_add_up_to_the_totals(variant):
    cfg = tiny_model_config(variant=variant)
    costs = stage_costs(cfg)
    assert list(costs) == [
        *(["stem"] if variant != "tf_port" else []),
        *(["stage 1"] if variant != "litehrnet" else []),  # Lite-HRNet's stage 1 is its stem, as in its paper
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


# A Lite-HRNet with every option the presets leave fixed: shuffle units in stages 2 and 4, no fusion in stage 3, a stem
# wider than its conv with expand ratio 2, no iterative head (tests/fixtures/litehrnet_variants/README.md's settings).
LITE_VARIANTS = LiteHRNetConfig(
    stem_channels=16,
    stem_out_channels=24,
    stem_expand_ratio=2.0,
    num_modules=(1, 2, 1),
    num_blocks=(2, 1, 2),
    num_channels=((8, 16), (8, 16, 32), (8, 16, 32, 64)),
    reduce_ratios=(4, 8, 8),
    module_type=("naive", "lite", "naive"),
    with_fuse=(True, False, True),
    with_head=False,
)


def lite_variants() -> ModelConfig:
    return ModelConfig(variant="litehrnet", num_keypoints=17, input_size=(64, 32), litehrnet=LITE_VARIANTS)


def run_for_real(cfg: ModelConfig) -> tuple[nn.Module, dict[str, object]]:
    """``cfg``'s network built on the CPU and run once over a random image of its input size, with the output of
    every module recorded by name ("" is the heatmaps)."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    outputs: dict[str, object] = {}

    def record(name: str, out: object) -> None:  # returns None: a hook's return value would replace the output
        outputs.setdefault(name, out)

    hooks = [
        module.register_forward_hook(lambda _m, _i, out, name=name: record(name, out))
        for name, module in model.named_modules()
    ]
    with torch.no_grad():
        model(torch.randn(1, 3, *cfg.input_size))
    for hook in hooks:
        hook.remove()
    return model, outputs


def params_of(model: nn.Module, *prefixes: str) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if name.startswith(prefixes))


@pytest.mark.parametrize("cfg", [MODEL_PRESETS["litehrnet18"], lite_variants()], ids=["litehrnet18", "variants"])
def test_lite_hrnet_figures_are_the_built_network_s(cfg):
    """Every shape the description gives is the one a real forward pass at the config's input size produces; every
    part's parameters are those of its modules; the widths are the config's."""
    net = describe_network(cfg)
    model, outputs = run_for_real(cfg)
    spec = cfg.litehrnet
    assert net.heatmap_shape == tuple(cast(torch.Tensor, outputs[""]).shape)
    assert net.stem[-1].shape == tuple(cast(torch.Tensor, outputs["stem"]).shape)
    assert [s.number for s in net.stages] == [2, 3, 4] and net.stem_cost.params == params_of(model, "stem.")
    for stage, widths, modules in zip(net.stages, spec.num_channels, spec.num_modules, strict=True):
        s = stage.number - 2
        assert len(stage.modules) == modules
        assert stage.cost.params == params_of(model, f"transition{s}.", f"stage{s}.")
        for m, module in enumerate(stage.modules):
            real = cast(list[torch.Tensor], outputs[f"stage{s}.{m}.layers"])
            assert [b.shape for b in module.branches] == [tuple(t.shape) for t in real]
            assert [b.shape[1] for b in module.branches] == list(widths)
    assert net.head_cost.params == params_of(model, "head_layer.", "final_layer.")
    assert net.total.params == count_parameters(model)
    for k in range(len(net.head_branches)):  # the iterative head runs from the lowest branch up
        b = len(net.head_branches) - 1 - k
        assert net.head_branches[b][-1].shape == tuple(cast(torch.Tensor, outputs[f"head_layer.projects.{k}"]).shape)


def test_lite_hrnet_18_part_by_part():
    net = describe_network(MODEL_PRESETS["litehrnet18"])
    assert [step.text for step in net.stem] == [
        "3×3 conv /2, 3→32, BN, ReLU",
        "half 1: 3×3 depthwise conv /2, 16→16, BN",
        "half 1: 1×1 conv, 16→16, BN, ReLU",
        "half 2: 1×1 conv, 16→32, BN, ReLU",
        "half 2: 3×3 depthwise conv /2, 32→32, BN",
        "half 2: 1×1 conv, 32→16, BN, ReLU",
        "concat, channel shuffle",
    ]
    stage2 = net.stages[0]
    assert stage2.opening is not None and [s.text for s in stage2.opening.kept[0]] == [
        "3×3 depthwise conv, 32→32, BN",
        "1×1 conv, 32→40, BN, ReLU",
    ]
    assert [s.text for s in stage2.opening.new] == ["3×3 depthwise conv /2, 32→32, BN", "1×1 conv, 32→80, BN, ReLU"]
    modules = [m for stage in net.stages for m in stage.modules]
    assert all(m.spans_branches and m.from_first_sum and m.fused_outputs == len(m.branches) for m in modules)
    assert {(b.units, b.unit) for m in modules for b in m.branches} == {(2, "ConditionalChannelWeighting")}
    # The iterative head: branch 4 (320) → 160, then each branch plus the one below to the next width up.
    assert [(steps[0].shape[1], steps[-1].shape[1]) for steps in net.head_branches] == [
        (40, 40),
        (80, 40),
        (160, 80),
        (320, 160),
    ]
    assert net.head_branches[0][0].title == "+ branch 2's result, bilinear (corners aligned)"
    assert [s.text for s in net.head] == ["1×1 conv, 40→17"] and net.head_inputs == 4
    assert net.down_path == "3×3 depthwise conv /2 → 1×1 conv" and net.up_path == "1×1 conv → BN → nearest ×2"


def test_lite_hrnet_options_show():
    net = describe_network(lite_variants())
    assert [s.text for s in net.stem[1:3]] == [
        "half 1: 3×3 depthwise conv /2, 8→8, BN",
        "half 1: 1×1 conv, 8→8, BN, ReLU",  # the output's 24 channels less the 16 that half 2 gives
    ]
    assert net.stem[3].text == "half 2: 1×1 conv, 8→32, BN, ReLU" and net.stem[-1].shape == (1, 24, 16, 8)
    stage2, stage3, stage4 = net.stages
    assert [(b.units, b.unit) for b in stage2.modules[0].branches] == [(2, "ShuffleUnit")] * 2
    assert not stage2.modules[0].spans_branches and stage4.modules[0].fused_outputs == 4
    assert [(m.fused_outputs, m.from_first_sum, m.spans_branches) for m in stage3.modules] == [(0, False, True)] * 2
    assert net.head_branches == () and net.head_inputs == 1 and [s.text for s in net.head] == ["1×1 conv, 8→17"]


def test_lite_hrnet_exchange_starts_the_lower_outputs_from_the_first_sum():
    exchange = describe_exchange(tiny_model_config(variant="litehrnet"), 3)
    assert exchange.inputs == ((1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4)) and exchange.from_first_sum
    down_two = exchange.paths[2][0]
    assert down_two is not None and [s.text for s in down_two] == [
        "3×3 depthwise conv /2, 8→8, BN",
        "1×1 conv, 8→8, BN, ReLU",
        "3×3 depthwise conv /2, 8→8, BN",
        "1×1 conv, 8→32, BN",
    ]
    assert exchange.units == Branch((1, 8, 16, 16), 1, "ConditionalChannelWeighting") and exchange.after_sum == "ReLU"
    assert not describe_exchange(tiny_model_config(), 3).from_first_sum


@pytest.mark.parametrize(
    ("stage", "message"),
    [(5, "this Lite-HRNet has stages 2 to 4 \\(1 is its stem\\)"), (3, "its modules have no fusion")],
)
def test_a_lite_hrnet_exchange_that_does_not_exist_is_a_clear_error(stage, message):
    with pytest.raises(ConfigError, match=message):
        describe_exchange(lite_variants(), stage)
