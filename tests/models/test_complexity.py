"""Multiply-accumulate counts against the official tables."""

import dataclasses
import math

import pytest
import torch

from hrnet.config import model_preset
from hrnet.errors import ConfigError
from hrnet.models import complexity
from hrnet.models.complexity import (
    activation_bytes,
    check_memory,
    count_macs,
    count_parameters,
    layer_table,
    trace_modules,
)
from hrnet.models.hrnet import HRNet, build_model
from tests.conftest import tiny_model_config


def test_w32_and_w48_match_the_official_gflops():
    with torch.device("meta"):
        w32, w48 = HRNet(model_preset("w32")), HRNet(model_preset("w48"))
    macs32 = count_macs(w32, (256, 192))
    assert round(macs32 / 1e9, 3) == 7.645
    assert round(macs32 / 2**30, 1) == 7.1  # the paper's "7.1 GFLOPs"
    macs48 = count_macs(w48, (384, 288))
    assert round(macs48 / 1e9, 2) == 35.31
    assert round(macs48 / 2**30, 1) == 32.9  # the paper's "32.9 GFLOPs"


def test_counts_scale_with_batch_and_linear_layers_count():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5))
    assert count_macs(model, (8, 8)) == 8 * 8 * 4 * 3 * 9 + 4 * 8 * 8 * 5
    assert count_macs(model, (8, 8), batch_size=3) == 3 * count_macs(model, (8, 8))


def test_blocks_partition_the_network_and_shared_modules_count_once():
    from hrnet.models.complexity import blocks, count_parameters, trace_modules
    from tests.conftest import tiny_model_config

    for variant in ("hrnet", "tf_port"):
        cfg = tiny_model_config(variant=variant)
        with torch.device("meta"):
            model = build_model(cfg)
        calls = trace_modules(model, cfg.input_size, batch_size=2)
        assert calls[0].name == "" and calls[0].input_shape == (2, 3, 64, 64)
        rows = blocks(model, calls)
        assert sum(c.params for c in rows) == count_parameters(model) == calls[0].params
        assert sum(c.macs for c in rows) == calls[0].macs == count_macs(model, cfg.input_size, batch_size=2)
        assert rows[-1].output_shape == calls[0].output_shape  # the head comes last
    relu_calls = [c for c in trace_modules(HRNet(tiny_model_config()), (64, 64)) if c.name == "relu"]
    assert [c.output_shape for c in relu_calls] == [(1, 64, 32, 32), (1, 64, 16, 16)]  # the stem's shared ReLU


def test_layer_table_walks_the_shapes_to_the_heatmaps():
    cfg = tiny_model_config()
    with torch.device("meta"):
        model = build_model(cfg)
    lines = layer_table(model, cfg.input_size, batch_size=3).splitlines()
    assert lines[0].endswith("batch 3, input 64×64") and lines[1].startswith("block")
    first, last, total = lines[2].split(), lines[-2].split(), lines[-1].split()
    assert first[0] == "conv1" and "(3, 64, 32, 32)" in lines[2]
    assert last[0] == "final_layer" and "(3, 17, 16, 16)" in lines[-2]
    assert total == ["total", f"{count_parameters(model):,}", f"{count_macs(model, cfg.input_size, 3):,}"]
    assert any(line.startswith("stage3.0.fuse_layers.2.0.1 ") and "(3, 32, 4, 4)" in line for line in lines)


def test_activation_estimate_scales_with_area_and_batch():
    config = tiny_model_config()
    model = build_model(config).train()
    small = activation_bytes(model, config, 2, training=True)
    wide = activation_bytes(model, dataclasses.replace(config, input_size=(64, 128)), 2, training=True)
    assert wide == 2 * small and activation_bytes(model, config, 4, training=True) == 2 * small
    assert 0 < activation_bytes(model, config, 2, training=False) < small
    assert model.training  # the probe pass left the model as it was
    # Exact, not only proportional: the layer outputs of a real pass at 64 × 64, batch 2, add up to the estimate.
    calls = trace_modules(model.eval(), (64, 64), 2)
    assert small == 4 * sum(
        math.prod(c.output_shape) for c in calls if c.output_shape and not list(c.module.children())
    )


# The official network, the demo's, Lite-HRNet, HRNetV2's concatenating head, the TF port (8-pixel input steps).
@pytest.mark.parametrize("name", ["w32", "demo", "litehrnet18", "face/hrnetv2_w18_wflw_256x256", "tf_w32"])
def test_activation_estimate_equals_the_full_trace(name):
    """The estimate's lean probe (one hook a layer) gives what the full module trace gives, for each kind of network."""
    from hrnet.config import load_config

    config = load_config(name).model
    model = build_model(config)
    step = config.input_step
    layers = [c for c in trace_modules(model, (step, step)) if c.output_shape and not list(c.module.children())]
    sizes = [math.prod(c.output_shape) for c in layers]
    height, width = config.input_size
    for training, per_probe in ((True, sum(sizes)), (False, 2 * max(sizes))):
        expected = per_probe * height * width // (step * step) * 3 * 4  # batch 3, float32
        assert activation_bytes(model, config, 3, training=training) == expected


def test_an_input_size_that_cannot_fit_is_refused_before_allocating(monkeypatch):
    config = dataclasses.replace(tiny_model_config(), input_size=(32768, 32768))
    model = build_model(tiny_model_config())
    with pytest.raises(
        ConfigError,
        match=r"model\.input_size 32768 × 32768 with train\.batch_size 32 needs about "
        r"[\d,.]+ GiB of activations for training \(estimated\), but cpu has [\d,.]+ GiB free: lower",
    ):
        check_memory(model, config, 32, torch.device("cpu"), training=True, what="train.batch_size")
    monkeypatch.setattr(complexity, "available_memory", lambda device: 10**6)
    with pytest.raises(ConfigError, match=r"64 × 64 with test\.batch_size 1000 .* for inference"):
        check_memory(model, tiny_model_config(), 1000, torch.device("cpu"), training=False, what="test.batch_size")
    assert check_memory(model, tiny_model_config(), 1, torch.device("cpu"), training=False, what="test.batch_size")


def test_pose_estimator_checks_memory_before_the_first_forward(tmp_path):
    from hrnet.config import ExperimentConfig
    from hrnet.models.checkpoint import save_weights
    from hrnet.pose.estimator import PoseEstimator

    save_weights(build_model(tiny_model_config()), tmp_path / "w.safetensors")
    config = ExperimentConfig(model=dataclasses.replace(tiny_model_config(), input_size=(32768, 32768)))
    with pytest.raises(ConfigError, match=r"model\.input_size 32768 × 32768 with test\.batch_size 32 .* free"):
        PoseEstimator.from_config(config, tmp_path / "w.safetensors", device="cpu")
