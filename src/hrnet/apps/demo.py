"""``hrnet demo``: the main job with nothing downloaded.

Writes the synthetic data set once (cached under ``data/synthetic``), trains a small HRNet fit for a CPU
(``demo.yaml``, shipped in ``hrnet/configs/``), evaluates it and leaves in ``runs/demo/``: ``best.safetensors``,
``metrics.json``, ``curves.png``, ``predictions.png`` (validation images, predicted skeletons beside the ground
truth) and the training log.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from hrnet.config import CONFIG_DIR, ExperimentConfig
from hrnet.data.synthetic import GENERATOR_VERSION, write_synthetic
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


def ensure_synthetic(
    root: Path, num_train: int = SYNTH_TRAIN, num_val: int = SYNTH_VAL, seed: int = SYNTH_SEED
) -> None:
    """Write the synthetic data set into ``root`` unless the same one (generator version, sizes, seed) is there."""
    marker = root / "synthetic.json"
    wanted = {"generator": GENERATOR_VERSION, "train": num_train, "val": num_val, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        log.info("synthetic data set found in %s", root)
        return
    from tqdm import tqdm

    with tqdm(total=num_train + num_val, desc="writing the synthetic data set", unit="img") as bar:
        write_synthetic(root, num_train, num_val, seed, progress=lambda n: bar.update(1))
    write_json_atomic(marker, wanted)


def run_demo(
    config: ExperimentConfig, *, num_train: int = SYNTH_TRAIN, num_val: int = SYNTH_VAL, progress: bool = True
) -> dict[str, Any]:
    """Data → train → evaluate → pictures; returns the validation metrics (also in ``metrics.json``)."""
    start = time.perf_counter()
    ensure_synthetic(Path(config.data.root), num_train, num_val)
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
    write_json_atomic(run_dir / "metrics.json", metrics)
    pictures = draw_predictions(predictions, evaluator.split, PICTURES)
    write_image(run_dir / "predictions.png", image_grid(pictures, columns=2))
    print(summary)
    print(
        f"demo finished in {metrics['minutes']:.1f} min: validation AP {metrics['AP']:.3f} "
        f"(AP50 {metrics['AP50']:.3f}, AP75 {metrics['AP75']:.3f}). In {run_dir}/: best.safetensors, metrics.json, "
        "curves.png, predictions.png, log.csv"
    )
    return metrics
