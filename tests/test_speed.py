"""`hrnet bench`: images/s of the plain network, the fast path and ONNX Runtime, on a tiny network."""

import pytest

from hrnet.cli import main
from hrnet.config import ExperimentConfig, dump_config
from hrnet.errors import ConfigError
from hrnet.models.checkpoint import save_weights
from hrnet.models.hrnet import build_model
from hrnet.speed import interleaved_seconds, measure_backends
from tests.conftest import tiny_model_config


def test_interleaved_rounds_give_each_function_its_median():
    calls = {"a": 0, "b": 0}

    def counted(name):
        def fn():
            calls[name] += 1

        return fn

    seconds = interleaved_seconds({"a": counted("a"), "b": counted("b")}, rounds=3, seconds=1e-3)
    assert set(seconds) == {"a", "b"} and all(s > 0 for s in seconds.values())
    assert calls["a"] >= 2 + 3 * 2 and calls["b"] >= 2 + 3 * 2  # warm-up, then at least two calls a round


def test_measure_backends_times_every_backend(tmp_path):
    config = tiny_model_config()
    weights = tmp_path / "w.safetensors"
    save_weights(build_model(config), weights)
    names = ["pytorch", "pytorch-fast", "onnxruntime"]
    rows, _ = measure_backends(config, names, weights, batch=2, device="cpu", rounds=1, seconds=0.01)
    assert [r.backend for r in rows] == names
    assert all(r.batch == 2 and r.images_per_s > 0 for r in rows)
    with pytest.raises(ConfigError, match="batch and rounds"):
        measure_backends(config, names, batch=0)
    with pytest.raises(ConfigError, match=r"backend.*tensorrt"):
        measure_backends(config, ["tensorrt"])


def test_bench_command(tmp_path, capsys):
    config_path = tmp_path / "tiny.yaml"
    config = ExperimentConfig(model=tiny_model_config())
    config_path.write_text(dump_config(config))
    args = ["bench", str(config_path), "--batch", "2", "--rounds", "1", "--seconds", "0.01", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "input 64×64, batch 2" in out and out.count("images/s") == 3
    assert main([*args[:2], "--batch", "0"]) == 2  # a bad option is one clear line, not a traceback
    assert "batch and rounds must be ≥ 1" in capsys.readouterr().err
