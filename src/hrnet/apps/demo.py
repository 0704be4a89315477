"""``hrnet demo``: the main job with nothing downloaded.

Writes the synthetic data set once (cached under ``data/synthetic``), trains a small HRNet fit for a CPU
(``demo.yaml``, shipped in ``hrnet/configs/``), evaluates it and leaves in ``runs/demo/``: ``best.safetensors``,
``metrics.json``, ``curves.png``, ``predictions.png`` (validation images, predicted skeletons beside the ground
truth) and the training log.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from hrnet.config import CONFIG_DIR, ExperimentConfig
from hrnet.data.synthetic import GENERATOR_VERSION, MEAN_PERSONS, drawing_processes, make_image, write_synthetic
from hrnet.drawing.heatmaps import image_grid
from hrnet.engine.evaluate import Evaluator, draw_predictions, score_predictions
from hrnet.engine.train import BEST, train
from hrnet.io.files import write_json_atomic
from hrnet.io.images import write_image
from hrnet.models.checkpoint import load_model
from hrnet.system import resolve_device

log = logging.getLogger(__name__)

DEMO_CONFIG = CONFIG_DIR / "demo.yaml"
SYNTH_TRAIN, SYNTH_VAL, SYNTH_SEED = 4000, 500, 0
PICTURES = 6
# The demo's parts other than its training steps (loading and augmenting the crops, the validations, the final
# evaluation and pictures) take this share of the steps' time: bench/bench_demo.py measures the estimate against the
# whole demo's wall time.
OTHER_PARTS = 0.5


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
    from tqdm import tqdm

    with tqdm(total=num_train + num_val, desc="writing the synthetic data set", unit="img") as bar:
        write_synthetic(root, num_train, num_val, seed, progress=lambda n: bar.update(1))
    write_json_atomic(root / "synthetic.json", _marker(num_train, num_val, seed))


def estimate_seconds(config: ExperimentConfig, num_train: int, num_val: int, *, data_ready: bool) -> float:
    """The demo's wall time on this machine, before it starts: a few training steps of its network timed here and
    scaled to the steps it will run, plus the synthetic images' drawing when they are still to be written."""
    import cv2

    drawing = 0.0
    if not data_ready:
        start = time.perf_counter()
        for index in range(4):
            cv2.imencode(".jpg", make_image(SYNTH_SEED, "train", index)[0])
        per_image = (time.perf_counter() - start) / 4
        drawing = per_image * sum(n / drawing_processes(n) for n in (num_train, num_val))
    steps = config.train.epochs * math.ceil(num_train * MEAN_PERSONS / config.train.batch_size)
    return drawing + steps * training_step_seconds(config) * (1 + OTHER_PARTS)


def training_step_seconds(config: ExperimentConfig) -> float:
    """Seconds one training step of ``config``'s network takes here, on a batch of random images, as training runs
    it (device, precision, memory format)."""
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
    start = time.perf_counter()
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / 3


def machine_words(config: ExperimentConfig) -> str:
    """What the demo runs on, in a few words: "AMD EPYC: AVX2, fp32 training, 2 threads"."""
    import torch

    from hrnet.runtime.precision import cpu_support

    device = resolve_device(config.runtime.device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    support = cpu_support()
    precision = "bf16" if config.train.precision == "bf16" and support.bf16 else "fp32"
    return f"{support.name}: {support.capability}, {precision} training, {torch.get_num_threads()} threads"


def run_demo(
    config: ExperimentConfig, *, num_train: int = SYNTH_TRAIN, num_val: int = SYNTH_VAL, progress: bool = True
) -> dict[str, Any]:
    """Data → train → evaluate → pictures; returns the validation metrics (also in ``metrics.json``)."""
    start = time.perf_counter()
    root = Path(config.data.root)
    estimate = estimate_seconds(config, num_train, num_val, data_ready=synthetic_ready(root, num_train, num_val))
    print(f"hrnet demo: about {max(1, round(estimate / 60))} minutes on this machine ({machine_words(config)})")
    ensure_synthetic(root, num_train, num_val)
    run_dir = Path(config.train.out_dir) / config.train.name
    result = train(config, overwrite=True, progress=progress)  # the demo always trains from scratch
    device = resolve_device(config.runtime.device)
    model = load_model(config.model, run_dir / BEST, device)
    evaluator = Evaluator.from_config(config, device, progress=progress)
    predictions = evaluator.predict(model)
    metrics = score_predictions(predictions, evaluator.split, config.test, run_dir)
    summary = metrics.pop("summary", "")
    metrics["epochs"] = len(result.history)
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
