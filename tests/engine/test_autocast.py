"""hrnet.engine.autocast: bf16 training only where the hardware computes bf16 natively."""

import logging

import pytest
import torch

from hrnet.engine.autocast import training_autocast
from hrnet.errors import ConfigError
from hrnet.runtime.precision import CpuSupport


def test_training_autocast_falls_back_to_fp32_without_bf16(monkeypatch, caplog):
    cpu = torch.device("cpu")
    fake = {"value": CpuSupport("Old CPU", False, False, "AVX2", ())}
    monkeypatch.setattr("hrnet.engine.autocast.cpu_support", lambda: fake["value"])
    with caplog.at_level(logging.WARNING, logger="hrnet.engine.autocast"):
        assert training_autocast("bf16", True, cpu) == (False, torch.float32)
    assert "Old CPU" in caplog.text and "training in fp32" in caplog.text
    fake["value"] = CpuSupport("New CPU", True, True, "AVX512", ("avx512_bf16",))
    assert training_autocast("bf16", True, cpu) == (True, torch.bfloat16)
    assert training_autocast("fp32", True, cpu)[0] is False  # runtime.amp is CUDA's
    with pytest.raises(ConfigError, match=r"train\.precision"):
        training_autocast("int8", True, cpu)
