"""From an image to its persons, the same way in every front end (``PoseEstimator``, ``hrnet predict``, videos,
``hrnet serve``): where the person boxes come from, which boxes can be used, the results as COCO keypoint JSON,
and the skeleton drawing.

Person boxes come from, in this order (``PersonBoxes``):

1. the caller: a boxes file, a request's boxes, the boxes a video carries from one frame to the next. They are
   checked (``check_boxes``) and a box that cannot be a person is an error that names it: not finite, under a
   pixel wide or high, wholly outside the image, or more than ``MAX_BOX_SCALE`` times the image's size;
2. the detector (persons, faces: ``hrnet.pose.detect.default_detector`` picks one by the keypoint set's task): its
   boxes go through the same rule, but a box that fails it is dropped, not an error (a detector's stray output is not
   the user's mistake), and at most ``max_boxes`` are kept, best first;
3. the whole image as one box: right for a photo cropped around one person (hand, face, ...), wrong for a group
   photo (the front ends say so once when this is what will happen: ``whole_image_note``).

The boxes hold persons for body keypoint sets and hands, faces or animals for theirs; ``instance_noun`` names them
in logs and on the served page. The Python names (``PersonPose``, ``Persons``) stay for every task.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hrnet.drawing.skeletons import draw_persons
from hrnet.errors import DataError
from hrnet.keypoints import KeypointSet
from hrnet.metrics.coco import keypoint_results
from hrnet.pose.detect import Detections, Detector, default_detector

log = logging.getLogger(__name__)

MIN_BOX_SIZE = 1.0  # pixels: a box narrower or lower than a pixel holds nothing to crop
# A box may reach beyond the image (a person cut by its edge, a box enlarged around keypoints) but one many times
# larger than the image is a mistake (a box in another image's pixels, a unit error): its crop would be the
# image shrunk to a few pixels.
MAX_BOX_SCALE = 8.0
# What one box holds, (singular, plural), by keypoint-set task (``hrnet.keypoints.TASKS``).
INSTANCE_NOUNS = {
    "body": ("person", "persons"),
    "wholebody": ("person", "persons"),
    "hand": ("hand", "hands"),
    "face": ("face", "faces"),
    "animal": ("animal", "animals"),
    "fashion": ("garment", "garments"),
    "other": ("instance", "instances"),
}


def instance_noun(task: str, count: int = 1) -> str:
    """What a box of a keypoint set with this ``task`` holds, in words: "hand" for ``count`` 1, else "hands";
    "person(s)" for body and whole-body sets, "instance(s)" for "other"."""
    one, many = INSTANCE_NOUNS.get(task, INSTANCE_NOUNS["other"])
    return one if count == 1 else many


def whole_image_note(keypoint_set: KeypointSet, boxes: str = "--boxes FILE", detector: str = "--detector ") -> str:
    """The one line a front end logs when no boxes are given and no detector runs: each image is one box, and how
    to give boxes or a detector (``boxes`` and ``detector``: how that front end takes them)."""
    one = instance_noun(keypoint_set.task)
    shipped = default_detector(keypoint_set)
    reason = f"no {one} detector and no boxes" if shipped else f"no {one} detector ships with hrnet"
    spec = shipped or "SPEC (an .onnx file or a name from `hrnet weights list`)"
    return (
        f"{reason}: every image and video frame is taken as ONE {one} filling it (right for images cropped around "
        f"one {one}); to find every {one}: {boxes} or {detector}{spec}"
    )


@dataclass(frozen=True)
class PersonPose:
    """One person found in an image.

    Attributes:
        box: (4,) the person box (x, y, w, h), image pixels.
        keypoints: (K, 2) keypoints (x, y), image pixels.
        scores: (K,) keypoint confidences (heatmap peak values, about 0-1).
        score: the person's confidence, as the official rescoring: box score × the mean of the keypoint scores
            above ``test.in_vis_threshold`` (0 when none is).
    """

    box: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    score: float


class Persons(list[PersonPose]):
    """The persons of one image (a list of ``PersonPose``) with the keypoint set that names their keypoints, so
    that they can draw themselves and turn into JSON.

    ``persons.plot(image)`` draws the skeletons on a copy of the image; ``persons.to_coco(image_id)`` gives COCO
    keypoint results.
    """

    def __init__(self, persons: Sequence[PersonPose], keypoint_set: KeypointSet):
        super().__init__(persons)
        self.keypoint_set = keypoint_set

    def plot(
        self,
        image: npt.ArrayLike,
        *,
        threshold: float = 0.3,
        channel_order: str = "bgr",
        track_ids: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Skeletons, boxes (and track ids) drawn on a copy of ``image``, an (H, W, 3) uint8 array in
        ``channel_order`` ("bgr", as ``cv2.imread`` gives, or "rgb"); returned in the same order. Keypoints
        scoring below ``threshold`` are not drawn."""
        return draw_persons(
            np.asarray(image), self, self.keypoint_set, threshold, track_ids, channel_order=channel_order
        )

    def to_coco(self, image_id: Any, track_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """COCO keypoint results of these persons (``person_results``)."""
        return person_results(self, image_id, track_ids)


# -------------------------------------------------------------------------------------------------- boxes


def _box_problem(box: np.ndarray, height: int, width: int) -> str:
    """Why an (x, y, w, h) box cannot be a person box in a height × width image, or "" when it can."""
    x, y, w, h = box
    if not np.isfinite(box).all():
        return "holds NaN or infinity"
    if w < MIN_BOX_SIZE or h < MIN_BOX_SIZE:
        return f"is under {MIN_BOX_SIZE:g} pixel wide or high (width {w:.3g}, height {h:.3g})"
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return f"lies wholly outside the {width}×{height} image"
    if w > MAX_BOX_SCALE * max(width, 1) or h > MAX_BOX_SCALE * max(height, 1):
        return f"is more than {MAX_BOX_SCALE:g} times the size of the {width}×{height} image"
    return ""


def _short(values: Any) -> str:
    """Numbers for a message, each to 6 significant digits (1e+308 stays 1e+308), at most ~120 characters."""
    text = "[" + ", ".join(f"{v:.6g}" for v in np.asarray(values, dtype=np.float64).ravel()) + "]"
    return text if len(text) <= 120 else text[:117] + "..."


def check_boxes(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike | None,
    image_size: tuple[int, int],
    where: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes given by a caller, checked: ((P, 4) float64 boxes, (P,) float64 scores, default 1).

    Args:
        boxes: (P, 4) boxes (x, y, w, h), pixels of an image of ``image_size`` (height, width).
        scores: (P,) box scores or None.
        where: what to name in an error (an image file, "request", "frame 12").

    Raises:
        DataError: the boxes are not (P, 4) numbers, the scores do not match them or are not finite, or a box
            cannot be a person box (see the module doc); the message names the box by its index.
    """
    prefix = f"{where}: " if where else ""
    try:
        box_array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{prefix}person boxes must be numbers [x, y, w, h]") from None
    if box_array.size % 4 or (box_array.ndim != 2 and box_array.size):
        raise DataError(f"{prefix}person boxes must have shape (P, 4) as [x, y, w, h], got {box_array.shape}")
    box_array = box_array.reshape(-1, 4)
    if scores is None:
        score_array = np.ones(len(box_array))
    else:
        try:
            score_array = np.asarray(scores, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"{prefix}box scores must be numbers") from None
        if len(score_array) != len(box_array):
            raise DataError(f"{prefix}{len(box_array)} person boxes but {len(score_array)} box scores")
        if not np.isfinite(score_array).all():
            raise DataError(f"{prefix}a box score is NaN or infinity: {_short(score_array)}")
    height, width = image_size
    for i, box in enumerate(box_array):
        if problem := _box_problem(box, height, width):
            raise DataError(f"{prefix}person box {i} {_short(box)} {problem}")
    return box_array, score_array


def usable_boxes(boxes: npt.ArrayLike, image_size: tuple[int, int]) -> np.ndarray:
    """(P,) bool: which of the (P, 4) boxes ``check_boxes`` would accept in an image of ``image_size``."""
    height, width = image_size
    box_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.array([not _box_problem(box, height, width) for box in box_array], dtype=bool)


@dataclass(frozen=True)
class Boxes(Detections):
    """The person boxes of one image (scores 1 for given boxes without scores and for the whole image) and where
    they came from: ``source`` "given", "detector" or "whole image"."""

    source: str


class PersonBoxes:
    """Where a front end's person boxes come from: given → detector → the whole image (see the module doc).

    ``detector`` is called under a lock (detectors need not be thread-safe; the server calls this from many
    threads). ``max_boxes`` caps the detector's boxes, best-scoring first (None: all).
    """

    def __init__(self, detector: Detector | None = None, *, max_boxes: int | None = None):
        if max_boxes is not None and max_boxes < 1:
            raise DataError(f"max_boxes must be ≥ 1, got {max_boxes}")
        self.detector = detector
        self.max_boxes = max_boxes
        self._lock = threading.Lock()

    def __call__(
        self,
        image: np.ndarray,
        boxes: npt.ArrayLike | None = None,
        scores: npt.ArrayLike | None = None,
        where: str = "",
        *,
        channel_order: str = "bgr",
    ) -> Boxes:
        """The person boxes of an (H, W, 3) uint8 image in ``channel_order``: ``boxes`` (checked) when given, else
        the detector's, else the whole image."""
        image_size = (int(image.shape[0]), int(image.shape[1]))
        if boxes is not None:
            return Boxes(*check_boxes(boxes, scores, image_size, where), "given")
        if scores is not None:
            raise DataError(f"{where + ': ' if where else ''}box scores given without boxes")
        if self.detector is not None:
            bgr = image if channel_order == "bgr" else np.ascontiguousarray(image[..., ::-1])  # detectors read BGR
            return Boxes(*self.detect(bgr), "detector")
        height, width = image_size
        return Boxes(np.array([[0.0, 0.0, width, height]]), np.ones(1), "whole image")

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The detector's usable boxes in an (H, W, 3) uint8 BGR image, best first: ((P, 4), (P,)) float64."""
        if self.detector is None:
            raise DataError("no person detector was given")
        with self._lock:
            found = self.detector(image_bgr)
        boxes = np.asarray(found.boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(found.scores, dtype=np.float64).reshape(-1)
        keep = usable_boxes(boxes, image_bgr.shape[:2]) & np.isfinite(scores)
        if dropped := int((~keep).sum()):
            log.debug("the detector's %d unusable boxes (degenerate, off the image or not finite) dropped", dropped)
        boxes, scores = boxes[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")[: self.max_boxes]
        return boxes[order], scores[order]


# ------------------------------------------------------------------------------------------ results, drawing


def person_results(
    persons: Sequence[PersonPose], image_id: Any, track_ids: Sequence[int] | None = None, where: Any = ""
) -> list[dict[str, Any]]:
    """COCO keypoint results (with the box, and the track id when given) for the persons of one image, rounded to
    what a pixel needs. A value that is not finite (the network gave NaN: broken weights) becomes ``null``, so
    that the file stays valid JSON, and a warning names ``where``."""
    if not persons:
        return []
    keypoints = np.stack([np.concatenate([p.keypoints, p.scores[:, None]], axis=1) for p in persons])
    # A value too large to round becomes infinite, and is then reported with the other non-finite ones below.
    with np.errstate(over="ignore"):
        keypoints = keypoints.astype(np.float64).round(3)
        scores = np.array([p.score for p in persons], dtype=np.float64).round(4)
        boxes = np.stack([p.box for p in persons]).astype(np.float64).round(2)
    results = keypoint_results([image_id] * len(persons), keypoints, scores, boxes=boxes)
    if track_ids is not None:
        for result, track_id in zip(results, track_ids, strict=True):
            result["track_id"] = int(track_id)
    bad = 0
    if not (np.isfinite(keypoints).all() and np.isfinite(scores).all() and np.isfinite(boxes).all()):
        for result in results:  # rare: found value by value
            for key in ("keypoints", "score", "bbox"):
                value = result[key]
                if isinstance(value, list):
                    bad += sum(not math.isfinite(v) for v in value)
                    result[key] = [v if math.isfinite(v) else None for v in value]
                elif not math.isfinite(value):
                    bad += 1
                    result[key] = None
    if bad:
        log.warning("%s: %d predicted values are not finite (NaN weights?): written as null", where or image_id, bad)
    return results
