"""From an experiment's ``data`` section to records: which reader, which files, which person boxes.

``FORMATS`` is the one table of what differs between data formats: the reader, where the ground truth that
pycocotools scores comes from (and so whether person boxes may come from a detection-results file), how evaluation
scores the format and which number it reports first. COCO-form ground truth is
scored as its keypoint set's task asks (``Split.scoring``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from hrnet.config import DataConfig
from hrnet.data.aic import read_aic_raw
from hrnet.data.coco import coco_ground_truth, read_coco, read_coco_detections
from hrnet.data.mpii import read_mpii
from hrnet.data.records import RecordSet
from hrnet.errors import ConfigError
from hrnet.keypoints import KeypointSet
from hrnet.metrics.tasks import Scoring, metrics_for_task

SPLITS = ("train", "val")


def _read_coco(data: DataConfig, annotations: Path, images: Path, num_keypoints: int | None) -> RecordSet:
    return read_coco(
        annotations,
        images,
        keypoint_set=data.keypoint_set,
        sigmas=data.sigmas or None,
        num_keypoints=num_keypoints,
        category_id=data.category_id or None,
    )


def _coco_ground_truth(data: DataConfig, annotations: Path, keypoint_set: KeypointSet) -> dict[str, Any]:
    return coco_ground_truth(annotations, keypoint_set, category_id=data.category_id or None)


def _read_aic_raw(data: DataConfig, annotations: Path, images: Path, num_keypoints: int | None) -> RecordSet:
    return read_aic_raw(annotations, images, num_keypoints=num_keypoints)


def _read_mpii(data: DataConfig, annotations: Path, images: Path, num_keypoints: int | None) -> RecordSet:
    return read_mpii(annotations, images, num_keypoints=num_keypoints)


@dataclass(frozen=True)
class DataFormat:
    """What one ``data.format`` means, from reading to scoring."""

    read: Callable[[DataConfig, Path, Path, int | None], RecordSet]  # (data, annotations, images, num_keypoints)
    # How evaluation scores it: "coco" (OKS AP/AR through pycocotools, or what a hand or face set's task asks:
    # ``Split.scoring``) or "pckh" (MPII's own); and the number that picks the best epoch: "AP" or "PCKh".
    metric: str
    main_metric: str
    # COCO JSON annotations: the ground truth pycocotools scores, read from the file (data, file, keypoint set), so
    # that person boxes may come from a detection-results file; None: made from the records (records_to_coco).
    coco_ground_truth: Callable[[DataConfig, Path, KeypointSet], dict[str, Any]] | None
    float32_regions: bool  # crop regions rounded to float32 as the official COCO reader (MPII's: float64)


FORMATS: dict[str, DataFormat] = {  # one entry for each of hrnet.config.AnnotationFormat
    "coco": DataFormat(_read_coco, "coco", "AP", coco_ground_truth=_coco_ground_truth, float32_regions=True),
    "aic_raw": DataFormat(_read_aic_raw, "coco", "AP", coco_ground_truth=None, float32_regions=True),
    "mpii": DataFormat(_read_mpii, "pckh", "PCKh", coco_ground_truth=None, float32_regions=False),
}


@dataclass(frozen=True)
class Split:
    """The records of one split, the files they came from, and whether boxes are ground truth."""

    records: RecordSet
    annotations: Path
    images: Path
    format: DataFormat
    detections: Path | None = None  # the detection-results file the boxes came from, if any
    # The COCO-form ground truth pycocotools scores (``DataFormat.coco_ground_truth``); None: made from the records.
    ground_truth: Callable[[], dict[str, Any]] | None = None

    @property
    def keypoint_set(self) -> KeypointSet:
        return self.records.keypoint_set

    @property
    def scoring(self) -> Scoring:
        """How evaluation scores the split: a format's own metric (MPII's PCKh), else the keypoint set's task's
        (``metrics_for_task``: OKS AP/AR for body, whole-body and animal sets, PCK for hands, NME for faces)."""
        if self.format.metric == "coco":
            return metrics_for_task(self.keypoint_set.task)
        return Scoring(self.format.metric, self.format.main_metric)


def split_paths(data: DataConfig, split: str) -> tuple[Path, Path]:
    """(annotation file, image folder) of ``split``, under ``data.root`` unless given as absolute paths."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(data.root)
    annotations = data.train_annotations if split == "train" else data.val_annotations
    images = data.train_images if split == "train" else data.val_images
    return root / annotations, root / images


def load_split(
    data: DataConfig,
    split: str,
    num_keypoints: int,
    *,
    boxes: str | Path | None = None,
    box_score_threshold: float = 0.0,
) -> Split:
    """Read ``split`` with the reader of ``data.format``, checking that its keypoints fit a model predicting
    ``num_keypoints`` heatmaps (0: any count, the model follows the data's).

    ``boxes`` (a COCO detection-results JSON) replaces the ground-truth person boxes, as for the official
    detection-box evaluation; scores below ``box_score_threshold`` are dropped. COCO annotations only.
    """
    fmt = FORMATS[data.format]
    annotations, images = split_paths(data, split)
    count = num_keypoints or None
    if not boxes:
        records = fmt.read(data, annotations, images, count)
        return Split(records, annotations, images, fmt, ground_truth=_ground_truth(fmt, data, annotations, records))
    if fmt.coco_ground_truth is None:
        raise ConfigError(f"person boxes from a detection file need COCO annotations, not data.format {data.format!r}")
    records = read_coco_detections(
        boxes,
        annotations,
        images,
        score_threshold=box_score_threshold,
        keypoint_set=data.keypoint_set,
        sigmas=data.sigmas or None,
        num_keypoints=count,
        category_id=data.category_id or None,
    )
    truth = _ground_truth(fmt, data, annotations, records)
    return Split(records, annotations, images, fmt, detections=Path(boxes), ground_truth=truth)


def _ground_truth(
    fmt: DataFormat, data: DataConfig, annotations: Path, records: RecordSet
) -> Callable[[], dict[str, Any]] | None:
    if fmt.coco_ground_truth is None:
        return None
    return partial(fmt.coco_ground_truth, data, annotations, records.keypoint_set)
