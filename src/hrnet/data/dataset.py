"""Top-down samples: a person record → (image crop tensor, target heatmaps, target weights, meta).

Training and evaluation walk the same road (``DESIGN.md``): the codec's crop (``hrnet.crop.Crop``) warps the
person's region into the input, keypoints follow the same map, and the codec turns them into targets; in training
the region is augmented first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from hrnet.codec import HeatmapCodec
from hrnet.config import SizeMismatch
from hrnet.data.augment import Augmentation, CropParams, augment, sample_rng
from hrnet.data.records import PoseRecord
from hrnet.errors import DataError
from hrnet.io.images import read_image
from hrnet.keypoints import KeypointSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """What one person contributes to a batch (collated field by field)."""

    image: torch.Tensor  # (3, H, W) normalised crop
    target: torch.Tensor  # (K, h, w) heatmaps
    target_weight: torch.Tensor  # (K,)
    index: int  # position of the record in the data set
    center: torch.Tensor  # (2,) crop center, image pixels (of the unflipped image)
    size: torch.Tensor  # (2,) crop size (w, h), image pixels


class TopDownDataset(Dataset):
    """Person records → samples, cropped by ``codec.crop``. ``augmentation=None`` gives the deterministic
    evaluation crop.

    A record whose image is missing or does not decode yields a placeholder when ``skip_bad_images`` (training:
    ``collate`` drops it and lists it in ``Batch.skipped``) and raises ``DataError`` otherwise (evaluation).

    A decoded image whose size is not the record's ``image_size`` (the annotation file's width and height, which
    the reader clipped the box to) raises ``DataError`` naming the image with ``size_mismatch="error"``, also in
    training (a wrong annotation, not an unreadable file); with ``"warn"`` it is logged once per image and the crop
    is made from the file's pixels.
    """

    def __init__(
        self,
        records: Sequence[PoseRecord],
        keypoint_set: KeypointSet,
        codec: HeatmapCodec,
        *,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        skip_bad_images: bool = False,
        use_keypoint_weights: bool = False,
        size_mismatch: str = "error",
    ):
        if size_mismatch not in get_args(SizeMismatch):
            raise ValueError(f"size_mismatch must be 'error' or 'warn', got {size_mismatch!r}")
        self.records = list(records)
        self.size_mismatch = size_mismatch
        self._warned: set[Path] = set()  # images whose size mismatch was logged (per worker process)
        self.keypoint_set = keypoint_set
        self.codec = codec
        self.augmentation = augmentation
        self.seed = seed
        self.skip_bad_images = skip_bad_images
        self.crop = codec.crop
        self.epoch = 0
        # Official USE_DIFFERENT_JOINTS_WEIGHT: target weights times the keypoint set's per-keypoint weights.
        self.keypoint_weights = np.asarray(keypoint_set.loss_weights(), np.float32) if use_keypoint_weights else None

    def set_epoch(self, epoch: int) -> None:
        """Augmentations are drawn from (seed, epoch, index): call before each epoch's loader is iterated."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample | Skipped:
        record = self.records[index]
        try:
            image = read_image(record.image_path, channel_order="rgb")  # the network takes RGB crops
        except DataError as err:
            if self.skip_bad_images:
                return Skipped(str(record.image_path), str(err))
            raise
        self._check_size(record, image.shape[:2])
        center, size = self.crop.regions(record.box)
        keypoints = np.asarray(record.keypoints, dtype=np.float64)
        visibility = np.asarray(record.visibility)
        params = CropParams(center=center, size=size)
        if self.augmentation is not None:
            rng = sample_rng(self.seed, self.epoch, index)
            height, width = self.crop.input_size
            params, keypoints, visibility = augment(
                rng, self.augmentation, self.keypoint_set, keypoints, visibility, center, size,
                image.shape[1], width / height,
            )  # fmt: skip
            if params.flipped:
                image = image[:, ::-1]
        pixels = self.crop.warp(image, params.center, params.size, params.rotation)
        in_crop = self.crop.to_input(keypoints, params.center, params.size, params.rotation)
        target, weight = self.codec.encode(in_crop, visibility)
        if self.keypoint_weights is not None:
            weight = weight * self.keypoint_weights
        return Sample(
            image=self.crop.to_tensor(pixels),
            target=torch.from_numpy(target),
            target_weight=torch.from_numpy(weight),
            index=index,
            center=torch.from_numpy(center.astype(np.float32)),
            size=torch.from_numpy(size.astype(np.float32)),
        )

    def _check_size(self, record: PoseRecord, actual: tuple[int, ...]) -> None:
        declared = tuple(record.image_size)
        if actual == declared or record.image_path in self._warned:
            return
        message = (
            f"{record.image_path}: the annotation file gives the image as {declared[0]} × {declared[1]} (height × "
            f"width) but the file is {actual[0]} × {actual[1]}"
        )
        if self.size_mismatch == "error":
            raise DataError(
                f"{message}; its boxes may be clipped wrongly: fix the image's height and width in the annotation "
                "file, or set data.size_mismatch: warn to use the file's own size"
            )
        self._warned.add(record.image_path)
        log.warning("%s; using the file's own size", message)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class Batch:
    """A collated batch and the images skipped while making it."""

    image: torch.Tensor  # (N, 3, H, W)
    target: torch.Tensor  # (N, K, h, w)
    target_weight: torch.Tensor  # (N, K)
    index: torch.Tensor  # (N,)
    center: torch.Tensor  # (N, 2)
    size: torch.Tensor  # (N, 2)
    skipped: list[str]

    def __len__(self) -> int:
        return int(self.index.shape[0])


def collate(items: list[Any]) -> Batch:
    """Stack samples; images that could not be read are left out and listed in ``skipped``."""
    skipped = [f"{item.path} ({item.reason})" for item in items if isinstance(item, Skipped)]
    samples = [item for item in items if isinstance(item, Sample)]
    if not samples:
        empty = torch.empty(0)
        return Batch(empty, empty, empty, torch.empty(0, dtype=torch.long), empty, empty, skipped)
    image, target, weight, index, center, size = default_collate(
        [(s.image, s.target, s.target_weight, s.index, s.center, s.size) for s in samples]
    )
    return Batch(image, target, weight, index, center, size, skipped)
