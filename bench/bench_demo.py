"""The demo's promise, measured: the whole `hrnet demo` (synthetic data written, training, evaluation, pictures)
from an empty folder, its wall time against its own estimate and its target, and the synthetic validation AP
against the same network untrained (the data set must need learning: AP < 0.05).

Run: ``.venv/bin/python bench/bench_demo.py`` from the repository root on an idle machine (about 7 minutes on 2
cores). The data set and the run go to a temporary folder. Writes ``bench/results/demo_<kind>.md``, where kind is
``avx512_bf16`` on a CPU with native bf16 and ``avx2`` elsewhere: the targets are ≤ 6 and ≤ 8 minutes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time

import torch
from common import cpu_kind, provenance, write_results

from hrnet.apps.demo import DEMO_CONFIG, run_demo, training_processes
from hrnet.config import load_config
from hrnet.engine.evaluate import Evaluator
from hrnet.models.hrnet import build_model
from hrnet.system import keep_freed_memory


def main() -> None:
    keep_freed_memory()  # as `hrnet demo` runs
    kind = cpu_kind()
    target = 6 if kind == "avx512_bf16" else 8
    report = provenance()
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        config = load_config(DEMO_CONFIG)  # its relative data.root and train.out_dir land in the folder
        start = time.perf_counter()
        trained = run_demo(config, progress=False)
        minutes = (time.perf_counter() - start) / 60
        torch.manual_seed(0)
        evaluator = Evaluator.from_config(config, torch.device("cpu"), progress=False)
        untrained = evaluator.evaluate(build_model(config.model))
    parameters = sum(p.numel() for p in build_model(config.model).parameters())
    processes, threads = training_processes(config)
    report.update(
        processes=processes,
        threads=threads,
        minutes=minutes,
        estimated_minutes=trained["estimated_minutes"],
        target_minutes=target,
        epochs=trained["epochs"],
        input_size=list(config.model.input_size),
        parameters=parameters,
        trained={k: v for k, v in trained.items() if k.startswith("A")},
        untrained={k: v for k, v in untrained.items() if k.startswith("A")},
    )
    height, width = config.model.input_size
    lines = [
        "# The demo: the whole `hrnet demo` timed, and its synthetic validation AP",
        f"The shipped demo config ({height}×{width} input, {parameters / 1e6:.2f} M parameters, {trained['epochs']} "
        f"epochs) on the CPU ({processes} training process(es) of {threads} thread(s)), from an empty folder: the "
        "synthetic data written, "
        f"training, evaluation, pictures. {os.cpu_count()} cores.",
        "",
        "| network | AP | AP50 | AP75 | AR |",
        "| --- | --- | --- | --- | --- |",
        f"| untrained (random init) | {untrained['AP']:.3f} | {untrained['AP50']:.3f} | {untrained['AP75']:.3f} "
        f"| {untrained['AR']:.3f} |",
        f"| after the demo | {trained['AP']:.3f} | {trained['AP50']:.3f} | {trained['AP75']:.3f} "
        f"| {trained['AR']:.3f} |",
        "",
        f"Demo wall time: **{minutes:.1f} min** (target ≤ {target} on this kind of CPU; the demo estimated "
        f"{trained['estimated_minutes']:.1f} before it started); validation AP **{trained['AP']:.3f}** (target ≥ "
        "0.93).",
    ]
    write_results(f"demo_{kind}", report, lines)


if __name__ == "__main__":
    main()
