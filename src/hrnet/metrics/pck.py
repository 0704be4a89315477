"""PCK: the fraction of keypoints predicted within a threshold × a per-person length of the truth.

``pck`` is the general form; ``mpii_pckh`` is MPII's PCKh table as the official HRNet ``MPIIDataset.evaluate``
(``lib/dataset/mpii.py``) computes it, with the head size as its normaliser.

Predictions and ground truth are (N, K, 2) in the same pixel space (the official code adds 1 to its 0-based
predictions to meet the 1-based ground truth; any common offset cancels). Results are fractions in [0, 1]; the
official table prints them × 100.

The hand benchmarks' PCK is MMPose's, which differs in its boundary and its mean: ``keypoint_errors.pck_accuracy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hrnet.errors import DataError
from hrnet.keypoints import MPII16

# MPII's head size is this fraction of the head box diagonal (the benchmark's SC_BIAS).
MPII_HEAD_BOX_FACTOR = 0.6
# Pelvis and thorax: left out of MPII's mean (the official code masks indices 6:8).
MPII_EXCLUDED_FROM_MEAN = (6, 7)
# The rows of the official table: a name and the MPII-16 keypoints averaged into it.
MPII_TABLE = (
    ("Head", (9,)),
    ("Shoulder", (13, 12)),
    ("Elbow", (14, 11)),
    ("Wrist", (15, 10)),
    ("Hip", (3, 2)),
    ("Knee", (4, 1)),
    ("Ankle", (5, 0)),
)
MPII_HEAD_TOP = MPII16.names.index("head_top")
MPII_UPPER_NECK = MPII16.names.index("upper_neck")


@dataclass(frozen=True)
class PCKResult:
    """PCK at one threshold.

    Attributes:
        threshold: the fraction of the normalising length within which a keypoint counts as correct.
        per_keypoint: (K,) fraction correct among the visible instances of each keypoint; NaN for a keypoint that
            is never visible.
        counts: (K,) how many visible instances each keypoint has.
        mean: the summary over keypoints, NaN when nothing is visible: for ``pck``, correct / visible over the
            keypoints included in the mean, i.e. the per-keypoint values weighted by their counts (the official
            MPII ``Mean``); for ``keypoint_errors.pck_accuracy``, the plain mean of the defined per-keypoint values.
    """

    threshold: float
    per_keypoint: np.ndarray
    counts: np.ndarray
    mean: float


def pck(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    visible: np.ndarray,
    lengths: np.ndarray,
    threshold: float,
    *,
    exclude_from_mean: Sequence[int] = (),
) -> PCKResult:
    """PCK normalised per person: correct when ``|prediction - truth| <= threshold * length``.

    Args:
        predictions: (N, K, 2) predicted keypoints, pixels.
        ground_truth: (N, K, 2) true keypoints, same pixel space.
        visible: (N, K) which true keypoints count (e.g. COCO visibility > 0, MPII ``joints_vis``).
        lengths: (N,) normalising length of each person, pixels (e.g. the head size, the box diagonal).
        threshold: fraction of the length.
        exclude_from_mean: keypoint indices reported per keypoint but left out of the mean.

    Returns:
        The per-keypoint values and their count-weighted mean.
    """
    distances = _normalised_distances(predictions, ground_truth, visible, lengths)
    visible = np.asarray(visible, dtype=bool)
    return _pck_at(distances, visible, threshold, exclude_from_mean)


def check_keypoint_arrays(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    visible: np.ndarray,
    lengths: np.ndarray | None = None,
    *,
    metric: str = "PCK",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The inputs of a distance metric as float64 / bool arrays, or a ``DataError`` naming ``metric`` and the shape
    that is wrong: (N, K, 2) predictions and ground truth, (N, K) visibility, (N,) lengths (default: ones)."""
    predictions = np.asarray(predictions, dtype=np.float64)
    ground_truth = np.asarray(ground_truth, dtype=np.float64)
    visible = np.asarray(visible)
    if predictions.ndim != 3 or predictions.shape[2] != 2 or predictions.shape != ground_truth.shape:
        raise DataError(
            f"{metric}: predictions {predictions.shape} and ground truth {ground_truth.shape} must both be (N, K, 2)"
        )
    if visible.shape != predictions.shape[:2]:
        raise DataError(f"{metric}: visibility must be (N, K) = {predictions.shape[:2]}, got {visible.shape}")
    lengths = np.ones(len(predictions)) if lengths is None else np.asarray(lengths, dtype=np.float64)
    if lengths.shape != predictions.shape[:1]:
        raise DataError(f"{metric}: expected one normalising length a person ({len(predictions)}), got {lengths.shape}")
    return predictions, ground_truth, visible.astype(bool), lengths


def _normalised_distances(
    predictions: np.ndarray, ground_truth: np.ndarray, visible: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    predictions, ground_truth, _, lengths = check_keypoint_arrays(predictions, ground_truth, visible, lengths)
    bad = np.flatnonzero(~(np.isfinite(lengths) & (lengths > 0)))
    if bad.size:
        raise DataError(
            f"PCK: persons {bad[:10].tolist()} have no positive normalising length ({lengths[bad[:10]].tolist()})"
        )
    return np.linalg.norm(predictions - ground_truth, axis=2) / lengths[:, None]


def _pck_at(distances: np.ndarray, visible: np.ndarray, threshold: float, exclude: Sequence[int]) -> PCKResult:
    correct = (distances <= threshold) & visible
    counts = visible.sum(axis=0)
    hits = correct.sum(axis=0)
    per_keypoint = np.divide(hits, counts, out=np.full(counts.shape, np.nan), where=counts > 0)
    included = np.ones(counts.shape, dtype=bool)
    included[list(exclude)] = False
    total = counts[included].sum()
    mean = float(hits[included].sum() / total) if total > 0 else float("nan")
    return PCKResult(threshold=threshold, per_keypoint=per_keypoint, counts=counts, mean=mean)


def mpii_head_sizes(head_boxes: np.ndarray) -> np.ndarray:
    """MPII head sizes, the PCKh normaliser: 0.6 × the head box diagonal (official ``SC_BIAS``).

    Args:
        head_boxes: (N, 4) head rectangles ``(x1, y1, x2, y2)``, pixels (the official ``headboxes_src``, found in
            MPII's ``gt_valid.mat`` / the original release's ``annorect``).

    Returns:
        (N,) head sizes, pixels.
    """
    head_boxes = np.asarray(head_boxes, dtype=np.float64)
    if head_boxes.ndim != 2 or head_boxes.shape[1] != 4:
        raise DataError(f"MPII head boxes must be (N, 4) as (x1, y1, x2, y2), got {head_boxes.shape}")
    return MPII_HEAD_BOX_FACTOR * np.linalg.norm(head_boxes[:, 2:] - head_boxes[:, :2], axis=1)


def head_sizes_from_segment(
    ground_truth: np.ndarray,
    visible: np.ndarray,
    head_top: int = MPII_HEAD_TOP,
    upper_neck: int = MPII_UPPER_NECK,
) -> np.ndarray:
    """Fallback head sizes when head boxes are absent: the length of the head segment (upper neck → head top).

    PCKh is defined on the head segment (Andriluka et al., CVPR 2014), which the benchmark measures as 0.6 × the
    diagonal of a hand-drawn head rectangle; the official HRNet ``annot/*.json`` has no rectangles. Numbers with
    this normaliser are therefore *not* the official PCKh: use them for relative comparisons.

    Args:
        ground_truth: (N, K, 2) true keypoints, pixels.
        visible: (N, K) which keypoints are labelled.
        head_top, upper_neck: their indices (MPII-16 by default).

    Returns:
        (N,) head sizes, pixels; NaN where the head top or upper neck is unlabelled (``pck`` rejects it by name).
    """
    ground_truth = np.asarray(ground_truth, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    if ground_truth.ndim != 3 or ground_truth.shape[2] != 2 or visible.shape != ground_truth.shape[:2]:
        raise DataError(
            f"head sizes: expected (N, K, 2) keypoints and (N, K) visibility, got {ground_truth.shape} and "
            f"{visible.shape}"
        )
    sizes = np.linalg.norm(ground_truth[:, head_top] - ground_truth[:, upper_neck], axis=1)
    return np.where(visible[:, head_top] & visible[:, upper_neck], sizes, np.nan)


def mpii_pckh(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    visible: np.ndarray,
    head_sizes: np.ndarray,
    thresholds: Sequence[float] = (0.5, 0.1),
) -> dict[str, float]:
    """MPII's PCKh table, as the official ``MPIIDataset.evaluate``.

    A keypoint is correct when its error is at most ``threshold × head size``; only visible keypoints count. The
    table's rows (Head, Shoulder, ..., Ankle) are at the first threshold, a left/right pair being the mean of
    the two. ``Mean`` (the headline PCKh@0.5) pools every visible keypoint except pelvis and thorax; the other
    thresholds give ``Mean@<t>``.

    The official ``Mean@0.1`` is read from its 0.01-step table at index 11, which is threshold 0.11, so it is
    slightly higher than our ``Mean@0.1``; pass ``thresholds=(0.5, 0.11)`` to reproduce that number.

    Args:
        predictions: (N, 16, 2) predicted MPII-16 keypoints, pixels.
        ground_truth: (N, 16, 2) true keypoints, same pixel space.
        visible: (N, 16) the official ``jnt_visible`` (1 - ``jnt_missing``; the JSON's ``joints_vis``).
        head_sizes: (N,) PCKh normaliser, pixels (``mpii_head_sizes`` or ``head_sizes_from_segment``).
        thresholds: the first sets the table rows and ``Mean``; each further one adds ``Mean@<t>``.

    Returns:
        ``{"Head": ..., "Shoulder": ..., "Elbow": ..., "Wrist": ..., "Hip": ..., "Knee": ..., "Ankle": ...,
        "Mean": ..., "Mean@0.1": ...}``, fractions in [0, 1].
    """
    num_keypoints = np.asarray(predictions).shape[1:2]
    if num_keypoints != (MPII16.num_keypoints,):
        raise DataError(f"MPII PCKh needs the {MPII16.num_keypoints} MPII keypoints, got {num_keypoints} a person")
    if not thresholds:
        raise DataError("MPII PCKh: give at least one threshold")
    distances = _normalised_distances(predictions, ground_truth, visible, head_sizes)
    visible = np.asarray(visible, dtype=bool)
    first, *others = (_pck_at(distances, visible, t, MPII_EXCLUDED_FROM_MEAN) for t in thresholds)
    table = {name: float(np.mean(first.per_keypoint[list(index)])) for name, index in MPII_TABLE}
    table["Mean"] = first.mean
    for result in others:
        table[f"Mean@{result.threshold:g}"] = result.mean
    return table
