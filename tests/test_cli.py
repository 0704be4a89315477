"""The `hrnet` command line."""

from pathlib import Path

import pytest

from hrnet import cli
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


def test_config_is_the_first_argument_of_every_subcommand_or_an_option():
    parse = cli.parse_args
    args = parse(["predict", "c.yaml", "a.jpg", "b.jpg", "--weights", "w"])
    assert (args.config, args.inputs) == ("c.yaml", ["a.jpg", "b.jpg"])
    # inputs before, between and after options; --config anywhere
    for argv in (
        ["c.yaml", "--weights", "w", "a.jpg", "b.jpg"],
        ["c.yaml", "a.jpg", "--weights", "w", "b.jpg"],
        ["--config", "c.yaml", "a.jpg", "b.jpg", "--weights", "w"],
        ["a.jpg", "b.jpg", "--weights", "w", "--config", "c.yaml"],
        ["a.jpg", "--config", "c.yaml", "--weights", "w", "b.jpg"],
    ):
        args = parse(["predict", *argv])
        assert (args.config, args.inputs, args.weights) == ("c.yaml", ["a.jpg", "b.jpg"], "w"), argv
    commands = [["export", "--out", "o.onnx"], ["info"], ["bench"], ["train"], ["eval", "--weights", "w"]]
    for command in [*commands, ["data", "show"], ["draw", "--out", "d.svg"]]:
        assert parse([*command, "c.yaml"]).config == "c.yaml"
        assert parse([*command, "--config", "c.yaml"]).config == "c.yaml"
    assert parse(["demo"]).config is None
    with pytest.raises(SystemExit):
        parse(["predict", "a.jpg", "--weights", "w"])
    with pytest.raises(SystemExit):
        parse(["export", "a.yaml", "--config", "b.yaml"])
    with pytest.raises(SystemExit):
        parse(["export", "a.yaml", "b.yaml"])


def test_data_synth_and_show(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--train", "6", "--val", "2", "--seed", "1"]) == 0
    assert (out / "annotations" / "train.json").is_file() and len(list((out / "images" / "val").iterdir())) == 2
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data:\n  root: {out}\n  train_annotations: annotations/train.json\n  train_images: images/train\n"
        "model:\n  input_size: [128, 96]\n"
    )
    grid = tmp_path / "grid.png"
    assert main(["data", "show", str(config), "-n", "4", "--out", str(grid)]) == 0
    import cv2

    picture = cv2.imread(str(grid))
    assert picture is not None and picture.shape[0] > 128


def test_eval_cli_prints_the_table_and_draws(tmp_path, datasets_dir, capsys):
    from hrnet.config import dump_config
    from hrnet.models.checkpoint import save_weights
    from hrnet.models.hrnet import build_model
    from tests.engine.conftest import tiny_experiment

    config = tiny_experiment(datasets_dir, tmp_path / "runs")
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    weights = tmp_path / "w.safetensors"
    save_weights(build_model(config.model), weights)
    out = tmp_path / "eval"
    assert main(["eval", str(path), "--weights", str(weights), "--draw", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in printed
    assert {"metrics.json", "keypoints_results.json", "prediction_000.jpg", "prediction_001.jpg"} <= {
        p.name for p in out.iterdir()
    }
    assert main(["eval", str(path), "--weights", str(tmp_path / "absent.pth")]) == 2
    assert "no such weights file" in capsys.readouterr().err


def test_ctrl_c_is_one_line_not_a_traceback(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_info", interrupted)
    assert cli.main(["info", "w18"]) == 130
    assert capsys.readouterr().err == "hrnet info: interrupted\n"
