"""The top-down crop: person box → crop region → affine map → network input, and back.

One object, ``Crop``, knows the input size, the box padding, the geometry and the pixel normalisation; the data
set, the codec and ``PoseEstimator`` all crop through it, so training, evaluation and inference cut the same
pixels and map keypoints with the same arithmetic.

A person box is ``(x, y, w, h)`` in image pixels (COCO). A crop region is a center ``(x, y)`` and a size
``(w, h)`` in image pixels (the official code's ``scale`` times 200). Sizes of images, inputs and heatmaps are
``(height, width)``. Pixel centers sit at integer coordinates, x to the right, y down.

Three geometries are offered:

- the official one (leoxiaobin/deep-high-resolution-net.pytorch, ``lib/utils/transforms.py``): the region's width
  spans the output's width, ``x_out = (x - cx) * W_out / w + W_out / 2``; its height follows the output's aspect
  ratio (only the region's width sets the scale);
- the unbiased one of UDP (Huang et al., "The Devil is in the Details: Delving into Unbiased Data Processing for
  Human Pose Estimation", CVPR 2020): pixel spacing ``size - 1``, so the region ``[c - s / 2, c + s / 2]`` lands on
  ``[0, W_out - 1]`` exactly and a horizontal flip of the output is an exact flip of the region;
- the TF port's box stretch (VXallset/deep-high-resolution-net.TensorFlow, ``src/dataset.py``): the exact person
  box, no margin, stretched to the input without keeping its aspect ratio (``hrnet.tf_port.pipeline``). The
  readers' boxes end on their last pixel (the official cleaning), the port's slice excludes its end: the stretched
  box is ``x .. x + w`` inclusive, i.e. ``(x, y, x + w + 1, y + h + 1)`` rounded to whole pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

import cv2
import numpy as np
import torch

from hrnet.config import DataConfig, ModelConfig, Pixels
from hrnet.tf_port.pipeline import scale_tf_port, stretch_crop, stretch_points, unstretch_points

PIXEL_STD = 200.0  # the official "scale" unit: a region's size is scale × 200 pixels
# ImageNet statistics, as the official transforms.Normalize (RGB order, on [0, 1] pixels).
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class Crop:
    """How a person becomes a network input: the region around its box, the warp, the pixel normalisation.

    Attributes:
        input_size: ``(height, width)`` of the network input.
        padding: the box, fixed to the input's aspect ratio, is enlarged by this (official 1.25).
        unbiased: the UDP geometry (for UDP targets) instead of the official one.
        float32_regions: round regions to float32 as the official COCO reader does (``box_to_center_size``);
            False keeps them in float64, as the official MPII reader does.
        stretch: the TF port's box stretch instead of an affine warp (no padding, no rotation).
        pixels: network input from crop pixels: "imagenet" (mean and std, official) or "unit" (uint8 / 255, the
            TF port).
    """

    input_size: tuple[int, int]
    padding: float = 1.25
    unbiased: bool = False
    float32_regions: bool = True
    stretch: bool = False
    pixels: str = "imagenet"

    def __post_init__(self) -> None:
        if min(self.input_size) < 2 or self.padding <= 0:
            raise ValueError(f"a crop needs an input of at least 2×2 pixels and a positive padding, got {self}")
        if self.stretch and self.unbiased:
            raise ValueError("the TF port's stretch has no UDP variant: pick stretch or unbiased")
        if self.pixels not in get_args(Pixels):
            raise ValueError(f"pixels must be one of {list(get_args(Pixels))}, got {self.pixels!r}")

    @classmethod
    def from_config(cls, model: ModelConfig, data: DataConfig, *, float32_regions: bool = True) -> Crop:
        """The crop of an experiment: the model's input size, the data's box padding; UDP targets need the UDP
        geometry (the one place where that is decided). ``float32_regions`` comes with the data format
        (``hrnet.data.sources.FORMATS``)."""
        return cls(
            (model.input_size[0], model.input_size[1]),
            data.box_padding,
            unbiased=data.target == "udp",
            float32_regions=float32_regions,
            stretch=data.crop == "stretch",
            pixels=data.pixels,
        )

    def regions(self, boxes: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Crop centers and sizes ``(w, h)`` of (4,) or (N, 4) person boxes ``(x, y, w, h)``
        (``box_to_center_size``; with ``stretch`` the box itself, one pixel wider and taller: module docstring)."""
        if not self.stretch:
            return box_to_center_size(boxes, self.input_size, self.padding, float32=self.float32_regions)
        boxes = _check_boxes(boxes)
        sizes = boxes[..., 2:] + 1.0
        return boxes[..., :2] + sizes / 2, sizes

    def _stretch_box(self, center: ArrayLike, size: ArrayLike) -> tuple[float, float, float, float]:
        """The whole-pixel box ``(x1, y1, x2, y2)`` (ends excluded) that a stretch region stands for, clipped to
        start inside the image."""
        center, size = np.asarray(center, dtype=np.float64), np.asarray(size, dtype=np.float64)
        x1, y1 = np.maximum(np.round(center - size / 2), 0.0)
        x2, y2 = np.round(center + size / 2)
        return float(x1), float(y1), float(x2), float(y2)

    def matrix(
        self, center: ArrayLike, size: ArrayLike, rotation: ArrayLike = 0.0, *, inverse: bool = False
    ) -> np.ndarray:
        """(2, 3) (or (..., 2, 3)) affine map image pixels → input pixels (the reverse with ``inverse``)."""
        return get_affine_transform(center, size, rotation, self.input_size, inverse=inverse, unbiased=self.unbiased)

    def warp(self, image: np.ndarray, center: ArrayLike, size: ArrayLike, rotation: float = 0.0) -> np.ndarray:
        """The (height, width[, C]) crop of the (rotated) region, of the image's dtype (``warp_crop``; with
        ``stretch`` the port's ``stretch_crop`` of an (H, W, 3) uint8 image)."""
        if self.stretch:
            self._no_rotation(rotation)
            return stretch_crop(image, self._stretch_box(center, size), self.input_size)
        return warp_crop(image, center, size, rotation, self.input_size, unbiased=self.unbiased)

    def to_input(self, points: np.ndarray, center: ArrayLike, size: ArrayLike, rotation: float = 0.0) -> np.ndarray:
        """(..., 2) points in image pixels → float64 input-crop pixels of the region."""
        if self.stretch:
            self._no_rotation(rotation)
            return stretch_points(points, self._stretch_box(center, size), self.input_size)
        return affine_points(points, self.matrix(center, size, rotation))

    @staticmethod
    def _no_rotation(rotation: float) -> None:
        if rotation:
            raise ValueError(f"the TF port's stretch crop cannot rotate (got {rotation} degrees)")

    def heatmap_to_image(
        self, coords: np.ndarray, centers: np.ndarray, sizes: np.ndarray, heatmap_size: tuple[int, int]
    ) -> np.ndarray:
        """(N, K, 2) heatmap pixels of N persons → (N, K, 2) float64 image pixels (``heatmap_to_image``; with
        ``stretch`` the inverse of the port's stretch, ``tf_port_pipeline.unstretch_points``)."""
        if not self.stretch:
            return heatmap_to_image(coords, centers, sizes, heatmap_size, unbiased=self.unbiased)
        points = self.heatmap_to_input(coords, heatmap_size)
        out = np.empty_like(points)
        for i, (center, size) in enumerate(zip(centers, sizes, strict=True)):
            out[i] = unstretch_points(points[i], self._stretch_box(center, size), self.input_size)
        return out

    def heatmap_to_input(self, coords: np.ndarray, heatmap_size: tuple[int, int]) -> np.ndarray:
        """(..., 2) heatmap pixels → input-crop pixels: ``i × input / heatmap`` per axis in the official
        geometry (and the stretch), ``i × (input − 1) / (heatmap − 1)`` in UDP's."""
        (in_h, in_w), (hm_h, hm_w) = self.input_size, heatmap_size
        if self.unbiased:
            step = np.array([(in_w - 1) / (hm_w - 1), (in_h - 1) / (hm_h - 1)])
        else:
            step = np.array([in_w / hm_w, in_h / hm_h])
        return np.asarray(coords, dtype=np.float64) * step

    def to_tensor(self, crop: np.ndarray) -> torch.Tensor:
        """(H, W, 3) RGB uint8 crop → (3, H, W) float32 network input (``to_array``)."""
        return torch.from_numpy(self.to_array(crop))

    def to_array(self, crop: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) RGB uint8 crop → (3, H, W) float32 network input, written into ``out`` when given (one crop's
        place in a batch): normalised with the ImageNet mean and std, ``(x / 255 - mean) / std`` in float32 as
        the official ``ToTensor`` and ``Normalize``, or with ``pixels="unit"`` the port's ``uint8 / 255``."""
        out = np.empty((3, *crop.shape[:2]), dtype=np.float32) if out is None else out
        if self.pixels == "unit":
            out[...] = scale_tf_port(crop).transpose(2, 0, 1)
            return out
        # A plane at a time, because a crop's planes are contiguous and its channels interleaved: the same float32
        # operations in the same order as on the (H, W, 3) crop, so the same bits.
        for channel in range(3):
            plane = out[channel]
            np.divide(crop[..., channel], np.float32(255.0), out=plane, dtype=np.float32)
            plane -= MEAN[channel]
            plane /= STD[channel]
        return out

    def to_image(self, tensor: np.ndarray | torch.Tensor) -> np.ndarray:
        """(3, H, W) network input → (H, W, 3) RGB uint8 (``to_tensor`` undone, for drawing)."""
        array = tensor.numpy(force=True) if isinstance(tensor, torch.Tensor) else np.asarray(tensor)
        rgb = array.transpose(1, 2, 0)
        if self.pixels != "unit":
            rgb = rgb * STD + MEAN
        return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


ArrayLike = np.ndarray | Sequence[float] | float


def box_to_center_size(
    boxes: np.ndarray | Sequence[float], input_size: tuple[int, int], padding: float = 1.25, float32: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Crop regions for person boxes, rounded as the official ``COCODataset._xywh2cs`` and
    ``get_affine_transform`` round them.

    The box is widened or heightened about its center to the input's aspect ratio, then enlarged by ``padding``.
    The official COCO reader keeps the center and the scale (size / 200) in float32, enlarges the float32 scale
    there and ``get_affine_transform`` multiplies it by 200 in float32 again; with ``float32`` the same roundings
    are made here, so crops, decoded keypoints and the OKS-NMS areas equal the official ones bit for bit (float64
    arithmetic moves keypoints by up to ~1e-4 px). ``float32=False`` computes in float64, as the official MPII
    reader does.

    Args:
        boxes: (4,) or (N, 4) boxes ``(x, y, w, h)`` in image pixels.
        input_size: ``(height, width)`` of the network input.
        padding: enlargement of the aspect-fixed box (official 1.25).
        float32: the official COCO reader's float32 roundings.

    Returns:
        centers (2,) or (N, 2) and sizes ``(w, h)`` (2,) or (N, 2), image pixels, float64 arrays (holding float32
        values with ``float32``).
    """
    x, y, w, h = np.moveaxis(_check_boxes(boxes), -1, 0)
    aspect = input_size[1] / input_size[0]
    # The official code also skips the enlargement when the center's x is exactly -1 (a sentinel of another
    # code path); a real box centered there would get a crop 1.25× too small, so we do not reproduce it.
    width = np.where(w < aspect * h, h * aspect, w)
    height = np.where(w > aspect * h, w / aspect, h)
    centers = np.stack([x + w * 0.5, y + h * 0.5], axis=-1)
    if not float32:
        return centers, np.stack([width, height], axis=-1) * padding
    scales = (np.stack([width, height], axis=-1) / PIXEL_STD).astype(np.float32) * np.float32(padding)
    sizes = scales * np.float32(PIXEL_STD)
    return centers.astype(np.float32).astype(np.float64), sizes.astype(np.float64)


def _check_boxes(boxes: np.ndarray | Sequence[float]) -> np.ndarray:
    """(4,) or (N, 4) float64 boxes ``(x, y, w, h)``, or a ``ValueError``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape[-1:] != (4,) or boxes.ndim > 2:
        raise ValueError(f"boxes must have shape (4,) or (N, 4) as (x, y, w, h), got {boxes.shape}")
    return boxes


def get_affine_transform(
    center: ArrayLike,
    size: ArrayLike,
    rotation: ArrayLike,
    output_size: tuple[int, int],
    shift: ArrayLike = (0.0, 0.0),
    inverse: bool = False,
    unbiased: bool = False,
) -> np.ndarray:
    """The affine map from a (rotated) crop region of the image to an output grid (geometries: module docstring).

    Official geometry (official ``get_affine_transform``): the map is fixed by three point pairs rounded to float32,
    as the official code builds them, so the matrix equals the official one to float64 round-off; ``size[1]`` is
    not used. UDP geometry: each axis scales by ``(out - 1) / size`` on its own. The region is rotated by
    ``rotation`` degrees about its center, in the official direction (the image content turns counter-clockwise on
    screen for a positive angle), and moved by ``shift * size`` before mapping.

    Args:
        center: (..., 2) region centers ``(x, y)``, image pixels.
        size: (..., 2) region sizes ``(w, h)``, image pixels; must be positive.
        rotation: () or (...) degrees.
        output_size: ``(height, width)`` of the output grid (input crop or heatmap).
        shift: (..., 2) shift of the region as a fraction of its size.
        inverse: give the map from the output grid back to the image instead.
        unbiased: use the UDP geometry.

    Returns:
        (..., 2, 3) float64 matrices, image pixels → output pixels (or the reverse with ``inverse``).
    """
    center = np.asarray(center, dtype=np.float64)
    size = np.asarray(size, dtype=np.float64)
    rotation = np.asarray(rotation, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)
    if center.shape[-1:] != (2,) or size.shape[-1:] != (2,):
        raise ValueError(f"center and size must have shape (..., 2), got {center.shape} and {size.shape}")
    _check_sizes(size, unbiased)
    theta = np.deg2rad(rotation)
    region_center = center + size * shift
    out_h, out_w = output_size
    if unbiased:
        forward = _unbiased_matrix(region_center, size, theta, (out_w, out_h))
        return _invert_affine(forward) if inverse else forward

    half_width = size[..., 0] * 0.5
    # The point half a region width above the center, turned by the rotation.
    up = np.stack([half_width * np.sin(theta), -half_width * np.cos(theta)], axis=-1)
    src0 = region_center.astype(np.float32)
    src1 = (region_center + up).astype(np.float32)
    dst0 = np.array([out_w * 0.5, out_h * 0.5], dtype=np.float32)
    dst1 = dst0 + np.array([0.0, -out_w * 0.5], dtype=np.float32)
    src = np.stack(np.broadcast_arrays(src0, src1, _third_point(src0, src1)), axis=-2)
    dst = np.stack([dst0, dst1, _third_point(dst0, dst1)], axis=-2)
    dst = np.broadcast_to(dst, src.shape)
    if inverse:
        src, dst = dst, src
    return _solve_affine(src.astype(np.float64), dst.astype(np.float64))


def _check_sizes(sizes: np.ndarray, unbiased: bool) -> None:
    """Crop sizes ``(w, h)``: the official geometry scales by the width only, UDP by both."""
    if not np.all(sizes[..., 0] > 0) or (unbiased and not np.all(sizes > 0)):
        raise ValueError(f"crop sizes must be positive, got {sizes.tolist()}")


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b`` plus ``a - b`` turned by 90°, computed in float32 like the official ``get_3rd_point``."""
    d = a - b
    return b + np.stack([-d[..., 1], d[..., 0]], axis=-1)


def _solve_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(..., 2, 3) matrices mapping three (..., 3, 2) source points onto their destinations exactly."""
    homogeneous = np.concatenate([src, np.ones((*src.shape[:-1], 1))], axis=-1)
    return np.swapaxes(np.linalg.solve(homogeneous, dst), -1, -2)


def _unbiased_matrix(center: np.ndarray, size: np.ndarray, theta: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    scale = (np.asarray(out_wh, dtype=np.float64) - 1.0) / size
    cos, sin = np.cos(theta), np.sin(theta)
    rotation = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)
    linear = scale[..., :, None] * rotation
    offset = (np.asarray(out_wh, dtype=np.float64) - 1.0) / 2.0 - np.einsum("...ij,...j->...i", linear, center)
    return np.concatenate([linear, offset[..., None]], axis=-1)


def _invert_affine(matrix: np.ndarray) -> np.ndarray:
    linear = np.linalg.inv(matrix[..., :2])
    offset = -np.einsum("...ij,...j->...i", linear, matrix[..., 2])
    return np.concatenate([linear, offset[..., None]], axis=-1)


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply affine maps to points.

    Args:
        points: (..., 2) points ``(x, y)``; with batched matrices, (..., P, 2) where the leading dimensions
            broadcast against the matrices' and each matrix maps its P points.
        matrix: (2, 3) or (..., 2, 3) affine maps (e.g. from ``get_affine_transform``).

    Returns:
        float64 points of the same shape as ``points``, in the maps' output space.
    """
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    linear = np.swapaxes(matrix[..., :2], -1, -2)
    if matrix.ndim == 2:
        return points @ linear + matrix[:, 2]
    return points @ linear + matrix[..., None, :, 2]


def heatmap_to_image(
    coords: np.ndarray,
    centers: np.ndarray,
    sizes: np.ndarray,
    heatmap_size: tuple[int, int],
    unbiased: bool = False,
) -> np.ndarray:
    """Map heatmap coordinates of many persons back to image pixels at once (no rotation).

    Equals ``affine_points(coords, get_affine_transform(centers, sizes, 0, heatmap_size, inverse=True,
    unbiased=unbiased))`` to float64 round-off, and so the official ``transform_preds`` person by person, in closed
    form: without rotation each axis is a scale and an offset, cheaper than a 3 × 3 system per person.

    Args:
        coords: (N, K, 2) keypoints ``(x, y)`` in heatmap pixels.
        centers: (N, 2) crop centers, image pixels.
        sizes: (N, 2) crop sizes ``(w, h)``, image pixels.
        heatmap_size: ``(height, width)`` of the heatmaps.
        unbiased: the UDP geometry (as used to encode UDP targets).

    Returns:
        (N, K, 2) float64 keypoints in image pixels.
    """
    coords = np.asarray(coords, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    _check_sizes(sizes, unbiased)
    out_h, out_w = heatmap_size
    if unbiased:
        last = np.array([out_w, out_h], dtype=np.float64) - 1.0  # the last heatmap pixel, per axis
        step = sizes / last  # image pixels a heatmap pixel
        return (coords - last / 2) * step[:, None, :] + centers[:, None, :]
    # get_affine_transform's three points, rounded to float32 as it (and the official code) builds them: the
    # center, the point half a width above it, and the third point beside that one.
    center = centers.astype(np.float32)
    above = (centers - np.stack([np.zeros(len(sizes)), sizes[:, 0] * 0.5], axis=-1)).astype(np.float32)
    beside_x = above[:, 0] - (center[:, 1] - above[:, 1])  # float32, as _third_point
    half = out_w * 0.5  # heatmap pixels between the center and the point above it
    scale_x = (above[:, 0].astype(np.float64) - beside_x) / half
    scale_y = (center[:, 1].astype(np.float64) - above[:, 1]) / half
    x = (coords[..., 0] - half) * scale_x[:, None] + above[:, 0, None]
    y = (coords[..., 1] - (out_h * 0.5 - half)) * scale_y[:, None] + above[:, 1, None]
    return np.stack([x, y], axis=-1)


def warp_crop(
    image: np.ndarray,
    center: ArrayLike,
    size: ArrayLike,
    rotation: float,
    output_size: tuple[int, int],
    unbiased: bool = False,
) -> np.ndarray:
    """Cut the (rotated) region out of the image and resample it bilinearly to ``output_size``, outside the image
    black, as the official ``crop``.

    Args:
        image: (H, W) or (H, W, C) image.
        center: (2,) region center, image pixels.
        size: (2,) region size ``(w, h)``, image pixels.
        rotation: degrees, as in ``get_affine_transform``.
        output_size: ``(height, width)`` of the crop.
        unbiased: use the UDP geometry.

    Returns:
        the crop, (height, width[, C]), of the image's dtype.
    """
    matrix = get_affine_transform(center, size, rotation, output_size, unbiased=unbiased)
    height, width = output_size
    return cv2.warpAffine(image, matrix, (int(width), int(height)), flags=cv2.INTER_LINEAR)
