"""Drawings of the network's structure: labels follow the config, files are written, bad requests are clear."""

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from hrnet.config import ModelConfig
from hrnet.drawing.network import draw_exchange, draw_overview, parse_detail, save_figure
from hrnet.errors import ConfigError
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


def test_exchange_detail_draws_every_path_step_by_step(tmp_path):
    cfg = tiny_model_config()
    texts = svg_texts(save_figure(draw_exchange(cfg, "tiny", 3), tmp_path / "detail.svg"))
    assert "tiny: stage 3, exchange module 1 of 1" in texts
    assert {"1×1 conv, 32→8", "nearest ×4", "→ 16×16×8", "3×3 conv /2, 8→32", "branch 3 out"} <= set(texts)
    assert texts.count("+") == 3 and texts.count("ReLU") == 3 and texts.count("identity") == 3

    port = svg_texts(save_figure(draw_exchange(tiny_model_config(variant="tf_port"), "p", 4), tmp_path / "p.svg"))
    assert port.count("+") == 1  # the port's last exchange block fuses only the highest resolution
    assert "no activation" in port and "BN, leaky ReLU 0.1" in port and port.count("identity") == 1


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
    assert parse_detail("stage4.3") == (4, 3) and parse_detail("Stage2") == (2, 1) and parse_detail("3") == (3, 1)
    with pytest.raises(ConfigError, match="stage 3 has modules 1 to 1"):
        draw_exchange(cfg, "tiny", 3, module=2)


@pytest.mark.parametrize("text", ["stage²", "stage3.²", "stage٣", "stage3.", "stage-3", "x" * 1000])
def test_detail_takes_ascii_digits_only(text):
    """str.isdigit() is true for "²" and "٣", which int() refuses or reads: both were let through before."""
    with pytest.raises(ConfigError, match=r"give stageN or stageN\.M") as error:
        parse_detail(text)
    assert len(str(error.value)) < 300  # a long value is quoted in part


def test_lite_hrnet_is_drawn_from_its_config(tmp_path):
    """Stem with its two halves, weighting blocks across all branches, the fusion's doubled branch 1, the iterative
    head branch by branch, at the tiny config's widths 8/16/32/64 and 64×64 input."""
    texts = overview_texts(tiny_model_config(variant="litehrnet"), tmp_path)
    assert "net: Lite-HRNet, as MMPose, input 64×64, 17 keypoints" in texts
    assert {"half 1: 3×3 depthwise conv /2, 4→4, BN", "half 2: 1×1 conv, 4→8, BN, ReLU", "→ 16×16×8"} <= set(texts)
    assert [t for t in texts if t.startswith("stage ")] == ["stage 2", "stage 3", "stage 4"]
    assert texts.count("1 × ConditionalChannelWeighting") == 2 + 3 + 4  # one line a branch of each module
    assert "2×2×64" in texts and "1×1 conv, 64→32, BN, ReLU" in texts  # the head's lowest branch
    assert "+ branch 2's result, bilinear (corners aligned)" in texts and "1×1 conv, 8→17" in texts
    assert "down path: 3×3 depthwise conv /2 → 1×1 conv for every factor of 2" in texts
    assert texts.count("×2") == 3 * 2 and any(t.startswith("×2: the fusion sums into branch 1") for t in texts)

    wider = dataclasses.replace(tiny_model_config(variant="litehrnet"), input_size=(96, 64))
    spec = wider.litehrnet
    assert spec is not None
    wider = dataclasses.replace(
        wider, litehrnet=dataclasses.replace(spec, num_channels=((8, 16), (8, 16, 32), (8, 16, 32, 96)))
    )
    texts = overview_texts(wider, tmp_path, "wider")
    assert "3×2×96" in texts and "24×16×8" in texts and "17 × 24×16" in texts and "2×2×64" not in texts


def test_lite_hrnet_exchange_detail_shows_the_first_sum(tmp_path):
    cfg = tiny_model_config(variant="litehrnet")
    texts = svg_texts(save_figure(draw_exchange(cfg, "lite", 4), tmp_path / "detail.svg"))
    assert "lite: stage 4, exchange module 1 of 1" in texts
    assert texts.count("output 1's sum") == 3 and texts.count("×2") == 4 and texts.count("identity") == 4
    assert {"3×3 depthwise conv /2, 8→8", "→ 2×2×64", "branch 4 out"} <= set(texts)


def test_hrnetv2_head_shows_its_concatenation(tmp_path):
    """The head box: the four branches resized and concatenated (8+16+32+64 = 120), the 1×1 conv-BN-ReLU, the final
    conv, in that order."""
    texts = overview_texts(tiny_model_config(head="hrnetv2"), tmp_path)
    start = texts.index("bilinear to 16×16, concat 8+16+32+64")
    assert texts[start - 1 : start + 3] == ["head", texts[start], "1×1 conv, 120→120, BN, ReLU", "1×1 conv, 120→17"]
