"""`hrnet draw` and `hrnet info --layers` on the command line."""

import xml.etree.ElementTree as ET

import pytest

from hrnet.cli import main
from hrnet.config import ExperimentConfig, dump_config
from tests.conftest import tiny_model_config


@pytest.fixture
def tiny_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(dump_config(ExperimentConfig(model=tiny_model_config())))
    return path


def test_draw_writes_the_overview_and_the_detail(tiny_yaml, tmp_path, capsys):
    out = tmp_path / "net.svg"
    assert main(["draw", str(tiny_yaml), "--out", str(out), "--input", "128x96"]) == 0
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
        (["w32", "--out", "{tmp}/n.svg", "--input", "256x"], "--input '256x': give HEIGHTxWIDTH in pixels"),
        (["w32", "--out", "{tmp}/n.svg", "--input", "250x190"], "--input 250x190: input_size must be multiples of 32"),
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
