"""Precision study: fp32 vs bf16 vs int8 — accuracy on the demo's validation set, speed of HRNet-W32 256×192.

Run: ``.venv/bin/python bench/bench_precision.py`` after ``make demo`` (the trained demo run in ``runs/demo``; other
run folders with ``--run``). Writes ``bench/results/precision_<kind>.md`` and ``.json`` (kind: ``avx512_bf16`` or
``avx2``; ``--part accuracy`` or ``speed`` alone: ``precision_accuracy_<kind>`` / ``precision_speed_<kind>``).
About 3 minutes on 2 idle cores with AVX-512 BF16; longer without (bf16 emulated).

Accuracy: the demo network (``RUN/best.safetensors``) on its validation split, evaluated in one process by every
precision with the same crops, flip test and DARK decoding: COCO AP of each, and each one's keypoints against
fp32's (Euclidean distance in image pixels over every person and keypoint: mean and 99th percentile). int8 is
calibrated on 320 crops of the training split (``hrnet.runtime.export.calibration_batches``).

Speed: W32 256×192 (random weights: the speed does not depend on them) at batch 1 and 16, each precision timed in
the same interleaved rounds as the machine's fp32 peak (``hrnet.runtime.bench.measure_precisions``), reported as
images/s and as a multiple of the fp32 limit = peak / (2 × multiply-accumulates). The CPU's bf16 / VNNI support is
recorded: without AVX-512 BF16 or AMX, bf16 is emulated and slow; without VNNI, int8 uses AVX2's 8-bit multiply-adds.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import cpu_kind, provenance, write_results

from hrnet.config import load_config, model_preset
from hrnet.engine.evaluate import Evaluator, score_predictions
from hrnet.models.checkpoint import load_model
from hrnet.models.fuse import prepare_for_inference
from hrnet.runtime.bench import measure_precisions
from hrnet.runtime.export import calibration_batches, export_int8
from hrnet.runtime.precision import cpu_support, prepare_bf16
from hrnet.system import keep_freed_memory

FP32 = "fp32 (network as trained)"


def accuracy(run: Path, overrides: list[str], crops: int) -> dict[str, Any]:
    """AP of each precision on the run's validation split and keypoint deviations from fp32."""
    from hrnet.runtime.onnx import OnnxRunner

    config = load_config(run / "config.yaml", ["runtime.num_workers=0", *overrides])
    device = torch.device("cpu")
    evaluator = Evaluator.from_config(config, device, progress=False)
    model = load_model(config.model, run / "best.safetensors")
    calibration = calibration_batches(config, crops)
    int8_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"hrnet_precision_{os.getpid()}.onnx"
    started = time.perf_counter()
    export_int8(model, int8_path, config.model.input_size, calibration)
    quantize_seconds = time.perf_counter() - started
    runner = OnnxRunner(int8_path)
    int8_path.unlink()
    variants = {
        FP32: model,
        "fp32 fast path (BatchNorm folded, channels-last)": prepare_for_inference(model),
        "bf16 fast path, heatmap head in fp32": prepare_bf16(model, fp32_modules=("final_layer",)),
        "bf16 fast path, every layer in bf16 (the default)": prepare_bf16(model),
        "int8 ONNX Runtime (QDQ, 320 calibration crops)": lambda x: torch.from_numpy(runner(x.numpy())),
    }
    rows, reference = [], None
    for name, fn in variants.items():
        started = time.perf_counter()
        predictions = evaluator.predict(fn)
        seconds = time.perf_counter() - started
        metrics = score_predictions(predictions, evaluator.split, evaluator.test)
        if reference is None:
            reference = predictions.keypoints
        distance = np.linalg.norm(predictions.keypoints - reference, axis=-1).ravel()
        rows.append({
            "precision": name,
            "AP": metrics["AP"],
            "AP_minus_fp32": metrics["AP"] - rows[0]["AP"] if rows else 0.0,
            "deviation_mean_px": float(distance.mean()),
            "deviation_p99_px": float(np.percentile(distance, 99)),
            "deviation_max_px": float(distance.max()),
            "eval_seconds": seconds,
        })  # fmt: skip
        print(f"{name}: AP {metrics['AP']:.4f}, deviation mean {distance.mean():.3f} px", flush=True)
    return {
        "run": str(run),
        "persons": len(evaluator.split.records),
        "calibration_crops": sum(len(b) for b in calibration),
        "quantize_seconds": quantize_seconds,
        "rows": rows,
    }


def speed(batches: list[int], rounds: int, seconds: float, emulated_bf16_batches: list[int]) -> list[dict[str, Any]]:
    """Each batch's precisions timed with their own peak; bf16 only at ``emulated_bf16_batches`` on a CPU without
    native bf16 (emulated, a W32 batch of 16 takes minutes there and says nothing that batch 1 does not)."""
    out = []
    native_bf16 = cpu_support().bf16
    for batch in batches:
        precisions = ["fp32", "bf16", "int8"] if native_bf16 or batch in emulated_bf16_batches else ["fp32", "int8"]
        result = measure_precisions(model_preset("w32"), precisions, batch=batch, rounds=rounds, seconds=seconds)
        for row in result.rows:
            out.append({
                "batch": batch,
                "configuration": row.backend,
                "images_per_s": row.images_per_s,
                "multiple_of_fp32_limit": row.images_per_s / result.limit,
                "fp32_limit_images_per_s": result.limit,
                "peak_gflops": result.peak_flops / 1e9,
                "peak_backend": result.peak_backend,
            })  # fmt: skip
            print(f"batch {batch}: {row.backend} {row.images_per_s:.2f} images/s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/demo", help="trained run folder (config.yaml, best.safetensors)")
    parser.add_argument("--set", action="append", default=[], help="config override for the run, e.g. data.root=")
    parser.add_argument("--part", choices=("all", "accuracy", "speed"), default="all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--crops", type=int, default=320, help="int8 calibration crops")
    parser.add_argument(
        "--emulated-bf16-batches",
        default="1",
        help="batch sizes at which bf16 is timed on a CPU without native bf16 (comma-separated; default 1)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # ONNX Runtime's threads (hrnet.runtime.onnx)
    keep_freed_memory()
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    support = cpu_support()
    report: dict[str, Any] = {**provenance(), "threads": args.threads, "cpu_support": support.describe()}
    if args.part in ("all", "accuracy"):
        report["accuracy"] = accuracy(Path(args.run), args.set, args.crops)
    if args.part in ("all", "speed"):
        emulated = [int(b) for b in args.emulated_bf16_batches.split(",") if b.strip()]
        report["speed"] = speed([1, 16], args.rounds, args.seconds, emulated)
    report["load_average_1min_before_after"] = [load_before, os.getloadavg()[0]]
    report["wall_seconds"] = time.perf_counter() - started
    lines = ["# Precision: fp32, bf16, int8", f"CPU: {support.describe()}. {args.threads} threads.", ""]
    if "accuracy" in report:
        acc = report["accuracy"]
        lines += [
            f"## Accuracy: the demo network ({acc['run']}), {acc['persons']} validation persons, ground-truth boxes, "
            "flip test, DARK decoding",
            "",
            "| precision | AP | AP − fp32 | keypoint deviation from fp32, mean / p99 / max (px) | eval time |",
            "| --- | --- | --- | --- | --- |",
            *[
                f"| {r['precision']} | {r['AP']:.4f} | {r['AP_minus_fp32']:+.4f} | {r['deviation_mean_px']:.3f} / "
                f"{r['deviation_p99_px']:.3f} / {r['deviation_max_px']:.2f} | {r['eval_seconds']:.0f} s |"
                for r in acc["rows"]
            ],
            "",
            f"int8 calibration: {acc['calibration_crops']} training crops, quantization took "
            f"{acc['quantize_seconds']:.0f} s. Eval times are of one loaded machine (ratios only).",
            "",
        ]
    if "speed" in report:
        rows = report["speed"]
        lines += [
            "## Speed: HRNet-W32 256×192",
            "",
            "| batch | configuration | images/s | multiple of the fp32 limit | fp32 limit (images/s), peak |",
            "| --- | --- | --- | --- | --- |",
            *[
                f"| {r['batch']} | {r['configuration']} | {r['images_per_s']:.2f} | "
                f"{r['multiple_of_fp32_limit']:.2f}× | {r['fp32_limit_images_per_s']:.2f}, "
                f"{r['peak_gflops']:.0f} GFLOP/s ({r['peak_backend']}) |"
                for r in rows
            ],
            "",
            f"Each batch size's figures are medians of {args.rounds} interleaved rounds with its own peak measurement."
            + (
                ""
                if support.bf16
                else " This CPU has no native bf16: bf16 was timed only at batch "
                f"{args.emulated_bf16_batches} (emulated)."
            ),
        ]
    load_after = report["load_average_1min_before_after"][1]
    lines.append(
        f"Load average (1 min) before / after: {load_before:.2f} / {load_after:.2f} (the run's own threads count in "
        f"it; the virtual machine's speed drifts: only ratios within one run mean anything); run time "
        f"{report['wall_seconds'] / 60:.1f} min."
    )
    name = "precision" if args.part == "all" else f"precision_{args.part}"
    write_results(f"{name}_{cpu_kind()}", report, lines)


if __name__ == "__main__":
    main()
