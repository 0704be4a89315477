"""Mixed precision in training: whether a training step runs under ``torch.autocast``, and in which dtype.

``train.precision: bf16`` autocasts to bfloat16 where the device computes it natively (a CPU with AVX-512 BF16 or
AMX; a GPU with bf16); weights, gradients, optimizer state and the loss stay fp32. Elsewhere it falls back to fp32
with a logged message (emulated bf16 would be slower than fp32). ``fp32`` runs in fp32 on the CPU; on CUDA
``runtime.amp`` keeps its meaning: mixed precision, bf16 where supported, else fp16 (loss-scaled).
"""

from __future__ import annotations

import logging
from typing import get_args

import torch

from hrnet.config import TrainPrecision
from hrnet.errors import ConfigError
from hrnet.runtime.precision import cpu_support

log = logging.getLogger(__name__)


def training_autocast(precision: str, amp: bool, device: torch.device) -> tuple[bool, torch.dtype]:
    """``(enabled, dtype)`` of ``torch.autocast`` for a training step in ``precision`` ("fp32" or "bf16") with
    ``runtime.amp`` = ``amp`` on ``device`` (see the module doc)."""
    if precision not in get_args(TrainPrecision):
        raise ConfigError(f"train.precision must be one of {', '.join(get_args(TrainPrecision))}; got {precision!r}")
    cuda_dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp32":
        return amp and device.type == "cuda", cuda_dtype
    if device.type == "cuda":
        if cuda_dtype == torch.bfloat16:
            return True, torch.bfloat16
        log.warning("train.precision bf16: this GPU has no bf16; training in fp32")
        return False, torch.float32
    if device.type == "cpu":
        support = cpu_support()
        if support.bf16:
            log.info("train.precision bf16: autocast to bfloat16 on %s (fp32 weights and loss)", support.name)
            return True, torch.bfloat16
        log.warning(
            "train.precision bf16: this CPU (%s) has no AVX-512 BF16 or AMX, so bf16 would be emulated and slower; "
            "training in fp32",
            support.name,
        )
    return False, torch.float32
