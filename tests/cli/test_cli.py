"""The `hrnet` command line."""

import argparse
import os
import re
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

import hrnet
from hrnet import cli
from hrnet.cli import main
from hrnet.cli.predict import REALTIME_DETECT_EVERY, realtime
from hrnet.config import CONFIG_DIR, load_config

CONFIGS = CONFIG_DIR


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
    # without a config the first input stays an input (the config then comes from the weights)
    assert (parse(["predict", "a.jpg", "--weights", "w"]).config, parse(["predict", "a.jpg"]).inputs) == (
        None,
        ["a.jpg"],
    )
    assert parse(["predict", "coco/w32_256x192", "a.jpg"]).config == "coco/w32_256x192"
    assert parse(["predict", "w32", "a.jpg"]).config == "w32"
    with pytest.raises(SystemExit):
        parse(["predict", "--weights", "w"])  # nothing to predict
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


def test_data_synth_and_show_replace_only_their_own_files(tmp_path, capsys):
    """data synth into a folder that holds someone's annotations, data show onto someone's picture: refused
    before anything is written (--overwrite replaces); a second run over their own files goes through."""
    out = tmp_path / "coco"
    (out / "annotations").mkdir(parents=True)
    (out / "annotations" / "val.json").write_text('{"mine": true}')
    synth = ["data", "synth", "--out", str(out), "--train", "2", "--val", "1"]
    assert main(synth) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "val.json: a file of the data set (annotations) would replace a file that hrnet" in err
    )
    assert (out / "annotations" / "val.json").read_text() == '{"mine": true}' and not (out / "images").exists()
    assert main([*synth, "--overwrite"]) == 0
    assert main(synth) == 0
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data:\n  root: {out}\n  train_annotations: annotations/train.json\n  train_images: images/train\n"
        "model:\n  input_size: [128, 96]\n"
    )
    picture = tmp_path / "samples.png"
    picture.write_bytes(b"my picture")
    show = ["data", "show", str(config), "-n", "1", "--out", str(picture)]
    assert main(show) == 2
    assert "hrnet data show did not write" in capsys.readouterr().err and picture.read_bytes() == b"my picture"
    assert main([*show, "--overwrite"]) == 0 and main(show) == 0
    assert main(["data", "show", str(config), "-n", "1", "--out", str(config), "--overwrite"]) == 2
    assert "c.yaml is the input" in capsys.readouterr().err
    image = next((out / "images" / "train").iterdir())  # one of the data's own images: an input, even so
    before = image.read_bytes()
    assert main(["data", "show", str(config), "-n", "1", "--out", str(image), "--overwrite"]) == 2
    assert f"{image.name} is the input" in capsys.readouterr().err and image.read_bytes() == before
    annotations = out / "annotations" / "train.json"
    assert main(["data", "show", str(config), "-n", "1", "--out", str(annotations), "--overwrite"]) == 2
    assert "train.json is the input" in capsys.readouterr().err


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

    monkeypatch.setattr(cli.model, "cmd_info", interrupted)
    assert cli.main(["info", "w18"]) == 130
    assert capsys.readouterr().err == "hrnet info: interrupted\n"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"hrnet {hrnet.__version__}"


@pytest.mark.parametrize("argv", [["weights", "list"], ["info", "w18"]])
def test_a_reader_that_goes_away_is_no_traceback(argv):
    """`hrnet weights list | head -1`: the pipe closes before the command writes; it stops quietly (128 + SIGPIPE)."""
    command = [sys.executable, "-m", "hrnet", *argv]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first line
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGPIPE and err == b"", err.decode()


def test_a_command_started_with_its_output_closed_is_no_traceback():
    """`hrnet info w18 >&-`: Python then has no sys.stdout at all; what the command prints goes nowhere, and it ends
    with its own status (it once failed on flushing the missing stream, with a traceback)."""
    command = [sys.executable, "-m", "hrnet", "info", "w18"]
    done = subprocess.run(command, stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1), timeout=120)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()


def test_batch_options_have_a_bound(capsys):
    for argv in (["bench", "w32", "--batch", "1000000"], ["info", "w32", "--layers", "--batch", str(10**18)]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and "is not a whole number from 1 to 4096" in capsys.readouterr().err


def _parsers(parser: argparse.ArgumentParser, name: str = "hrnet"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for sub, subparser in action.choices.items():
                assert helps.get(sub), f"{name} {sub} has no help line"
                yield from _parsers(subparser, f"{name} {sub}")


def test_every_option_has_help_without_markup():
    for name, parser in _parsers(cli.build_parser()):
        assert "``" not in (parser.description or ""), name
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            what = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{what} has no help"
            assert "``" not in action.help, what
        assert "``" not in parser.format_help(), name


def test_eval_and_export_check_their_output_before_the_work(tmp_path, read_only_dir, capsys):
    out = read_only_dir
    absent = str(tmp_path / "absent.safetensors")  # never read: the output is checked first
    assert main(["eval", str(CONFIGS / "demo.yaml"), "--weights", absent, "--out", str(out)]) == 2
    assert "ro: cannot write the --out folder (Permission denied" in capsys.readouterr().err
    assert main(["export", "--config", "w18", "--weights", absent, "--out", str(out / "m.onnx")]) == 2
    assert "ro: cannot write the folder of the --out file (Permission denied" in capsys.readouterr().err
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    assert main(["export", "--config", "w18", "--weights", str(weights), "--out", str(weights)]) == 2
    assert "is the input" in capsys.readouterr().err and weights.read_bytes() == b"weights"


def test_a_config_given_as_a_pipe_is_read_as_a_file(capsys):
    # `hrnet info <(cat config.yaml)`: the shell gives /dev/fd/N, a pipe that is neither a .yaml nor a preset.
    read, write = os.pipe()
    try:
        os.write(write, (CONFIGS / "coco" / "w48_384x288.yaml").read_bytes())
        os.close(write)
        assert main(["info", f"/dev/fd/{read}"]) == 0
    finally:
        os.close(read)
    assert "35.307 G" in capsys.readouterr().out


@pytest.mark.parametrize(("train", "val"), [("-5", "2"), ("3", "-1"), ("0", "0")])
def test_data_synth_refuses_split_sizes_below_zero_or_no_image(tmp_path, capsys, train, val):
    out = tmp_path / "synth"
    if "-" in train + val:  # refused by the options' type, before anything runs
        with pytest.raises(SystemExit) as refused:
            main(["data", "synth", "--out", str(out), "--train", train, "--val", val])
        assert refused.value.code == 2 and "is not a whole number ≥ 0" in capsys.readouterr().err
    else:
        assert main(["data", "synth", "--out", str(out), "--train", train, "--val", val]) == 2
        err = capsys.readouterr().err
        assert f"split sizes ≥ 0 and at least one image, got {train} training and {val} validation" in err
        assert "Traceback" not in err
    assert not out.exists()


def test_predict_max_megapixels_is_a_positive_number_defaulting_to_the_shared_limit(capsys):
    from hrnet.io.images import MAX_PIXELS

    args = ["predict", "w32", "a.jpg", "--weights", "w"]
    assert cli.parse_args(args).max_megapixels is None  # the library's MAX_PIXELS
    assert cli.parse_args([*args, "--max-megapixels", "2.5"]).max_megapixels == 2.5
    for bad in ("0", "-1", "nan", "inf", "lots"):
        with pytest.raises(SystemExit):
            cli.parse_args([*args, "--max-megapixels", bad])
        assert "argument --max-megapixels: " in capsys.readouterr().err
    predict = next(p for name, p in _parsers(cli.build_parser()) if name == "hrnet predict")
    help_text = next(a.help for a in predict._actions if a.dest == "max_megapixels")
    assert f"default {MAX_PIXELS / 1e6:g}" in help_text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "w18", "--seconds", "nan"], "argument --seconds: 'nan' is not a finite number above 0"),
        (["bench", "w18", "--rounds", "0"], "argument --rounds: '0' is not a whole number ≥ 1"),
        (["serve", "w18", "--weights", "w", "--max-upload-mb", "nan"], "argument --max-upload-mb: 'nan'"),
        (["serve", "w18", "--weights", "w", "--max-megapixels", "inf"], "argument --max-megapixels: 'inf'"),
        (["serve", "w18", "--weights", "w", "--port", "99999"], "'99999' is not a whole number from 1 to 65535"),
        (["serve", "w18", "--weights", "w", "--port", "²"], "'²' is not a whole number from 1 to 65535"),
        (["info", "w18", "--layers", "--batch", "0"], "argument --batch: '0' is not a whole number from 1 to 4096"),
        (["info", "w18", "--layers", "--batch", "-3"], "argument --batch: '-3' is not a whole number from 1 to 4096"),
        (
            ["predict", "w18", "a.jpg", "--weights", "w", "--detector-iou", "nan"],
            "'nan' is not a finite number from 0 to 1",
        ),
        (["predict", "w18", "a.jpg", "--weights", "w", "--threshold", "2"], "argument --threshold: '2'"),
        (["predict", "w18", "a.jpg", "--weights", "w", "--detect-every", "0"], "argument --detect-every: '0'"),
        (
            ["export", "w18", "--out", "x.onnx", "--opset", "3"],
            "argument --opset: '3' is not a whole number from 9 to 20",
        ),
        (
            ["export", "w18", "--out", "x.onnx", "--opset", "99"],
            "argument --opset: '99' is not a whole number from 9 to 20",
        ),
        (["data", "synth", "--out", "x", "--train", "-5"], "argument --train: '-5' is not a whole number ≥ 0"),
    ],
)
def test_numeric_options_are_bounded_and_refused_in_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert message in err and f"(options: hrnet {args[0]}" in err


def test_realtime_turns_the_flip_test_off_and_picks_the_cpus_best_precision(monkeypatch):
    from hrnet.runtime.precision import CpuSupport

    config = load_config("w32")
    assert config.test.flip_test
    args = cli.parse_args(["predict", "w32", "0", "--weights", "w.pth", "--realtime"])
    monkeypatch.setattr("hrnet.runtime.precision.cpu_support", lambda: CpuSupport("Zen 4", True, True, "AVX512", ()))
    fast, precision = realtime(config, args)
    assert not fast.test.flip_test and precision == "bf16"
    monkeypatch.setattr("hrnet.runtime.precision.cpu_support", lambda: CpuSupport("EPYC", False, False, "AVX2", ()))
    assert realtime(config, args)[1] == "fp32"  # as the weights are
    forced = cli.parse_args(["predict", "w32", "0", "--weights", "w.pth", "--realtime", "--backend", "pytorch-bf16"])
    assert realtime(config, forced)[1] is None  # the backend's own
    onnx = cli.parse_args(["predict", "w32", "0", "--weights", "w_int8.onnx", "--realtime"])
    assert realtime(config, onnx)[1] is None  # the file's own precision
    asked = cli.parse_args(["predict", "w32", "0", "--weights", "w.pth", "--realtime", "--precision", "fp32"])
    assert realtime(config, asked)[1] == "fp32"
    assert args.detect_every is None and REALTIME_DETECT_EVERY == 10


def test_after_a_double_dash_every_word_is_an_input():
    assert cli.parse_args(["predict", "--detector", "none", "--", "-dash.jpg"]).inputs == ["-dash.jpg"]
    args = cli.parse_args(["predict", "coco/w32_256x192", "--weights", "w", "--", "-dash.jpg", "x.jpg"])
    assert (args.config, args.inputs) == ("coco/w32_256x192", ["-dash.jpg", "x.jpg"])
    with pytest.raises(SystemExit):
        cli.parse_args(["predict", "coco/w32_256x192", "a.jpg", "--weights", "w", "-dash.jpg"])


def test_a_full_disk_is_one_line_and_leaves_nothing_partial(tmp_path, monkeypatch, capsys):
    import errno

    import torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.onnx, "export", full)
    out = tmp_path / "x.onnx"
    assert main(["export", "w18", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    # The size needed: the float32 weights that the graph holds (HRNet-W18 has about 9.6 million).
    said = re.fullmatch(rf"hrnet export: error: {re.escape(str(out))}: cannot write it \(no space left on the device; "
                        r"it needs about ([0-9.]+) MB\); nothing partial was kept .*\n", err)  # fmt: skip
    assert said and 30 < float(said[1]) < 45, err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []
    # Any other writer's full disk: one line too.

    def full_elsewhere(args):
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "log.csv"))

    monkeypatch.setattr("hrnet.cli.model.cmd_export", full_elsewhere)
    assert main(["export", "w18", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no space left on the device writing {tmp_path / 'log.csv'}" in err


# Packages only some commands use (the onnx extra, videos, the service, drawings of curves, COCO evaluation,
# training logs): a command that does not use one must not pay for importing it.
OPTIONAL_PACKAGES = {"onnxruntime", "onnx", "av", "fastapi", "uvicorn", "starlette", "matplotlib", "pycocotools",
                     "tensorboard", "tensorflow"}  # fmt: skip


def _packages_after(argv: list[str], tmp_path) -> set[str]:
    """The top-level packages a fresh interpreter holds after ``hrnet ARGV`` (``--help`` exits through SystemExit)."""
    listing = tmp_path / "modules.txt"
    code = (
        "import sys\n"
        "from hrnet.cli import main\n"
        "try:\n"
        "    status = main(sys.argv[2:])\n"
        "except SystemExit as exit_:\n"
        "    status = exit_.code\n"
        "open(sys.argv[1], 'w').write('\\n'.join(sys.modules))\n"
        "sys.exit(status)\n"
    )
    command = [sys.executable, "-c", code, str(listing), *argv]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return {name.split(".")[0] for name in listing.read_text().split()}


def test_help_starts_without_pytorch(tmp_path):
    # The parser reads the backends' and opsets' names from modules that must not load PyTorch at import.
    packages = _packages_after(["--help"], tmp_path)
    assert not packages & {"torch", "cv2", *OPTIONAL_PACKAGES}, packages & {"torch", "cv2", *OPTIONAL_PACKAGES}


def test_predicting_a_photo_imports_only_what_it_uses(random_experiment, tmp_path):
    """`hrnet predict photo.jpg --weights W --detector none`: weights that record their config, one whole-image box."""
    from hrnet.engine.train import recorded_config
    from hrnet.models.checkpoint import META_CONFIG, save_weights

    config, _, _, model = random_experiment
    weights = tmp_path / "w.safetensors"
    save_weights(model, weights, {META_CONFIG: recorded_config(config)})
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8))
    argv = ["predict", str(photo), "--weights", str(weights), "--detector", "none", "--out", str(tmp_path / "out")]
    packages = _packages_after(argv, tmp_path)
    assert (tmp_path / "out" / "photo.jpg.json").is_file()
    assert "torch" in packages and not packages & OPTIONAL_PACKAGES, packages & OPTIONAL_PACKAGES
