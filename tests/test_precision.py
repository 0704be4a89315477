"""Lower-precision inference (hrnet.precision, hrnet.export.export_int8): what the CPU offers, the messages, and a
small trained network's keypoints in bf16 and int8 pinned to fp32's."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from hrnet.config import CONFIG_DIR, ExperimentConfig, load_config
from hrnet.errors import ConfigError, ExportError
from hrnet.precision import (
    META_CALIBRATION_SIZE,
    META_PRECISION,
    CpuSupport,
    cpu_support,
    heatmap_model,
    onnx_metadata,
    parse_precisions,
    precision_notice,
    prepare_bf16,
    training_autocast,
)
from tests.conftest import tiny_model_config

# The demo's network (configs/demo.yaml: 1.5 M parameters, 128×96) as `hrnet demo` trained it on the built-in
# synthetic data set (validation AP 0.938), stored in float16 (loaded into fp32; the fp32 reference below is
# these weights); regenerate on purpose with `python tests/test_precision.py RUN_FOLDER`.
TRAINED = Path(__file__).parent / "golden" / "demo_trained_fp16.safetensors"
DEMO_CONFIG = CONFIG_DIR / "demo.yaml"
INPUT_SIZE = (128, 96)

# Keypoint deviation from fp32 in image pixels over every keypoint of the validation persons below (synthetic
# images; a heatmap pixel is about 2-4 image pixels). Measured: bf16 mean 0.025, p99 0.08; int8 mean 0.20, p99
# 0.55. Broken once on purpose: int8 calibrated on crops at half their scale (activations clipped) gave
# mean 1.55, p99 10.3 px and fails; see also test_broken_calibration_is_caught.
TOLERANCE = {"bf16": (0.08, 0.5), "int8": (0.4, 1.5)}  # (mean, 99th percentile), pixels

AVX2_ONLY = """processor : 0
model name : AMD EPYC
flags : fpu sse sse2 avx avx2 fma
"""
SAPPHIRE_RAPIDS = """processor : 0
model name : Intel(R) Xeon(R) Platinum 8480+
flags : fpu avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile
"""


def test_cpu_support_reads_the_flags():
    plain = cpu_support(AVX2_ONLY)
    assert (plain.name, plain.bf16, plain.vnni, plain.flags) == ("AMD EPYC", False, False, ())
    assert "native bf16 no" in plain.describe() and "int8 VNNI no" in plain.describe()
    rich = cpu_support(SAPPHIRE_RAPIDS)
    assert rich.bf16 and rich.vnni
    assert rich.flags == ("avx512_bf16", "amx_bf16", "avx512_vnni", "amx_int8")
    assert cpu_support("flags : avx_vnni\n").vnni and not cpu_support("flags : avx_vnni\n").bf16


def test_notices_say_what_is_missing():
    plain, rich = cpu_support(AVX2_ONLY), cpu_support(SAPPHIRE_RAPIDS)
    assert "no AVX-512 BF16 or AMX" in precision_notice("bf16", "cpu", plain)
    assert "no VNNI" in precision_notice("int8", "cpu", plain)
    assert precision_notice("bf16", "cpu", rich) == precision_notice("int8", "cpu", rich) == ""
    assert precision_notice("fp32", "cpu", plain) == ""


def test_parse_precisions():
    assert parse_precisions("fp32, BF16,int8,fp32") == ["fp32", "bf16", "int8"]
    with pytest.raises(ConfigError, match="fp32, bf16, int8"):
        parse_precisions("fp16")
    with pytest.raises(ConfigError, match="one or more"):
        parse_precisions(" , ")


def test_training_autocast_falls_back_to_fp32_without_bf16(monkeypatch, caplog):
    cpu = torch.device("cpu")
    fake = {"value": CpuSupport("Old CPU", False, False, "AVX2", ())}
    monkeypatch.setattr("hrnet.precision.cpu_support", lambda: fake["value"])
    with caplog.at_level(logging.WARNING, logger="hrnet.precision"):
        assert training_autocast("bf16", True, cpu) == (False, torch.float32)
    assert "Old CPU" in caplog.text and "training in fp32" in caplog.text
    fake["value"] = CpuSupport("New CPU", True, True, "AVX512", ("avx512_bf16",))
    assert training_autocast("bf16", True, cpu) == (True, torch.bfloat16)
    assert training_autocast("fp32", True, cpu)[0] is False  # runtime.amp is CUDA's
    with pytest.raises(ConfigError, match=r"train\.precision"):
        training_autocast("int8", True, cpu)


def test_train_precision_is_checked_in_the_config():
    with pytest.raises(ConfigError, match="precision"):
        load_config(None, ["train.precision=fp16"])


def test_bf16_runs_in_bf16_returns_fp32_and_can_keep_layers_in_fp32():
    torch.manual_seed(0)
    from hrnet.models.hrnet import build_model

    model = build_model(tiny_model_config()).eval()
    assert prepare_bf16(model).fast.model.final_layer.weight.dtype == torch.bfloat16
    bf16 = prepare_bf16(model, fp32_modules=("final_layer",))
    assert bf16.fast.model.final_layer.module.weight.dtype == torch.float32
    assert bf16.fast.model.conv1.weight.dtype == torch.bfloat16
    out = bf16(torch.randn(2, 3, 64, 64))
    assert out.dtype == torch.float32 and out.shape == (2, 17, 16, 16)
    assert model.conv1.weight.dtype == torch.float32  # the caller's model is untouched


def test_wrong_file_or_precision_is_one_clear_error(tmp_path):
    config = tiny_model_config()
    with pytest.raises(ConfigError, match="export CONFIG --weights W --precision int8"):
        heatmap_model(config, tmp_path / "w.safetensors", "int8")
    with pytest.raises(ConfigError, match="precision must be one of"):
        heatmap_model(config, tmp_path / "w.safetensors", "fp16")


@pytest.fixture(scope="module")
def synthetic_experiment(tmp_path_factory) -> ExperimentConfig:
    """Fresh synthetic images (another seed than the demo trained on) and the demo's experiment."""
    from hrnet.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, 24, 6, seed=7)
    return load_config(DEMO_CONFIG, [f"data.root={root}", "runtime.num_workers=0", "runtime.device=cpu"])


def _keypoints(config: ExperimentConfig, model) -> np.ndarray:
    from hrnet.engine.evaluate import Evaluator

    evaluator = Evaluator.from_config(config, torch.device("cpu"), progress=False)
    return evaluator.predict(model).keypoints


def _deviation(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    distance = np.linalg.norm(a - b, axis=-1).ravel()
    return float(distance.mean()), float(np.percentile(distance, 99))


def test_trained_network_keypoints_in_each_precision(synthetic_experiment, tmp_path):
    from hrnet.export import export_from_config

    config = synthetic_experiment
    reference = _keypoints(config, heatmap_model(config.model, TRAINED, "fp32", fast=False)[0])
    bf16 = _keypoints(config, heatmap_model(config.model, TRAINED, "bf16")[0])
    onnx = export_from_config(config, TRAINED, tmp_path / "int8.onnx", precision="int8", calibration_crops=16)
    meta = onnx_metadata(onnx)
    assert meta[META_PRECISION] == "int8" and meta[META_CALIBRATION_SIZE] == "16"
    int8 = _keypoints(config, heatmap_model(config.model, onnx, "int8")[0])
    for name, got in (("bf16", bf16), ("int8", int8)):
        mean, p99 = _deviation(got, reference)
        assert mean <= TOLERANCE[name][0] and p99 <= TOLERANCE[name][1], (name, mean, p99)
    assert _deviation(bf16, reference)[0] > 0  # really another precision
    with pytest.raises(ConfigError, match="holds a int8 network; pass --precision int8"):
        heatmap_model(config.model, onnx, "fp32", backend="onnxruntime")


def test_pose_estimator_runs_bf16(synthetic_experiment):
    from hrnet.data.sources import load_split
    from hrnet.inference import PoseEstimator

    config = synthetic_experiment
    record = load_split(config.data, "val", config.model.num_keypoints).records[0]
    fp32 = PoseEstimator.from_config(config, TRAINED)(record.image_path, [record.box])[0]
    bf16 = PoseEstimator.from_config(config, TRAINED, precision="bf16")(record.image_path, [record.box])[0]
    assert np.abs(bf16.keypoints - fp32.keypoints).max() <= TOLERANCE["bf16"][1]
    assert np.abs(bf16.scores - fp32.scores).max() <= 0.02  # bf16 keeps about 2-3 significant digits


def test_broken_calibration_is_caught(synthetic_experiment, tmp_path):
    """Ranges calibrated on inputs of the wrong scale clip every real crop: the export's check refuses the file."""
    from hrnet.export import calibration_batches, export_int8
    from hrnet.models.checkpoint import load_model

    config = synthetic_experiment
    model = load_model(config.model, TRAINED)
    good = calibration_batches(config, 16)
    broken = [np.clip(b * 0.02, -0.05, 0.05).astype(np.float32) for b in good]
    with pytest.raises(ExportError, match="the file was not written"):
        export_int8(model, tmp_path / "broken.onnx", INPUT_SIZE, broken, check_crops=good[0])
    assert not (tmp_path / "broken.onnx").exists()


def test_cli_export_eval_and_bench_in_int8(synthetic_experiment, tmp_path, capsys):
    from hrnet.cli import main
    from hrnet.config import dump_config

    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(dump_config(synthetic_experiment))
    onnx = tmp_path / "int8.onnx"
    export = ["export", str(config_path), "--weights", str(TRAINED), "--out", str(onnx)]
    assert main([*export, "--precision", "int8", "--calibration", str(config_path), "--calibration-crops", "16"]) == 0
    assert "int8 (calibrated), checked against the fp32 graph" in capsys.readouterr().out
    assert onnx_metadata(onnx)[META_CALIBRATION_SIZE] == "16"
    out = tmp_path / "eval"
    assert main(["eval", str(config_path), "--weights", str(onnx), "--precision", "int8", "--out", str(out)]) == 0
    assert "Average Precision" in capsys.readouterr().out
    assert main(["eval", str(config_path), "--weights", str(onnx), "--precision", "bf16"]) == 2
    assert "holds a int8 network" in capsys.readouterr().err
    assert main([*export[:-2], "--out", str(tmp_path / "x.onnx"), "--calibration", str(config_path)]) == 2
    assert "--calibration is for --precision int8" in capsys.readouterr().err

    bench = ["bench", str(config_path), "--batch", "2", "--rounds", "1", "--seconds", "0.01"]
    assert main([*bench, "--precision", "fp32,bf16,int8"]) == 0
    printed = capsys.readouterr().out
    assert "CPU: " in printed and "fp32 limit: " in printed
    for name in ("fp32 PyTorch fast path", "bf16 PyTorch fast path", "int8 ONNX Runtime (QDQ)"):
        assert name in printed and printed.split(name)[1].split("\n")[0].endswith("× fp32 limit")
    assert main([*bench, "--precision", "fp16"]) == 2


def _regenerate(run: Path) -> None:
    """Copy a run's best weights into the golden file, as float16 (half the size; loaded into fp32 exactly)."""
    from safetensors.torch import load_file, save_file

    weights = load_file(run / "best.safetensors")
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, TRAINED)


if __name__ == "__main__":
    import sys

    _regenerate(Path(sys.argv[1]))
