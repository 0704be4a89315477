"""Object keypoint similarity (OKS), OKS-NMS and the rescoring that precede COCO evaluation.

Reproduces the official HRNet post-processing (leoxiaobin/deep-high-resolution-net.pytorch, ``lib/nms/nms.py``
and ``COCODataset.evaluate`` in ``lib/dataset/coco.py``), vectorised over persons and keypoints.

Poses are ``(N, K, 3)`` arrays: ``x, y`` in image pixels and the keypoint's confidence score (the heatmap peak),
the layout of a COCO results file. Areas are pixels² (the official code passes the area of the enlarged crop box,
``w * h``); sigmas are the per-keypoint OKS sigmas of the keypoint set (``KeypointSet.sigmas``, COCO's already
divided by 10).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hrnet.errors import DataError

# Where the official evaluation puts its thresholds (TEST.OKS_THRE and TEST.IN_VIS_THRE in its configs).
OKS_NMS_THRESHOLD = 0.9
IN_VIS_THRESHOLD = 0.2
# The official soft OKS-NMS returns at most this many poses per image.
SOFT_NMS_MAX_KEEP = 20


def _check_poses(keypoints: np.ndarray, name: str) -> np.ndarray:
    keypoints = np.asarray(keypoints)
    if keypoints.ndim != 3 or keypoints.shape[2] != 3:
        raise DataError(f"{name}: expected poses of shape (N, K, 3) (x, y, score), got {keypoints.shape}")
    return keypoints


def _check_vector(values: np.ndarray, n: int, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (n,):
        raise DataError(f"{name}: expected shape ({n},) to match the {n} poses, got {values.shape}")
    return values


def _check_sigmas(sigmas: Sequence[float] | np.ndarray, num_keypoints: int) -> np.ndarray:
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if sigmas.shape != (num_keypoints,):
        raise DataError(
            f"OKS sigmas: {sigmas.size} values for {num_keypoints} keypoints; pass the keypoint set's own sigmas"
        )
    return sigmas


def oks_matrix(
    reference: np.ndarray,
    reference_areas: np.ndarray,
    keypoints: np.ndarray,
    areas: np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
    in_vis_threshold: float | None = None,
) -> np.ndarray:
    """OKS between every reference pose and every other pose, as the official ``oks_iou`` row by row.

    ``e_k = d_k² / (2σ_k)² / ((a_ref + a) / 2 + eps) / 2`` and OKS is the mean of ``exp(-e_k)`` over the keypoints.
    With ``in_vis_threshold`` the mean runs only over keypoints whose score in ``keypoints`` (the second argument)
    exceeds it; a pair with no such keypoint gets OKS 0.

    Official quirk reproduced: ``oks_iou`` builds its mask as ``list(vg > t) and list(vd > t)``, which Python
    evaluates to the second list, so only the detection side's scores (``keypoints``) decide; the reference
    pose's own scores are never looked at.

    Args:
        reference: (M, K, 3) poses, image pixels + scores (the official ``g``).
        reference_areas: (M,) their areas, pixels².
        keypoints: (N, K, 3) poses compared with each reference (the official ``d``).
        areas: (N,) their areas, pixels².
        sigmas: (K,) OKS sigmas.
        in_vis_threshold: keypoint score a keypoint of ``keypoints`` must exceed to count, or None for all.

    Returns:
        (M, N) float64 OKS in [0, 1].
    """
    reference = _check_poses(reference, "OKS reference poses")
    keypoints = _check_poses(keypoints, "OKS poses")
    if reference.shape[1] != keypoints.shape[1]:
        raise DataError(
            f"OKS: reference poses have {reference.shape[1]} keypoints, compared poses {keypoints.shape[1]}"
        )
    reference_areas = _check_vector(reference_areas, len(reference), "OKS reference areas")
    areas = _check_vector(areas, len(keypoints), "OKS areas")
    variances = (_check_sigmas(sigmas, keypoints.shape[1]) * 2) ** 2

    similarity = _keypoint_similarity(
        reference[:, None], reference_areas[:, None], keypoints[None, :], areas[None, :], variances
    )
    if in_vis_threshold is None:
        return similarity.sum(axis=-1) / keypoints.shape[1]
    counted = np.broadcast_to(keypoints[None, :, :, 2] > in_vis_threshold, similarity.shape)
    total = np.where(counted, similarity, 0.0).sum(axis=-1)
    count = counted.sum(axis=-1)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def _keypoint_similarity(
    reference: np.ndarray, reference_areas: np.ndarray, keypoints: np.ndarray, areas: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """``exp(-e_k)`` of every keypoint of poses paired by broadcasting: (..., K, 3) poses and (...) areas →
    (..., K). ``variances`` is ``(2σ)²`` per keypoint."""
    dx = keypoints[..., 0] - reference[..., 0]
    dy = keypoints[..., 1] - reference[..., 1]
    scale = (reference_areas + areas)[..., None] / 2 + np.spacing(1)
    return np.exp(-((dx**2 + dy**2) / variances / scale / 2))


def _descending(scores: np.ndarray) -> np.ndarray:
    # The official code sorts with NumPy's default (unstable) sort and reverses it; doing the same keeps the
    # order of equal scores, and so the kept poses, identical to the official run.
    return np.argsort(scores)[::-1]


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    threshold: float,
    sigmas: Sequence[float] | np.ndarray,
    in_vis_threshold: float | None = None,
    *,
    soft: bool = False,
    max_keep: int = SOFT_NMS_MAX_KEEP,
) -> np.ndarray:
    """OKS non-maximum suppression, as the official ``oks_nms`` (greedy) or ``soft_oks_nms`` (``soft``).

    Greedy: the best-scoring pose is kept and every remaining pose whose OKS with it exceeds ``threshold`` is
    dropped; repeat. Soft (TEST.SOFT_NMS): nothing is dropped outright; each time the best pose is taken, every
    remaining score is multiplied by ``exp(-oks² / threshold)`` and the rest re-sorted. OKS follows
    ``oks_matrix``, including the official visibility-mask quirk when ``in_vis_threshold`` is given.

    Args:
        keypoints: (N, K, 3) poses of one image, image pixels + keypoint scores.
        scores: (N,) pose scores (after ``rescore`` in the official pipeline).
        areas: (N,) pose areas, pixels².
        threshold: OKS above which a pose is suppressed (officially ``OKS_NMS_THRESHOLD``); soft: the Gaussian's
            width (the official code reuses the OKS-NMS threshold there).
        sigmas: (K,) OKS sigmas of the keypoint set (the official default is COCO's).
        in_vis_threshold: see ``oks_matrix``.
        soft: soft OKS-NMS with Gaussian decay.
        max_keep: soft only: how many poses to return at most (the official 20).

    Returns:
        (M,) int64 indices of the kept poses in the order taken, best score first.
    """
    keypoints = _check_poses(keypoints, "OKS-NMS poses")
    scores = _check_vector(scores, len(keypoints), "OKS-NMS scores")
    areas = _check_vector(areas, len(keypoints), "OKS-NMS areas")
    sigmas = _check_sigmas(sigmas, keypoints.shape[1])
    order = _descending(scores)
    ranked = scores[order]
    keep: list[int] = []
    while order.size > 0 and not (soft and len(keep) >= max_keep):
        best, rest = order[0], order[1:]
        keep.append(best)
        oks = oks_matrix(keypoints[[best]], areas[[best]], keypoints[rest], areas[rest], sigmas, in_vis_threshold)[0]
        if soft:
            ranked = ranked[1:] * np.exp(-(oks**2) / threshold)
            taken = _descending(ranked)
        else:
            ranked, taken = ranked[1:], oks <= threshold
        order, ranked = rest[taken], ranked[taken]
    return np.array(keep, dtype=np.int64)


def rescore(
    box_scores: np.ndarray, keypoint_scores: np.ndarray, in_vis_threshold: float = IN_VIS_THRESHOLD
) -> np.ndarray:
    """Pose scores as the official ``COCODataset.evaluate`` sets them before OKS-NMS.

    ``score = box_score * mean(keypoint scores above in_vis_threshold)``; a pose with no keypoint above the
    threshold scores 0.

    Args:
        box_scores: (N,) detector box scores (1 for ground-truth boxes).
        keypoint_scores: (N, K) keypoint confidence scores (heatmap peaks).
        in_vis_threshold: a keypoint's score must exceed this to count.

    Returns:
        (N,) pose scores.
    """
    keypoint_scores = np.asarray(keypoint_scores)
    if keypoint_scores.ndim != 2:
        raise DataError(f"rescore: keypoint scores must be (N, K), got {keypoint_scores.shape}")
    box_scores = _check_vector(box_scores, len(keypoint_scores), "rescore box scores")
    counted = keypoint_scores > in_vis_threshold
    # A cumulative sum adds in keypoint order as the official Python loop does, so the scores (and the NMS order
    # they set) match it bit for bit; np.sum would add in a different order.
    total = np.where(counted, keypoint_scores, 0).cumsum(axis=1)[:, -1]
    count = counted.sum(axis=1).astype(total.dtype)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return mean * box_scores


def nms_per_image(
    image_ids: Sequence[int | str] | np.ndarray,
    keypoints: np.ndarray,
    box_scores: np.ndarray,
    areas: np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
    *,
    oks_threshold: float = OKS_NMS_THRESHOLD,
    in_vis_threshold: float = IN_VIS_THRESHOLD,
    soft: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The official per-image post-processing of ``COCODataset.evaluate``: group, rescore, OKS-NMS.

    Poses are grouped by image (images in order of first appearance, as the official dict does), every pose is
    rescored with ``rescore`` (``in_vis_threshold`` applies there only: like the official call, the NMS itself
    uses every keypoint), and OKS-NMS (or soft OKS-NMS) runs within each image. Unlike the official code, which
    always uses COCO's sigmas here, the given set's ``sigmas`` are used (the same for COCO-17).

    Args:
        image_ids: (N,) the image of each pose.
        keypoints: (N, K, 3) poses, image pixels + keypoint scores.
        box_scores: (N,) detector box scores.
        areas: (N,) pose areas, pixels² (officially the enlarged crop box's ``w * h``).
        sigmas: (K,) OKS sigmas of the keypoint set.
        oks_threshold: OKS-NMS threshold (the Gaussian width for soft NMS).
        in_vis_threshold: keypoint score threshold of the rescoring.
        soft: soft OKS-NMS (``oks_nms``).

    Returns:
        ``(keep, scores)``: (M,) int64 indices of the kept poses (image by image, best first within an image)
        and the (N,) rescored pose scores, to be written as the results' ``score``.
    """
    keypoints = _check_poses(keypoints, "NMS poses")
    image_ids = np.asarray(image_ids)
    if image_ids.shape != (len(keypoints),):
        raise DataError(f"NMS: {image_ids.shape} image ids for {len(keypoints)} poses; expected one id a pose")
    sigmas = _check_sigmas(sigmas, keypoints.shape[1])
    scores = rescore(box_scores, keypoints[:, :, 2], in_vis_threshold)
    areas = _check_vector(areas, len(keypoints), "NMS areas")
    if len(keypoints) == 0:
        return np.zeros(0, dtype=np.int64), scores

    _, first, group = np.unique(image_ids, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))[group]  # each pose's image, numbered in order of first appearance
    members = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[members], np.arange(rank.max() + 2))
    kept = [np.zeros(0, dtype=np.int64)]
    for image in range(rank.max() + 1):
        index = members[bounds[image] : bounds[image + 1]]
        kept.append(index[oks_nms(keypoints[index], scores[index], areas[index], oks_threshold, sigmas, soft=soft)])
    return np.concatenate(kept).astype(np.int64), scores
