"""Data loader throughput at 256×192 (0 and 2 workers) against a W32 training step on this machine.

Run: ``.venv/bin/python bench/bench_loader.py`` (after ``hrnet demo`` or ``hrnet data synth --out
data/synthetic``; it reads that synthetic set). Samples are made exactly as in training: the official
augmentation, the affine crop, Gaussian targets. The ratio loader ÷ training step says whether the loader can
keep the network busy (> 1) on this machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from common import provenance, write_results
from torch.utils.data import DataLoader

from hrnet.codec import codec_from_config
from hrnet.config import ExperimentConfig, load_config, model_preset
from hrnet.data.augment import Augmentation
from hrnet.data.dataset import TopDownDataset, collate
from hrnet.data.sampler import EpochSampler
from hrnet.data.sources import load_split
from hrnet.engine.loss import HeatmapLoss
from hrnet.models.hrnet import build_model
from hrnet.system import keep_freed_memory

DATA = Path("data/synthetic")
BATCH = 32
BATCHES = 25


def loader_rate(dataset: TopDownDataset, workers: int) -> float:
    sampler = EpochSampler(len(dataset), seed=0)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler, num_workers=workers, collate_fn=collate)
    iterator = iter(loader)
    next(iterator)  # workers started
    start = time.perf_counter()
    count = 0
    for _ in range(BATCHES):
        count += len(next(iterator))
    return count / (time.perf_counter() - start)


def train_rate(config: ExperimentConfig, batch: int = 8, steps: int = 3) -> float:
    model = build_model(config.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = HeatmapLoss()
    x = torch.randn(batch, 3, *config.model.input_size)
    target = torch.rand(batch, 17, *config.model.heatmap_size)
    weight = torch.ones(batch, 17)

    def step() -> None:
        optimizer.zero_grad()
        loss_fn(model(x), target, weight).backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(2)
    keep_freed_memory()  # as hrnet train runs
    overrides = [f"data.root={DATA}", "data.train_annotations=annotations/train.json", "data.train_images=images/train"]
    config = load_config(None, overrides, base=ExperimentConfig(model=model_preset("w32")))
    split = load_split(config.data, "train", config.model.num_keypoints)
    dataset = TopDownDataset(
        split.records, split.keypoint_set, codec_from_config(config.model, config.data),
        augmentation=Augmentation.from_config(config.data), seed=0,
    )  # fmt: skip
    rates = {workers: loader_rate(dataset, workers) for workers in (0, 2)}
    step = train_rate(config)
    report = {
        **provenance(),
        "input_size": list(config.model.input_size),
        "batch_size": BATCH,
        "loader_samples_per_s": {str(k): v for k, v in rates.items()},
        "w32_train_samples_per_s": step,
        "ratio_loader_over_train": {str(k): v / step for k, v in rates.items()},
    }
    lines = [
        "# Data loader vs a W32 training step, 256×192",
        f"Synthetic set ({len(dataset)} persons), official augmentation + crop + Gaussian targets; torch 2 threads.",
        "",
        "| what | samples/s | ratio to the W32 training step |",
        "| --- | --- | --- |",
        *[f"| loader, {k} workers | {v:.1f} | {v / step:.1f}× |" for k, v in rates.items()],
        f"| W32 training step (forward + backward + Adam, batch 8) | {step:.2f} | 1× |",
        "",
        (
            "The loader with 0 workers already outruns W32 training here: the network, not the data, sets the pace."
            if rates[0] > step
            else "The loader needs workers to keep up with W32 training here."
        ),
    ]
    write_results("loader", report, lines)


if __name__ == "__main__":
    main()
