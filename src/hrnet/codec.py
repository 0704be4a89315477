"""Keypoints ⇄ heatmaps: the targets a pose network learns and the decoding of what it predicts.

Coordinate spaces:

- *input-crop pixels*: the network input's pixel grid (after ``hrnet.crop.Crop.warp``);
- *heatmap pixels*: the heatmap grid. The official geometry puts heatmap pixel ``i`` at input pixel
  ``i * stride`` with ``stride = input / heatmap`` per axis; UDP (Huang et al., CVPR 2020) at
  ``i * (input - 1) / (heatmap - 1)``;
- *image pixels*: the original image, reached from heatmap pixels with the person's crop center and size
  (``hrnet.crop.Crop.heatmap_to_image``).

Encoders take one person's (K, 2) keypoints in input-crop pixels and (K,) COCO visibility and return (K, H, W)
float32 heatmaps and (K,) float32 target weights. Decoders take (N, K, H, W) NumPy heatmaps and are vectorised over
persons and keypoints. The flip test merges torch tensors on any device, before decoding. ``HeatmapCodec`` bundles
the settings with the crop whose geometry maps keypoints back to the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import get_args

import cv2
import numpy as np
import torch

from hrnet.config import DataConfig, DecodeMethod, ModelConfig, Target
from hrnet.crop import Crop, heatmap_to_image
from hrnet.errors import ConfigError
from hrnet.tf_port.pipeline import decode_tf_port, encode_tf_port

# The TensorFlow port's target: a 3×3 Gaussian kernel with σ = 1 input pixel, normalised to sum 1
# (hrnet.tf_port.pipeline.encode_tf_port).
TF_PORT_SIGMA = 1.0
# DARK takes the log of the modulated heatmap; values are floored here first (official DARK code).
DARK_LOG_FLOOR = 1e-10


# ----------------------------------------------------------------------------------------------- encoding


def encode_gaussian(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int],
    sigma: float = 2.0,
    subpixel: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmap targets, as the official ``JointsDataset.generate_target``.

    Each labelled keypoint gets an unnormalised Gaussian (peak 1, std ``sigma`` heatmap pixels) cut to the window
    of ±3σ about its rounded heatmap position. The weight is 0 when the keypoint is unlabelled, not finite, or the
    window misses the heatmap entirely (then the map stays empty); otherwise 1.

    Official rules reproduced: the heatmap position is rounded with ``int(x / stride + 0.5)``, which truncates
    towards zero (-0.75 becomes 0, not -1), and a window that only touches the map edge keeps weight 1 with an
    empty map. With a non-integer 3σ the official Gaussian sits one pixel off its position for keypoints left of
    or above the map (a truncation artefact); ours stays centered.

    Args:
        keypoints: (K, 2) keypoints ``(x, y)`` in input-crop pixels.
        visibility: (K,) COCO visibility (0 unlabelled).
        input_size: ``(height, width)`` of the input crop.
        heatmap_size: ``(height, width)`` of the heatmaps.
        sigma: Gaussian std in heatmap pixels.
        subpixel: center the Gaussian on the exact (unrounded) position, as DARK's unbiased encoding (Zhang et
            al., CVPR 2020); the window and the weight still follow the rounded position.

    Returns:
        heatmaps (K, H, W) float32 and target weights (K,) float32.
    """
    stride = np.array([input_size[1] / heatmap_size[1], input_size[0] / heatmap_size[0]])
    return _gaussian_targets(keypoints, visibility, stride, heatmap_size, sigma, subpixel)


def encode_udp(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int],
    sigma: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """UDP Gaussian targets (Huang et al., "The Devil is in the Details", CVPR 2020).

    As ``encode_gaussian`` but with the unbiased stride ``(input - 1) / (heatmap - 1)`` and the Gaussian centered
    on the exact sub-pixel position. Pair it with the UDP crop (``warp_crop(..., unbiased=True)``) and decode with
    ``unbiased=True``.

    Args and returns as ``encode_gaussian``.
    """
    stride = np.array([(input_size[1] - 1) / (heatmap_size[1] - 1), (input_size[0] - 1) / (heatmap_size[0] - 1)])
    return _gaussian_targets(keypoints, visibility, stride, heatmap_size, sigma, subpixel=True)


def _check_keypoints(keypoints: np.ndarray, visibility: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) float64 keypoints with non-finite ones zeroed, and the (K,) mask of labelled, finite keypoints."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    visibility = np.asarray(visibility)
    if keypoints.ndim != 2 or keypoints.shape[1] != 2 or visibility.shape != keypoints.shape[:1]:
        raise ValueError(f"keypoints must be (K, 2) and visibility (K,), got {keypoints.shape} and {visibility.shape}")
    finite = np.isfinite(keypoints).all(axis=1)
    return np.where(finite[:, None], keypoints, 0.0), finite & (visibility > 0)


def _gaussian_targets(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    stride: np.ndarray,
    heatmap_size: tuple[int, int],
    sigma: float,
    subpixel: bool,
) -> tuple[np.ndarray, np.ndarray]:
    keypoints, labelled = _check_keypoints(keypoints, visibility)
    height, width = heatmap_size
    exact = keypoints / stride
    rounded = np.trunc(exact + 0.5)  # official int(x + 0.5): truncation towards zero
    radius = 3 * sigma
    lower = np.trunc(rounded - radius)  # the window [lower, upper) as the official ul / br
    upper = np.trunc(rounded + radius + 1)
    touches = (lower[:, 0] < width) & (lower[:, 1] < height) & (upper[:, 0] >= 0) & (upper[:, 1] >= 0)
    weight = labelled & touches
    center = exact if subpixel else rounded
    gx = _window_gaussian(width, center[:, 0], lower[:, 0], upper[:, 0], sigma)
    gy = _window_gaussian(height, center[:, 1], lower[:, 1], upper[:, 1], sigma)
    heatmaps = gy[:, :, None] * gx[:, None, :] * weight[:, None, None]
    return heatmaps.astype(np.float32), weight.astype(np.float32)


def _window_gaussian(length: int, center: np.ndarray, lower: np.ndarray, upper: np.ndarray, sigma: float) -> np.ndarray:
    """(K, length) 1-D Gaussians ``exp(-(i - center)² / 2σ²)``, zero outside ``lower <= i < upper``."""
    grid = np.arange(length, dtype=np.float64)
    inside = (grid >= lower[:, None]) & (grid < upper[:, None])
    return np.exp(-((grid - center[:, None]) ** 2) / (2 * sigma**2)) * inside


# ----------------------------------------------------------------------------------------------- decoding


def get_max_preds(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The peak of every heatmap, as the official ``get_max_preds``.

    Ties go to the first maximum in row-major order. Where the peak is ≤ 0 the coordinates are set to (0, 0)
    (an official rule: such a keypoint counts as not found).

    Args:
        heatmaps: (N, K, H, W) heatmaps.

    Returns:
        coordinates (N, K, 2) ``(x, y)`` float32 in heatmap pixels, and peak values (N, K) (the official code
        returns them as (N, K, 1)).
    """
    n, k, _, width = _check_heatmaps(heatmaps)
    flat = heatmaps.reshape(n, k, -1)
    index = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, index[..., None], axis=2)[..., 0]
    coords = np.stack([index % width, index // width], axis=-1).astype(np.float32)
    coords *= (maxvals > 0)[..., None]
    return coords, maxvals


def _quarter_offset(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Move each argmax a quarter pixel towards its higher neighbour, per axis (official ``POST_PROCESS``).

    Official rules reproduced: the offset applies only when ``1 < x < W - 1`` and ``1 < y < H - 1`` (so a peak in
    column 1 or row 1 is left alone although it has neighbours on both sides), and its sign is that of the
    neighbour difference (0 when the neighbours are equal). Coordinates are heatmap pixels.
    """
    _, _, height, width = heatmaps.shape
    x = np.floor(coords[..., 0] + 0.5).astype(np.intp)
    y = np.floor(coords[..., 1] + 0.5).astype(np.intp)
    inside = (x > 1) & (x < width - 1) & (y > 1) & (y < height - 1)
    at = _neighbours(heatmaps, np.where(inside, y * width + x, 0), [(1, 0), (-1, 0), (0, 1), (0, -1)])
    diff = np.stack([at(1, 0) - at(-1, 0), at(0, 1) - at(0, -1)], axis=-1)
    return (coords + np.sign(diff).astype(np.float32) * np.float32(0.25) * inside[..., None]).astype(np.float32)


def dark_modulate(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK's distribution modulation: a Gaussian blur that keeps each map's maximum (Zhang et al.,
    "Distribution-Aware Coordinate Representation for Human Pose Estimation", CVPR 2020; official
    ``gaussian_blur``).

    Each map is blurred with OpenCV's ``kernel × kernel`` Gaussian (σ from OpenCV's rule for the size; zero
    outside the map), then rescaled so that its maximum equals the original's. A map whose blurred maximum is 0
    stays 0 (the official code divides by it).

    Args:
        heatmaps: (N, K, H, W) heatmaps.
        kernel: odd blur size in heatmap pixels (11 for σ = 2 at ¼ resolution, 17 for σ = 3).

    Returns:
        (N, K, H, W) float64 modulated heatmaps.
    """
    n, k, height, width = _check_heatmaps(heatmaps)
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"the DARK blur kernel must be a positive odd size, got {kernel}")
    border = (kernel - 1) // 2
    # Maps stacked vertically, each inside its own zero border as wide as the kernel's radius: one OpenCV call
    # blurs them all, and no map's blur reaches into its neighbour's.
    padded = np.pad(heatmaps.astype(np.float64), ((0, 0), (0, 0), (border, border), (border, border)))
    stacked = padded.reshape(n * k * (height + 2 * border), width + 2 * border)
    blurred = cv2.GaussianBlur(stacked, (kernel, kernel), 0, borderType=cv2.BORDER_CONSTANT)
    blurred = blurred.reshape(padded.shape)[:, :, border : border + height, border : border + width]
    original_max = heatmaps.max(axis=(2, 3)).astype(np.float64)
    blurred_max = blurred.max(axis=(2, 3))
    factor = np.divide(original_max, blurred_max, out=np.zeros_like(blurred_max), where=blurred_max != 0)
    return blurred * factor[..., None, None]


def dark_refine(heatmaps: np.ndarray, coords: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK's sub-pixel refinement (Zhang et al., CVPR 2020; official ``taylor``).

    The modulated heatmap's log is expanded to second order at the argmax; the keypoint moves to the extremum of
    that expansion, ``-H⁻¹ ∇``. The derivatives are central differences (the second ones over two pixels), so
    the expansion applies only when ``1 < x < W - 2`` and ``1 < y < H - 2`` and the Hessian is not singular.

    Args:
        heatmaps: (N, K, H, W) heatmaps.
        coords: (N, K, 2) integer argmax coordinates in heatmap pixels (from ``get_max_preds``).
        kernel: blur size of ``dark_modulate``.

    Returns:
        (N, K, 2) float64 coordinates in heatmap pixels.
    """
    _, _, height, width = _check_heatmaps(heatmaps)
    log_maps = np.log(np.maximum(dark_modulate(heatmaps, kernel), DARK_LOG_FLOOR))
    x = coords[..., 0].astype(np.intp)
    y = coords[..., 1].astype(np.intp)
    inside = (x > 1) & (x < width - 2) & (y > 1) & (y < height - 2)
    around = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3) if abs(dx) + abs(dy) <= 2]
    at = _neighbours(log_maps, np.where(inside, y * width + x, 0), around)
    dx = 0.5 * (at(1, 0) - at(-1, 0))
    dy = 0.5 * (at(0, 1) - at(0, -1))
    dxx = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    dyy = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    solvable = inside & (det != 0)
    det = np.where(solvable, det, 1.0)
    offset = np.stack([dxy * dy - dyy * dx, dxy * dx - dxx * dy], axis=-1) / det[..., None]
    return coords + offset * solvable[..., None]


def _neighbours(
    heatmaps: np.ndarray, center: np.ndarray, offsets: Sequence[tuple[int, int]]
) -> Callable[[int, int], np.ndarray]:
    """``at(dx, dy)``: the (N, K) pixels ``center + dy * W + dx`` of every (N, K, H, W) map, for the ``offsets``
    given (read in one go). Indices are clipped into the map (callers mask out the keypoints whose neighbourhood
    leaves it)."""
    _, _, height, width = heatmaps.shape
    column = {offset: j for j, offset in enumerate(offsets)}
    steps = np.array([dy * width + dx for dx, dy in offsets])
    flat = heatmaps.reshape(*heatmaps.shape[:2], -1)
    values = np.take_along_axis(flat, np.clip(center[..., None] + steps, 0, height * width - 1), axis=-1)
    return lambda dx, dy: values[..., column[dx, dy]]


def decode(
    heatmaps: np.ndarray,
    centers: np.ndarray,
    sizes: np.ndarray,
    *,
    method: str = "argmax",
    post_process: bool = True,
    unbiased: bool = False,
    blur_kernel: int = 11,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints in image pixels from heatmaps (the flip test's: merged first, ``merge_flip``), as the official
    ``get_final_preds``.

    Args:
        heatmaps: (N, K, H, W) heatmaps.
        centers: (N, 2) crop centers, image pixels.
        sizes: (N, 2) crop sizes ``(w, h)``, image pixels (official ``scale × 200``).
        method: "argmax" (official) or "dark" (DARK's Taylor refinement, ``dark_refine``).
        post_process: the official quarter-pixel offset (argmax only).
        unbiased: map back with the UDP geometry, for heatmaps trained on UDP targets (``encode_udp``).
        blur_kernel: DARK's blur size.

    Returns:
        keypoints (N, K, 2) float32 in image pixels and scores (N, K), the raw peaks in the heatmaps' dtype.
    """
    n, _, height, width = _check_heatmaps(heatmaps)
    centers, sizes = _check_regions(n, centers, sizes)
    coords, scores = decode_peaks(heatmaps, method=method, post_process=post_process, blur_kernel=blur_kernel)
    keypoints = heatmap_to_image(coords, centers, sizes, (height, width), unbiased=unbiased)
    return keypoints.astype(np.float32), scores


def decode_peaks(
    heatmaps: np.ndarray,
    *,
    method: str = "argmax",
    post_process: bool = True,
    blur_kernel: int = 11,
    threshold: float = 0.001,
) -> tuple[np.ndarray, np.ndarray]:
    """The keypoint of every heatmap, in heatmap pixels: ``decode`` before the crop's map back to the image.

    Args:
        heatmaps: (N, K, H, W) heatmaps.
        method: "argmax", "dark" or "tf_port" (the TF port's integer argmax, ``tf_port.pipeline.decode_tf_port``).
        post_process, blur_kernel: as ``decode``.
        threshold: "tf_port" only: a map whose peak is not above it gives (0, 0), the port's undetected keypoint.

    Returns:
        coordinates (N, K, 2) ``(x, y)`` in heatmap pixels and scores (N, K), the peak values.
    """
    if method not in get_args(DecodeMethod):
        raise ConfigError(f"decode method must be one of {list(get_args(DecodeMethod))}, got {method!r}")
    _check_heatmaps(heatmaps)
    if method == "tf_port":
        coords, scores, _ = decode_tf_port(heatmaps, threshold)
        return coords, scores
    coords, scores = get_max_preds(heatmaps)
    if method == "dark":
        return dark_refine(heatmaps, coords, blur_kernel), scores
    if post_process:
        return _quarter_offset(heatmaps, coords), scores
    return coords, scores


def _check_regions(n: int, centers: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) float64 crop centers and sizes of ``n`` persons, or a ``ValueError``."""
    centers = np.asarray(centers, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    if centers.shape != (n, 2) or sizes.shape != (n, 2):
        raise ValueError(f"centers and sizes must be ({n}, 2) for {n} persons, got {centers.shape}, {sizes.shape}")
    return centers, sizes


def _check_heatmaps(heatmaps: np.ndarray) -> tuple[int, int, int, int]:
    if not isinstance(heatmaps, np.ndarray):
        raise ValueError(f"heatmaps must be a NumPy array (N, K, H, W), got a {type(heatmaps).__name__}")
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be a NumPy array (N, K, H, W), got shape {heatmaps.shape}")
    n, k, height, width = heatmaps.shape
    return n, k, height, width


# ----------------------------------------------------------------------------------------------- flip test


def _check_flip_inputs(
    flip_index: Sequence[int], shape: tuple[int, ...], flipped_shape: tuple[int, ...] | None = None
) -> None:
    """A flip index with one entry a channel of the (N, K, H, W) ``shape``; the flipped heatmaps, when given, of
    the same shape."""
    if flipped_shape is not None and shape != flipped_shape:
        raise ValueError(f"heatmaps {shape} and flipped heatmaps {flipped_shape} differ in shape")
    if len(flip_index) != shape[1]:
        raise ConfigError(
            f"flip_index has {len(flip_index)} entries but the heatmaps have {shape[1]} channels: "
            "the keypoint set must match model.num_keypoints"
        )


def flip_heatmaps(heatmaps: torch.Tensor, flip_index: Sequence[int]) -> torch.Tensor:
    """Heatmaps of a mirrored input brought back to the original's frame, as the official ``flip_back``.

    The width is reversed and every keypoint channel takes its mirror partner's map. Applying it twice gives
    the input back.

    Args:
        heatmaps: (N, K, H, W) heatmaps, any device.
        flip_index: the permutation ``KeypointSet.flip_index`` (length K).

    Returns:
        (N, K, H, W) heatmaps, a new tensor.
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, H, W), got {tuple(heatmaps.shape)}")
    _check_flip_inputs(flip_index, tuple(heatmaps.shape))
    index = torch.as_tensor(list(flip_index), dtype=torch.long, device=heatmaps.device)
    return heatmaps.flip(-1).index_select(1, index)


def merge_flip(
    heatmaps: torch.Tensor, flipped_heatmaps: torch.Tensor, flip_index: Sequence[int], shift: bool = True
) -> torch.Tensor:
    """The flip test: average the heatmaps with those of the mirrored input (official ``validate``).

    With ``shift`` (official ``SHIFT_HEATMAP``) the mirrored heatmaps move one pixel right before averaging,
    column 0 keeping its own value (an official rule): in the official geometry, reversing the heatmap's width
    misplaces it by ``1 - 1 / stride`` pixels. UDP's geometry makes the reversal exact: use ``shift=False``.

    Args:
        heatmaps: (N, K, H, W) heatmaps of the input.
        flipped_heatmaps: (N, K, H, W) heatmaps of the horizontally mirrored input, as the network gave them.
        flip_index: the permutation ``KeypointSet.flip_index``.
        shift: shift the mirrored heatmaps one pixel right.

    Returns:
        (N, K, H, W) merged heatmaps.
    """
    _check_flip_inputs(flip_index, tuple(heatmaps.shape), tuple(flipped_heatmaps.shape))
    back = flip_heatmaps(flipped_heatmaps, flip_index)
    if shift:
        back = torch.cat([back[..., :1], back[..., :-1]], dim=-1)
    return (heatmaps + back) * 0.5


# ----------------------------------------------------------------------------------------------- front door


@dataclass(frozen=True)
class HeatmapCodec:
    """One heatmap convention: how targets are made and how predictions are read back to the image.

    ``kind`` is "gaussian" (official), "udp" (Huang et al. 2020; needs the crop's UDP geometry) or "tf_port"
    (full-resolution normalised 3×3 targets; ``heatmap_size`` must equal the input size and ``sigma`` is fixed at
    the port's 1 pixel). ``crop`` maps keypoints between the image and the input crop.
    """

    crop: Crop  # the crop the heatmaps were predicted for: input size and geometry
    heatmap_size: tuple[int, int]  # (height, width) of the heatmaps
    sigma: float = 2.0  # Gaussian std in heatmap pixels ("gaussian", "udp")
    kind: str = "gaussian"

    def __post_init__(self) -> None:
        if self.kind not in get_args(Target):
            raise ConfigError(f"heatmap codec kind must be one of {list(get_args(Target))}, got {self.kind!r}")
        if min(self.heatmap_size) < 2 or self.sigma <= 0:
            raise ConfigError(
                f"heatmap codec needs heatmaps of at least 2 pixels and a positive sigma, got heatmap "
                f"{self.heatmap_size}, sigma {self.sigma}"
            )
        if self.kind == "tf_port" and tuple(self.heatmap_size) != tuple(self.input_size):
            raise ConfigError(
                f"the tf_port codec makes targets at input resolution: heatmap_size {self.heatmap_size} must equal "
                f"input_size {self.input_size}"
            )
        if (self.kind == "udp") != self.crop.unbiased:
            raise ConfigError(
                f"the {self.kind} codec needs the {'UDP' if self.kind == 'udp' else 'official'} crop geometry: "
                f"build the crop with unbiased={self.kind == 'udp'}"
            )

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the input crop."""
        return self.crop.input_size

    @property
    def blur_kernel(self) -> int:
        """DARK's blur size for this σ: 2·round(3σ) − 1 (11 for σ = 2, 17 for σ = 3, as in the DARK configs)."""
        sigma = TF_PORT_SIGMA if self.kind == "tf_port" else self.sigma
        return 2 * math.floor(3 * sigma + 0.5) - 1

    def encode(self, keypoints: np.ndarray, visibility: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 2) keypoints in input-crop pixels and (K,) COCO visibility → heatmaps (K, H, W) float32 and
        target weights (K,) float32."""
        if self.kind == "udp":
            return encode_udp(keypoints, visibility, self.input_size, self.heatmap_size, self.sigma)
        if self.kind == "tf_port":
            return encode_tf_port(keypoints, visibility, self.heatmap_size)
        return encode_gaussian(keypoints, visibility, self.input_size, self.heatmap_size, self.sigma)

    def decode(
        self,
        heatmaps: np.ndarray,
        centers: np.ndarray,
        sizes: np.ndarray,
        method: str = "argmax",
        post_process: bool = True,
        threshold: float = 0.001,
        blur_kernel: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, H, W) heatmaps (flip test: merged first) and (N, 2) crop centers and sizes in image pixels →
        keypoints (N, K, 2) float32 in image pixels (through the crop's geometry) and scores (N, K); see
        ``decode_peaks``. ``blur_kernel``: DARK's blur size (``test.dark_blur_kernel``); 0 for this σ's
        (``self.blur_kernel``)."""
        if tuple(heatmaps.shape[-2:]) != tuple(self.heatmap_size):
            raise ValueError(f"heatmaps are {tuple(heatmaps.shape[-2:])}, the codec expects {self.heatmap_size}")
        centers, sizes = _check_regions(len(heatmaps), centers, sizes)
        coords, scores = decode_peaks(
            heatmaps,
            method=method,
            post_process=post_process,
            blur_kernel=blur_kernel or self.blur_kernel,
            threshold=threshold,
        )
        keypoints = self.crop.heatmap_to_image(coords, centers, sizes, self.heatmap_size)
        return keypoints.astype(np.float32), scores


def codec_from_config(model: ModelConfig, data: DataConfig, *, float32_regions: bool = True) -> HeatmapCodec:
    """The codec of an experiment: its crop (``Crop.from_config``), the model's heatmap size, the data's target
    kind and σ."""
    sigma = TF_PORT_SIGMA if data.target == "tf_port" else data.sigma
    crop = Crop.from_config(model, data, float32_regions=float32_regions)
    return HeatmapCodec(crop, model.heatmap_size, sigma, data.target)
