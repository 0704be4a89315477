"""Lower-precision inference: ``fp32`` (the reference), ``bf16`` (the PyTorch fast path in bfloat16) and ``int8``
(an ONNX file quantized by ``hrnet export --precision int8``, run by ONNX Runtime).

- **bf16**: the folded, channels-last network (``hrnet.models.fuse.prepare_for_inference``) with weights and
  activations in bfloat16; images go in as float32 and heatmaps come out as float32, so the codec decodes in fp32.
  ``BF16_FP32_MODULES`` names layers kept in fp32 where bf16 measurably hurts keypoints: none for HRNet (measured).
- **int8**: static post-training quantization (``hrnet.export.export_int8``): int8 weights per output channel,
  uint8 activations per tensor, ranges calibrated on training crops; the file records its calibration set and
  size in its metadata (``metadata_props``), which ``onnx_precision`` reads back.

Both pay off only on CPUs with the matching instructions: bf16 needs AVX-512 BF16 or AMX (without them oneDNN
emulates bf16, several times *slower* than fp32), int8 runs fastest with VNNI (AVX-512 VNNI, AVX-VNNI or AMX;
without it ONNX Runtime falls back to AVX2's 8-bit multiply-adds). ``cpu_support`` reads what this CPU has and
``precision_notice`` turns a mismatch into one clear sentence.
"""

from __future__ import annotations

import copy
import logging
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hrnet.config import ModelConfig
from hrnet.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
# Layers the bf16 network keeps in fp32: none. Measured on the demo network's 891 validation persons
# (bench/results/precision_accuracy.md), every layer in bf16 against the 1×1 heatmap head kept in fp32: AP 0.9383
# both (fp32 0.9382), keypoint deviation from fp32 mean 0.066 vs 0.067 px, p99 0.109 vs 0.104 px; no difference
# worth an fp32 island. ``prepare_bf16(fp32_modules=...)`` keeps named layers in fp32 where a network needs it.
BF16_FP32_MODULES: tuple[str, ...] = ()
# ONNX metadata keys written by hrnet export.
META_PRECISION = "hrnet.precision"
META_CALIBRATION = "hrnet.calibration"
META_CALIBRATION_SIZE = "hrnet.calibration_size"
META_QUANTIZER = "hrnet.quantizer"

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
    """This CPU's bf16 and VNNI support, read from ``/proc/cpuinfo`` (or the text ``cpuinfo``, for tests). Off
    Linux the flags are unknown and both answers are False."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    name = platform.processor() or "unknown CPU"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "model name" and name == (platform.processor() or "unknown CPU"):
            name = value.strip()
    found = tuple(f for f in _BF16_FLAGS + _VNNI_FLAGS if f in flags)
    return CpuSupport(
        name=name,
        bf16=any(f in flags for f in _BF16_FLAGS),
        vnni=any(f in flags for f in _VNNI_FLAGS),
        capability=torch.backends.cpu.get_cpu_capability(),
        flags=found,
    )


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else a ``ConfigError`` naming them."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def parse_precisions(text: str) -> list[str]:
    """``"fp32,bf16,int8"`` → ``["fp32", "bf16", "int8"]`` (each checked, duplicates dropped, order kept)."""
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not names:
        raise ConfigError(f"--precision {text!r}: give one or more of {', '.join(PRECISIONS)}, comma-separated")
    return list(dict.fromkeys(check_precision(p) for p in names))


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


TRAIN_PRECISIONS = ("fp32", "bf16")


def training_autocast(precision: str, amp: bool, device: torch.device) -> tuple[bool, torch.dtype]:
    """Whether a training step runs under ``torch.autocast`` and in which dtype: ``(enabled, dtype)``.

    ``train.precision: bf16`` autocasts to bfloat16 where the device computes it natively (a CPU with AVX-512 BF16
    or AMX; a GPU with bf16); weights, gradients, optimizer state and the loss stay fp32. Elsewhere it falls back to
    fp32 with a logged message (emulated bf16 would be slower than fp32). ``fp32`` runs in fp32 on the CPU; on CUDA
    ``runtime.amp`` (``amp``) keeps its meaning: mixed precision, bf16 where supported, else fp16 (loss-scaled).
    """
    if precision not in TRAIN_PRECISIONS:
        raise ConfigError(f"train.precision must be one of {', '.join(TRAIN_PRECISIONS)}; got {precision!r}")
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
) -> Bf16Model:
    """``model``'s fast path (BatchNorm folded first, in fp32, then cast) in bfloat16, with the named child modules
    (``fp32_modules``, dotted paths; absent ones are skipped) kept in float32. The caller's model is untouched."""
    from hrnet.models.fuse import fold_batchnorm, prepare_for_inference

    folded32 = fold_batchnorm(model)  # folded in fp32: the scale × weight products are rounded once, at the cast
    folded = copy.deepcopy(folded32).to(torch.bfloat16)
    for name in fp32_modules:
        parent_name, _, child = name.rpartition(".")
        parent = folded.get_submodule(parent_name) if parent_name else folded
        if isinstance(getattr(parent, child, None), nn.Module):
            setattr(parent, child, _Fp32Island(folded32.get_submodule(name)))
    fast = prepare_for_inference(folded, channels_last=channels_last, compile=compile)
    return Bf16Model(fast)


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (what ``hrnet export`` recorded)."""
    from hrnet.models.onnx import optional_module

    onnx = optional_module("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others, not importable without it
        raise ConfigError(f"{path}: not a readable ONNX file ({err})") from None
    return {p.key: p.value for p in model.metadata_props}


def onnx_precision(path: str | Path) -> str:
    """The precision an ONNX file was exported in: its ``hrnet.precision`` metadata, else "fp32"."""
    return onnx_metadata(path).get(META_PRECISION, "fp32")


def heatmap_model(
    config: ModelConfig,
    weights: str | Path,
    precision: str = "fp32",
    *,
    device: torch.device | str = "cpu",
    backend: str = "torch",
    fast: bool = True,
    compile: bool = False,
    batch_size: int | None = None,
) -> tuple[HeatmapFn, torch.device]:
    """The network that turns (N, 3, H, W) float32 crops into (N, K, h, w) float32 heatmaps in ``precision``,
    and the device its inputs go to.

    fp32: PyTorch (``fast``: the folded channels-last path) or, with ``backend="onnxruntime"``, an fp32 ONNX file.
    bf16: the PyTorch fast path in bfloat16 (``prepare_bf16``). int8: ``weights`` must be an ONNX file written by
    ``hrnet export --precision int8``, run by ONNX Runtime on the CPU. A precision that this CPU runs slowly is
    logged once (``precision_notice``); a file whose recorded precision differs from ``precision`` is refused.
    ``batch_size``: check that a forward pass of that many crops fits in memory (``check_memory``).
    """
    from hrnet.runtime import resolve_device

    check_precision(precision)
    if backend not in ("torch", "onnxruntime"):
        raise ConfigError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
    onnx_file = Path(weights).suffix.lower() == ".onnx"
    if precision == "int8" or backend == "onnxruntime":
        if not onnx_file:
            hint = (
                "make one with: hrnet export CONFIG --weights W --precision int8 --calibration CONFIG --out F.onnx"
                if precision == "int8"
                else "make one with hrnet export"
            )
            raise ConfigError(f"{weights}: {precision} with ONNX Runtime runs an .onnx file; {hint}")
        found = onnx_precision(weights)
        if found != precision:
            raise ConfigError(f"{weights} holds a {found} network; pass --precision {found} (or export it again)")
        if notice := precision_notice(precision, "cpu"):
            log.warning("%s", notice)
        from hrnet.models.onnx import OnnxRunner

        runner = OnnxRunner(weights, input_size=config.input_size, num_keypoints=config.num_keypoints)

        def run(images: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(runner(np.asarray(images.float().cpu().numpy())))

        return run, torch.device("cpu")
    if onnx_file:
        raise ConfigError(f"{weights}: an .onnx file runs with backend 'onnxruntime' (--backend onnxruntime)")
    from hrnet.models.checkpoint import load_model

    torch_device = resolve_device(str(device))
    module = load_model(config, weights, torch_device)
    if batch_size is not None:
        from hrnet.models.complexity import check_memory

        check_memory(module, config, batch_size, torch_device, training=False, what="test.batch_size")
    if precision == "bf16":
        if notice := precision_notice(precision, torch_device):
            log.warning("%s", notice)
        return prepare_bf16(module, compile=compile), torch_device
    if fast:
        from hrnet.models.fuse import prepare_for_inference

        return prepare_for_inference(module, channels_last=True, compile=compile), torch_device
    return module, torch_device
