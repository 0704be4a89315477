"""Drawings of the network's structure: labels follow the config, figures add up, files are written."""

import dataclasses
import xml.etree.ElementTree as ET

import pytest
import torch

from hrnet.config import MODEL_PRESETS, ModelConfig, StageConfig
from hrnet.draw import (
    describe_exchange,
    draw_exchange,
    draw_overview,
    layer_table,
    parse_detail,
    save_figure,
    stage_costs,
)
from hrnet.errors import ConfigError
from hrnet.models.complexity import count_macs, count_parameters
from hrnet.models.hrnet import build_model
from tests.conftest import tiny_model_config


def svg_texts(path) -> list[str]:
    """Every text line of an SVG written by ``save_figure`` (each line is one ``<text>`` element)."""
    root = ET.parse(path).getroot()
    return ["".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")]


def overview_texts(cfg: ModelConfig, tmp_path, name: str = "net") -> list[str]:
    return svg_texts(save_figure(draw_overview(cfg, name), tmp_path / f"{name}.svg"))


def with_stage(cfg: ModelConfig, index: int, **changes) -> ModelConfig:
    stages = list(cfg.stages)
    stages[index] = dataclasses.replace(stages[index], **changes)
    return dataclasses.replace(cfg, stages=tuple(stages))


def test_labels_follow_widths_module_counts_and_input_size(tmp_path):
    cfg = tiny_model_config()  # widths 8/16/32/64, one module a stage, 64×64 input
    texts = overview_texts(cfg, tmp_path, "base")
    assert "64×64×3" in texts and "16×16×8" in texts and "2×2×64" in texts and "17 × 16×16" in texts
    assert "1 module, 3 branches" in texts and "module 2" not in texts

    wider = overview_texts(with_stage(cfg, 3, num_channels=(8, 16, 32, 96)), tmp_path, "wider")
    assert "2×2×96" in wider and "2×2×64" not in wider

    more = overview_texts(with_stage(cfg, 2, num_modules=3, num_blocks=(2, 2, 2)), tmp_path, "more")
    assert "3 modules, 3 branches" in more and "module 3" in more
    assert more.count("2 × BasicBlock") == 3 * 3  # every module's every branch box shows its units

    taller = overview_texts(dataclasses.replace(cfg, input_size=(96, 64)), tmp_path, "taller")
    assert "96×64×3" in taller and "24×16×8" in taller and "17 × 24×16" in taller and "16×16×8" not in taller


def test_official_and_tf_port_differ_where_they_differ(tmp_path):
    official = overview_texts(tiny_model_config(), tmp_path, "official")
    port = overview_texts(tiny_model_config(variant="tf_port"), tmp_path, "port")
    assert "stem" in official and "no stem" not in official and "no stem" in port
    assert "(input ÷ 4)" in official and "(input ÷ 1)" in port and "17 × 64×64" in port
    assert any(t.startswith("activation ReLU") for t in official)
    assert any(t.startswith("activation leaky ReLU 0.1") for t in port)
    assert "up path: 1×1 conv → BN → nearest ×2" in official
    assert "up path: nearest ×2 → 1×1 conv → BN → leaky ReLU 0.1" in port
    assert "then ReLU, each map ÷ its sum" in port


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
    assert sum(c.params for c in costs.values()) == 28_536_113  # as `hrnet info w32` prints (tests/test_cli.py)
    assert round(sum(c.macs for c in costs.values()) / 1e9, 3) == 7.645
    assert costs["stem"].params == 38_848 and costs["stage 4"].params == 20_702_656


def test_layer_table_walks_the_shapes_to_the_heatmaps():
    cfg = tiny_model_config()
    with torch.device("meta"):
        model = build_model(cfg)
    lines = layer_table(model, cfg.input_size, batch_size=3).splitlines()
    assert lines[0].endswith("batch 3, input 64×64") and lines[1].startswith("block")
    first, last, total = lines[2].split(), lines[-2].split(), lines[-1].split()
    assert first[0] == "conv1" and "(3, 64, 32, 32)" in lines[2]
    assert last[0] == "final_layer" and "(3, 17, 16, 16)" in lines[-2]
    assert total == ["total", f"{count_parameters(model):,}", f"{count_macs(model, cfg.input_size, 3):,}"]
    assert any(line.startswith("stage3.0.fuse_layers.2.0.1 ") and "(3, 32, 4, 4)" in line for line in lines)


def test_exchange_detail_draws_every_path_step_by_step(tmp_path):
    cfg = tiny_model_config()
    exchange = describe_exchange(cfg, 3)
    assert exchange.inputs == ((1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4))
    down_two = exchange.paths[2][0]  # branch 1 → branch 3: one stride-2 conv per factor of 2
    assert down_two is not None and [s.title for s in down_two] == ["3×3 conv /2, 8→8", "3×3 conv /2, 8→32"]
    assert [s.extras for s in down_two] == [("BN", "ReLU"), ("BN",)] and down_two[-1].shape == (1, 32, 4, 4)
    assert exchange.paths[1][1] is None and exchange.after_sum == "ReLU"

    texts = svg_texts(save_figure(draw_exchange(cfg, "tiny", 3), tmp_path / "detail.svg"))
    assert "tiny: stage 3, exchange module 1 of 1" in texts
    assert {"1×1 conv, 32→8", "nearest ×4", "→ 16×16×8", "3×3 conv /2, 8→32", "branch 3 out"} <= set(texts)
    assert texts.count("+") == 3 and texts.count("ReLU") == 3 and texts.count("identity") == 3

    port = svg_texts(save_figure(draw_exchange(tiny_model_config(variant="tf_port"), "p", 4), tmp_path / "p.svg"))
    assert port.count("+") == 1  # the port's last exchange block fuses only the highest resolution
    assert "no activation" in port and "BN, leaky ReLU 0.1" in port and port.count("identity") == 1
    port_down = describe_exchange(tiny_model_config(variant="tf_port"), 3).paths[2][0]
    assert port_down is not None and [s.title for s in port_down] == ["3×3 conv /2, 8→16", "3×3 conv /2, 16→32"]
    assert all(s.extras[0] == "TF 'same' padding" for s in port_down)  # the padding belongs to its conv


def test_files_are_svg_png_and_pdf(tmp_path):
    cfg = tiny_model_config()
    figure = draw_overview(cfg, "tiny")
    ET.parse(save_figure(figure, tmp_path / "net.svg"))
    assert save_figure(figure, tmp_path / "net.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert save_figure(figure, tmp_path / "sub" / "net.pdf").read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["net.pdf", "net.png", "net.svg", "sub"]


def test_bad_requests_are_clear_errors(tmp_path):
    cfg = tiny_model_config()
    with pytest.raises(ConfigError, match=r"unknown picture type '\.txt'; end the name in \.svg, \.png or \.pdf"):
        save_figure(draw_overview(cfg, "tiny"), tmp_path / "net.txt")
    with pytest.raises(ConfigError, match="stage 1 has no exchange unit"):
        parse_detail("stage1")
    with pytest.raises(ConfigError, match=r"give stageN or stageN\.M"):
        parse_detail("third")
    assert parse_detail("stage4.3") == (4, 3) and parse_detail("Stage2") == (2, 1)
    with pytest.raises(ConfigError, match="stage 3 has modules 1 to 1"):
        describe_exchange(cfg, 3, module=2)


def test_a_custom_stage_with_more_blocks_in_one_branch():
    cfg = with_stage(tiny_model_config(), 1, num_blocks=(3, 1))
    assert isinstance(cfg.stages[1], StageConfig)
    exchange = describe_exchange(cfg, 2)
    assert exchange.units.units == 3 and exchange.units.unit == "BasicBlock"
