"""A tiny training experiment on the shared COCO sample (4 images, 12 persons), fast on one CPU thread."""

import pytest

from hrnet.config import ExperimentConfig, load_config
from tests.conftest import tiny_model_config


def random_weights_experiment(datasets_dir, tmp):
    """A tiny experiment on the COCO sample written to ``tmp/config.yaml``, with random weights whose outputs are
    not trivial (N(0, 0.3)) in ``tmp/w.safetensors``: (config, config path, weights path, model)."""
    import torch

    from hrnet.config import dump_config
    from hrnet.models.checkpoint import save_weights
    from hrnet.models.hrnet import build_model

    config = tiny_experiment(datasets_dir, tmp / "runs")
    torch.manual_seed(0)
    model = build_model(config.model)
    for p in model.parameters():
        p.data.normal_(0, 0.3)
    weights = tmp / "w.safetensors"
    save_weights(model, weights)
    config_path = tmp / "config.yaml"
    config_path.write_text(dump_config(config))
    return config, config_path, weights, model


def tiny_experiment(datasets_dir, out_dir, extra=(), **train) -> ExperimentConfig:
    coco = datasets_dir / "coco"
    base = ExperimentConfig(model=tiny_model_config())
    overrides = [
        "model.input_size=[128, 96]",
        f"data.root={coco}",
        "data.train_annotations=test_coco.json",
        "data.train_images=.",
        "data.val_annotations=test_coco.json",
        "data.val_images=.",
        "runtime.num_workers=0",
        f"train.out_dir={out_dir}",
        "train.name=tiny",
        "train.epochs=2",
        "train.batch_size=4",
        "test.batch_size=8",
        *(f"train.{k}={v}" for k, v in train.items()),
        *extra,
    ]
    return load_config(None, overrides, base=base)


@pytest.fixture
def experiment(datasets_dir, tmp_path):
    return tiny_experiment(datasets_dir, tmp_path / "runs")
