"""Multiply-accumulate counts against the official tables."""

import torch

from hrnet.config import model_preset
from hrnet.models.complexity import count_macs
from hrnet.models.hrnet import HRNet, build_model


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
