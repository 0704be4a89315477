"""From an experiment's ``data`` section to records: which reader, which files, which person boxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hrnet.config import ExperimentConfig
from hrnet.data.aic import read_aic_raw
from hrnet.data.coco import read_coco, read_coco_detections
from hrnet.data.mpii import read_mpii
from hrnet.data.records import RecordSet
from hrnet.errors import ConfigError
from hrnet.keypoints import KeypointSet

SPLITS = ("train", "val")


@dataclass(frozen=True)
class Split:
    """The records of one split, the files they came from, and whether boxes are ground truth."""

    records: RecordSet
    annotations: Path
    images: Path
    detections: Path | None = None  # the detection-results file the boxes came from, if any

    @property
    def keypoint_set(self) -> KeypointSet:
        return self.records.keypoint_set


def split_paths(config: ExperimentConfig, split: str) -> tuple[Path, Path]:
    """(annotation file, image folder) of ``split``, under ``data.root`` unless given as absolute paths."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    data = config.data
    root = Path(data.root)
    annotations = data.train_annotations if split == "train" else data.val_annotations
    images = data.train_images if split == "train" else data.val_images
    return root / annotations, root / images


def load_split(config: ExperimentConfig, split: str, boxes: str | Path | None = None) -> Split:
    """Read ``split`` with the reader ``data.format`` names.

    ``boxes`` (a COCO detection-results JSON) replaces the ground-truth person boxes, as for the official
    detection-box evaluation; scores below ``test.box_score_threshold`` are dropped. COCO format only.
    """
    data = config.data
    annotations, images = split_paths(config, split)
    k = config.model.num_keypoints
    if boxes:
        if data.format != "coco":
            raise ConfigError(f"person boxes from a detection file need data.format coco, not {data.format!r}")
        records = read_coco_detections(
            boxes,
            annotations,
            images,
            score_threshold=config.test.box_score_threshold,
            keypoint_set=data.keypoint_set,
            sigmas=data.sigmas or None,
            num_keypoints=k,
        )
        return Split(records, annotations, images, detections=Path(boxes))
    if data.format == "coco":
        records = read_coco(
            annotations, images, keypoint_set=data.keypoint_set, sigmas=data.sigmas or None, num_keypoints=k
        )
    elif data.format == "aic_raw":
        records = read_aic_raw(annotations, images, num_keypoints=k)
    else:
        records = read_mpii(annotations, images, num_keypoints=k)
    return Split(records, annotations, images)
