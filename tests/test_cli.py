"""The `hrnet` command line."""

from pathlib import Path

import pytest

from hrnet.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_info_prints_the_network_summary(capsys):
    assert main(["info", "w32"]) == 0
    out = capsys.readouterr().out
    assert "28,536,113" in out and "7.645 G" in out and "3 × 256 × 192" in out and "17 × 64 × 48" in out
    assert "widths 32/64/128/256" in out


def test_info_reads_a_config_file_with_overrides(capsys):
    assert main(["info", str(CONFIGS / "coco" / "w48_384x288.yaml")]) == 0
    assert "35.307 G" in capsys.readouterr().out
    assert main(["info", "w32", "--set", "model.num_keypoints=16"]) == 0
    assert "28,536,080" in capsys.readouterr().out


def test_errors_are_one_line_with_status_2(capsys):
    assert main(["info", "w33"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hrnet info: error: unknown model preset 'w33'; did you mean") and "Traceback" not in err


def test_unknown_subcommand_is_a_usage_error():
    with pytest.raises(SystemExit):
        main(["fly"])
