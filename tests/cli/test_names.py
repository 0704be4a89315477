"""A registered pose weights name, or a model zoo name, is a CONFIG wherever a config is taken (hrnet.config.load_config
reads both): export, eval, info, draw, train, bench, and predict's first word. The networks are shrunk with --set so
that the commands run in seconds; the names still choose the data set, the keypoint set and the test settings."""

import json

import pytest
import torch

from hrnet import cli
from hrnet.cli import main
from hrnet.config import load_config, to_dict
from hrnet.models.checkpoint import read_metadata
from hrnet.models.hrnet import build_model
from tests.conftest import tiny_model_config

AP10K = "mmpose-hrnet-w32-ap10k-256x256"  # config ap10k/w32_256x256: 17 keypoints of AP-10K, 256x256


def tiny_stages() -> str:
    """``--set`` of the tiny network's stages (JSON is YAML)."""
    return "model.stages=" + json.dumps(to_dict(tiny_model_config().stages))


@pytest.fixture
def mmpose_file(tmp_path):
    """A tiny network's weights saved as MMPose 0.x saves its checkpoints: backbone.* and keypoint_head.*."""
    torch.manual_seed(0)
    model = build_model(load_config(AP10K, [tiny_stages()]).model)
    state = {
        ("keypoint_head." if k.startswith("final_layer.") else "backbone.") + k: v
        for k, v in model.state_dict().items()
    }
    path = tmp_path / "hrnet_w32_ap10k_256x256.pth"
    torch.save({"meta": {"mmpose_version": "0.x"}, "state_dict": state}, path)
    return path


def test_export_takes_a_registered_name_as_its_config(mmpose_file, tmp_path, capsys):
    """`hrnet export NAME --weights FILE`: the name's shipped config (no 'unknown model preset'), recorded in the
    ONNX file with the name's keypoint set."""
    out = tmp_path / "dog.onnx"
    assert main(["export", AP10K, "--weights", str(mmpose_file), "--set", tiny_stages(), "--out", str(out)]) == 0
    assert "input 'image' N×3×256×256" in capsys.readouterr().out
    recorded = read_metadata(out)
    assert "name: ap10k17" in recorded["keypoint_set"]
    assert "name: ap10k_w32_256x256" in recorded["config"] and "keypoint_set: ap10k17" in recorded["config"]


def test_eval_reads_a_zoo_data_set_by_the_weights_name(mmpose_file, datasets_dir, tmp_path, capsys):
    """`hrnet eval NAME --weights FILE` on the AP-10K sample: the name's data set file (configs/zoo/ap10k.yaml)
    gives the keypoint set and the metric (COCO AP with AP-10K's sigmas)."""
    argv = [
        "eval", AP10K, "--weights", str(mmpose_file), "--device", "cpu", "--out", str(tmp_path / "eval"),
        "--set", tiny_stages(), "--set", f"data.root={datasets_dir / 'ap10k'}",
        "--set", "data.val_annotations=test_ap10k.json", "--set", "data.val_images=.", "--set", "runtime.num_workers=0",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "main metric: AP" in out
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["AP"] >= 0


@pytest.mark.parametrize("command", ["info", "draw"])
def test_info_and_draw_take_names(command, tmp_path, capsys):
    out = ["--out", str(tmp_path / "net.svg")] if command == "draw" else []
    assert main([command, "mmpose-hrnet-w48-coco-wholebody-384x288-dark", "--set", tiny_stages(), *out]) == 0
    if command == "info":
        text = capsys.readouterr().out
        assert "133 × 96 × 72" in text and "3 × 384 × 288" in text
    assert main([command, "deepfashion_upper/w48_256x192_udp", "--set", tiny_stages(), *out]) == 0
    if command == "info":
        assert "6 × 64 × 48" in capsys.readouterr().out


def test_every_command_parses_a_name_as_its_config():
    parse = cli.parse_args
    for argv, name in (
        (["train", AP10K], AP10K),
        (["bench", AP10K], AP10K),
        (["eval", AP10K, "--weights", "w.pth"], AP10K),
        (["export", AP10K, "--out", "x.onnx"], AP10K),
        (["data", "show", "ap10k/w32_256x256"], "ap10k/w32_256x256"),
    ):
        assert parse(argv).config == name, argv
    # predict and serve: the first word is the config when it names one, else an input
    args = parse(["predict", AP10K, "dog.jpg"])
    assert (args.config, args.inputs) == (AP10K, ["dog.jpg"])
    args = parse(["predict", "ap10k/w32_256x256", "dog.jpg", "--weights", "w.pth"])
    assert (args.config, args.inputs) == ("ap10k/w32_256x256", ["dog.jpg"])
    args = parse(["predict", "dog.jpg", "rtmdet-nano-person"])  # a detector's name is no config
    assert (args.config, args.inputs) == (None, ["dog.jpg", "rtmdet-nano-person"])


def test_predict_runs_the_weights_its_config_names(monkeypatch):
    """`hrnet predict NAME photo.jpg` without --weights runs NAME's own file (its config with the default COCO
    weights would read them as another data set's keypoints); an animal set takes the whole image as one box."""
    from hrnet.cli.predict import _network_setup

    fetched = []
    monkeypatch.setattr("hrnet.hub.registry.resolve_many", lambda specs, **_: fetched.extend(specs))
    args = cli.parse_args(["predict", AP10K, "dog.jpg"])
    config, detector = _network_setup(args)
    assert args.weights == AP10K and fetched == [AP10K] and detector is None
    assert config == load_config("ap10k/w32_256x256")
