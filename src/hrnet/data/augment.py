"""Training augmentation of the official recipe (``JointsDataset.__getitem__``), drawn per sample.

Every draw comes from a NumPy generator seeded by (seed, epoch, sample index), so a sample's augmentation does
not depend on which worker made it or on what came before: a resumed run sees the very same batches.

What a sample may get, in the official order: a half-body crop, a random scale, a rotation and a horizontal flip
with the keypoint set's flip pairs (``DataConfig`` gives each one's distribution and probability).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hrnet.config import DataConfig
from hrnet.keypoints import KeypointSet

HALF_BODY_PADDING = 1.5  # official half_body_transform enlarges the selected joints' box by 1.5


@dataclass(frozen=True)
class Augmentation:
    """The random part of the recipe, as ``DataConfig`` sets it (whose defaults are the official ones)."""

    flip_prob: float
    scale_factor: float
    rotation_factor: float
    rotation_prob: float
    half_body_prob: float
    half_body_min_keypoints: int

    @classmethod
    def from_config(cls, data: DataConfig) -> Augmentation:
        return cls(
            flip_prob=data.flip_prob if data.flip else 0.0,
            scale_factor=data.scale_factor,
            rotation_factor=data.rotation_factor,
            rotation_prob=data.rotation_prob,
            half_body_prob=data.half_body_prob,
            half_body_min_keypoints=data.half_body_min_keypoints,
        )


@dataclass(frozen=True)
class CropParams:
    """The crop to cut: center (x, y) and size (w, h) in image pixels, rotation in degrees, mirrored or not.

    When ``flipped`` the center is already in the mirrored image's coordinates (as the official code does).
    """

    center: np.ndarray
    size: np.ndarray
    rotation: float = 0.0
    flipped: bool = False


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's augmentation: a function of (seed, epoch, index) alone."""
    return np.random.default_rng([seed, epoch, index])


def augment(
    rng: np.random.Generator,
    aug: Augmentation,
    keypoint_set: KeypointSet,
    keypoints: np.ndarray,
    visibility: np.ndarray,
    center: np.ndarray,
    size: np.ndarray,
    image_width: int,
    aspect_ratio: float,
) -> tuple[CropParams, np.ndarray, np.ndarray]:
    """Draw one sample's augmentation.

    Args:
        rng: the sample's generator (``sample_rng``).
        aug: the recipe.
        keypoint_set: gives the half-body groups and the flip pairs.
        keypoints: (K, 2) image pixels; visibility: (K,) COCO coding.
        center, size: the person's crop (with the 1.25 padding) in image pixels.
        image_width: needed to mirror coordinates.
        aspect_ratio: input width / height, for the half-body crop.

    Returns:
        the crop parameters and the (possibly mirrored) keypoints and visibility in image pixels.
    """
    center = np.asarray(center, dtype=np.float64).copy()
    size = np.asarray(size, dtype=np.float64).copy()
    labelled = visibility > 0
    if labelled.sum() > aug.half_body_min_keypoints and rng.random() < aug.half_body_prob:
        half = half_body_crop(rng, keypoints, labelled, keypoint_set, aspect_ratio)
        if half is not None:
            center, size = half
    sf, rf = aug.scale_factor, aug.rotation_factor
    size = size * np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf)
    rotation = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf)) if rng.random() <= aug.rotation_prob else 0.0
    flipped = bool(rng.random() < aug.flip_prob)
    if flipped:
        keypoints, visibility = flip_keypoints(keypoints, visibility, image_width, keypoint_set.flip_pairs)
        center[0] = image_width - center[0] - 1
    return CropParams(center=center, size=size, rotation=rotation, flipped=flipped), keypoints, visibility


def half_body_crop(
    rng: np.random.Generator,
    keypoints: np.ndarray,
    labelled: np.ndarray,
    keypoint_set: KeypointSet,
    aspect_ratio: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The official ``half_body_transform``: a crop around the labelled upper- or lower-body keypoints.

    Official quirk reproduced: the upper body is chosen when ``randn() < 0.5`` (a normal draw, so about 69 % of
    the time) and it has more than 2 labelled keypoints, else the lower body if it has more than 2, else the
    upper. Fewer than 2 selected keypoints: no half-body crop (None). The box of the selected keypoints is brought
    to the input's aspect ratio and enlarged by 1.5; its center is their mean.
    """
    upper_mask = np.zeros(len(labelled), dtype=bool)
    upper_mask[list(keypoint_set.upper_body)] = True
    upper = keypoints[labelled & upper_mask]
    lower = keypoints[labelled & ~upper_mask]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None
    selected = selected.astype(np.float32)
    center = selected.mean(axis=0).astype(np.float64)
    w, h = (selected.max(axis=0) - selected.min(axis=0)).astype(np.float64)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) * HALF_BODY_PADDING


def flip_keypoints(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    image_width: int,
    flip_pairs: Sequence[tuple[int, int]] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of the horizontally mirrored image, as the official ``fliplr_joints``.

    ``x`` becomes ``image_width - 1 - x`` and the two members of each flip pair swap places. Unlabelled
    keypoints (visibility 0) come back as (0, 0), as the official code zeroes them.

    Args:
        keypoints: (K, 2) keypoints ``(x, y)``, image pixels.
        visibility: (K,) visibility, COCO coding.
        image_width: width of the image being mirrored, pixels.
        flip_pairs: pairs of keypoint indices that swap (``KeypointSet.flip_pairs``).

    Returns:
        (K, 2) float64 keypoints and (K,) visibility of the mirrored image.
    """
    keypoints = np.array(keypoints, dtype=np.float64)
    visibility = np.asarray(visibility)
    if keypoints.ndim != 2 or keypoints.shape[1] != 2 or visibility.shape != keypoints.shape[:1]:
        raise ValueError(f"keypoints must be (K, 2) and visibility (K,), got {keypoints.shape} and {visibility.shape}")
    order = np.arange(len(keypoints))
    for a, b in flip_pairs:
        order[a], order[b] = b, a
    keypoints[:, 0] = image_width - 1 - keypoints[:, 0]
    keypoints, visibility = keypoints[order], visibility[order]
    keypoints[visibility == 0] = 0.0
    return keypoints, visibility
