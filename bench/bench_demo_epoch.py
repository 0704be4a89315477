"""Where the demo's training epoch goes: the bare training step vs the data path, on this machine.

Run: ``.venv/bin/python bench/bench_demo_epoch.py`` (after ``hrnet demo`` or ``hrnet data synth --out
data/synthetic``; it reads that synthetic set). The demo network (``configs/demo.yaml``, 128×96, batch 32) in one
process: the training step alone on one fixed batch, the loader alone (main process), and the two together as an
epoch runs them with 0, 1 and 2 loader workers. The share of the epoch that is not the step is the data path's
cost on these cores (the workers share the CPU with the step's threads).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import provenance, write_results
from torch.utils.data import DataLoader

from hrnet.codec import codec_from_config
from hrnet.config import CONFIG_DIR, load_config
from hrnet.data.augment import Augmentation
from hrnet.data.dataset import Batch, TopDownDataset, collate
from hrnet.data.sampler import EpochSampler
from hrnet.data.sources import load_split
from hrnet.engine.loss import HeatmapLoss
from hrnet.models.hrnet import build_model
from hrnet.runtime import keep_freed_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/synthetic", help="the synthetic set written by hrnet demo")
    parser.add_argument("--batches", type=int, default=30, help="batches timed per measurement")
    args = parser.parse_args()
    torch.set_num_threads(2)
    keep_freed_memory()  # as hrnet train runs
    config = load_config(CONFIG_DIR / "demo.yaml", [f"data.root={Path(args.data)}"])
    split = load_split(config.data, "train", config.model.num_keypoints)
    dataset = TopDownDataset(
        split.records, split.keypoint_set, codec_from_config(config.model, config.data),
        augmentation=Augmentation.from_config(config.data), seed=0,
    )  # fmt: skip
    batch_size = config.train.batch_size
    model = build_model(config.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    loss_fn = HeatmapLoss()

    def step(batch: Batch) -> None:
        optimizer.zero_grad()
        loss_fn(model(batch.image), batch.target, batch.target_weight).backward()
        optimizer.step()

    def loader(workers: int, seed: int) -> DataLoader:
        sampler = EpochSampler(len(dataset), seed=seed)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate)

    iterator = iter(loader(0, 0))
    fixed = next(iterator)
    step(fixed)
    start = time.perf_counter()
    for _ in range(args.batches):
        step(fixed)
    bare = batch_size * args.batches / (time.perf_counter() - start)
    start, count = time.perf_counter(), 0
    for _ in range(args.batches):
        count += len(next(iterator))
    load = count / (time.perf_counter() - start)
    epoch = {}
    for workers in (0, 1, 2):
        iterator = iter(loader(workers, workers + 1))
        step(next(iterator))  # workers started, first step done
        start, count = time.perf_counter(), 0
        for _ in range(args.batches):
            batch = next(iterator)
            step(batch)
            count += len(batch)
        epoch[workers] = count / (time.perf_counter() - start)
    best = max(epoch.values())
    report = {
        **provenance(),
        "batch_size": batch_size,
        "input_size": list(config.model.input_size),
        "bare_step_samples_per_s": bare,
        "loader_alone_samples_per_s": load,
        "epoch_samples_per_s_by_workers": {str(k): v for k, v in epoch.items()},
    }
    lines = [
        f"# The demo's epoch: training step vs data path ({config.model.input_size[0]}×{config.model.input_size[1]}, "
        f"batch {batch_size}, torch 2 threads)",
        "",
        "| what | samples/s | ÷ bare step |",
        "| --- | --- | --- |",
        f"| training step alone (one fixed batch) | {bare:.1f} | 1× |",
        f"| loader alone (main process) | {load:.1f} | {load / bare:.1f}× |",
        *[f"| epoch: loader ({k} workers) + step | {v:.1f} | {v / bare:.2f}× |" for k, v in epoch.items()],
        "",
        f"At the best worker count the data path costs {100 * (1 - best / bare):.0f} % of the epoch here"
        + (": the network sets the pace, not the data." if best > 0.75 * bare else ": a large share."),
    ]
    write_results("demo_epoch", report, lines)


if __name__ == "__main__":
    main()
