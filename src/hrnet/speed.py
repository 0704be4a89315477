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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def _has_onnxruntime() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
