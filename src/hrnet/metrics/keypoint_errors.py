"""The hand and face benchmarks' metrics, as MMPose 1.3.2 computes them: PCK of the box, AUC, EPE and NME.

Definitions from ``mmpose/evaluation/functional/keypoint_eval.py`` (``keypoint_pck_accuracy``, ``keypoint_auc``,
``keypoint_epe``, ``keypoint_nme``) and ``mmpose/evaluation/metrics/keypoint_2d_metrics.py`` (``PCKAccuracy``,
``AUC``, ``EPE``, ``NME``), with the normalisers their data sets and configs give them:

- a keypoint counts where its visibility is > 0 (MMPose's ``keypoints_visible = min(1, v)``) and its person's
  normalising length is not zero; a person with a zero length is left out whole (``_calc_distances``);
- PCK: correct when the distance is *strictly* below ``threshold × length`` (the official HRNet MPII code, our
  ``pck.pck``, counts equality too); the mean is the plain mean over the keypoints that have a counted instance,
  not the count-weighted pool (``keypoint_pck_accuracy``);
- the box length is the larger side of the annotation's box after MMPose clips it to the image (``box_sizes``);
- EPE and NME pool every counted keypoint of every person into one mean.

Where nothing is counted MMPose returns 0 (a perfect NME); these functions return NaN instead. MMPose holds
coordinates and distances in float32; these compute in float64, which moves a result only at exact ties.

Predictions and ground truth are (N, K, 2), image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hrnet.errors import DataError
from hrnet.metrics.pck import PCKResult, check_keypoint_arrays

# The hand configs of MMPose (configs/hand_2d_keypoint/*: OneHand10K, RHD, COCO-WholeBody-Hand, ...) score
# ``PCKAccuracy(thr=0.2)``, ``AUC()`` and ``EPE()``; AUC's defaults integrate PCK over 0-30 px in 20 steps.
HAND_PCK_THRESHOLD = 0.2
AUC_NORM_FACTOR = 30.0
AUC_NUM_THRESHOLDS = 20


def box_sizes(boxes: np.ndarray, image_sizes: np.ndarray) -> np.ndarray:
    """The box normaliser of PCK and of NME without a keypoint pair, as MMPose computes it.

    MMPose's ``BaseCocoStyleDataset.parse_data_info`` clips the file's box to the image as corners
    ``x1 = clip(x, 0, width - 1)``, ``x2 = clip(x + w, 0, width - 1)`` (the same for y); ``PCKAccuracy`` and
    ``NME(norm_item='bbox_size')`` then take ``max(x2 - x1, y2 - y1)``. (The official HRNet reader clips boxes by
    another rule, ``hrnet.data.records.clip_box``: give the annotation file's boxes here, not the records'.)

    Args:
        boxes: (N, 4) boxes ``(x, y, w, h)`` as the annotation file gives them, image pixels.
        image_sizes: (N, 2) ``(height, width)`` of each box's image, pixels.

    Returns:
        (N,) lengths, pixels.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    image_sizes = np.asarray(image_sizes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or image_sizes.shape != (len(boxes), 2):
        raise DataError(
            f"box sizes: expected (N, 4) boxes (x, y, w, h) and (N, 2) image sizes (height, width), got "
            f"{boxes.shape} and {image_sizes.shape}"
        )
    far = image_sizes[:, ::-1] - 1  # (width - 1, height - 1)
    near_corner = np.clip(boxes[:, :2], 0, far)
    far_corner = np.clip(boxes[:, :2] + boxes[:, 2:], 0, far)
    return (far_corner - near_corner).max(axis=1)


def keypoint_pair_distances(ground_truth: np.ndarray, pair: Sequence[int]) -> np.ndarray:
    """The NME normaliser of a set with an ``nme_pair`` (e.g. 300W's outer eye corners 36 and 45): the distance
    between the two true keypoints, labelled or not, as MMPose's ``NME._get_normalize_factor``.

    Args:
        ground_truth: (N, K, 2) true keypoints, image pixels (unlabelled ones at (0, 0)).
        pair: the two keypoint indices.

    Returns:
        (N,) distances, pixels; a person whose two points coincide gets 0 and is left out of the NME.
    """
    ground_truth = np.asarray(ground_truth, dtype=np.float64)
    if ground_truth.ndim != 3 or ground_truth.shape[2] != 2:
        raise DataError(f"NME: ground truth must be (N, K, 2), got {ground_truth.shape}")
    if len(pair) != 2 or not all(0 <= i < ground_truth.shape[1] for i in pair):
        raise DataError(f"NME: the normalising pair {tuple(pair)} must be two of the {ground_truth.shape[1]} keypoints")
    return np.linalg.norm(ground_truth[:, pair[0]] - ground_truth[:, pair[1]], axis=1)


def pck_accuracy(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    visible: np.ndarray,
    lengths: np.ndarray,
    threshold: float = HAND_PCK_THRESHOLD,
) -> PCKResult:
    """PCK as MMPose's ``keypoint_pck_accuracy`` (``PCKAccuracy`` with ``norm_item='bbox'``: ``box_sizes``).

    Args:
        predictions: (N, K, 2) predicted keypoints, image pixels.
        ground_truth: (N, K, 2) true keypoints, image pixels.
        visible: (N, K) which true keypoints count (visibility > 0).
        lengths: (N,) normalising length of each person, pixels; 0 leaves the person out.
        threshold: fraction of the length a keypoint's distance must stay strictly below.

    Returns:
        ``per_keypoint`` (K,) the fraction correct among each keypoint's counted instances (NaN where none),
        ``counts`` (K,) those instances, ``mean`` the plain mean of the defined per-keypoint values.
    """
    distances, counted = _counted_distances(predictions, ground_truth, visible, lengths, "PCK")
    correct = counted & (distances < threshold)
    counts = counted.sum(axis=0)
    per_keypoint = np.divide(correct.sum(axis=0), counts, out=np.full(counts.shape, np.nan), where=counts > 0)
    mean = float(per_keypoint[counts > 0].mean()) if (counts > 0).any() else float("nan")
    return PCKResult(threshold=threshold, per_keypoint=per_keypoint, counts=counts, mean=mean)


def auc(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    visible: np.ndarray,
    norm_factor: float = AUC_NORM_FACTOR,
    num_thresholds: int = AUC_NUM_THRESHOLDS,
) -> float:
    """Area under the PCK curve, as MMPose's ``keypoint_auc``: the mean of ``pck_accuracy(...).mean`` with every
    length ``norm_factor`` pixels over the thresholds ``0, 1/num_thresholds, ..., (num_thresholds - 1) /
    num_thresholds`` (so 0, 1.5, ..., 28.5 px by default; the first scores 0 under the strict ``<``).

    Args:
        predictions, ground_truth: (N, K, 2), image pixels.
        visible: (N, K) which true keypoints count.
        norm_factor: the pixel length the thresholds are fractions of.
        num_thresholds: how many thresholds.

    Returns:
        The AUC in [0, 1); NaN when no keypoint is visible.
    """
    if not (np.isfinite(norm_factor) and norm_factor > 0 and num_thresholds >= 1):
        raise DataError(f"AUC: norm_factor must be > 0 and num_thresholds ≥ 1, got {norm_factor} and {num_thresholds}")
    lengths = np.full(np.asarray(predictions).shape[:1], float(norm_factor))
    curve = [
        pck_accuracy(predictions, ground_truth, visible, lengths, i / num_thresholds).mean
        for i in range(num_thresholds)
    ]
    return float(np.mean(curve))


def epe(predictions: np.ndarray, ground_truth: np.ndarray, visible: np.ndarray) -> float:
    """End-point error, as MMPose's ``keypoint_epe``: the mean pixel distance over every visible keypoint of every
    person (pooled, not per person).

    Args:
        predictions, ground_truth: (N, K, 2), image pixels.
        visible: (N, K) which true keypoints count.

    Returns:
        Pixels; NaN when no keypoint is visible.
    """
    distances, counted = _counted_distances(predictions, ground_truth, visible, None, "EPE")
    return float(distances[counted].mean()) if counted.any() else float("nan")


def nme(predictions: np.ndarray, ground_truth: np.ndarray, visible: np.ndarray, lengths: np.ndarray) -> float:
    """Normalised mean error, as MMPose's ``keypoint_nme``: each visible keypoint's distance divided by its
    person's length, pooled over every counted keypoint of every person.

    Args:
        predictions, ground_truth: (N, K, 2), image pixels.
        visible: (N, K) which true keypoints count.
        lengths: (N,) ``keypoint_pair_distances`` for a set with an ``nme_pair`` (``NME(norm_mode=
            'keypoint_distance')``), else ``box_sizes`` (``NME(norm_mode='use_norm_item', norm_item='bbox_size')``,
            as MMPose's AFLW config); 0 leaves the person out.

    Returns:
        A fraction of the length; NaN when nothing is counted.
    """
    distances, counted = _counted_distances(predictions, ground_truth, visible, lengths, "NME")
    return float(distances[counted].mean()) if counted.any() else float("nan")


def _counted_distances(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    visible: np.ndarray,
    lengths: np.ndarray | None,
    metric: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) distances / lengths and (N, K) which of them count (visible, and the person's length not 0)."""
    predictions, ground_truth, visible, lengths = check_keypoint_arrays(
        predictions, ground_truth, visible, lengths, metric=metric
    )
    bad = np.flatnonzero(~(np.isfinite(lengths) & (lengths >= 0)))
    if bad.size:
        raise DataError(
            f"{metric}: persons {bad[:10].tolist()} have a negative or non-finite normalising length "
            f"({lengths[bad[:10]].tolist()})"
        )
    counted = visible & (lengths > 0)[:, None]
    distances = np.linalg.norm(predictions - ground_truth, axis=2) / np.where(lengths > 0, lengths, 1.0)[:, None]
    return distances, counted
