"""The TensorFlow port's own keypoint metric (VXallset/deep-high-resolution-net.TensorFlow: ``heatmap.py``'s
``calculate_distance`` and ``evaluate.py``), as pure functions, to compare with the numbers it reported.

It is not COCO's OKS AP, and it is reproduced here as it is, quirks included:

- σ² of keypoint k is the mean of its squared distances over the *same* set that is evaluated, unlabelled
  entries counted as distance 0 (``sigma2_per_keypoint``), not a fixed per-keypoint constant;
- OKS of a sample is the mean over its labelled keypoints of exp(−d² / 2σ²), with no scale (area) term;
- AP50 / AP75 are the fractions of samples whose OKS is strictly above 0.5 / 0.75, not a precision-recall AP.

NaN OKS: a sample with no labelled keypoint (0/0), and every sample when some keypoint's σ² is 0 (its distances
are all 0, so exp(−0/0) is NaN; NaN · 0 is still NaN, so it spoils samples where that keypoint is unlabelled
too). ``oks_per_sample`` returns these NaN as the port computes them; ``fraction_above`` and ``port_ap`` count
a NaN OKS as a failure (NaN > t is false), so their results are never NaN.

Keypoints are (N, K, 2) pixels in any one frame; labels a boolean (N, K) ``labelled`` mask (COCO: ``visibility >
0``). The port's own arrays use AI Challenger's class coding (3 unlabelled): ``from_port_rows`` and
``labelled_from_port_classes`` convert them at this edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hrnet.errors import DataError

PORT_UNLABELLED_CLASS = 3  # AI Challenger's "not labelled" (1 visible, 2 occluded), as the port stores it


def labelled_from_port_classes(classes: ArrayLike) -> NDArray[np.bool_]:
    """(N, K) port / AI Challenger classes → the labelled mask, as the port decides it (every class but 3)."""
    return np.asarray(classes) != PORT_UNLABELLED_CLASS


def from_port_rows(rows: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The port's keypoint rows (N, 3K) ``[ver, hor, class] × K`` (its ``decode_output`` predictions and its
    ground truth) → keypoints (N, K, 2) as (x, y) = (hor, ver) pixels, and classes (N, K) in its coding."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] % 3:
        raise DataError(f"port keypoint rows must be (N, 3K) [ver, hor, class] × K, got shape {rows.shape}")
    keypoints = np.stack([rows[:, 1::3], rows[:, 0::3]], axis=-1)
    return keypoints, rows[:, 2::3].astype(np.int64)


def keypoint_distances(predicted: ArrayLike, truth: ArrayLike, labelled: ArrayLike) -> NDArray[np.float64]:
    """Euclidean distances (N, K) between ``predicted`` and ``truth`` keypoints (N, K, 2), 0 where the truth is
    unlabelled, as the port's ``calculate_distance`` (the prediction's own class is ignored: an undetected
    keypoint sits at (0, 0) and its distance counts)."""
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    if predicted.shape != truth.shape or truth.ndim != 3 or truth.shape[2] != 2:
        raise DataError(f"predicted and truth must both be (N, K, 2), got {predicted.shape} and {truth.shape}")
    mask = _labelled(labelled, truth.shape)
    return np.sqrt(((truth - predicted) ** 2).sum(axis=-1)) * mask


def sigma2_per_keypoint(distances: ArrayLike, labelled: ArrayLike) -> NDArray[np.float64]:
    """σ² (K,) of each keypoint: the mean over all N samples of its squared distance (N, K), unlabelled entries
    counted as 0, as the port's ``calculate_sigma2s``."""
    d = np.asarray(distances, np.float64)
    mask = _labelled(labelled, d.shape)
    if d.ndim != 2 or d.shape[0] == 0:
        raise DataError(f"distances must be (N, K) with N ≥ 1, got shape {d.shape}")
    return ((d * mask) ** 2).mean(axis=0)


def oks_per_sample(distances: ArrayLike, labelled: ArrayLike, sigma2: ArrayLike | None = None) -> NDArray[np.float64]:
    """OKS (N,) of each sample: the mean over its labelled keypoints of exp(−d² / 2σ²), as the port's
    ``calculate_OKS``; ``sigma2`` (K,) defaults to ``sigma2_per_keypoint`` of the same distances.

    May hold NaN (see the module docstring): a sample with no labelled keypoint, or every sample when a σ² is 0.
    """
    d = np.asarray(distances, np.float64)
    mask = _labelled(labelled, d.shape)
    s2 = sigma2_per_keypoint(d, mask) if sigma2 is None else np.asarray(sigma2, np.float64)
    if s2.shape != d.shape[1:]:
        raise DataError(f"sigma2 must have one value a keypoint ({d.shape[1]}), got shape {s2.shape}")
    sigma = np.sqrt(s2)  # the port squares the square root again: kept for its last bits
    with np.errstate(divide="ignore", invalid="ignore"):  # the port's 0/0 cases become NaN on purpose
        similarity = np.exp(-(d**2) / (2.0 * sigma**2))
        return (similarity * mask).sum(axis=1) / mask.sum(axis=1)


def fraction_above(oks: ArrayLike, threshold: float) -> float:
    """The fraction of samples whose OKS is strictly above ``threshold`` (the port's "AP"); NaN counts as below."""
    values = np.asarray(oks, np.float64)
    if values.ndim != 1 or values.size == 0:
        raise DataError(f"oks must be (N,) with N ≥ 1, got shape {values.shape}")
    return float(np.count_nonzero(values > threshold)) / values.size


@dataclass(frozen=True)
class PortAP:
    """The port's summary of one evaluation; every field is a finite number (safe to write as JSON)."""

    ap50: float  # fraction of samples with OKS > 0.5
    ap75: float  # fraction of samples with OKS > 0.75
    num_samples: int
    num_nan_oks: int  # samples whose OKS was NaN, counted as failures in ap50 / ap75


def port_ap(distances: ArrayLike, labelled: ArrayLike) -> PortAP:
    """AP50 and AP75 of the port's ``evaluate.py`` for distances (N, K) and the labelled mask (N, K)."""
    oks = oks_per_sample(distances, labelled)
    return PortAP(
        ap50=fraction_above(oks, 0.5),
        ap75=fraction_above(oks, 0.75),
        num_samples=len(oks),
        num_nan_oks=int(np.isnan(oks).sum()),
    )


def _labelled(labelled: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    mask = np.asarray(labelled)
    if mask.dtype != np.bool_:
        raise DataError(
            f"labelled must be a boolean (N, K) mask, got {mask.dtype}: pass visibility > 0 (COCO coding) or "
            "labelled_from_port_classes(classes) (the port's AI Challenger coding)"
        )
    if mask.shape != tuple(shape[:2]):
        raise DataError(f"labelled has shape {mask.shape}, the keypoints {tuple(shape[:2])}")
    return mask
