"""The TensorFlow port's data side, as pure functions: person crop, keypoint mapping, targets, decoding, scaling.

Each function reproduces one step of VXallset/deep-high-resolution-net.TensorFlow (commit d885abc6), the code
behind the ``tf_port`` network, names the file of ``src/`` it comes from, and is pinned to that code's own outputs
in ``../shared/reference/tf_port_parity``.

Coordinate spaces:

- *image pixels*: the original image. A box ``(x1, y1, x2, y2)`` covers columns ``x1 .. x2 - 1`` and rows
  ``y1 .. y2 - 1`` (the ends are excluded, as in Python slicing).
- *crop pixels*: the stretched crop of size ``(height, width)``. The port maps a point with
  ``(x - x1) / (x2 - x1) * width``: the box's edges go to 0 and ``width``, so the box's last column lands near
  ``width - width / (x2 - x1)``, not on ``width - 1``.
- *heatmap pixels*: the port's heatmaps have the input's resolution, so they are crop pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hrnet.errors import ConfigError, DataError

# The port stores crop coordinates as uint8 (dataset.py), so they wrap modulo 256 whatever the map's size.
UINT8_WRAP = 256


# ----------------------------------------------------------------------------------------------- crop


def stretch_crop(image: np.ndarray, box_xyxy: Sequence[float], output_size: tuple[int, int]) -> np.ndarray:
    """Cut a person box out of an image and stretch it to ``output_size``, as the port's ``dataset.py``.

    ``extract_people_from_dataset`` takes rows ``y1:y2`` and columns ``x1:x2`` of the exact box, calls scikit-image
    ``resize(crop, (256, 192, 3))`` with its defaults (0.26: bilinear, mode 'reflect', values scaled to [0, 1], a
    Gaussian anti-aliasing pre-filter on the axes that shrink), multiplies by 255 and casts to uint8, which
    truncates. This function does the same for any output size, bit for bit in the float64 values (so the
    truncation agrees too); the aspect ratio is not kept.

    Boxes that leave the image, as the port's slicing treats them:

    - past the right or bottom edge (``x2 > W``, ``y2 > H``): the slice stops at the edge, so the crop shows only
      the part inside the image, stretched over the whole output, while ``stretch_points`` still maps keypoints
      with the whole box. Pixels and keypoints then disagree exactly as in the port's records.
    - left of or above the image (``x1 < 0``, ``y1 < 0``): refused. A negative start counts from the far edge in
      Python, so the port got either an empty slice (scikit-image raised ``ValueError`` and the port skipped the
      person) or a strip from the opposite side of the image.

    Args:
        image: (H, W, 3) uint8 image.
        box_xyxy: ``(x1, y1, x2, y2)`` whole image pixels, ends excluded.
        output_size: ``(height, width)`` of the crop; the port uses (256, 192).

    Returns:
        (height, width, 3) uint8 crop.
    """
    height, width = _check_size("output_size", output_size)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f"stretch_crop needs an (H, W, 3) uint8 image, got shape {image.shape} and {image.dtype}")
    x1, y1, x2, y2 = _nonempty_box(box_xyxy)
    if x1 != int(x1) or y1 != int(y1) or x2 != int(x2) or y2 != int(y2):
        raise DataError(f"box {tuple(box_xyxy)} must be whole pixels: the TF port slices the image with it")
    if x1 < 0 or y1 < 0:
        raise DataError(
            f"box {tuple(box_xyxy)} starts left of or above the image: the TF port's slice would wrap to the far "
            "side of the image; clip the box to the image first"
        )
    crop = image[int(y1) : int(y2), int(x1) : int(x2)]
    if crop.size == 0:
        raise DataError(
            f"box {tuple(box_xyxy)} covers no pixel of the {image.shape[1]}×{image.shape[0]} image (the TF port "
            "skipped such a person); drop it or fix the box"
        )
    stretched = _resize_like_skimage(crop, (height, width))
    return (stretched * 255.0).astype(np.uint8)


def _resize_like_skimage(crop: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """scikit-image 0.26 ``resize`` of a uint8 (h, w, C) crop to ``output_size`` with the default arguments.

    That is ``img_as_float``, then SciPy's ``gaussian_filter`` (σ = (h / height - 1) / 2 per shrinking axis,
    mode 'mirror', truncate 4) when any axis shrinks, then ``ndimage.zoom`` (order 1, mode 'mirror',
    ``grid_mode=True``), then clipping to the input's range. The arithmetic follows SciPy's C loops operation by
    operation, so the result is the same float64 array.

    Returns:
        (height, width, C) float64 in [0, 1].
    """
    values = np.multiply(crop, 1.0 / 255, dtype=np.float64)  # img_as_float multiplies by the reciprocal
    low, high = values.min(), values.max()
    sizes_in = crop.shape[:2]
    for axis, (n_in, n_out) in enumerate(zip(sizes_in, output_size, strict=True)):
        if n_in > n_out:  # scikit-image asks for σ = 0 on the other axes, and SciPy skips those
            values = _gaussian_filter_axis(values, (n_in / n_out - 1) / 2, axis)
    rows_low, rows_high, row_weight_low, row_weight_high = _linear_taps(sizes_in[0], output_size[0])
    cols_low, cols_high, col_weight_low, col_weight_high = _linear_taps(sizes_in[1], output_size[1])
    row_weight_low, row_weight_high = row_weight_low[:, None, None], row_weight_high[:, None, None]
    col_weight_low, col_weight_high = col_weight_low[None, :, None], col_weight_high[None, :, None]
    top, bottom = values[rows_low], values[rows_high]
    # SciPy sums the four taps in this order, each as (value × row weight) × column weight.
    out = top[:, cols_low] * row_weight_low * col_weight_low
    out += top[:, cols_high] * row_weight_low * col_weight_high
    out += bottom[:, cols_low] * row_weight_high * col_weight_low
    out += bottom[:, cols_high] * row_weight_high * col_weight_high
    return np.clip(out, low, high)


def _gaussian_filter_axis(values: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """SciPy ``gaussian_filter1d(values, sigma, axis, mode='mirror')`` (truncate 4), summed in SciPy's order.

    SciPy's symmetric-kernel loop starts from the center tap and adds the outermost pair of neighbours first.
    'mirror' reflects about the edge pixels without repeating them (NumPy's pad mode 'reflect').
    """
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 / (sigma * sigma) * np.arange(-radius, radius + 1) ** 2)
    taps = taps / taps.sum()
    lines = np.moveaxis(values, axis, 0)
    length = lines.shape[0]
    padded = np.pad(lines, [(radius, radius)] + [(0, 0)] * (lines.ndim - 1), mode="reflect")
    out = padded[radius : radius + length] * taps[radius]
    for offset in range(radius, 0, -1):
        out += (
            padded[radius - offset : radius - offset + length] + padded[radius + offset : radius + offset + length]
        ) * taps[radius - offset]
    return np.moveaxis(out, 0, axis)


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of SciPy's order-1 ``zoom`` along one axis (``grid_mode=True``, mode 'mirror').

    Output pixel ``i`` samples input position ``(i + 0.5) * n_in / n_out - 0.5``. A position left of 0 is
    mirrored about 0; none passes ``n_in - 0.5``, and a tap past the last pixel is mirrored to ``n_in - 2``.
    The upper weight is ``1 - lower weight``, not the fraction itself, as in SciPy.

    Returns:
        lower and upper source indices (n_out,) int64, and their weights (n_out,) float64.
    """
    position = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    position = np.abs(position) if n_in > 1 else np.zeros_like(position)
    lower = np.floor(position)
    weight_low = 1.0 - (position - lower)
    weight_high = 1.0 - weight_low
    low = lower.astype(np.int64)
    high = np.where(low + 1 < n_in, low + 1, max(n_in - 2, 0))
    return low, high, weight_low, weight_high


def stretch_points(points: np.ndarray, box_xyxy: Sequence[float], output_size: tuple[int, int]) -> np.ndarray:
    """Image pixels → crop pixels under the port's box stretch (``dataset.py``, ``extract_people_from_dataset``).

    ``x_crop = (x - x1) / (x2 - x1) * width`` and ``y_crop = (y - y1) / (y2 - y1) * height``, in the port's order
    of operations (float64), so the results equal the port's before its uint8 cast (``wrap_uint8``). Points
    outside the box map outside ``[0, width] × [0, height]``; nothing is clipped.

    Args:
        points: (..., 2) points ``(x, y)`` in image pixels.
        box_xyxy: ``(x1, y1, x2, y2)`` in image pixels, the box given to ``stretch_crop``.
        output_size: ``(height, width)`` of the crop.

    Returns:
        (..., 2) float64 points ``(x, y)`` in crop pixels.
    """
    points, corner, box_size, crop_size = _stretch_frame(points, box_xyxy, output_size)
    return (points - corner) / box_size * crop_size


def unstretch_points(points: np.ndarray, box_xyxy: Sequence[float], output_size: tuple[int, int]) -> np.ndarray:
    """Crop pixels → image pixels: the inverse of ``stretch_points`` (exact up to float64 rounding), for decoded
    keypoints: ``x = x_crop / width * (x2 - x1) + x1`` and likewise for y.

    Args:
        points: (..., 2) points ``(x, y)`` in crop pixels (for example ``decode_tf_port``'s coordinates).
        box_xyxy, output_size: as ``stretch_points``.

    Returns:
        (..., 2) float64 points ``(x, y)`` in image pixels.
    """
    points, corner, box_size, crop_size = _stretch_frame(points, box_xyxy, output_size)
    return points / crop_size * box_size + corner


def _stretch_frame(
    points: np.ndarray, box_xyxy: Sequence[float], output_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (..., 2) float64 points, and the box's corner ``(x1, y1)``, its size and the crop's size, each ``(x, y)``
    in float64 (the port's arithmetic, element by element)."""
    height, width = _check_size("output_size", output_size)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 0 or points.shape[-1] != 2:
        raise DataError(f"points must have shape (..., 2) as (x, y), got {points.shape}")
    x1, y1, x2, y2 = _nonempty_box(box_xyxy)
    return points, np.array([x1, y1]), np.array([x2 - x1, y2 - y1]), np.array([width, height], dtype=np.float64)


def _nonempty_box(box_xyxy: Sequence[float]) -> tuple[float, float, float, float]:
    """The four finite edges of a box ``(x1, y1, x2, y2)`` with ``x2 > x1`` and ``y2 > y1`` (the port divides by
    its width and height); a ``DataError`` names the box otherwise."""
    edges = np.asarray(box_xyxy, dtype=np.float64)
    if edges.shape != (4,) or not np.isfinite(edges).all():
        raise DataError(f"box {box_xyxy!r} must be four finite numbers (x1, y1, x2, y2)")
    x1, y1, x2, y2 = (float(edge) for edge in edges)
    if not (x2 > x1 and y2 > y1):
        raise DataError(f"box {tuple(box_xyxy)} is empty: it needs x2 > x1 and y2 > y1")
    return x1, y1, x2, y2


def _check_size(name: str, size: tuple[int, int]) -> tuple[int, int]:
    """A ``(height, width)`` of two positive integers; a ``ConfigError`` names the argument otherwise."""
    if len(size) != 2 or not all(isinstance(n, int | np.integer) and n >= 1 for n in size):
        raise ConfigError(f"{name} must be (height, width), two positive integers, got {size!r}")
    return int(size[0]), int(size[1])


# ----------------------------------------------------------------------------------------------- targets


def wrap_uint8(values: np.ndarray) -> np.ndarray:
    """The port's ``np.uint8`` cast of crop coordinates (``dataset.py``): truncate toward zero, wrap modulo 256.

    Examples: 49.92 → 49, -0.38 → 0, -3.84 → 253, 256 → 0, 268.8 → 12. (NumPy leaves the cast of a float outside
    0 .. 255 to the C compiler; the fixture shows x86's truncate-then-keep-the-low-byte, which this reproduces.)

    Args:
        values: finite float array of any shape, crop pixels.

    Returns:
        int64 array of the same shape, in 0 .. 255.
    """
    return np.mod(np.trunc(np.asarray(values, dtype=np.float64)), UINT8_WRAP).astype(np.int64)


def gaussian_kernel(kernel_length: int = 3, sigma: float = 1.0) -> np.ndarray:
    """The port's target kernel (``heatmap.py``, ``gaussian_kernel``): a Gaussian normalised to sum 1.

    Tap ``(i, j)`` for offsets ``-r .. r`` (``r = kernel_length // 2``) is ``exp(-0.5 (i² + j²) / σ²)``, divided by
    the sum of all taps; computed in the port's order of operations, so the float64 values are the port's.

    Args:
        kernel_length: odd side length in heatmap pixels.
        sigma: standard deviation in heatmap pixels.

    Returns:
        (kernel_length, kernel_length) float64 kernel; rows are vertical offsets.
    """
    if not isinstance(kernel_length, int | np.integer) or kernel_length < 1 or kernel_length % 2 == 0:
        raise ConfigError(
            f"kernel_length must be a positive odd integer (the TF port asserts it), got {kernel_length!r}"
        )
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"sigma must be a positive finite number of heatmap pixels, got {sigma!r}")
    radius = kernel_length // 2
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (np.square(offsets)[None, :] + np.square(offsets)[:, None]) / np.square(sigma))
    return kernel / np.sum(kernel)


def encode_tf_port(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    heatmap_size: tuple[int, int],
    kernel_length: int = 3,
    sigma: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The port's targets, bit for bit: ``dataset.py``'s uint8 cast, then ``heatmap.py``'s
    ``calculate_groundtruth_heatmap``.

    Each keypoint's coordinates are truncated toward zero and wrapped modulo 256 (``wrap_uint8``), then
    ``gaussian_kernel(kernel_length, sigma)`` is placed with its center on (row, column) = (y, x). Taps that fall
    off the map are dropped and the rest are not renormalised (a corner keypoint carries 0.527 with the default
    kernel). There is no sub-pixel placement. Only unlabelled keypoints (visibility 0, the port's class 3) are
    skipped; occluded ones are drawn.

    The port's map is 256×192; this one takes ``heatmap_size`` but keeps the modulo-256 wrap, because the port
    stores coordinates as uint8 whatever the map's size: a keypoint just left of the crop lands at column 253
    (drawn if the map is wide enough), one at x = 268.8 at column 12, and rows or columns ≥ 256 of a larger map
    are never reached.

    Target weights (the port has none; its loss sums squared differences over every map, which ``HeatmapLoss``
    reproduces with ``"sum_squared"`` and ``use_target_weight=False``): 1 when the keypoint is drawn and at least
    one tap lands on the map; 0 when it is unlabelled, not finite (the port's cast of NaN is undefined; nothing is
    drawn), or its whole kernel falls off the map (the map stays empty, as in the port). This matches the
    official Gaussian codec's rule, so weighted losses and metrics treat such keypoints alike.

    Args:
        keypoints: (K, 2) keypoints ``(x, y)`` in crop pixels (``stretch_points``), floats.
        visibility: (K,) COCO visibility (0 unlabelled, 1 occluded, 2 visible).
        heatmap_size: ``(height, width)`` of the heatmaps; the port's is (256, 192).
        kernel_length: odd side of the Gaussian kernel in heatmap pixels (the port's default 3).
        sigma: the kernel's standard deviation in heatmap pixels (the port's default 1).

    Returns:
        heatmaps (K, H, W) float32 and target weights (K,) float32.
    """
    height, width = _check_size("heatmap_size", heatmap_size)
    kernel = gaussian_kernel(kernel_length, sigma).astype(np.float32)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    visibility = np.asarray(visibility)
    if keypoints.ndim != 2 or keypoints.shape[1] != 2 or visibility.shape != keypoints.shape[:1]:
        raise DataError(f"keypoints must be (K, 2) and visibility (K,), got {keypoints.shape} and {visibility.shape}")
    drawn = (visibility > 0) & np.isfinite(keypoints).all(axis=1)
    cells = wrap_uint8(np.where(drawn[:, None], keypoints, 0.0))
    radius = kernel_length // 2
    offsets = np.arange(-radius, radius + 1)
    rows = cells[:, 1, None, None] + offsets[None, :, None]  # (K, L, 1)
    cols = cells[:, 0, None, None] + offsets[None, None, :]  # (K, 1, L)
    on_map = drawn[:, None, None] & (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)  # (K, L, L)
    index, tap_row, tap_col = np.nonzero(on_map)
    heatmaps = np.zeros((len(keypoints), height, width), dtype=np.float32)
    # One keypoint per map, so each pixel receives at most one tap: setting equals the port's +=.
    heatmaps[index, rows[index, tap_row, 0], cols[index, 0, tap_col]] = kernel[tap_row, tap_col]
    weights = on_map.any(axis=(1, 2)).astype(np.float32)
    return heatmaps, weights


# ----------------------------------------------------------------------------------------------- decoding


def decode_tf_port(heatmaps: np.ndarray, threshold: float = 0.001) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The port's decoding (``heatmap.py``, ``decode_output``): the integer argmax of every map.

    The peak is the first maximum in row-major order. A keypoint is detected when its peak is strictly above
    ``threshold``, compared in float64 as NumPy 1.x compared the port's float32 peak with a Python float (so a
    float32 peak of 0.001 counts as detected against 0.001). Undetected keypoints get coordinates (0, 0), as in
    the port, which marks them class 3. No sub-pixel refinement.

    The port turns the flat index into row and column with a hard-coded 192; for 192-wide maps the results are
    the port's, for other widths this uses the map's own width (the port's positions there would be wrong).

    Args:
        heatmaps: (N, K, H, W) heatmaps (the port's NHWC output transposed to NCHW).
        threshold: detection threshold on the peak value (the port's ``test.py`` uses 0.001).

    Returns:
        coordinates (N, K, 2) ``(x, y)`` float32 in heatmap pixels (= crop pixels), peak values (N, K) float32,
        and detected (N, K) bool.
    """
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim != 4 or heatmaps.shape[2] < 1 or heatmaps.shape[3] < 1:
        raise DataError(f"heatmaps must be (N, K, H, W) with H, W ≥ 1, got shape {heatmaps.shape}")
    n, k, _, width = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    index = flat.argmax(axis=2)
    peaks = np.take_along_axis(flat, index[..., None], axis=2)[..., 0]
    detected = peaks.astype(np.float64) > float(threshold)
    coords = np.stack([index % width, index // width], axis=-1) * detected[..., None]
    return coords.astype(np.float32), peaks.astype(np.float32), detected


# ----------------------------------------------------------------------------------------------- input


def scale_tf_port(crop: np.ndarray) -> np.ndarray:
    """The port's network input (``train.py`` and ``test.py``): ``uint8 / 255`` in float32, no mean or std.

    The layout is unchanged: transpose (H, W, 3) to (3, H, W) for the PyTorch network.

    Args:
        crop: uint8 crop of any shape, for example ``stretch_crop``'s (H, W, 3).

    Returns:
        float32 array of the same shape in [0, 1].
    """
    if crop.dtype != np.uint8:
        raise DataError(f"scale_tf_port takes the uint8 crop the TF port fed its network, got {crop.dtype}")
    return crop.astype(np.float32) / np.float32(255.0)
