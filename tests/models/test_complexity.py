"""Multiply-accumulate counts against the official tables."""

import torch

from hrnet.config import model_preset
from hrnet.models.complexity import count_macs
from hrnet.models.hrnet import HRNet


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
