"""Heatmaps drawn: a network's maps over the image they cover, panels of one map a keypoint, and mosaics.

Images are (H, W, 3) uint8 arrays in BGR order, as OpenCV's (``hrnet.drawing.samples`` turns the network's RGB crops
to BGR); every function returns a new array and leaves its input untouched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from hrnet.drawing.skeletons import draw_poses
from hrnet.errors import DataError
from hrnet.io.images import Pixels, check_image
from hrnet.keypoints import KeypointSet

# Panels and side-by-side views of tiny crops (a 64×48 test model) are enlarged so their labels stay legible.
_MIN_LABELLED_HEIGHT = 192


def heatmap_overlay(
    image: npt.ArrayLike, heatmaps: npt.ArrayLike, alpha: float = 0.7, normalize: bool = False
) -> Pixels:
    """``image`` with the maximum over keypoints of ``heatmaps`` blended on top as a colour map.

    ``heatmaps`` (K, h, w) cover the whole image (e.g. the network's input crop at ¼ resolution) and are resized
    to it bicubically. Values are clipped to [0, 1], the range of the Gaussian targets, so colours mean the same
    from picture to picture; ``normalize=True`` divides by the maximum instead (to see an untrained model's
    faint maps). Each pixel is blended with weight ``alpha × heat``, so cold regions keep the original image.
    """
    canvas = check_image(image, copy=True)
    maps = np.asarray(heatmaps, dtype=np.float32)
    if maps.ndim != 3 or 0 in maps.shape:
        raise DataError(f"heatmaps: expected shape (K, H, W), got {maps.shape}")
    heat = np.nan_to_num(maps.max(axis=0), nan=0.0, posinf=1.0, neginf=0.0)
    if normalize:
        peak = float(heat.max())
        heat = heat / peak if peak > 0 else np.zeros_like(heat)
    heat = cv2.resize(np.clip(heat, 0.0, 1.0), (canvas.shape[1], canvas.shape[0]), interpolation=cv2.INTER_CUBIC)
    heat = np.clip(heat, 0.0, 1.0)
    coloured = cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    weight = (alpha * heat)[:, :, None]
    blended = canvas.astype(np.float32) * (1.0 - weight) + coloured.astype(np.float32) * weight
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _enlarge_small(image: Pixels, min_height: int = _MIN_LABELLED_HEIGHT) -> Pixels:
    if image.shape[0] >= min_height:
        return image
    scale = min_height / image.shape[0]
    return _resize(image, (min_height, max(1, round(image.shape[1] * scale))))


def _resize(image: Pixels, size: tuple[int, int]) -> Pixels:
    """``image`` resized to ``size`` (height, width): area averaging to shrink (no aliasing), bilinear to grow."""
    height, width = size
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, (width, height), interpolation=interpolation), dtype=np.uint8)


def _label(image: Pixels, text: str) -> Pixels:
    """``text`` in white on a dark strip at the top left, its size scaled to the image and shrunk to fit."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = min(1.0, max(0.4, min(height, width) / 400))
    stroke = 1 if scale < 0.8 else 2
    (text_width, text_height), baseline = cv2.getTextSize(text, font, scale, stroke)
    margin = max(2, round(4 * scale))
    if text_width + 2 * margin > width:
        scale *= (width - 2 * margin) / (text_width + 2 * margin)
        (text_width, text_height), baseline = cv2.getTextSize(text, font, scale, stroke)
    strip = canvas[: text_height + baseline + 2 * margin, : text_width + 2 * margin]
    strip[:] = (strip.astype(np.float32) * 0.35).astype(np.uint8)
    cv2.putText(canvas, text, (margin, margin + text_height), font, scale, (255, 255, 255), stroke, cv2.LINE_AA)
    return canvas


def side_by_side(
    image: npt.ArrayLike,
    pred_keypoints: npt.ArrayLike,
    pred_scores: npt.ArrayLike | None,
    gt_keypoints: npt.ArrayLike,
    gt_visibility: npt.ArrayLike,
    keypoint_set: KeypointSet,
    threshold: float = 0.3,
) -> Pixels:
    """Prediction (left, labelled "prediction") and ground truth (right, "ground truth") on the same image.

    ``pred_keypoints`` (P, K, 2) with ``pred_scores`` (P, K) or None; ``gt_keypoints`` (G, K, 2) with
    ``gt_visibility`` (G, K) in COCO coding, where labelled keypoints (1 or 2) are drawn. Pixels of ``image``.
    Images under 192 pixels high are enlarged (keypoints with them) so the labels stay legible.
    """
    original = check_image(image, copy=True)
    canvas = _enlarge_small(original)
    scale_xy = np.array([canvas.shape[1] / original.shape[1], canvas.shape[0] / original.shape[0]])
    # Pixel centers stay pixel centers under the resize: x' = (x + 0.5) · s − 0.5.
    pred = (np.asarray(pred_keypoints, dtype=np.float64) + 0.5) * scale_xy - 0.5
    gt = (np.asarray(gt_keypoints, dtype=np.float64) + 0.5) * scale_xy - 0.5
    visibility = np.asarray(gt_visibility)
    if visibility.shape != gt.shape[:-1]:
        raise DataError(f"gt_visibility: expected shape {gt.shape[:-1]} to match gt_keypoints, got {visibility.shape}")
    left = draw_poses(canvas, pred, pred_scores, keypoint_set, threshold=threshold)
    right = draw_poses(canvas, gt, (visibility > 0).astype(np.float64), keypoint_set, threshold=0.5)
    return image_grid([_label(left, "prediction"), _label(right, "ground truth")], columns=2)


def image_grid(
    images: Sequence[npt.ArrayLike],
    columns: int,
    pad: int = 4,
    cell_size: tuple[int, int] | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Pixels:
    """One mosaic of ``images`` in reading order, ``columns`` to a row (fewer when there are fewer images).

    Every cell has ``cell_size`` (height, width), by default the largest height and width among the images; each
    image is scaled to fit its cell with its aspect ratio kept and centered (letterboxed). ``pad`` pixels of
    ``background`` separate the cells and frame the mosaic, so the result is
    (rows · ch + (rows + 1) · pad, cols · cw + (cols + 1) · pad, 3).
    """
    if not images:
        raise DataError("image_grid: no images to arrange")
    if columns < 1 or pad < 0:
        raise DataError(f"image_grid: columns must be ≥ 1 and pad ≥ 0, got columns={columns}, pad={pad}")
    tiles = [check_image(image, what=f"image_grid image {i}") for i, image in enumerate(images)]
    if cell_size is None:
        cell_height, cell_width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    else:
        cell_height, cell_width = cell_size
        if cell_height < 1 or cell_width < 1:
            raise DataError(f"image_grid: cell_size must be positive (height, width), got {cell_size}")
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    mosaic = np.empty(
        (rows * cell_height + (rows + 1) * pad, columns * cell_width + (columns + 1) * pad, 3), dtype=np.uint8
    )
    mosaic[:] = background
    for i, tile in enumerate(tiles):
        scale = min(cell_height / tile.shape[0], cell_width / tile.shape[1])
        height = min(cell_height, max(1, round(tile.shape[0] * scale)))
        width = min(cell_width, max(1, round(tile.shape[1] * scale)))
        if (height, width) != tile.shape[:2]:
            tile = _resize(tile, (height, width))
        row, column = divmod(i, columns)
        top = pad + row * (cell_height + pad) + (cell_height - height) // 2
        left = pad + column * (cell_width + pad) + (cell_width - width) // 2
        mosaic[top : top + height, left : left + width] = tile
    return mosaic
