"""The demo's training on a CPU: one process of all the cores against two data-parallel processes of half the
cores each (DDP over gloo, as ``hrnet demo`` trains on a CPU of two cores or more), through ``hrnet train`` itself.

Run: ``.venv/bin/python bench/bench_demo_processes.py`` on an idle machine after ``hrnet demo`` (or ``hrnet data
synth --out data/synthetic``; ``--data`` for another copy). Each way trains the demo network (``configs/demo.yaml``)
for ``--steps`` steps of the same 32 samples (one process: batch 32; two: 16 each), in interleaved rounds, and the
training loop's samples/s is read from the run's ``log.csv`` (start-up and validation are not in it).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import provenance, write_results

WAYS = {
    "one process of all the cores": (1, os.cpu_count() or 1),
    "two processes of half the cores each (DDP)": (2, max(1, (os.cpu_count() or 2) // 2)),
}


def samples_per_s(processes: int, threads: int, data: Path, steps: int, out: Path) -> float:
    settings = [
        f"data.root={data.resolve()}", f"train.out_dir={out}", "train.name=run", "train.epochs=1",
        f"train.max_steps_per_epoch={steps}", f"train.batch_size={32 // processes}",
    ]  # fmt: skip
    launch = [sys.executable, "-m", "hrnet"]
    if processes > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                  "-m", "hrnet"]  # fmt: skip
    command = [*launch, "train", "demo", "--overwrite", *[a for s in settings for a in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=env, capture_output=True)
    with (out / "run" / "log.csv").open() as f:
        return float(next(csv.DictReader(f))["samples_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"), help="the synthetic set")
    parser.add_argument("--steps", type=int, default=60, help="training steps a measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    args = parser.parse_args()
    report = provenance()
    rates: dict[str, list[float]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for way, (processes, threads) in WAYS.items():
                rates[way].append(samples_per_s(processes, threads, args.data, args.steps, Path(folder)))
    best = {way: max(values) for way, values in rates.items()}
    one = best["one process of all the cores"]
    report.update(steps=args.steps, rounds=args.rounds, samples_per_s=rates)
    lines = [
        "# The demo's training on a CPU: one process or two data-parallel processes",
        f"configs/demo.yaml through `hrnet train`, {args.steps} steps of 32 samples, best of {args.rounds} "
        "interleaved rounds (the training loop's samples/s from log.csv).",
        "",
        "| way | processes × threads | samples/s | ÷ one process |",
        "| --- | --- | --- | --- |",
        *[f"| {way} | {p} × {t} | {best[way]:.1f} | {best[way] / one:.2f}× |" for way, (p, t) in WAYS.items()],
    ]
    write_results("demo_processes", report, lines)


if __name__ == "__main__":
    main()
