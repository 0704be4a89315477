"""How fast a network runs on this machine (``hrnet bench``): images/s of the backends of ``hrnet.runtime.backends``
(the plain network, the fast path, bf16, ONNX Runtime fp32 and int8), timed in the same interleaved rounds.

A machine's clock drifts by several percent over minutes (virtual machines more), more than some differences
measured here; so each round runs every configuration for about ``seconds``, starting one place later each round,
and each figure is the median over the rounds. The rounds keep to a budget of ``rounds × seconds`` a configuration
(``plan_rounds``): a network slower than ``seconds`` a call runs once a round, in fewer rounds.
``bench/bench_inference.py`` is the fuller study (the machine's peak, ablations, the official way of running
without reused memory, in separate processes).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hrnet.config import ModelConfig
from hrnet.errors import ConfigError
from hrnet.runtime.backends import BACKENDS, Backend, check_precision, is_onnx_file, open_backend, preferred_backend
from hrnet.system import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Speed:
    backend: str
    batch: int
    images_per_s: float


def seconds_of_one_call(fn: Callable[[], object]) -> float:
    """Seconds of one call of ``fn``, after one untimed warm-up call (the first call sets up kernels and threads)."""
    fn()
    start = time.perf_counter()
    fn()
    return max(time.perf_counter() - start, 1e-9)


def calls_per_round(fn: Callable[[], object], seconds: float) -> int:
    """How many calls of ``fn`` take at most ``seconds`` (at least one), after one untimed warm-up call."""
    return _calls(seconds_of_one_call(fn), seconds)


def _calls(call_seconds: float, seconds: float) -> int:
    return max(1, int(seconds / call_seconds))


@dataclass(frozen=True)
class RoundsPlan:
    """How ``interleaved_seconds`` times some functions.

    Attributes:
        calls: each function's calls a round (at most ``seconds`` of them, at least one).
        rounds: the rounds, ``rounds`` asked for or fewer (at least one) to keep to the budget.
        round_seconds: about how long one round takes.
    """

    calls: dict[str, int]
    rounds: int
    round_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.rounds * self.round_seconds


def plan_rounds(call_seconds: dict[str, float], rounds: int, seconds: float) -> RoundsPlan:
    """The rounds that time functions of these seconds a call within ``rounds × seconds`` each, in all.

    Each function runs up to ``seconds`` a round, at least one call; a function slower than that makes its rounds
    longer, and there are then as many rounds as the budget holds, at least one: the rounds never take more than
    ``rounds × seconds × len(call_seconds)``, or one call of each function where that alone takes longer.

    Args:
        call_seconds: each function's seconds a call (``seconds_of_one_call``).
        rounds, seconds: the rounds asked for, and about how long each function runs in each.

    Returns:
        The calls a round, the rounds and the seconds of a round.
    """
    calls = {name: _calls(t, seconds) for name, t in call_seconds.items()}
    round_seconds = sum(calls[name] * t for name, t in call_seconds.items())
    budget = rounds * seconds * len(call_seconds)
    return RoundsPlan(calls, max(1, min(rounds, int(budget / round_seconds))), round_seconds)


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    """Mean seconds of ``calls`` consecutive calls of ``fn``."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved_seconds(fns: dict[str, Callable[[], object]], rounds: int, seconds: float) -> dict[str, float]:
    """Median seconds per call of each function over interleaved rounds of about ``seconds`` each (at least one
    call a round): ``rounds`` of them, or fewer for functions slower than ``seconds`` a call (``plan_rounds``).
    Two calls warm each function up first and measure it; the time the rounds will take is logged before they
    start."""
    plan = plan_rounds({name: seconds_of_one_call(fn) for name, fn in fns.items()}, rounds, seconds)
    fewer = f" (not {rounds}: a round takes over {seconds:g} s a configuration)" if plan.rounds < rounds else ""
    log.info(
        "timing %d configurations in %d interleaved round%s of about %.1f s%s: about %.1f s",
        len(fns), plan.rounds, "" if plan.rounds == 1 else "s", plan.round_seconds, fewer, plan.total_seconds,
    )  # fmt: skip
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(plan.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(seconds_per_call(fns[name], plan.calls[name]))
    return {name: statistics.median(s) for name, s in samples.items()}


def _timed_call(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], object]:
    def call() -> object:
        with torch.no_grad():
            out = model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        return out

    return call


def open_for_timing(
    config: ModelConfig,
    name: str,
    model: nn.Module,
    *,
    device: str = "cpu",
    compile: bool = False,
    calibration: list[np.ndarray] | None = None,
) -> Backend:
    """Backend ``name`` of ``hrnet.runtime.backends`` running ``model``: a PyTorch backend directly; an ONNX Runtime one
    on ``model`` exported to a temporary file (int8: quantized on ``calibration`` crops, else on two random
    batches: the speed does not depend on the ranges), which ONNX Runtime holds in memory once the file is opened."""
    entry = BACKENDS[name]
    if entry.runs == "checkpoint":
        return open_backend(config, None, backend=name, device=device, compile=compile, module=model)
    from hrnet.runtime.export import export_int8, export_onnx

    log.info("%s: exporting the network to a temporary ONNX file", name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        if entry.precision == "int8":
            crops = calibration or [torch.randn(2, 3, *config.input_size).numpy() for _ in range(2)]
            export_int8(model, path, config.input_size, crops)
        else:
            export_onnx(model, path, config.input_size, check=False)
        return open_backend(config, path, backend=name, device="cpu")


def measure_backends(
    config: ModelConfig,
    names: Sequence[str],
    weights: str | Path | None = None,
    *,
    batch: int = 16,
    device: str = "auto",
    rounds: int = 3,
    seconds: float = 2.0,
    compile: bool = False,
    calibration: list[np.ndarray] | None = None,
    extra: dict[str, Callable[[], object]] | None = None,
) -> tuple[list[Speed], dict[str, float]]:
    """Images/s of ``config``'s network in each of some backends, on (batch, 3, H, W) inputs, all timed in the same
    interleaved rounds, with the process's allocator as it is (``hrnet bench`` keeps freed memory, as all our
    commands do).

    Args:
        names: names of ``hrnet.runtime.backends.BACKENDS``; ONNX Runtime ones run the network exported to a
            temporary file (``open_for_timing``).
        weights: a PyTorch weights file or a registered name; None: the random initialisation (as fast).
        batch, device, compile, calibration: how each backend runs (``open_for_timing``).
        rounds, seconds: the rounds, and about how long each backend runs in each (``plan_rounds``: fewer rounds
            for a network slower than ``seconds`` a call).
        extra: more functions to time in the same rounds.

    Returns:
        A ``Speed`` per backend, and the median seconds per call of each ``extra`` function.
    """
    from hrnet.hub.registry import resolve_weights
    from hrnet.models.checkpoint import load_model

    if batch < 1 or rounds < 1 or not seconds > 0 or not math.isfinite(seconds):
        raise ConfigError(
            f"batch and rounds must be ≥ 1 and seconds a finite number > 0, got {batch}, {rounds}, {seconds}"
        )
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise ConfigError(f"backend(s) {', '.join(unknown) or 'none'}: give one or more of {', '.join(BACKENDS)}")
    if is_onnx_file(weights):
        raise ConfigError(f"{weights}: time a PyTorch weights file (ONNX Runtime backends are exported from it)")
    torch_device = resolve_device(device)
    torch.manual_seed(0)
    model = load_model(config, None if weights is None else resolve_weights(weights), "cpu")
    fns: dict[str, Callable[[], object]] = dict(extra or {})
    for name in names:
        backend = open_for_timing(
            config, name, model, device=str(torch_device), compile=compile, calibration=calibration
        )
        x = torch.randn(batch, 3, *config.input_size, generator=torch.Generator().manual_seed(1))
        fns[name] = _timed_call(backend, x.to(backend.device))
    timed = interleaved_seconds(fns, rounds, seconds)
    rows = [Speed(name, batch, batch / timed[name]) for name in names]
    return rows, {k: v for k, v in timed.items() if k not in names}


PEAK_CHANNELS = 2048  # the peak is a 2048 → 2048 1×1 convolution on 64×32 pixels: a 2048³ matrix product


@dataclass(frozen=True)
class PrecisionSpeeds:
    """``hrnet bench --precision``: each precision's images/s beside the machine's fp32 limit, timed together.

    Attributes:
        rows: one ``Speed`` per backend of ``precision_backends`` (``backend`` is its registry name).
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
        from hrnet.runtime.onnx import OnnxRunner

        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as export_onnx's
            torch.onnx.export(conv, (x,), str(Path(tmp) / "conv.onnx"), dynamo=False, input_names=["image"])
            runner = OnnxRunner(Path(tmp) / "conv.onnx")
        fns["ONNX Runtime"] = partial(runner, x.numpy())
    return fns


def precision_backends(precisions: Sequence[str]) -> list[str]:
    """The backends ``hrnet bench --precision`` times: each precision's ``preferred_backend`` for a checkpoint and,
    when ONNX Runtime is installed, for an ``.onnx`` file (fp32 on both, bf16 on PyTorch, int8 on ONNX Runtime).

    Args:
        precisions: names of ``hrnet.runtime.backends.PRECISIONS``.

    Returns:
        Registry names, in the order of ``precisions``.
    """
    runs = ("checkpoint", "onnx") if _has_onnxruntime() else ("checkpoint",)
    chosen = (preferred_backend(r, check_precision(p)) for p in precisions for r in runs)
    return [entry.name for entry in chosen if entry is not None]


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
    """Images/s of ``config``'s network on the CPU in each of ``precisions`` (``precision_backends``), and the
    fp32 limit, all timed in the same interleaved rounds (``measure_backends``)."""
    from hrnet.models.complexity import count_macs
    from hrnet.models.hrnet import build_model

    peaks = {f"peak|{k}": v for k, v in peak_fp32_candidates().items()}
    rows, extra = measure_backends(
        config,
        precision_backends(precisions),
        weights,
        batch=batch,
        device="cpu",
        rounds=rounds,
        seconds=seconds,
        calibration=calibration,
        extra=peaks,
    )
    with torch.device("meta"):
        macs = count_macs(build_model(config), config.input_size)
    peak_rates = {k.removeprefix("peak|"): 2 * PEAK_CHANNELS**3 / s for k, s in extra.items()}
    peak_backend = max(peak_rates, key=peak_rates.__getitem__)
    peak = peak_rates[peak_backend]
    return PrecisionSpeeds(rows, peak, peak_backend, macs, peak / (2 * macs))


def _has_onnxruntime() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))
