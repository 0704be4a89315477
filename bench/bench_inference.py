"""Inference speed of HRNet-W32 256×192 on this machine: plain eager vs our fast path vs ONNX Runtime.

Run: ``.venv/bin/python bench/bench_inference.py`` (about 5 minutes on 2 cores). Writes
``bench/results/inference.md`` and ``.json``.

Every figure is images/s and a fraction of the machine's limit, the peak fp32 rate ÷ (2 × the model's
multiply-accumulates). The peak is measured here, as the best rate of a 1×1 convolution equivalent to a 2048³
matrix product (2048 → 2048 channels on 64×32 pixels) run by PyTorch (NCHW and NHWC) and by ONNX Runtime;
``torch.mm``'s MKL path reaches only about half of it on this AMD CPU, so it is not used.

Our fast path changes a process-wide setting (``hrnet.system.keep_freed_memory``), so the configurations run in
two worker processes: one exactly as the official code runs (malloc as it is), one with the setting. The clock of
this (virtual) machine drifts by ±10 % over minutes, more than some differences measured here, so every
configuration, the peak included, is timed in the same rounds: each round runs every configuration for a couple of
seconds, starting one place later each round, and each figure is the median over the rounds.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch
from common import provenance, write_results

from hrnet.runtime.bench import PEAK_CHANNELS, calls_per_round, peak_fp32_candidates, seconds_per_call

PEAK_MACS = PEAK_CHANNELS**3  # a 2048 → 2048 1×1 convolution on 2048 pixels
PLAIN = "plain eager (official)"
FAST_EAGER = "fast path, eager (memory reuse + fold BN + channels-last + inference_mode)"
FAST_COMPILED = "fast path, compiled (+ torch.compile with freezing)"
ORT = "ONNX Runtime"
OFFICIAL, OURS = "malloc as it is", "memory reuse (keep_freed_memory)"


def _no_grad(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():  # as the official tools/test.py runs it: eval, NCHW, BatchNorm unfolded
        return model(x)


def _inference(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return layer(x)


def _peak_candidates() -> dict[str, Callable[[], object]]:
    """The 2·2048³-FLOP 1×1 convolution as ``hrnet bench --precision`` times it (PyTorch channels-last, ONNX
    Runtime on ``OMP_NUM_THREADS`` threads), and by PyTorch in NCHW as well."""
    conv = torch.nn.Conv2d(PEAK_CHANNELS, PEAK_CHANNELS, 1, bias=False).eval()
    x = torch.randn(1, PEAK_CHANNELS, 64, 32)
    fns = {f"peak: {name}": fn for name, fn in peak_fp32_candidates().items()}
    fns["peak: PyTorch NCHW"] = partial(_inference, conv, x)
    return fns


def _configurations(group: str, threads: int, info: dict[str, Any]) -> dict[str, Callable[[], object]]:
    """The timed callables of one worker process, keyed ``"name|batch"`` (peaks: ``"peak: name"``)."""
    from hrnet.config import model_preset
    from hrnet.models.complexity import count_macs
    from hrnet.models.fuse import FastModel, prepare_for_inference
    from hrnet.models.hrnet import build_model
    from hrnet.runtime.export import OnnxRunner, export_onnx
    from hrnet.system import keep_freed_memory

    cfg = model_preset("w32")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    info["multiply_accumulates"] = count_macs(model, cfg.input_size)
    inputs = {b: torch.randn(b, 3, *cfg.input_size, generator=torch.Generator().manual_seed(b)) for b in (1, 16)}
    if group == OFFICIAL:
        unkept = prepare_for_inference(model)
        return {
            f"{PLAIN}|1": partial(_no_grad, model, inputs[1]),
            f"{PLAIN}|16": partial(_no_grad, model, inputs[16]),
            "ablation: fast path, eager, without memory reuse|16": partial(unkept, inputs[16]),
        }
    info["memory_kept"] = keep_freed_memory()
    onnx_path = Path(tempfile.mkdtemp()) / "w32.onnx"
    export_onnx(model, onnx_path, cfg.input_size)
    runner = OnnxRunner(onnx_path, threads=threads)
    fast = prepare_for_inference(model)
    fns = _peak_candidates()
    info["compile_seconds"] = {}
    for batch, x in inputs.items():
        compiled = prepare_for_inference(model, compile=True)
        start = time.perf_counter()
        compiled(x)
        info["compile_seconds"][f"batch {batch}"] = time.perf_counter() - start
        fns |= {
            f"{FAST_EAGER}|{batch}": partial(fast, x),
            f"{FAST_COMPILED}|{batch}": partial(compiled, x),
            f"{ORT}|{batch}": partial(runner, x.numpy()),
        }
    fold_only = prepare_for_inference(model, channels_last=False)
    layout_only = FastModel(copy.deepcopy(model).to(memory_format=torch.channels_last))  # type: ignore[call-overload]
    fns |= {
        "ablation: plain eager with memory reuse|16": partial(_no_grad, model, inputs[16]),
        "ablation: memory reuse + fold BN (NCHW)|16": partial(fold_only, inputs[16]),
        "ablation: memory reuse + channels-last (BN unfolded)|16": partial(layout_only, inputs[16]),
    }
    return fns


def _worker(group: str, threads: int, seconds: float, conn: Connection) -> None:
    """Serves timing requests: a configuration's name → its seconds per call; None ends the worker."""
    if group == OFFICIAL:
        os.environ["HRNET_KEEP_FREED_MEMORY"] = "0"  # nothing may change malloc here, whatever gets imported
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the ONNX Runtime sessions opened without a thread count
    torch.set_num_threads(threads)
    info: dict[str, Any] = {}
    fns = _configurations(group, threads, info)
    calls = {name: calls_per_round(fn, seconds) for name, fn in fns.items()}
    conn.send((list(fns), info))
    while (name := conn.recv()) is not None:
        conn.send(seconds_per_call(fns[name], calls[name]))


def measure(threads: int, rounds: int, seconds: float) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds per call of every configuration of both workers, timed in interleaved rounds."""
    context = mp.get_context("spawn")
    workers, owner, info = {}, {}, {}
    for group in (OFFICIAL, OURS):
        here, there = context.Pipe()
        process = context.Process(target=_worker, args=(group, threads, seconds, there), daemon=True)
        process.start()
        names, info[group] = here.recv()
        workers[group] = (process, here)
        owner |= {name: group for name in names}
    names = list(owner)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            conn = workers[owner[name]][1]
            conn.send(name)
            samples[name].append(conn.recv())
    for process, conn in workers.values():
        conn.send(None)
        process.join()
    return {name: statistics.median(s) for name, s in samples.items()}, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; figures are their medians")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per configuration in a round")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    seconds, info = measure(args.threads, args.rounds, args.seconds)
    macs = info[OURS]["multiply_accumulates"]

    peaks = {name.removeprefix("peak: "): 2 * PEAK_MACS / s for name, s in seconds.items() if name.startswith("peak")}
    peak_name = max(peaks, key=peaks.__getitem__)
    limit = peaks[peak_name] / (2 * macs)
    rows: list[dict[str, Any]] = []
    for key, s in seconds.items():
        if not key.startswith("peak"):
            name, size = key.rsplit("|", 1)
            rate = int(size) / s
            rows.append({"backend": name, "batch": int(size), "images_per_s": rate, "fraction_of_limit": rate / limit})
    rows.sort(key=lambda r: (r["batch"], r["backend"].startswith("ablation")))
    by = {(r["backend"], r["batch"]): r["images_per_s"] for r in rows}
    ratios = {
        f"{name} / plain, batch {batch}": by[(name, batch)] / by[(PLAIN, batch)]
        for batch in (1, 16)
        for name in (FAST_EAGER, FAST_COMPILED, ORT)
    }
    speedup = max(by[(FAST_EAGER, 16)], by[(FAST_COMPILED, 16)]) / by[(PLAIN, 16)]
    best = max(rows, key=lambda r: r["fraction_of_limit"])
    load_after = os.getloadavg()[0]
    report = {
        **provenance(),
        "threads": args.threads,
        "rounds": args.rounds,
        "model": "HRNet-W32 256x192",
        "multiply_accumulates": macs,
        "memory_kept_in_fast_worker": info[OURS]["memory_kept"],
        "peak_flops_candidates": peaks,
        "peak_flops": peaks[peak_name],
        "peak_measured_as": f"1×1 conv as a 2048³ product, {peak_name}, {args.threads} threads",
        "limit_images_per_s": limit,
        "rows": rows,
        "ratios": ratios,
        "fast_over_plain_batch16": speedup,
        "best": best,
        "compile_seconds": info[OURS]["compile_seconds"],
        "load_average_1min_before_after": [load_before, load_after],
        "wall_seconds": time.perf_counter() - started,
    }
    peak_list = ", ".join(f"{k} {v / 1e9:.0f}" for k, v in peaks.items())
    lines = [
        "# Inference speed, HRNet-W32 256×192",
        f"{args.threads} threads (torch.set_num_threads, ONNX Runtime intra-op threads); the model is "
        f"{macs / 1e9:.3f} G multiply-accumulates. Peak fp32, a 1×1 conv equal to a 2048³ product: {peak_list} "
        f"GFLOP/s. The best, {peaks[peak_name] / 1e9:.0f} GFLOP/s, gives the limit = peak / (2 × MACs) = "
        f"**{limit:.2f} images/s**. All figures are medians of {args.rounds} interleaved rounds.",
        "",
        f"Two worker processes: plain eager and the first ablation run with {OFFICIAL} (as the official code "
        f"runs); everything else with {OURS}, which our fast path turns on (`hrnet.system`).",
        "",
        "| configuration | batch | images/s | fraction of the limit |",
        "| --- | --- | --- | --- |",
        *[f"| {r['backend']} | {r['batch']} | {r['images_per_s']:.2f} | {r['fraction_of_limit']:.1%} |" for r in rows],
        "",
        "| ratio | value |",
        "| --- | --- |",
        *[f"| {k} | {v:.2f}× |" for k, v in ratios.items()],
        "",
        f"Fast path (the better of eager and compiled) over plain eager at batch 16: **{speedup:.2f}×** (target ≥ 2×).",
        f"Best: {best['backend']} at batch {best['batch']}, **{best['fraction_of_limit']:.1%}** of the limit "
        "(target ≥ 90 %).",
        "",
        "Compilation (the first call, not timed above): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in info[OURS]["compile_seconds"].items())
        + f". Load average (1 min) before / after: {load_before:.2f} / {load_after:.2f}; "
        f"run time {(time.perf_counter() - started) / 60:.1f} min.",
    ]
    write_results("inference", report, lines)


if __name__ == "__main__":
    main()
