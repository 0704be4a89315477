"""``hrnet data show``: what the network is fed, drawn: augmented crops with their target skeletons and heatmaps."""

from __future__ import annotations

import numpy as np

from hrnet.codec import codec_from_config, get_max_preds
from hrnet.config import ExperimentConfig
from hrnet.data.augment import Augmentation
from hrnet.data.dataset import Sample, TopDownDataset
from hrnet.data.sources import load_split
from hrnet.drawing.heatmaps import heatmap_overlay, image_grid
from hrnet.drawing.skeletons import draw_poses


def draw_sample(sample: Sample, dataset: TopDownDataset) -> np.ndarray:
    """One sample as the network sees it: the crop with the targets' skeleton, beside the heatmap overlay (BGR)."""
    crop = np.ascontiguousarray(dataset.crop.to_image(sample.image)[..., ::-1])  # the network's RGB → BGR
    target = sample.target.numpy()
    coords, _ = get_max_preds(target[None])
    keypoints = dataset.crop.heatmap_to_input(coords, dataset.codec.heatmap_size)
    weights = sample.target_weight.numpy()[None]
    skeleton = draw_poses(crop, keypoints, weights, dataset.keypoint_set, threshold=0.5)
    return np.concatenate([skeleton, heatmap_overlay(crop, target)], axis=1)


def show_samples(config: ExperimentConfig, split: str = "train", count: int = 16, seed: int = 0) -> np.ndarray:
    """A grid of ``count`` samples of ``split`` (augmented as in training for "train")."""
    records = load_split(config.data, split, config.model.num_keypoints)
    dataset = TopDownDataset(
        records.records,
        records.keypoint_set,
        codec_from_config(config.model, config.data, float32_regions=records.format.float32_regions),
        augmentation=Augmentation.from_config(config.data) if split == "train" else None,
        seed=seed,
        size_mismatch=config.data.size_mismatch,
    )
    rng = np.random.default_rng(seed)
    indices = rng.choice(len(dataset), size=min(count, len(dataset)), replace=False)
    samples = [dataset[int(i)] for i in indices]  # evaluation-style: a missing image raises
    pictures = [draw_sample(s, dataset) for s in samples if isinstance(s, Sample)]
    return image_grid(pictures, columns=4)
