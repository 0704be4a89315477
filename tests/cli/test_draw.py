"""`hrnet draw` and `hrnet info --layers` on the command line."""

import xml.etree.ElementTree as ET

import pytest

from hrnet.cli import main, parse_args
from hrnet.config import ExperimentConfig, dump_config
from tests.conftest import tiny_model_config


@pytest.fixture
def tiny_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(dump_config(ExperimentConfig(model=tiny_model_config())))
    return path


def test_draw_writes_the_overview_and_the_detail(tiny_yaml, tmp_path, capsys):
    out = tmp_path / "net.svg"
    assert main(["draw", str(tiny_yaml), "--out", str(out), "--input-size", "128x96"]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    texts = ["".join(t.itertext()) for t in ET.parse(out).getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert "tiny.yaml: HRNet, official, input 128×96, 17 keypoints" in texts and "32×24×8" in texts
    detail = tmp_path / "detail.png"
    assert main(["draw", str(tiny_yaml), "--out", str(detail), "--detail", "stage4"]) == 0
    assert detail.read_bytes().startswith(b"\x89PNG")


def test_draw_replaces_only_its_own_pictures(tiny_yaml, tmp_path, capsys):
    """An existing picture at --out that hrnet draw did not write is refused (--overwrite replaces it); its own
    earlier drawing is replaced without asking."""
    out = tmp_path / "net.png"
    out.write_bytes(b"\x89PNG my own diagram")
    args = ["draw", str(tiny_yaml), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "net.png: the --out file would replace a file that hrnet draw did not" in err
    assert out.read_bytes() == b"\x89PNG my own diagram"
    assert main([*args, "--overwrite"]) == 0
    assert main(args) == 0  # its own drawing now
    assert out.read_bytes() != b"\x89PNG my own diagram"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["w33", "--out", "{tmp}/n.svg"], "unknown model preset 'w33'; did you mean 'w32'?"),
        (["w32", "--out", "{tmp}/n.svg", "--input-size", "250x190"], "--input-size 250x190: input_size must be"),
        (["w32", "--out", "{tmp}/n.gif"], "unknown picture type '.gif'"),
        (["{yaml}", "--out", "{yaml}"], "tiny.yaml is the input"),
        (["w32", "--out", "{tmp}/n.svg", "--detail", "stage1"], "stage 1 has no exchange unit"),
    ],
)
def test_draw_errors_are_one_line_with_status_2(args, message, tiny_yaml, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, yaml=tiny_yaml) for a in args]
    assert main(["draw", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hrnet draw: error: ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # nothing written, config untouched


def test_info_layers_lists_every_block_down_to_the_heatmaps(tiny_yaml, capsys):
    assert main(["info", str(tiny_yaml), "--layers", "--batch", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("block "))
    assert lines[start - 1].endswith("batch 4, input 64×64")
    assert lines[-2].startswith("final_layer") and "(4, 17, 16, 16)" in lines[-2]
    params = next(line for line in lines if line.startswith("parameters")).split()[-1]
    assert lines[-1].split()[:2] == ["total", params]


@pytest.mark.parametrize("command", [["info", "w32"], ["draw", "w32", "--out", "n.svg"]])
def test_info_and_draw_spell_the_input_size_alike(command):
    for text in ("384x288", "384×288", "384X288", " 384 x 288 "):
        assert parse_args([*command, "--input-size", text]).input_size == (384, 288)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "w32", "--layers", "--batch", "0"], "argument --batch: '0' is not a whole number from 1 to 4096"),
        (["info", "w32", "--layers", "--batch", "-3"], "argument --batch: '-3' is not a whole number from 1 to 4096"),
        (["info", "w32", "--layers", "--batch", "²"], "argument --batch: '²' is not a whole number from 1 to 4096"),
        (["info", "w32", "--input-size", "256", "192"], "argument --input-size: '256': give HEIGHTxWIDTH in pixels"),
        (["info", "w32", "--input-size", "2²x192"], "argument --input-size: '2²x192': give HEIGHTxWIDTH in pixels"),
        (["draw", "w32", "--out", "n.svg", "--input-size", "256x"], "argument --input-size: '256x': give HEIGHTx"),
    ],
)
def test_bad_numbers_are_one_usage_line_with_status_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"hrnet {args[0]}: error: {message}")  # after argparse's usage


def test_info_input_size_a_network_cannot_take_names_the_option(capsys):
    assert main(["info", "w32", "--input-size", "250x190"]) == 2
    assert capsys.readouterr().err == (
        "hrnet info: error: --input-size 250x190: input_size must be multiples of 32 for variant hrnet, "
        "got (250, 190)\n"
    )
    assert main(["info", "w32", "--input-size", "384×288"]) == 0
    assert "input              3 × 384 × 288" in capsys.readouterr().out


def test_the_old_draw_spelling_still_works():
    """README's "--input 384x288": argparse takes an option's unambiguous prefix, so no alias is needed."""
    assert parse_args(["draw", "w32", "--out", "n.svg", "--input", "128x96"]).input_size == (128, 96)


def test_info_and_draw_show_an_hrnetv2_network(tmp_path, capsys):
    """HRNetV2: the layer table and the picture show the branches concatenated (8+16+32+64 = 120 channels at the
    highest resolution), the 1×1 conv-BN-ReLU over them and the final conv."""
    path = tmp_path / "v2.yaml"
    path.write_text(dump_config(ExperimentConfig(model=tiny_model_config(head="hrnetv2"))))
    assert main(["info", str(path), "--layers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("v2.yaml (variant hrnet, head hrnetv2)")
    neck, convs, final = (line.split("  ")[0] for line in lines[-4:-1])
    assert (neck, convs, final) == ("neck", "conv_layers", "final_layer")
    assert "bilinear to branch 1, concat" in lines[-4] and "(1, 120, 16, 16)" in lines[-4]
    assert "1×1 conv, 120→120, BN, ReLU" in lines[-3] and "(1, 17, 16, 16)" in lines[-2]
    out = tmp_path / "v2.svg"
    assert main(["draw", str(path), "--out", str(out)]) == 0
    texts = ["".join(t.itertext()) for t in ET.parse(out).getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert "v2.yaml: HRNetV2 (all branches to the head, as MMPose), input 64×64, 17 keypoints" in texts
    assert {"bilinear to 16×16, concat 8+16+32+64", "1×1 conv, 120→120, BN, ReLU", "1×1 conv, 120→17"} <= set(texts)
    assert "up path: 1×1 conv → BN → bilinear ×2" in texts
    assert main(["info", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "head               bilinear to 16×16, concat 8+16+32+64; 1×1 conv, 120→120, BN, ReLU; 1×1 conv, 120→17"
    )


def svg_texts(path) -> list[str]:
    return ["".join(t.itertext()) for t in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.parametrize("command", ["info", "draw"])
def test_a_registered_hrnetv2_name_shows_its_head(command, tmp_path, capsys):
    """WFLW's HRNetV2-W18 by its registered name: 18+36+72+144 = 270 channels at 64×64, 98 heatmaps."""
    out = tmp_path / "face.svg"
    assert main([command, "mmpose-hrnetv2-w18-wflw-256x256", *(["--out", str(out)] if command == "draw" else [])]) == 0
    head = "bilinear to 64×64, concat 18+36+72+144", "1×1 conv, 270→270, BN, ReLU", "1×1 conv, 270→98"
    if command == "info":
        assert f"head               {'; '.join(head)}\n" in capsys.readouterr().out
    else:
        texts = svg_texts(out)
        assert set(head) <= set(texts) and "98 × 64×64" in texts and "8×8×144" in texts


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_draw_lite_hrnet_18(suffix, tmp_path, capsys):
    out = tmp_path / f"x{suffix}"
    assert main(["draw", "litehrnet18", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert out.read_bytes()[:4] == {".png": b"\x89PNG", ".svg": b"<?xm", ".pdf": b"%PDF"}[suffix]
    if suffix == ".svg":
        texts = svg_texts(out)
        assert "litehrnet18: Lite-HRNet, as MMPose, input 256×192, 17 keypoints" in texts
        assert {"64×48×40", "8×6×320", "17 × 64×48"} <= set(texts)
        assert any("total 1,130,769 parameters, 0.199 G multiply-adds" in t for t in texts)


@pytest.mark.parametrize("name", ["litehrnet18", "mmpose-litehrnet18-coco-256x192"])
def test_info_prints_lite_hrnet_s_stages_and_head(name, capsys):
    assert main(["info", name]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[5:] == [
        "stem               32 → 32 channels, ¼ resolution",
        "stage 2            2 branches, widths 40/80, 2 module(s) × 2 conditional channel weighting blocks",
        "stage 3            3 branches, widths 40/80/160, 4 module(s) × 2 conditional channel weighting blocks",
        "stage 4            4 branches, widths 40/80/160/320, 2 module(s) × 2 conditional channel weighting blocks",
        "head               iterative, branch 4 up to 1, each plus the one below (bilinear) through 3×3 depthwise "
        "conv + 1×1 conv: 320→160, 160→80, 80→40, 40→40; 1×1 conv, 40→17",
    ]


def test_info_layers_of_a_lite_hrnet(tmp_path, capsys):
    path = tmp_path / "lite.yaml"
    path.write_text(dump_config(ExperimentConfig(model=tiny_model_config(variant="litehrnet"))))
    assert main(["info", str(path), "--layers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("final_layer") and "(1, 17, 16, 16)" in lines[-2]
    params = next(line for line in lines if line.startswith("parameters")).split()[-1]
    assert lines[-1].split()[:2] == ["total", params]
