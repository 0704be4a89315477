"""The HRNet family's network-only speed on this CPU: each member at batch 1 and 16, fp32 (the PyTorch fast path
and ONNX Runtime) and int8 (ONNX Runtime, QDQ, calibrated on random crops), timed in the same interleaved rounds as
the machine's fp32 peak (``hrnet.runtime.bench.measure_precisions``).

Members: HRNet-W32 and -W48 at 256×192 (body), HRNetV2-W18 at 256×256 (faces and hands), Lite-HRNet-18 and -30 at
256×192, random weights (the speed does not depend on them). Run: ``.venv/bin/python bench/bench_family.py`` on an
idle machine (about 10 minutes on 2 cores); writes ``bench/results/family.md`` and ``.json``.
"""

from __future__ import annotations

import argparse

import torch
from common import provenance, write_results

from hrnet.config import load_config
from hrnet.models.complexity import count_macs, count_parameters
from hrnet.models.hrnet import build_model
from hrnet.runtime.bench import measure_precisions
from hrnet.system import keep_freed_memory

MEMBERS = {
    "HRNet-W32 256×192": "coco/w32_256x192",
    "HRNet-W48 256×192": "coco/w48_256x192",
    "HRNetV2-W18 256×256": "face/hrnetv2_w18_wflw_256x256",
    "Lite-HRNet-18 256×192": "coco/litehrnet18_256x192",
    "Lite-HRNet-30 256×192": "coco/litehrnet30_256x192",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    keep_freed_memory()
    report = provenance()
    rows = []
    for member, config_name in MEMBERS.items():
        model_config = load_config(config_name).model
        with torch.device("meta"):
            model = build_model(model_config)
        macs, params = count_macs(model, model_config.input_size), count_parameters(model)
        for batch in (1, 16):
            speeds = measure_precisions(
                model_config, ["fp32", "int8"], batch=batch, rounds=args.rounds, seconds=args.seconds
            )
            for row in speeds.rows:
                rows.append(
                    {
                        "member": member, "config": config_name, "batch": batch, "backend": row.backend,
                        "images_per_s": round(row.images_per_s, 2), "multiply_adds_g": round(macs / 1e9, 3),
                        "parameters_m": round(params / 1e6, 2), "fp32_limit": round(speeds.limit, 2),
                    }
                )  # fmt: skip
            print(member, batch, [(r.backend, round(r.images_per_s, 1)) for r in speeds.rows], flush=True)
    report["rows"] = rows
    lines = [
        "# The HRNet family: network-only speed, fp32 and int8",
        "",
        f"CPU: {report['cpu_features']}. {torch.get_num_threads()} threads. Random weights; images/s of the network "
        "alone on crops of its input size; each member's backends timed in the same interleaved rounds.",
        "",
        "| network | parameters | multiply-adds | batch | fp32 PyTorch fast path | fp32 ONNX Runtime "
        "| int8 ONNX Runtime | fp32 limit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for member in MEMBERS:
        for batch in (1, 16):
            got = {r["backend"]: r for r in rows if r["member"] == member and r["batch"] == batch}
            first = next(iter(got.values()))
            speeds = [
                got.get(b, {}).get("images_per_s", "–") for b in ("pytorch-fast", "onnxruntime", "onnxruntime-int8")
            ]
            lines.append(
                f"| {member} | {first['parameters_m']} M | {first['multiply_adds_g']} G | {batch} | "
                + " | ".join(str(s) for s in speeds)
                + f" | {first['fp32_limit']} |"
            )
    write_results("family", report, lines)


if __name__ == "__main__":
    main()
