"""Inference speed of HRNet-W32 256×192 on this machine: plain eager vs our fast path vs ONNX Runtime.

Run: ``.venv/bin/python bench/bench_inference.py`` (about 5 minutes). Writes ``bench/results/inference.md``
and ``.json``. Every figure is images/s and a fraction of the machine's limit, where the limit is the peak fp32
rate ÷ (2 × the model's multiply-accumulates); the peak is measured here as a 1×1 convolution equivalent to a
2048³ matrix product (``torch.mm``'s MKL path reaches only about half of it on this AMD CPU).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import provenance, timed, write_results

from hrnet.config import model_preset
from hrnet.export import OnnxRunner, export_onnx
from hrnet.models.complexity import count_macs
from hrnet.models.fuse import prepare_for_inference
from hrnet.models.hrnet import build_model


def peak_flops(threads: int) -> tuple[float, str]:
    """Best fp32 FLOP/s of a 1×1 convolution doing 2·2048³ FLOPs (2048 → 2048 channels on 2048 pixels)."""
    best, how = 0.0, ""
    conv = torch.nn.Conv2d(2048, 2048, 1, bias=False).eval()
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(1, 2048, 64, 32).contiguous(memory_format=fmt)
        layer = conv.to(memory_format=fmt)  # type: ignore[call-overload]
        with torch.inference_mode():
            seconds = timed(lambda: layer(x), repeats=5, seconds=1.0)  # noqa: B023
        rate = 2 * 2048**3 / seconds
        if rate > best:
            best, how = rate, f"1×1 conv, {'NHWC' if fmt == torch.channels_last else 'NCHW'}, {threads} threads"
    return best, how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = model_preset("w32")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    macs = count_macs(model, cfg.input_size)
    peak, peak_how = peak_flops(args.threads)
    limit = peak / (2 * macs)
    fast = prepare_for_inference(model, channels_last=True)
    onnx_path = Path(tempfile.mkdtemp()) / "w32.onnx"
    export_onnx(model, onnx_path, cfg.input_size)
    runner = OnnxRunner(onnx_path, threads=args.threads)

    rows = []
    for batch in (1, 16):
        x = torch.randn(batch, 3, *cfg.input_size)
        xn = x.numpy()

        def plain(x: torch.Tensor = x) -> object:
            with torch.no_grad():  # the official tools/test.py way
                return model(x)

        def ours(x: torch.Tensor = x) -> object:
            with torch.inference_mode():
                return fast(x)

        def onnx(xn: np.ndarray = xn) -> object:
            return runner(xn)

        for name, fn in (("plain eager (official)", plain), ("fast path (ours)", ours), ("ONNX Runtime", onnx)):
            seconds = timed(fn, repeats=3, seconds=args.seconds)
            rate = batch / seconds
            rows.append({"backend": name, "batch": batch, "images_per_s": rate, "fraction_of_limit": rate / limit})
            print(f"batch {batch:2d}  {name:24s} {rate:7.2f} images/s  {rate / limit:6.1%} of the limit", flush=True)

    by = {(r["backend"], r["batch"]): r["images_per_s"] for r in rows}
    speedup = by[("fast path (ours)", 16)] / by[("plain eager (official)", 16)]
    best = max(rows, key=lambda r: r["fraction_of_limit"])
    report = {
        **provenance(),
        "threads": args.threads,
        "model": "HRNet-W32 256x192",
        "multiply_accumulates": macs,
        "peak_flops": peak,
        "peak_measured_as": peak_how,
        "limit_images_per_s": limit,
        "rows": rows,
        "fast_over_plain_batch16": speedup,
        "best": best,
    }
    lines = [
        "# Inference speed, HRNet-W32 256×192",
        f"{args.threads} threads; the model is {macs / 1e9:.3f} G multiply-accumulates; peak fp32 "
        f"{peak / 1e9:.1f} GFLOP/s ({peak_how}); limit = peak / (2 × MACs) = {limit:.2f} images/s.",
        "",
        "| backend | batch | images/s | fraction of the limit |",
        "| --- | --- | --- | --- |",
        *[f"| {r['backend']} | {r['batch']} | {r['images_per_s']:.2f} | {r['fraction_of_limit']:.1%} |" for r in rows],
        "",
        f"Fast path over plain eager at batch 16: **{speedup:.2f}×** (target ≥ 2×).",
        f"Best backend: {best['backend']} at batch {best['batch']}, **{best['fraction_of_limit']:.1%}** of the "
        "limit (target ≥ 90 %).",
    ]
    write_results("inference", report, lines)


if __name__ == "__main__":
    main()
