"""The demo's promise, measured: synthetic validation AP after `hrnet demo` (target ≥ 0.93 in ≤ 6 minutes on
a 2-core CPU with AVX-512 BF16) against the same network untrained (the data set must need learning: AP < 0.05).

Run: ``.venv/bin/python bench/bench_demo.py`` from the repository root on an idle machine (it runs the whole demo,
4-7 minutes on 2 cores; its data set and run go to ``data/`` and ``runs/``, which git ignores).
"""

from __future__ import annotations

import time

import torch
from common import provenance, write_results

from hrnet.apps.demo import DEMO_CONFIG, run_demo
from hrnet.config import load_config
from hrnet.engine.evaluate import Evaluator
from hrnet.models.hrnet import build_model
from hrnet.system import keep_freed_memory


def main() -> None:
    keep_freed_memory()  # as `hrnet demo` runs
    config = load_config(DEMO_CONFIG)
    start = time.perf_counter()
    trained = run_demo(config, progress=False)
    minutes = (time.perf_counter() - start) / 60
    torch.manual_seed(0)
    untrained = Evaluator.from_config(config, torch.device("cpu"), progress=False).evaluate(build_model(config.model))
    report = {
        **provenance(),
        "threads": torch.get_num_threads(),
        "minutes": minutes,
        "epochs": trained["epochs"],
        "trained": {k: v for k, v in trained.items() if k.startswith("A")},
        "untrained": {k: v for k, v in untrained.items() if k.startswith("A")},
    }
    lines = [
        "# The demo: synthetic validation AP after `hrnet demo`",
        f"configs/demo.yaml, {trained['epochs']} epochs on the CPU ({torch.get_num_threads()} threads), the whole "
        "demo (data, training, evaluation, pictures) timed.",
        "",
        "| network | AP | AP50 | AP75 | AR |",
        "| --- | --- | --- | --- | --- |",
        f"| untrained (random init) | {untrained['AP']:.3f} | {untrained['AP50']:.3f} | {untrained['AP75']:.3f} "
        f"| {untrained['AR']:.3f} |",
        f"| after the demo | {trained['AP']:.3f} | {trained['AP50']:.3f} | {trained['AP75']:.3f} "
        f"| {trained['AR']:.3f} |",
        "",
        f"Demo wall time: **{minutes:.1f} min** (target ≤ 6 with AVX-512 BF16); validation AP **{trained['AP']:.3f}** "
        "(target ≥ 0.93).",
    ]
    write_results("demo", report, lines)


if __name__ == "__main__":
    main()
