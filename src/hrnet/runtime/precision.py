"""What lower precision needs from the CPU (``cpu_support``, ``precision_notice``), and the bf16 network
(``prepare_bf16``). The backends that run each precision, and the rule that picks one, are in
``hrnet.runtime.backends``; the int8 network is an ONNX file quantized by ``hrnet.runtime.export.export_int8``.

Both pay off only on CPUs with the matching instructions: bf16 needs AVX-512 BF16 or AMX (without them oneDNN
emulates bf16, several times *slower* than fp32), int8 runs fastest with VNNI (AVX-512 VNNI, AVX-VNNI or AMX;
without it ONNX Runtime falls back to AVX2's 8-bit multiply-adds).
"""

from __future__ import annotations

import copy
import logging
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

# Layers the bf16 network keeps in fp32: none, as even the heatmap head in fp32 changed no keypoint (docs/speed.md).
BF16_FP32_MODULES: tuple[str, ...] = ()

HeatmapFn = Callable[[torch.Tensor], torch.Tensor]

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class CpuSupport:
    """What this CPU offers lower precision.

    Attributes:
        name: the CPU model as /proc/cpuinfo names it.
        bf16: native bfloat16 dot products (AVX-512 BF16 or AMX-BF16).
        vnni: 8-bit integer dot products (AVX-512 VNNI, AVX-VNNI or AMX-INT8).
        capability: PyTorch's view of the vector unit (``torch.backends.cpu.get_cpu_capability()``).
        flags: the relevant flags found.
    """

    name: str
    bf16: bool
    vnni: bool
    capability: str
    flags: tuple[str, ...]

    def describe(self) -> str:
        """One line: the CPU, PyTorch's capability, bf16 and VNNI yes/no with the flags found."""
        found = ", ".join(self.flags) or "none of " + ", ".join(_BF16_FLAGS + _VNNI_FLAGS)
        return (
            f"{self.name}: PyTorch {self.capability}; native bf16 {'yes' if self.bf16 else 'no'}, "
            f"int8 VNNI {'yes' if self.vnni else 'no'} (flags: {found})"
        )


def cpu_support(cpuinfo: str | None = None) -> CpuSupport:
    """This CPU's bf16 and VNNI support.

    Args:
        cpuinfo: the text of ``/proc/cpuinfo``; None reads it (off Linux the flags are unknown: both answers False).

    Returns:
        What the first CPU listed offers.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():  # the first CPU's fields
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    found = tuple(f for f in _BF16_FLAGS + _VNNI_FLAGS if f in flags)
    return CpuSupport(
        name=fields.get("model name") or platform.processor() or "unknown CPU",
        bf16=any(f in flags for f in _BF16_FLAGS),
        vnni=any(f in flags for f in _VNNI_FLAGS),
        capability=torch.backends.cpu.get_cpu_capability(),
        flags=found,
    )


def precision_notice(precision: str, device: torch.device | str = "cpu", support: CpuSupport | None = None) -> str:
    """A sentence saying why ``precision`` will be slow on this CPU, or "" when nothing is amiss (fp32, a GPU, or
    a CPU with the instructions)."""
    if torch.device(device).type != "cpu" or precision == "fp32":
        return ""
    support = support or cpu_support()
    if precision == "bf16" and not support.bf16:
        return (
            f"this CPU ({support.name}) has no AVX-512 BF16 or AMX: bf16 runs emulated, several times slower than "
            "fp32 (same keypoints within bf16's rounding); use fp32 here, or int8"
        )
    if precision == "int8" and not support.vnni:
        return (
            f"this CPU ({support.name}) has no VNNI (AVX-512 VNNI, AVX-VNNI or AMX): int8 runs on AVX2's 8-bit "
            "multiply-adds, faster than fp32 but well short of a VNNI CPU's gain"
        )
    return ""


class _Fp32Island(nn.Module):
    """Runs ``module`` in float32 inside a bf16 network: (N, C, H, W) any float dtype in → float32 out."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.float())


class Bf16Model(nn.Module):
    """A prepared bf16 network with float32 at its edges: (N, 3, H, W) float32 images → (N, K, h, w) float32
    heatmaps (the network itself computes in bfloat16, except its ``_Fp32Island`` layers)."""

    def __init__(self, fast: nn.Module):
        super().__init__()
        self.fast = fast

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fast(images.to(torch.bfloat16)).float()


def prepare_bf16(
    model: nn.Module,
    *,
    fp32_modules: Sequence[str] = BF16_FP32_MODULES,
    channels_last: bool = True,
    compile: bool = False,
    inplace: bool = False,
) -> Bf16Model:
    """``model``'s fast path (BatchNorm folded first, in fp32, then cast) in bfloat16, with the named child modules
    (``fp32_modules``, dotted paths; absent ones are skipped) kept in float32. The caller's model is untouched unless
    ``inplace`` (``hrnet.models.fuse.fold_batchnorm``)."""
    from hrnet.models.fuse import fold_batchnorm, prepare_for_inference

    # Folded in fp32: the scale × weight products are rounded once, at the cast.
    folded32 = fold_batchnorm(model, inplace=inplace)
    folded = copy.deepcopy(folded32).to(torch.bfloat16)
    for name in fp32_modules:
        parent_name, _, child = name.rpartition(".")
        parent = folded.get_submodule(parent_name) if parent_name else folded
        if isinstance(getattr(parent, child, None), nn.Module):
            setattr(parent, child, _Fp32Island(folded32.get_submodule(name)))
    fast = prepare_for_inference(folded, channels_last=channels_last, compile=compile, inplace=True)
    return Bf16Model(fast)
