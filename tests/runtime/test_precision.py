"""Lower-precision inference (hrnet.runtime.precision, hrnet.runtime.export.export_int8): what the CPU offers, the
messages, the bf16 network, int8 calibration, and the commands in int8. The backends' keypoints against fp32 are pinned
in tests/runtime/test_backends.py."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from hrnet.config import load_config
from hrnet.errors import ConfigError, ExportError
from hrnet.models.checkpoint import onnx_metadata
from hrnet.runtime.onnx import META_CALIBRATION_SIZE
from hrnet.runtime.precision import cpu_support, precision_notice, prepare_bf16
from tests.conftest import TRAINED, tiny_model_config

INPUT_SIZE = (128, 96)
# bf16 keypoints within this many pixels of fp32's (see tests/runtime/test_backends.py for the measured deviations).
BF16_MAX_PIXELS = 0.5

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


def test_pose_estimator_runs_bf16(synthetic_experiment):
    from hrnet.data.sources import load_split
    from hrnet.pose.estimator import PoseEstimator

    config = synthetic_experiment
    record = load_split(config.data, "val", config.model.num_keypoints).records[0]
    fp32 = PoseEstimator.from_config(config, TRAINED)(record.image_path, [record.box])[0]
    bf16 = PoseEstimator.from_config(config, TRAINED, precision="bf16")(record.image_path, [record.box])[0]
    assert np.abs(bf16.keypoints - fp32.keypoints).max() <= BF16_MAX_PIXELS
    assert np.abs(bf16.scores - fp32.scores).max() <= 0.02  # bf16 keeps about 2-3 significant digits


def test_broken_calibration_is_caught(synthetic_experiment, tmp_path):
    """Ranges calibrated on inputs of the wrong scale clip every real crop: the export's check refuses the file."""
    from hrnet.models.checkpoint import load_model
    from hrnet.runtime.export import calibration_batches, export_int8

    config = synthetic_experiment
    model = load_model(config.model, TRAINED)
    good = calibration_batches(config, 16)
    broken = [np.clip(b * 0.02, -0.05, 0.05).astype(np.float32) for b in good]
    with pytest.raises(ExportError, match="the file was not written"):
        export_int8(model, tmp_path / "broken.onnx", INPUT_SIZE, broken, check_crops=good[0])
    assert not (tmp_path / "broken.onnx").exists()


def test_int8_export_keeps_the_quantizers_chatter_off_the_console(tmp_path, caplog):
    """ONNX Runtime's quantizer logs on the root logger (``logging.info``), e.g. a line per bias it copies: a random
    network's folded biases are all zero, one shared initializer, so it copies one for nearly every convolution.
    None of that reaches a command's console; the export's own line does."""
    from hrnet.models.hrnet import build_model
    from hrnet.runtime.export import export_int8

    torch.manual_seed(0)
    model = build_model(tiny_model_config()).eval()
    crops = [np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)]
    caplog.set_level(logging.INFO)
    export_int8(model, tmp_path / "tiny.onnx", (64, 64), crops)
    assert not [r.getMessage() for r in caplog.records if "onnxruntime" in r.pathname and r.levelno < logging.WARNING]
    assert any("int8 heatmaps within" in r.getMessage() for r in caplog.records)
    logging.getLogger().info("after the export")  # the filter is gone with it
    assert caplog.records[-1].getMessage() == "after the export"
    assert not logging.getLogger().filters


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
    for name in ("pytorch-fast", "onnxruntime", "pytorch-bf16", "onnxruntime-int8"):
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


def test_lite_hrnet_runs_in_bf16_and_int8(tmp_path):
    """MMPose's seeded narrow Lite-HRNet-18 (tests/fixtures/mmpose/) on its input: bf16 within bf16's few significant
    digits of MMPose's heatmaps; the int8 export (depthwise convs, weighting sigmoids and products quantized) passes
    its own check against fp32 and stays near MMPose's heatmaps."""
    from hrnet.models.checkpoint import load_weights
    from hrnet.models.hrnet import build_model
    from hrnet.runtime.export import OnnxRunner, export_int8
    from tests.models.test_litehrnet import MMPOSE, _fixture

    config, _, inputs, expected = _fixture(MMPOSE / "litehrnet18_coco")
    model = build_model(config)
    load_weights(model, MMPOSE / "litehrnet18_coco.safetensors")
    scale = expected.abs().max()
    assert (prepare_bf16(model)(inputs) - expected).abs().max() <= 0.05 * scale  # measured: 0.015
    rng = np.random.default_rng(0)
    crops = [rng.standard_normal((8, 3, *config.input_size)).astype(np.float32) for _ in range(4)]
    path = export_int8(model.eval(), tmp_path / "lite_int8.onnx", config.input_size, crops)
    assert onnx_metadata(path)["hrnet.runtime.precision"] == "int8"
    got = torch.from_numpy(OnnxRunner(path)(inputs.numpy()))
    assert (got - expected).abs().max() <= 0.1 * scale  # measured: 0.055
