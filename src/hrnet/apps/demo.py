"""``hrnet demo``: the main job with nothing downloaded.

Writes the synthetic data set once (cached under ``data/synthetic``), trains a small HRNet fit for a CPU
(``demo.yaml``, shipped in ``hrnet/configs/``), evaluates it and leaves in ``runs/demo/``: ``best.safetensors``,
``metrics.json``, ``curves.png``, ``predictions.png`` (validation images, predicted skeletons beside the ground
truth) and the training log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import multiprocessing
import os
import signal
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hrnet.config import CONFIG_DIR, ExperimentConfig
from hrnet.data.synthetic import GENERATOR_VERSION, MEAN_PERSONS, drawing_processes, make_image, write_synthetic
from hrnet.drawing.heatmaps import image_grid
from hrnet.engine.evaluate import Evaluator, draw_predictions, score_predictions
from hrnet.engine.train import BEST, train
from hrnet.errors import HrnetError, TrainingError
from hrnet.io.files import write_json_atomic
from hrnet.io.images import write_image
from hrnet.models.checkpoint import load_model
from hrnet.system import LOG_FORMAT, exit_now, keep_freed_memory, one_opencv_thread, resolve_device

log = logging.getLogger(__name__)

DEMO_CONFIG = CONFIG_DIR / "demo.yaml"
SYNTH_TRAIN, SYNTH_VAL, SYNTH_SEED = 4000, 500, 0
PICTURES = 6
# The demo's parts other than its training steps (loading and augmenting the crops, the validations, the final
# evaluation and pictures, and two processes sharing the cores and the memory) take this share of the steps' time:
# bench/bench_demo.py measures the estimate against the whole demo's wall time.
OTHER_PARTS = 0.6


def synthetic_ready(root: Path, num_train: int, num_val: int, seed: int = SYNTH_SEED) -> bool:
    """Whether ``root`` holds the synthetic data set of this generator version, these sizes and this seed."""
    marker = root / "synthetic.json"
    return marker.is_file() and json.loads(marker.read_text()) == _marker(num_train, num_val, seed)


def _marker(num_train: int, num_val: int, seed: int) -> dict[str, int]:
    return {"generator": GENERATOR_VERSION, "train": num_train, "val": num_val, "seed": seed}


def ensure_synthetic(
    root: Path, num_train: int = SYNTH_TRAIN, num_val: int = SYNTH_VAL, seed: int = SYNTH_SEED
) -> None:
    """Write the synthetic data set into ``root`` unless the same one (generator version, sizes, seed) is there."""
    if synthetic_ready(root, num_train, num_val, seed):
        log.info("synthetic data set found in %s", root)
        return
    with tqdm(total=num_train + num_val, desc="writing the synthetic data set", unit="img") as bar:
        write_synthetic(root, num_train, num_val, seed, progress=lambda n: bar.update(1))
    write_json_atomic(root / "synthetic.json", _marker(num_train, num_val, seed))


def estimate_seconds(config: ExperimentConfig, num_train: int, num_val: int, *, data_ready: bool) -> float:
    """The demo's wall time on this machine, before it starts: a few training steps of its network timed here and
    scaled to the steps it will run, plus the synthetic images' drawing when they are still to be written."""
    import cv2

    drawing = 0.0
    if not data_ready:
        cv2.imencode(".jpg", make_image(SYNTH_SEED, "train", 0)[0])  # the first one also warms up
        start = time.perf_counter()
        for index in range(1, 5):
            cv2.imencode(".jpg", make_image(SYNTH_SEED, "train", index)[0])
        per_image = (time.perf_counter() - start) / 4
        drawing = per_image * sum(n / drawing_processes(n) for n in (num_train, num_val))
    processes, threads = training_processes(config)
    rank_config = _per_process(config, processes)
    steps = config.train.epochs * math.ceil(num_train * MEAN_PERSONS / (rank_config.train.batch_size * processes))
    return drawing + steps * training_step_seconds(rank_config, threads) * (1 + OTHER_PARTS)


def training_step_seconds(config: ExperimentConfig, threads: int | None = None) -> float:
    """Seconds one training step of ``config``'s network takes here, on a batch of random images, as training runs
    it (device, precision, memory format; ``threads`` of PyTorch's, else its current count)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        return _step_seconds(config)
    finally:
        torch.set_num_threads(previous)


def _step_seconds(config: ExperimentConfig) -> float:
    import torch

    from hrnet.engine.autocast import training_autocast
    from hrnet.engine.loss import HeatmapLoss
    from hrnet.models.hrnet import build_model

    device = resolve_device(config.runtime.device)
    logging.disable(logging.WARNING)  # training says once, later, which precision it runs in
    try:
        amp, dtype = training_autocast(config.train.precision, config.runtime.amp, device)
    finally:
        logging.disable(logging.NOTSET)
    memory_format = torch.channels_last if config.runtime.channels_last else torch.contiguous_format
    model = build_model(config.model).to(device, memory_format=memory_format).train()  # type: ignore[call-overload]  # missing from the stubs
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    loss = HeatmapLoss()
    batch, (height, width) = config.train.batch_size, config.model.input_size
    images = torch.randn(batch, 3, height, width, device=device).contiguous(memory_format=memory_format)
    with torch.no_grad():
        target = torch.zeros_like(model(images), memory_format=torch.contiguous_format)  # the heatmaps' shape
    weight = torch.ones(target.shape[:2], device=device)

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            output = model(images)
        loss(output.float(), target, weight).backward()
        optimizer.step()

    for _ in range(2):  # the first steps allocate and pick kernels
        step()
    seconds = []
    for _ in range(5):  # the median: one step slowed by another program would sway a mean
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def machine_words(config: ExperimentConfig) -> str:
    """What the demo runs on, in a few words: "AMD EPYC: AVX2, fp32 training, 2 threads"; ``config`` as
    ``precision_here`` left it."""
    import torch

    from hrnet.runtime.precision import cpu_support

    device = resolve_device(config.runtime.device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    support = cpu_support()
    processes, threads = training_processes(config)
    each = f"{processes} processes of {threads} thread{'s' if threads > 1 else ''}" if processes > 1 else ""
    return f"{support.name}: {support.capability}, {config.train.precision} training, {each or f'{threads} threads'}"


def precision_here(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` training in fp32 where it asks for bf16 on a CPU without native bf16: the demo's bf16 means "where
    the CPU has it", which the line before the run says, so the run records fp32 and prints no warning."""
    from hrnet.runtime.precision import cpu_support

    if config.train.precision != "bf16" or resolve_device(config.runtime.device).type != "cpu" or cpu_support().bf16:
        return config
    return dataclasses.replace(config, train=dataclasses.replace(config.train, precision="fp32"))


def training_processes(config: ExperimentConfig) -> tuple[int, int]:
    """(processes, PyTorch threads each) the demo trains with. On a CPU of two cores or more: two data-parallel
    processes (DDP over gloo) of half the cores each, since one process of all the cores leaves a core idle while
    it loads each batch and its threads wait on each other at every small layer (bench/results/demo_*.md). One
    process on a GPU."""
    import torch

    cores = os.cpu_count() or 1
    if resolve_device(config.runtime.device).type != "cpu" or cores < 2:
        return 1, torch.get_num_threads()
    return 2, cores // 2


def _per_process(config: ExperimentConfig, processes: int) -> ExperimentConfig:
    """``config`` with each process's share of the batch: the steps, and the samples of a step, stay the same."""
    batch = math.ceil(config.train.batch_size / processes)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=batch))


def train_demo(config: ExperimentConfig, progress: bool) -> None:
    """Train ``config`` from scratch into its run folder, in ``training_processes`` processes."""
    processes, threads = training_processes(config)
    if processes == 1:
        train(config, overwrite=True, progress=progress)
        return
    import torch.multiprocessing as torch_mp

    with socket.socket() as probe:  # a free port for the processes' rendezvous on this machine
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    errors = multiprocessing.get_context("spawn").SimpleQueue()
    rank_config = _per_process(config, processes)
    try:
        torch_mp.start_processes(
            _train_process,
            args=(processes, threads, port, rank_config, progress, errors),
            nprocs=processes,
            start_method="spawn",
        )
    except (torch_mp.ProcessExitedException, torch_mp.ProcessRaisedException) as err:  # the others were stopped
        raise TrainingError(errors.get() if not errors.empty() else f"the demo's training stopped: {err}") from None


def _train_process(
    rank: int, processes: int, threads: int, port: int, config: ExperimentConfig, progress: bool, errors: Any
) -> None:
    """One of ``train_demo``'s processes (spawned: a fresh interpreter set up as the command's own)."""
    import torch

    # PyTorch ends its spawned processes with a SIGINT when their parent dies; a command started in the background
    # by a script ignores SIGINT, and so did they: killed, the demo left both training on for nobody.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(processes)
    )
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.ERROR, format=LOG_FORMAT)  # rank 0 speaks
    keep_freed_memory()
    one_opencv_thread()
    try:
        train(config, overwrite=True, progress=progress)
    except HrnetError as err:
        errors.put(str(err))  # the message the command prints, in one line
        raise SystemExit(2) from None
    # Trained and saved: leave without the interpreter's teardown, where gloo's threads can abort the process.
    exit_now(0)


def run_demo(
    config: ExperimentConfig, *, num_train: int = SYNTH_TRAIN, num_val: int = SYNTH_VAL, progress: bool = True
) -> dict[str, Any]:
    """Data → train → evaluate → pictures; returns the validation metrics (also in ``metrics.json``)."""
    start = time.perf_counter()
    config = precision_here(config)
    root = Path(config.data.root)
    estimate = estimate_seconds(config, num_train, num_val, data_ready=synthetic_ready(root, num_train, num_val))
    print(f"hrnet demo: about {max(1, round(estimate / 60))} minutes on this machine ({machine_words(config)})")
    ensure_synthetic(root, num_train, num_val)
    run_dir = Path(config.train.out_dir) / config.train.name
    train_demo(config, progress)
    device = resolve_device(config.runtime.device)
    model = load_model(config.model, run_dir / BEST, device)
    evaluator = Evaluator.from_config(config, device, progress=progress)
    predictions = evaluator.predict(model)
    metrics = score_predictions(predictions, evaluator.split, config.test, run_dir)
    summary = metrics.pop("summary", "")
    metrics["epochs"] = config.train.epochs
    metrics["minutes"] = round((time.perf_counter() - start) / 60, 2)
    metrics["estimated_minutes"] = round(estimate / 60, 2)
    write_json_atomic(run_dir / "metrics.json", metrics)
    pictures = draw_predictions(predictions, evaluator.split, PICTURES)
    write_image(run_dir / "predictions.png", image_grid(pictures, columns=2))
    print(summary)
    print(
        f"demo finished in {metrics['minutes']:.1f} min (estimated {metrics['estimated_minutes']:.1f}): validation "
        f"AP {metrics['AP']:.3f} (AP50 {metrics['AP50']:.3f}, AP75 {metrics['AP75']:.3f}). In {run_dir}/: "
        "best.safetensors, metrics.json, curves.png, predictions.png, log.csv"
    )
    return metrics
