"""Skeletons drawn on images: limbs coloured by body side, keypoint dots, person boxes and track ids.

Images are (H, W, 3) uint8 arrays in the channel order the caller names (BGR by default, as OpenCV reads).
Keypoints are pixels in the image they are drawn on, with OpenCV's convention that integer coordinates are pixel
centres (as in the official HRNet code).
"""

from __future__ import annotations

import colorsys
import functools
import math
import re
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from hrnet.errors import DataError
from hrnet.io.images import Pixels, check_channel_order, check_image
from hrnet.keypoints import KeypointSet

# Hue ranges (degrees) per body side: warm for the left, cool for the right, greens for the center line, so a
# mirrored pose (a flip bug) is visible at a glance. Limbs of one side step through their range in skeleton order.
_SIDE_HUES = {"left": (350.0, 45.0), "right": (185.0, 245.0), "center": (95.0, 150.0)}
_DOT_COLOURS = {"left": (255, 140, 0), "right": (0, 150, 255), "center": (40, 200, 80)}
_BOX_COLOUR = (255, 255, 255)
_SHADOW_COLOUR = (0, 0, 0)
_SHIFT = 4  # OpenCV fixed-point bits: draw at 1/16 pixel so sub-pixel keypoints are not rounded
_COORD_LIMIT = 1e6  # far outside any image yet safely inside OpenCV's int32 fixed-point range


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
    pair = {sides[a], sides[b]} - {"center"}
    return pair.pop() if len(pair) == 1 else "center"


def limb_colours(keypoint_set: KeypointSet) -> list[tuple[int, int, int]]:
    """One RGB colour per skeleton limb: the set's own (its ``limb_colours``, e.g. COCO-WholeBody's for body, feet,
    face and each finger), else warm hues on the left side, cool on the right, green in the center."""
    if keypoint_set.limb_colours:
        return list(keypoint_set.limb_colours)
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
def _palette(keypoint_set: KeypointSet, channel_order: str) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """The limb colours and the dot colours of ``keypoint_set`` (RGB) in ``channel_order``, made once per set (a
    video draws every frame with them)."""
    step = -1 if channel_order == "bgr" else 1
    return [c[::step] for c in limb_colours(keypoint_set)], [c[::step] for c in keypoint_colours(keypoint_set)]


def draw_poses(
    image: npt.ArrayLike,
    keypoints: npt.ArrayLike,
    scores: npt.ArrayLike | None,
    keypoint_set: KeypointSet,
    threshold: float = 0.3,
    boxes: npt.ArrayLike | None = None,
    thickness: int | None = None,
    *,
    channel_order: str = "bgr",
    in_place: bool = False,
) -> Pixels:
    """Skeletons drawn on a copy of ``image`` (with ``in_place``: on ``image`` itself, when it is a contiguous
    (H, W, 3) uint8 array, as a video's frame that is not used after; the drawing is returned either way).

    ``image`` (H, W, 3) uint8 in ``channel_order`` ("bgr" or "rgb"; the colours are the same either way);
    ``keypoints`` (P, K, 2) pixels (x, y) in that image; ``scores`` (P, K) or
    None (draw everything). A keypoint whose score is below ``threshold`` or whose coordinates are not finite is
    hidden, and so is every limb that touches it; for ground truth pass ``scores = visibility > 0``. ``boxes``
    (B, 4) are person boxes (x, y, w, h) in pixels. ``thickness`` is the limb width in pixels (default: scaled
    with the image, see ``default_thickness``); dots have a radius of about 1.5 times that.
    """
    check_channel_order(channel_order)
    canvas = check_image(image, copy=not in_place)
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


class Pose(Protocol):
    """What ``draw_persons`` reads of a person (``hrnet.pose.persons.PersonPose``)."""

    @property
    def box(self) -> np.ndarray: ...
    @property
    def keypoints(self) -> np.ndarray: ...
    @property
    def scores(self) -> np.ndarray: ...


def draw_persons(
    image: np.ndarray,
    persons: Sequence[Pose],
    keypoint_set: KeypointSet,
    threshold: float = 0.3,
    track_ids: Sequence[int] | None = None,
    *,
    channel_order: str = "bgr",
    in_place: bool = False,
) -> np.ndarray:
    """The persons' skeletons and boxes (and track ids) drawn on a copy of an (H, W, 3) uint8 image in
    ``channel_order`` (with ``in_place``: on the image itself, as ``hrnet.drawing.skeletons.draw_poses``)."""
    check_channel_order(channel_order)
    if not persons:
        return image if in_place else image.copy()
    canvas = draw_poses(
        image,
        np.stack([p.keypoints for p in persons]),
        np.stack([p.scores for p in persons]),
        keypoint_set,
        threshold=threshold,
        boxes=np.stack([p.box for p in persons]),
        channel_order=channel_order,
        in_place=in_place,
    )
    if track_ids is not None:
        scale = max(0.4, min(canvas.shape[:2]) / 720)
        for p, track_id in zip(persons, track_ids, strict=True):
            label = f"id {track_id}"
            origin = _label_origin(label, p.box, scale, canvas.shape[:2])
            for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
                cv2.putText(canvas, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, width, cv2.LINE_AA)
    return canvas


def _label_origin(label: str, box: np.ndarray, scale: float, size: tuple[int, ...]) -> tuple[int, int]:
    """Where a track-id label starts (``putText``'s origin: the left end of its baseline) so that all of it lies in
    an image of ``size`` (height, width): just above the box's top-left corner, or just below the box's top edge
    when there is no room above; moved left when it would cross the right edge. ``box`` (x, y, w, h), pixels."""
    (width, height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 3)
    image_h, image_w = size[:2]
    x = min(int(box[0]) + 3, image_w - width)
    y = int(box[1]) - 4
    if y - height < 0:
        y = int(box[1]) + 4 + height
    return max(x, 0), max(min(y, image_h - 1 - baseline), height)
