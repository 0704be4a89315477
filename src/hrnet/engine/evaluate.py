"""Evaluation: batched inference over a split with the official test recipe, then the data set's metric.

Per person: the crop of its box (ground truth or a detection), the network's heatmaps, with the flip test the
mirrored input's heatmaps flipped back (shifted one pixel as the official code) and averaged, decoding by argmax
+ quarter-pixel offset (or DARK), keypoints mapped back to the image. Then, for COCO-style sets, the official
rescoring and OKS-NMS per image and the 10 AP/AR numbers from pycocotools with the set's own sigmas; for MPII,
PCKh. Under ``torchrun`` every process predicts its share and rank 0 gathers and scores.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from hrnet.codec import codec_from_config
from hrnet.config import ExperimentConfig
from hrnet.data.dataset import TopDownDataset, collate
from hrnet.data.images import read_image
from hrnet.data.records import PoseRecord
from hrnet.data.sampler import EpochSampler
from hrnet.data.sources import Split, load_split
from hrnet.engine.distributed import Distributed, broadcast_object, gather_objects
from hrnet.fileio import write_json_atomic
from hrnet.inference import predict_keypoints
from hrnet.keypoints import KeypointSet
from hrnet.metrics.coco import evaluate_coco, keypoint_results, load_ground_truth, write_keypoint_results
from hrnet.metrics.nms import nms_per_image
from hrnet.metrics.pck import head_sizes_from_segment, mpii_pckh
from hrnet.runtime import keep_freed_memory
from hrnet.visualize import side_by_side, write_image

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Decoded predictions for the persons of a split, in record order."""

    keypoints: np.ndarray  # (N, K, 2) image pixels
    scores: np.ndarray  # (N, K) heatmap peak values
    centers: np.ndarray  # (N, 2) crop centres, image pixels
    sizes: np.ndarray  # (N, 2) crop sizes (w, h), image pixels


class Evaluator:
    """Evaluates a model on one split of an experiment's data (built once, reused every epoch)."""

    def __init__(
        self,
        config: ExperimentConfig,
        device: torch.device,
        dist: Distributed | None = None,
        *,
        split: str = "val",
        boxes: str | Path | None = None,
        progress: bool = True,
    ):
        keep_freed_memory()  # inference allocates as much as training (hrnet.runtime)
        self.config = config
        self.device = device
        self.dist = dist or Distributed()
        self.progress = progress and self.dist.is_main
        self.split: Split = load_split(config, split, boxes if boxes is not None else (config.test.boxes or None))
        self.keypoint_set = self.split.keypoint_set
        self.codec = codec_from_config(config.model, config.data)
        self.dataset = TopDownDataset(
            self.split.records, self.keypoint_set, self.codec, padding=config.data.box_padding
        )
        self.main_metric = "PCKh" if config.data.format == "mpii" else "AP"

    @torch.inference_mode()
    def predict(self, model: nn.Module) -> Predictions:
        """Heatmaps → keypoints for every record of the split (all ranks return the gathered result)."""
        test = self.config.test
        was_training = model.training
        model.eval()
        n = len(self.dataset)
        sampler = EpochSampler(n, shuffle=False, rank=self.dist.rank, world_size=self.dist.world_size)
        loader = DataLoader(
            self.dataset,
            batch_size=test.batch_size,
            sampler=sampler,
            num_workers=self.config.data.num_workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
        )
        flip_index = self.keypoint_set.flip_index
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        use_amp = self.config.train.amp and self.device.type == "cuda"
        for batch in tqdm(loader, desc="evaluating", disable=not self.progress, leave=False, dynamic_ncols=True):
            images = batch.image.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, enabled=use_amp):
                keypoints, scores = predict_keypoints(
                    model, images, self.codec, flip_index, test, batch.center.numpy(), batch.size.numpy()
                )
            parts.append((batch.index.numpy(), keypoints, scores))
        model.train(was_training)
        gathered = [p for rank_parts in gather_objects(parts, self.dist) for p in rank_parts]
        index = np.concatenate([p[0] for p in gathered])
        order = np.unique(index, return_index=True)[1]  # padding repeats a few indices across ranks
        keypoints = np.concatenate([p[1] for p in gathered])[order]
        scores = np.concatenate([p[2] for p in gathered])[order]
        centers, sizes = zip(*(self.dataset.crop(r) for r in self.split.records), strict=True)
        return Predictions(keypoints, scores, np.array(centers), np.array(sizes))

    def evaluate(self, model: nn.Module, out_dir: str | Path | None = None, draw: int = 0) -> dict[str, Any]:
        """Predict and score; rank 0 writes the results, ``metrics.json`` and ``draw`` pictures
        (``prediction_NNN.jpg``: prediction | ground truth) into ``out_dir``."""
        predictions = self.predict(model)
        metrics: dict[str, Any] = {}
        if self.dist.is_main:
            metrics = score_predictions(predictions, self.split, self.config, out_dir)
            if out_dir is not None:
                out = Path(out_dir)
                write_json_atomic(out / "metrics.json", metrics)
                for i, picture in enumerate(draw_predictions(predictions, self.split, draw)):
                    write_image(out / f"prediction_{i:03d}.jpg", picture)
        return broadcast_object(metrics, self.dist)


def draw_predictions(predictions: Predictions, split: Split, count: int, threshold: float = 0.3) -> list[np.ndarray]:
    """Up to ``count`` images of the split, each with its persons' predicted skeletons beside the ground truth."""
    by_image: dict[Any, list[int]] = {}
    for i, record in enumerate(split.records):
        by_image.setdefault(record.image_id, []).append(i)
    pictures = []
    for indices in list(by_image.values())[:count]:
        records = [split.records[i] for i in indices]
        pictures.append(
            side_by_side(
                read_image(records[0].image_path),
                predictions.keypoints[indices],
                predictions.scores[indices],
                np.stack([r.keypoints for r in records]),
                np.stack([r.visibility for r in records]),
                split.keypoint_set,
                threshold=threshold,
            )
        )
    return pictures


def score_predictions(
    predictions: Predictions, split: Split, config: ExperimentConfig, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """The split's metric: PCKh for MPII, COCO AP/AR (with the set's own sigmas) for everything else."""
    if config.data.format == "mpii":
        return score_pckh(predictions, split)
    return score_coco(predictions, split, config, out_dir)


def score_coco(
    predictions: Predictions, split: Split, config: ExperimentConfig, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Official ``COCODataset.evaluate``: rescoring and OKS-NMS per image, a results JSON, pycocotools.

    Each person's area for OKS-NMS is its crop's (official ``prod(scale * 200)``); its score is the box score
    times the mean of its keypoint scores above ``test.in_vis_threshold``.
    """
    records = split.records
    test = config.test
    keypoint_set = split.keypoint_set
    if config.data.format == "coco":
        gt = load_ground_truth(split.annotations)
        image_ids = [r.image_id for r in records]
    else:  # AI Challenger's raw form: its ground truth in COCO form, images numbered in order of appearance
        gt_dict, number = records_to_coco(records, keypoint_set)
        gt = load_ground_truth(_coco_object(gt_dict))
        image_ids = [number[r.image_id] for r in records]
    kpts = np.concatenate([predictions.keypoints, predictions.scores[..., None]], axis=2)
    box_scores = np.array([r.score for r in records], dtype=np.float64)
    areas = predictions.sizes.prod(axis=1)
    keep, rescored = nms_per_image(
        image_ids, kpts, box_scores, areas, keypoint_set.sigmas,
        oks_threshold=test.oks_threshold, in_vis_threshold=test.in_vis_threshold, soft=test.soft_nms,
    )  # fmt: skip
    results = keypoint_results(np.asarray(image_ids, dtype=object)[keep], kpts[keep], rescored[keep])
    if out_dir is not None:
        write_keypoint_results(Path(out_dir) / "keypoints_results.json", results)
    evaluation = evaluate_coco(gt, results, keypoint_set.sigmas)
    log.debug("COCO keypoint evaluation (%d persons kept of %d):\n%s", len(keep), len(records), evaluation.summary)
    return {**evaluation.metrics, "summary": evaluation.summary}


def score_pckh(predictions: Predictions, split: Split) -> dict[str, Any]:
    """MPII PCKh@0.5 (and @0.1) per joint group and mean; head sizes from the records when known, else from the
    head segment (``head_sizes_from_segment``: not the official normaliser, see there)."""
    records = split.records
    gt = np.stack([r.keypoints for r in records]).astype(np.float64)
    visible = np.stack([r.visibility > 0 for r in records])
    sizes = np.array([np.nan if r.head_size is None else r.head_size for r in records])
    if np.isnan(sizes).any():
        sizes = np.where(np.isnan(sizes), head_sizes_from_segment(gt, visible), sizes)
    usable = np.isfinite(sizes) & (sizes > 0)
    table = mpii_pckh(predictions.keypoints[usable], gt[usable], visible[usable], sizes[usable])
    return {
        "PCKh": table["Mean"],
        **{f"PCKh_{k}": v for k, v in table.items() if k != "Mean"},
        "persons": int(usable.sum()),
    }


def records_to_coco(records: Sequence[PoseRecord], keypoint_set: KeypointSet) -> tuple[dict[str, Any], dict[Any, int]]:
    """Ground truth in COCO form from records (for sets read from other formats), and the image numbering used."""
    number: dict[Any, int] = {}
    for r in records:
        number.setdefault(r.image_id, len(number) + 1)
    images = {}
    annotations = []
    for i, r in enumerate(records):
        height, width = r.image_size
        images[r.image_id] = {
            "id": number[r.image_id],
            "file_name": r.image_path.name,
            "height": height,
            "width": width,
        }
        triples = np.concatenate([r.keypoints, r.visibility[:, None].astype(np.float32)], axis=1)
        annotations.append(
            {
                "id": i + 1,
                "image_id": number[r.image_id],
                "category_id": 1,
                "keypoints": triples.reshape(-1).tolist(),
                "num_keypoints": r.num_labelled,
                "bbox": list(r.box),
                "area": r.area or r.box[2] * r.box[3],
                "iscrowd": 0,
            }
        )
    category = {
        "id": 1,
        "name": "person",
        "keypoints": list(keypoint_set.names),
        "skeleton": [[a + 1, b + 1] for a, b in keypoint_set.skeleton],
    }
    return {"images": list(images.values()), "annotations": annotations, "categories": [category]}, number


def _coco_object(dataset: dict[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco.createIndex()
    return coco
