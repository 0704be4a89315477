"""Pictures and plots: skeleton drawings, heatmap overlays and panels, mosaics, training curves.

Images are RGB ``uint8`` arrays of shape (H, W, 3) in and out; every function returns a new array and leaves its
input untouched. Keypoints are pixels in the image they are drawn on, with OpenCV's convention that integer
coordinates are pixel centers (as in the official HRNet code). Plots use
matplotlib's object API with an Agg canvas, so importing or calling this module never switches the global
backend or touches ``pyplot`` state.

Files appear whole or not at all: they are written under a temporary name in the target folder and renamed.
"""

from __future__ import annotations

import colorsys
import functools
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hrnet.data.images import check_channel_order
from hrnet.errors import DataError
from hrnet.fileio import write_bytes_atomic
from hrnet.keypoints import KeypointSet

Image = npt.NDArray[np.uint8]

# Hue ranges (degrees) per body side: warm for the left, cool for the right, greens for the center line, so a
# mirrored pose (a flip bug) is visible at a glance. Limbs of one side step through their range in skeleton order.
_SIDE_HUES = {"left": (350.0, 45.0), "right": (185.0, 245.0), "center": (95.0, 150.0)}
_DOT_COLOURS = {"left": (255, 140, 0), "right": (0, 150, 255), "center": (40, 200, 80)}
_BOX_COLOUR = (255, 255, 255)
_SHADOW_COLOUR = (0, 0, 0)
_SHIFT = 4  # OpenCV fixed-point bits: draw at 1/16 pixel so sub-pixel keypoints are not rounded
_COORD_LIMIT = 1e6  # far outside any image yet safely inside OpenCV's int32 fixed-point range
# Panels and side-by-side views of tiny crops (a 64×48 test model) are enlarged so their labels stay legible.
_MIN_LABELLED_HEIGHT = 192
_EXTENSIONS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg"}


def keypoint_side(name: str) -> str:
    """``"left"``, ``"right"`` or ``"center"`` from a keypoint name ("left_eye", "L Knee", "RightWrist")."""
    tokens = [t for t in re.split(r"[_\s\-.]+", name.lower()) if t]
    lowered = name.lower()
    if "l" in tokens or "left" in lowered:
        return "left"
    if "r" in tokens or "right" in lowered:
        return "right"
    return "center"


def _limb_side(sides: Sequence[str], a: int, b: int) -> str:
    """A limb belongs to a side when one end does and the other is on it or on the center line."""
    pair = {sides[a], sides[b]}
    if pair == {"left"} or pair == {"left", "center"}:
        return "left"
    if pair == {"right"} or pair == {"right", "center"}:
        return "right"
    return "center"


def limb_colours(keypoint_set: KeypointSet) -> list[tuple[int, int, int]]:
    """One RGB colour per skeleton limb: warm hues on the left side, cool on the right, green in the center."""
    sides = [keypoint_side(n) for n in keypoint_set.names]
    limb_sides = [_limb_side(sides, a, b) for a, b in keypoint_set.skeleton]
    colours = []
    for i, side in enumerate(limb_sides):
        same = [j for j, s in enumerate(limb_sides) if s == side]
        start, stop = _SIDE_HUES[side]
        span = (stop - start) % 360.0
        t = same.index(i) / max(len(same) - 1, 1)
        r, g, b = colorsys.hsv_to_rgb(((start + t * span) % 360.0) / 360.0, 0.85, 1.0)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def keypoint_colours(keypoint_set: KeypointSet) -> list[tuple[int, int, int]]:
    """One RGB colour per keypoint, as ``draw_poses`` paints its dot: by the body side of its name."""
    return [_DOT_COLOURS[keypoint_side(name)] for name in keypoint_set.names]


def _as_rgb(image: npt.ArrayLike, what: str = "image", *, copy: bool = True) -> Image:
    """A contiguous (H, W, 3) uint8 copy (with ``copy=False``: the image itself when it is one); grey (H, W) or
    (H, W, 1) images are repeated to three channels."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise DataError(f"{what}: expected a uint8 RGB image, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3) or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{what}: expected shape (H, W, 3), got {array.shape}")
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    contiguous = np.ascontiguousarray(array)
    return contiguous.copy() if copy and contiguous is array else contiguous


def default_thickness(image_size: tuple[int, int]) -> int:
    """Limb line width for an image of (height, width): 3 px at 640×480, 1 px for a 256×192 crop."""
    height, width = image_size
    return max(1, round(math.sqrt(height * width) / 180))


def _fixed(points: npt.NDArray[np.floating]) -> list[tuple[int, int]]:
    """(N, 2) pixel coordinates as OpenCV's fixed-point (x, y) pairs at ``_SHIFT`` bits, rounded half to even (as
    Python's ``round``), within ±``_COORD_LIMIT``; NaN becomes 0 (``draw_poses`` hides such keypoints)."""
    clipped = np.nan_to_num(points, nan=0.0, posinf=_COORD_LIMIT, neginf=-_COORD_LIMIT)
    scaled = np.rint(np.clip(clipped, -_COORD_LIMIT, _COORD_LIMIT) * (1 << _SHIFT)).astype(np.int64)
    return [(x, y) for x, y in scaled.tolist()]


@functools.cache
def _palette(keypoint_set: KeypointSet, channel_order: str) -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """The limb colours and the dot colours of ``keypoint_set`` in ``channel_order``, made once per set (a video
    draws every frame with them)."""

    def in_order(colours: list[tuple[int, int, int]]) -> tuple[tuple[int, int, int], ...]:
        return tuple((c[2], c[1], c[0]) if channel_order == "bgr" else c for c in colours)

    return in_order(limb_colours(keypoint_set)), in_order(keypoint_colours(keypoint_set))


def draw_poses(
    image: npt.ArrayLike,
    keypoints: npt.ArrayLike,
    scores: npt.ArrayLike | None,
    keypoint_set: KeypointSet,
    threshold: float = 0.3,
    boxes: npt.ArrayLike | None = None,
    thickness: int | None = None,
    *,
    channel_order: str = "rgb",
    in_place: bool = False,
) -> Image:
    """Skeletons drawn on a copy of ``image`` (with ``in_place``: on ``image`` itself, when it is a contiguous
    (H, W, 3) uint8 array, as a video's frame that is not used after; the drawing is returned either way).

    ``image`` (H, W, 3) uint8 in ``channel_order`` ("rgb" or "bgr"; the colours are the same either way);
    ``keypoints`` (P, K, 2) pixels (x, y) in that image; ``scores`` (P, K) or
    None (draw everything). A keypoint whose score is below ``threshold`` or whose coordinates are not finite is
    hidden, and so is every limb that touches it; for ground truth pass ``scores = visibility > 0``. ``boxes``
    (B, 4) are person boxes (x, y, w, h) in pixels. ``thickness`` is the limb width in pixels (default: scaled
    with the image, see ``default_thickness``); dots have a radius of about 1.5 times that.
    """
    check_channel_order(channel_order)
    canvas = _as_rgb(image, copy=not in_place)
    points = np.asarray(keypoints, dtype=np.float64)
    k = keypoint_set.num_keypoints
    if points.ndim != 3 or points.shape[1:] != (k, 2):
        raise DataError(
            f"keypoints: expected shape (P, {k}, 2) for keypoint set {keypoint_set.name!r}, got {points.shape}"
        )
    if scores is None:
        shown = np.ones(points.shape[:2], dtype=bool)
    else:
        score_array = np.asarray(scores, dtype=np.float64)
        if score_array.shape != points.shape[:2]:
            raise DataError(f"scores: expected shape {points.shape[:2]} to match keypoints, got {score_array.shape}")
        shown = score_array >= threshold
    shown &= np.isfinite(points).all(axis=2)

    width = default_thickness(canvas.shape[:2]) if thickness is None else thickness
    if width < 1:
        raise DataError(f"thickness must be at least 1 pixel, got {width}")
    radius = max(2, int(1.5 * width + 0.5))

    if boxes is not None:
        box_array = np.asarray(boxes, dtype=np.float64)
        if box_array.ndim != 2 or box_array.shape[1] != 4:
            raise DataError(f"boxes: expected shape (B, 4) as (x, y, w, h), got {box_array.shape}")
        finite = box_array[np.isfinite(box_array).all(axis=1)]
        corners = _fixed(np.concatenate([finite[:, :2], finite[:, :2] + finite[:, 2:]], axis=1).reshape(-1, 2))
        for top_left, bottom_right in zip(corners[::2], corners[1::2], strict=True):
            # A dark line under the white one keeps the box visible on light and dark backgrounds alike.
            cv2.rectangle(canvas, top_left, bottom_right, _SHADOW_COLOUR, width + 2, cv2.LINE_AA, _SHIFT)
            cv2.rectangle(canvas, top_left, bottom_right, _BOX_COLOUR, width, cv2.LINE_AA, _SHIFT)

    limbs, dots = _palette(keypoint_set, channel_order)
    for person, visible_array in zip(points, shown, strict=True):
        fixed, visible = _fixed(person), visible_array.tolist()
        for (a, b), limb in zip(keypoint_set.skeleton, limbs, strict=True):
            if visible[a] and visible[b]:
                cv2.line(canvas, fixed[a], fixed[b], limb, width, cv2.LINE_AA, _SHIFT)
        for index in np.flatnonzero(visible_array).tolist():
            center = fixed[index]
            cv2.circle(canvas, center, (radius + 1) << _SHIFT, _SHADOW_COLOUR, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(canvas, center, radius << _SHIFT, dots[index], -1, cv2.LINE_AA, _SHIFT)
    return canvas


def heatmap_overlay(
    image: npt.ArrayLike, heatmaps: npt.ArrayLike, alpha: float = 0.7, normalize: bool = False
) -> Image:
    """``image`` with the maximum over keypoints of ``heatmaps`` blended on top as a colour map.

    ``heatmaps`` (K, h, w) cover the whole image (e.g. the network's input crop at ¼ resolution) and are resized
    to it bicubically. Values are clipped to [0, 1], the range of the Gaussian targets, so colours mean the same
    from picture to picture; ``normalize=True`` divides by the maximum instead (to see an untrained model's
    faint maps). Each pixel is blended with weight ``alpha × heat``, so cold regions keep the original image.
    """
    canvas = _as_rgb(image)
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
    coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
    weight = (alpha * heat)[:, :, None]
    blended = canvas.astype(np.float32) * (1.0 - weight) + coloured.astype(np.float32) * weight
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _enlarge_small(image: Image, min_height: int = _MIN_LABELLED_HEIGHT) -> Image:
    if image.shape[0] >= min_height:
        return image
    scale = min_height / image.shape[0]
    return _resize(image, (min_height, max(1, round(image.shape[1] * scale))))


def _resize(image: Image, size: tuple[int, int]) -> Image:
    """``image`` resized to ``size`` (height, width): area averaging to shrink (no aliasing), bilinear to grow."""
    height, width = size
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, (width, height), interpolation=interpolation), dtype=np.uint8)


def _label(image: Image, text: str) -> Image:
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


def heatmap_panel(
    image: npt.ArrayLike,
    heatmaps: npt.ArrayLike,
    keypoint_set: KeypointSet,
    columns: int = 6,
    normalize: bool = False,
) -> Image:
    """A grid of per-keypoint overlays (see ``heatmap_overlay``), each labelled with its keypoint's name.

    ``heatmaps`` (K, h, w) with K the set's number of keypoints, covering the whole ``image``; cells are in
    channel order, ``columns`` to a row. Images under 192 pixels high are enlarged so the names stay legible.
    """
    canvas = _enlarge_small(_as_rgb(image))
    maps = np.asarray(heatmaps, dtype=np.float32)
    k = keypoint_set.num_keypoints
    if maps.ndim != 3 or maps.shape[0] != k:
        raise DataError(
            f"heatmaps: expected shape ({k}, H, W) for keypoint set {keypoint_set.name!r}, got {maps.shape}"
        )
    cells = [
        _label(heatmap_overlay(canvas, maps[i : i + 1], normalize=normalize), name)
        for i, name in enumerate(keypoint_set.names)
    ]
    return image_grid(cells, columns=columns)


def side_by_side(
    image: npt.ArrayLike,
    pred_keypoints: npt.ArrayLike,
    pred_scores: npt.ArrayLike | None,
    gt_keypoints: npt.ArrayLike,
    gt_visibility: npt.ArrayLike,
    keypoint_set: KeypointSet,
    threshold: float = 0.3,
) -> Image:
    """Prediction (left, labelled "prediction") and ground truth (right, "ground truth") on the same image.

    ``pred_keypoints`` (P, K, 2) with ``pred_scores`` (P, K) or None; ``gt_keypoints`` (G, K, 2) with
    ``gt_visibility`` (G, K) in COCO coding, where labelled keypoints (1 or 2) are drawn. Pixels of ``image``.
    Images under 192 pixels high are enlarged (keypoints with them) so the labels stay legible.
    """
    original = _as_rgb(image)
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
) -> Image:
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
    tiles = [_as_rgb(image, what=f"image_grid image {i}") for i, image in enumerate(images)]
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


def _number(row: Mapping[str, object], key: str, index: int) -> float | None:
    """A float from a log row; None when the column is missing, None, empty or NaN (e.g. no validation run)."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"training log row {index}: {key}={value!r} is not a number") from None
    return None if math.isnan(number) else number


def plot_curves(
    rows: Sequence[Mapping[str, object]],
    out_path: str | os.PathLike[str],
    step_rows: Sequence[Mapping[str, object]] | None = None,
    metric: str = "val_ap",
    lr_markers: bool = True,
) -> Path:
    """Training curves as a PNG (conventionally ``curves.png`` in the run folder); returns its path.

    ``rows`` are per-epoch log rows as a CSV log holds them (numbers or their strings): ``epoch``,
    ``train_loss``, ``metric`` (default ``val_ap``; missing, empty or None on epochs without validation) and
    ``lr``. ``step_rows`` optionally add the per-step loss: ``epoch`` (fractional, the position in epochs) and
    ``loss``. The top plot shows the losses, the bottom one the validation metric; with ``lr_markers`` a dashed
    line marks each epoch where the learning rate changed.
    """
    if not rows:
        raise DataError(f"{out_path}: no training log rows to plot")
    epochs, losses, metrics, rates = [], [], [], []
    for i, row in enumerate(rows):
        epoch = _number(row, "epoch", i)
        if epoch is None:
            raise DataError(f"training log row {i}: the epoch is missing")
        epochs.append(epoch)
        losses.append(_number(row, "train_loss", i))
        metrics.append(_number(row, metric, i))
        rates.append(_number(row, "lr", i))

    figure = Figure(figsize=(8, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, metric_axes = figure.subplots(2, 1, sharex=True)
    if step_rows:
        steps = [(_number(r, "epoch", i), _number(r, "loss", i)) for i, r in enumerate(step_rows)]
        step_points = [(x, y) for x, y in steps if x is not None and y is not None]
        if step_points:
            loss_axes.plot(
                *zip(*step_points, strict=True), color="tab:blue", alpha=0.3, linewidth=0.8, label="loss per step"
            )
    loss_points = [(e, v) for e, v in zip(epochs, losses, strict=True) if v is not None]
    if loss_points:
        loss_axes.plot(*zip(*loss_points, strict=True), color="tab:blue", marker="o", label="train loss (epoch)")
    loss_axes.set_ylabel("loss")
    loss_axes.grid(alpha=0.3)

    metric_points = [(e, v) for e, v in zip(epochs, metrics, strict=True) if v is not None]
    if metric_points:
        best_epoch, best = max(metric_points, key=lambda p: p[1])
        metric_axes.plot(*zip(*metric_points, strict=True), color="tab:orange", marker="o", label=metric)
        metric_axes.annotate(
            f"best {best:.4g} (epoch {best_epoch:g})",
            (best_epoch, best),
            textcoords="offset points",
            xytext=(0, -14),
            ha="center",
            fontsize=8,
        )
    else:
        metric_axes.text(0.5, 0.5, f"no {metric} values yet", transform=metric_axes.transAxes, ha="center")
    metric_axes.set_ylabel(metric)
    metric_axes.set_xlabel("epoch")
    metric_axes.grid(alpha=0.3)

    if lr_markers:
        previous = None
        for epoch, rate in zip(epochs, rates, strict=True):
            if rate is not None and previous is not None and not math.isclose(rate, previous):
                for axes in (loss_axes, metric_axes):
                    axes.axvline(epoch, color="grey", linestyle="--", linewidth=0.8)
                loss_axes.annotate(
                    f"lr {rate:.2g}",
                    (epoch, 1.0),
                    xycoords=("data", "axes fraction"),
                    textcoords="offset points",
                    xytext=(3, -3),
                    fontsize=7,
                    va="top",
                    color="grey",
                )
            previous = rate if rate is not None else previous
    for axes in (loss_axes, metric_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="best", fontsize=8)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path = Path(out_path)
    _write_atomic(path, buffer.getvalue())
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        write_bytes_atomic(path, data)
    except OSError as error:
        raise DataError(f"{path}: cannot write the file ({error.strerror or error})") from None


def write_image(
    path: str | os.PathLike[str], image: npt.ArrayLike, jpeg_quality: int = 95, *, channel_order: str = "rgb"
) -> Path:
    """Write a uint8 image (H, W, 3) in ``channel_order`` ("rgb" or "bgr") as PNG or JPEG (by the extension)
    atomically; returns the path.

    Missing parent folders are created. Raises ``DataError`` for another extension or an unwritable folder.
    """
    target = Path(path)
    extension = _EXTENSIONS.get(target.suffix.lower())
    if extension is None:
        raise DataError(f"{target}: unknown image extension {target.suffix!r}; use .png, .jpg or .jpeg")
    check_channel_order(channel_order)
    pixels = _as_rgb(image, what=str(target), copy=False)
    bgr = pixels if channel_order == "bgr" else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if extension == ".jpg" else []
    ok, encoded = cv2.imencode(extension, bgr, params)
    if not ok:
        raise DataError(f"{target}: OpenCV could not encode the image as {extension}")
    _write_atomic(target, encoded.tobytes())
    return target
