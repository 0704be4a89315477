"""How fast a network runs on this machine (``hrnet bench``): images/s of the plain network, the fast path and
ONNX Runtime, timed in the same interleaved rounds.

A machine's clock drifts by several percent over minutes (virtual machines more), more than some differences
measured here; so each round runs every configuration for about ``seconds``, starting one place later each round,
and each figure is the median over the rounds. ``bench/bench_inference.py`` is the fuller study (the machine's
peak, ablations, the official way of running without reused memory, in separate processes).
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hrnet.config import ModelConfig
from hrnet.errors import ConfigError
from hrnet.runtime import resolve_device


@dataclass(frozen=True)
class Speed:
    backend: str
    batch: int
    images_per_s: float


def calls_per_round(fn: Callable[[], object], seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds`` (at least two), after one untimed warm-up call."""
    fn()
    start = time.perf_counter()
    fn()
    return max(2, round(seconds / max(time.perf_counter() - start, 1e-9)))


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    """Mean seconds of ``calls`` consecutive calls of ``fn``."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved_seconds(fns: dict[str, Callable[[], object]], rounds: int, seconds: float) -> dict[str, float]:
    """Median seconds per call of each function over ``rounds`` interleaved rounds of about ``seconds`` each
    (at least two calls a round); two untimed calls warm each function up first."""
    calls = {name: calls_per_round(fn, seconds) for name, fn in fns.items()}
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(seconds_per_call(fns[name], calls[name]))
    return {name: statistics.median(s) for name, s in samples.items()}


def _timed_call(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], object]:
    def call() -> object:
        with torch.no_grad():
            out = model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        return out

    return call


def measure_inference(
    config: ModelConfig,
    weights: str | Path | None = None,
    *,
    batch: int = 16,
    device: str = "auto",
    rounds: int = 3,
    seconds: float = 2.0,
    compile: bool = False,
    onnx: bool = True,
) -> list[Speed]:
    """Images/s of ``config``'s network (``weights`` loaded, or its random initialisation: the speed is the same)
    on (batch, 3, H, W) inputs: the plain eval-mode network, our fast path (``prepare_for_inference``), with
    ``compile`` also compiled, and with ``onnx`` ONNX Runtime when installed and ``device`` is the CPU.

    Every backend runs with the process's allocator as it is: ``hrnet bench`` keeps freed memory for reuse
    (``hrnet.runtime.keep_freed_memory``), as all our commands do.
    """
    from hrnet.models.checkpoint import load_model
    from hrnet.models.fuse import prepare_for_inference

    if batch < 1 or rounds < 1 or seconds <= 0:
        raise ConfigError(f"batch and rounds must be ≥ 1 and seconds > 0, got {batch}, {rounds}, {seconds}")
    torch_device = resolve_device(device)
    torch.manual_seed(0)
    model: nn.Module = load_model(config, weights, torch_device)
    x = torch.randn(batch, 3, *config.input_size, device=torch_device)
    fns = {
        "plain eager (BatchNorm unfolded, NCHW)": _timed_call(model, x),
        "fast path (folded BatchNorm, channels-last)": _timed_call(prepare_for_inference(model), x),
    }
    if compile:
        fns["fast path + torch.compile"] = _timed_call(prepare_for_inference(model, compile=True), x)
    if onnx and torch_device.type == "cpu" and _has_onnxruntime():
        from hrnet.export import OnnxRunner, export_onnx

        with tempfile.TemporaryDirectory() as tmp:  # ONNX Runtime holds the graph in memory once loaded
            runner = OnnxRunner(export_onnx(model, Path(tmp) / "model.onnx", config.input_size, check=False))
        fns["ONNX Runtime"] = lambda: runner(x.numpy())
    return [Speed(name, batch, batch / s) for name, s in interleaved_seconds(fns, rounds, seconds).items()]


PEAK_CHANNELS = 2048  # the peak is a 2048 → 2048 1×1 convolution on 64×32 pixels: a 2048³ matrix product


@dataclass(frozen=True)
class PrecisionSpeeds:
    """``hrnet bench --precision``: each precision's images/s beside the machine's fp32 limit, timed together.

    Attributes:
        rows: one ``Speed`` per (precision, backend); ``backend`` reads e.g. "int8 ONNX Runtime (QDQ)".
        peak_flops: the best fp32 rate of a 2048³ 1×1 convolution (PyTorch channels-last or ONNX Runtime).
        peak_backend: which of them reached it.
        multiply_accumulates: the network's per image.
        limit: peak_flops / (2 × multiply_accumulates), images/s: what fp32 could reach at best here.
    """

    rows: list[Speed]
    peak_flops: float
    peak_backend: str
    multiply_accumulates: int
    limit: float


def peak_fp32_candidates() -> dict[str, Callable[[], object]]:
    """Calls that each run one fp32 2048³ 1×1 convolution: PyTorch channels-last, and ONNX Runtime if installed."""
    from hrnet.models.fuse import FastModel

    conv = nn.Conv2d(PEAK_CHANNELS, PEAK_CHANNELS, 1, bias=False).eval()
    x = torch.randn(1, PEAK_CHANNELS, 64, 32)
    fast = FastModel(conv.to(memory_format=torch.channels_last))  # type: ignore[call-overload]
    fns: dict[str, Callable[[], object]] = {"PyTorch channels-last": lambda: fast(x)}
    if _has_onnxruntime():
        from hrnet.export import OnnxRunner

        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as hrnet.export uses
            torch.onnx.export(conv, (x,), str(Path(tmp) / "conv.onnx"), dynamo=False, input_names=["image"])
            runner = OnnxRunner(Path(tmp) / "conv.onnx")
        fns["ONNX Runtime"] = partial(runner, x.numpy())
    return fns


def measure_precisions(
    config: ModelConfig,
    precisions: list[str],
    weights: str | Path | None = None,
    *,
    batch: int = 16,
    rounds: int = 3,
    seconds: float = 2.0,
    calibration: list[np.ndarray] | None = None,
) -> PrecisionSpeeds:
    """Images/s of ``config``'s network on the CPU in each of ``precisions``, and the fp32 limit, all timed in the
    same interleaved rounds: fp32 as the fast path and (when installed) ONNX Runtime, bf16 as the bf16 fast path
    (``hrnet.precision.prepare_bf16``), int8 as ONNX Runtime running the statically quantized graph
    (``hrnet.export.export_int8``; calibrated on ``calibration`` crops, else on two random batches: the speed
    does not depend on the ranges).
    """
    from hrnet.models.checkpoint import load_model
    from hrnet.models.complexity import count_macs
    from hrnet.models.fuse import prepare_for_inference
    from hrnet.precision import prepare_bf16

    if batch < 1 or rounds < 1 or seconds <= 0:
        raise ConfigError(f"batch and rounds must be ≥ 1 and seconds > 0, got {batch}, {rounds}, {seconds}")
    torch.manual_seed(0)
    model: nn.Module = load_model(config, weights, "cpu")
    macs = count_macs(model, config.input_size)
    x = torch.randn(batch, 3, *config.input_size, generator=torch.Generator().manual_seed(1))
    peaks = peak_fp32_candidates()
    fns: dict[str, Callable[[], object]] = {f"peak|{k}": v for k, v in peaks.items()}
    for precision in precisions:
        if precision == "fp32":
            fns["fp32 PyTorch fast path"] = _timed_call(prepare_for_inference(model), x)
            if _has_onnxruntime():
                from hrnet.export import OnnxRunner, export_onnx

                with tempfile.TemporaryDirectory() as tmp:
                    fp32 = OnnxRunner(export_onnx(model, Path(tmp) / "fp32.onnx", config.input_size, check=False))
                fns["fp32 ONNX Runtime"] = partial(fp32, x.numpy())
        elif precision == "bf16":
            fns["bf16 PyTorch fast path"] = _timed_call(prepare_bf16(model), x)
        elif precision == "int8":
            from hrnet.export import OnnxRunner, export_int8

            crops = calibration or [torch.randn(2, 3, *config.input_size).numpy() for _ in range(2)]
            with tempfile.TemporaryDirectory() as tmp:
                int8 = OnnxRunner(export_int8(model, Path(tmp) / "int8.onnx", config.input_size, crops))
            fns["int8 ONNX Runtime (QDQ)"] = partial(int8, x.numpy())
        else:
            raise ConfigError(f"precision must be fp32, bf16 or int8, got {precision!r}")
    timed = interleaved_seconds(fns, rounds, seconds)
    peak_rates = {k.removeprefix("peak|"): 2 * PEAK_CHANNELS**3 / s for k, s in timed.items() if k.startswith("peak|")}
    peak_backend = max(peak_rates, key=peak_rates.__getitem__)
    rows = [Speed(name, batch, batch / s) for name, s in timed.items() if not name.startswith("peak|")]
    peak = peak_rates[peak_backend]
    return PrecisionSpeeds(rows, peak, peak_backend, macs, peak / (2 * macs))


def _has_onnxruntime() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
