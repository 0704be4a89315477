"""Where the demo's training epoch goes: the bare training step vs the data path, on this machine.

Run: ``.venv/bin/python bench/bench_demo_epoch.py`` (after ``hrnet demo`` or ``hrnet data synth --out
data/synthetic``; it reads that synthetic set). The demo network (``configs/demo.yaml``, 128×96, batch 32, its
``train.precision`` as training applies it) in one process: the training step alone on one fixed batch in the
contiguous (NCHW) and the channels-last memory format, the loader alone (main process), and the two together as
an epoch runs them (channels-last) with 0, 1 and 2 loader workers. The share of the epoch that is not the step is
the data path's cost on these cores (the workers share the CPU with the step's threads).
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
from hrnet.engine.autocast import training_autocast
from hrnet.engine.loss import HeatmapLoss
from hrnet.models.hrnet import build_model
from hrnet.system import keep_freed_memory


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
    amp, amp_dtype = training_autocast(config.train.precision, config.runtime.amp, torch.device("cpu"))
    model = build_model(config.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    loss_fn = HeatmapLoss()

    def step(batch: Batch, memory_format: torch.memory_format = torch.channels_last) -> None:
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=amp_dtype, enabled=amp):
            output = model(batch.image.contiguous(memory_format=memory_format))
        loss_fn(output.float(), batch.target, batch.target_weight).backward()
        optimizer.step()

    def loader(workers: int, seed: int) -> DataLoader:
        sampler = EpochSampler(len(dataset), seed=seed)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate)

    iterator = iter(loader(0, 0))
    fixed = next(iterator)
    bare_by_format = {}
    for name, memory_format in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        model.to(memory_format=memory_format)  # type: ignore[call-overload]  # missing from the stubs
        step(fixed, memory_format)
        start = time.perf_counter()
        for _ in range(args.batches):
            step(fixed, memory_format)
        bare_by_format[name] = batch_size * args.batches / (time.perf_counter() - start)
    bare = bare_by_format["channels_last"]  # as training runs on the CPU (runtime.channels_last)
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
    best_workers = max(epoch, key=epoch.__getitem__)
    best = epoch[best_workers]
    serial = 1 / (1 / bare + 1 / load)
    report = {
        **provenance(),
        "batch_size": batch_size,
        "input_size": list(config.model.input_size),
        "train_precision": config.train.precision if amp else "fp32",
        "bare_step_samples_per_s": bare_by_format,
        "loader_alone_samples_per_s": load,
        "epoch_samples_per_s_by_workers": {str(k): v for k, v in epoch.items()},
    }
    lines = [
        f"# The demo's epoch: training step vs data path ({config.model.input_size[0]}×{config.model.input_size[1]}, "
        f"batch {batch_size}, torch 2 threads, {report['train_precision']})",
        "",
        "| what | samples/s | ÷ bare step (channels-last) |",
        "| --- | --- | --- |",
        f"| training step alone (one fixed batch), NCHW | {bare_by_format['contiguous']:.1f} | "
        f"{bare_by_format['contiguous'] / bare:.2f}× |",
        f"| training step alone (one fixed batch), channels-last | {bare:.1f} | 1× |",
        f"| loader alone (main process) | {load:.1f} | {load / bare:.1f}× |",
        *[f"| epoch: loader ({k} workers) + step | {v:.1f} | {v / bare:.2f}× |" for k, v in epoch.items()],
        "",
        f"The fastest epoch here runs {best_workers} loader worker(s); the data path costs "
        f"{100 * (1 - best / bare):.0f} % of it. With no workers the loader runs in series with the step, "
        f"1 / (1/step + 1/loader) = {serial:.1f} samples/s expected and {epoch[0]:.1f} measured; worker processes "
        "share the same cores with the step's threads, so they hide the loading only where cores are idle.",
    ]
    write_results("demo_epoch", report, lines)


if __name__ == "__main__":
    main()
