"""Person records: what every annotation reader produces and every consumer (crop, metrics, drawing) reads.

A ``PoseRecord`` is one person in one image: the image file and its size, a person box, K keypoints with their
visibility, and the ids that tie it back to the annotation file. Coordinates are image pixels, 0-based, x to the
right and y down; boxes are ``(x, y, w, h)`` (COCO); sizes are ``(height, width)``; visibility uses the COCO coding
(0 unlabelled, 1 labelled but occluded, 2 visible) whatever the file's coding was. Unlabelled keypoints are (0, 0).

The checks every reader applies to a record (field present, 3·K keypoint values, finite numbers, a box of
positive size) live here too, so that all readers word their errors alike: the file, the record, the fault.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from hrnet.errors import DataError
from hrnet.io.files import read_json
from hrnet.keypoints import KeypointSet

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger numbers become infinity in a record's float32 arrays
# Why a ground-truth reader leaves a person out (``GroundTruth.skipped``).
NO_LABELLED_KEYPOINT = "no labelled keypoint"
NO_BOX = "box outside the image or empty"


@dataclass(frozen=True, eq=False)
class PoseRecord:
    """One person in one image.

    Attributes:
        image_path: the image file.
        image_size: ``(height, width)`` of the image, pixels.
        box: person box ``(x, y, w, h)``, image pixels (ground truth as the reader cleaned it, or a detection).
        keypoints: (K, 2) float32 ``(x, y)``, image pixels; (0, 0) where unlabelled. Read-only.
        visibility: (K,) uint8, COCO coding (0 unlabelled, 1 occluded, 2 visible). Read-only.
        image_id: the image's id in the annotation file (COCO: int; AI Challenger: the hash; MPII: the file name).
        annotation_id: the person's id in the file (COCO: annotation id; AI Challenger: ``"human1"``, ...;
            MPII and detections: the 0-based index of the entry in the file).
        score: the box's confidence: 1.0 for ground truth, the detector's score for a detection.
        area: the person's area for OKS, pixels² (COCO: the annotation's ``area``; else the box's w·h).
        head_size: MPII only, the PCKh normaliser in pixels when known (the official JSON does not carry it).
        category_id: the COCO-format category (AP-10K: the species), which COCO's evaluation scores separately;
            1, COCO's person, for the formats without categories.
    """

    image_path: Path
    image_size: tuple[int, int]
    box: Box
    keypoints: np.ndarray
    visibility: np.ndarray
    image_id: int | str
    annotation_id: int | str
    score: float = 1.0
    area: float = 0.0
    head_size: float | None = None
    category_id: int = 1

    def __post_init__(self) -> None:
        keypoints = np.array(self.keypoints, dtype=np.float32)
        visibility = np.array(self.visibility, dtype=np.uint8)
        if keypoints.ndim != 2 or keypoints.shape[1] != 2 or visibility.shape != keypoints.shape[:1]:
            raise ValueError(
                f"keypoints must be (K, 2) and visibility (K,), got {keypoints.shape} and {visibility.shape}"
            )
        # Records are shared by every epoch and worker: an in-place edit by a consumer must fail, not leak.
        keypoints.setflags(write=False)
        visibility.setflags(write=False)
        object.__setattr__(self, "keypoints", keypoints)
        object.__setattr__(self, "visibility", visibility)
        object.__setattr__(self, "image_path", Path(self.image_path))

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_labelled(self) -> int:
        """How many keypoints are labelled (visibility > 0)."""
        return int(np.count_nonzero(self.visibility))


@dataclass(frozen=True, eq=False)
class RecordSet(Sequence[PoseRecord]):
    """The records read from one annotation file, with the keypoint set that gives their K channels meaning."""

    records: tuple[PoseRecord, ...]
    keypoint_set: KeypointSet
    source: Path

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> PoseRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PoseRecord]: ...

    def __getitem__(self, index: int | slice) -> PoseRecord | Sequence[PoseRecord]:
        return self.records[index]

    def __iter__(self) -> Iterator[PoseRecord]:
        return iter(self.records)


def check_num_keypoints(keypoint_set: KeypointSet, num_keypoints: int, source: str | Path) -> None:
    """Raise ``DataError`` unless the data set (read from ``source``) has as many keypoints as the model has
    heatmap channels."""
    k = keypoint_set.num_keypoints
    if k != num_keypoints:
        raise DataError(
            f"{source}: the data set has {k} keypoints (keypoint set {keypoint_set.name!r}) but the model "
            f"predicts {num_keypoints}: set model.num_keypoints to {k} or use annotations with {num_keypoints} "
            "keypoints"
        )


class GroundTruth:
    """The persons a ground-truth reader keeps from one annotation file, and how many it skipped for each reason
    (``reasons`` of its own first, then ``NO_LABELLED_KEYPOINT`` and ``NO_BOX``)."""

    def __init__(self, *reasons: str) -> None:
        self.records: list[PoseRecord] = []
        self.skipped = dict.fromkeys((*reasons, NO_LABELLED_KEYPOINT, NO_BOX), 0)

    def add(
        self,
        image_path: Path,
        image_size: tuple[int, int],
        box: Box,
        points: np.ndarray,
        visibility: np.ndarray,
        *,
        image_id: int | str,
        annotation_id: int | str,
        area: float,
        category_id: int = 1,
    ) -> None:
        """Keep a labelled person (fields as ``PoseRecord``'s) with its box clipped as the official reader clips
        it (``clip_box``); skip it when nothing of the box is left in the image or its ``area`` is not positive."""
        clean = clip_box(box, image_size)
        if clean is None or area <= 0:
            self.skipped[NO_BOX] += 1
            return
        keypoints = unlabelled_to_zero(points, visibility)
        self.records.append(
            PoseRecord(
                image_path,
                image_size,
                clean,
                keypoints,
                visibility,
                image_id,
                annotation_id,
                area=area,
                category_id=category_id,
            )
        )

    def record_set(self, keypoint_set: KeypointSet, source: Path, read: str) -> RecordSet:
        """The persons kept, or ``DataError`` when there are none; ``read`` says what the file held."""
        reasons = ", ".join(f"{v} {k}" for k, v in self.skipped.items())
        if not self.records:
            raise DataError(f"{source}: no person with a box and ≥ 1 labelled keypoint in the file ({read}: {reasons})")
        log.info("%s: %d persons (skipped: %s)", source, len(self.records), reasons)
        return RecordSet(records=tuple(self.records), keypoint_set=keypoint_set, source=source)


# ------------------------------------------------------------------------------------ checks shared by readers


def read_entries(path: Path, keypoint_set: KeypointSet, num_keypoints: int | None, form: str) -> list[Any]:
    """The JSON list of an annotation file of ``form`` (named in the error), once ``keypoint_set`` is checked to
    fit a model of ``num_keypoints`` (``check_num_keypoints``; None checks nothing)."""
    if num_keypoints is not None:
        check_num_keypoints(keypoint_set, num_keypoints, path)
    entries = read_json(path, "annotation file")
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected {form}")
    return entries


def require(entry: Any, key: str, where: str) -> Any:
    """``entry[key]``, or ``DataError`` naming ``where`` (file and record) when the entry lacks it."""
    if not isinstance(entry, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    if key not in entry:
        raise DataError(f"{where}: missing field {key!r}")
    return entry[key]


def to_finite(values: Any, shape: tuple[int, ...], what: str, where: str) -> np.ndarray:
    """``values`` as a float64 array of ``shape``; ``DataError`` when they are not JSON numbers (strings such as
    ``"1"`` and ``true``/``false`` included, which NumPy would convert) or not finite in 32-bit floats (records
    hold float32)."""
    try:
        if _holds_non_number(values):
            raise TypeError
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {what} must be numbers, got {_short(values)}") from None
    if array.shape != shape:
        raise DataError(f"{where}: {what} must have shape {shape}, got {_short(values)}")
    if not np.all(np.abs(array) <= FLOAT32_MAX):  # NaN compares False too
        raise DataError(f"{where}: {what} has non-finite values ({_short(values)})")
    return array


def keypoint_triples(
    values: Any, num_keypoints: int, where: str, field: str = "keypoints"
) -> tuple[np.ndarray, np.ndarray]:
    """K keypoints given flat ``[x1, y1, v1, x2, ...]`` (3·K values, COCO's form) or nested ``[[x1, y1, v1], ...]``
    (K triples) → (K, 2) float64 points and (K,) raw codes; ``field`` names the list in errors.

    The codes are returned as read (each reader maps its own coding to COCO's).
    """
    expected = f"3 × {num_keypoints} numbers or {num_keypoints} [x, y, visibility] triples"
    if not isinstance(values, list | tuple):
        raise DataError(f"{where}: {field} must be a list of {expected}, got {_short(values)}")
    if values and isinstance(values[0], list | tuple):
        bad = next((i for i, v in enumerate(values) if not isinstance(v, list | tuple) or len(v) != 3), None)
        if bad is not None:
            raise DataError(f"{where}: {field}[{bad}] is {_short(values[bad])}, expected [x, y, visibility]")
        if len(values) != num_keypoints:
            raise DataError(f"{where}: {field} has {len(values)} triples, expected {num_keypoints} [x, y, visibility]")
        triples = to_finite(values, (num_keypoints, 3), field, where)
    elif len(values) != 3 * num_keypoints:
        raise DataError(
            f"{where}: {field} has {len(values)} values, expected 3 × {num_keypoints} = {3 * num_keypoints} "
            "(x, y, visibility per keypoint)"
        )
    else:
        triples = to_finite(values, (3 * num_keypoints,), field, where).reshape(num_keypoints, 3)
    return triples[:, :2], triples[:, 2]


def map_visibility(codes: np.ndarray, mapping: Mapping[int, int], where: str) -> np.ndarray:
    """(K,) file visibility codes → COCO coding through ``mapping``; ``DataError`` for a code it does not know."""
    lookup = np.full(max(mapping) + 1, -1, dtype=np.int16)
    for code, coco in mapping.items():
        lookup[code] = coco
    integral = (codes == np.round(codes)) & (codes >= 0) & (codes <= max(mapping))
    mapped = np.where(integral, lookup[np.where(integral, codes, 0).astype(np.int64)], -1)
    if np.any(mapped < 0):
        i = int(np.argmax(mapped < 0))
        raise DataError(
            f"{where}: keypoint {i} has visibility {codes[i]:g}; this file's coding allows {sorted(mapping)}"
        )
    return mapped.astype(np.uint8)


def checked_box(values: Any, where: str) -> Box:
    """A person box ``(x, y, w, h)`` of four finite numbers with positive width and height."""
    x, y, w, h = (float(v) for v in to_finite(values, (4,), "bbox", where))
    if w <= 0 or h <= 0:
        raise DataError(
            f"{where}: the box {_short(values)} has zero or negative size (w={w:g}, h={h:g}); "
            "fix the box or remove the annotation"
        )
    return x, y, w, h


def clip_box(box: Box, image_size: tuple[int, int]) -> Box | None:
    """The box clipped to the image as the official ``_load_coco_keypoint_annotation_kernal`` cleans it.

    Official quirks, reproduced so that crops match the official ones: the near corner is clipped to 0 first and
    the far corner is ``x1 + max(0, w - 1)`` from the clipped one (a box sticking out left or top moves rather than
    shrinks), clipped to ``width - 1``; the clean box ``(x1, y1, x2 - x1, y2 - y1)`` is one pixel narrower and
    shorter than the file's. ``None`` when nothing of the box lies in the image, or when it shrinks to a single
    point (no crop can be made from it).
    """
    height, width = image_size
    x, y, w, h = box
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 < x1 or y2 < y1 or (x2 == x1 and y2 == y1):
        return None
    return x1, y1, x2 - x1, y2 - y1


def unlabelled_to_zero(points: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    """(K, 2) points with the unlabelled ones set to (0, 0), the one convention all readers share."""
    points = np.array(points, dtype=np.float32)
    points[visibility == 0] = 0.0
    return points


def _holds_non_number(values: Any) -> bool:
    """Whether ``values`` (nested lists, any depth: walked without recursion) holds a string or a boolean."""
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, bool | np.bool_ | str | bytes):
            return True
        if isinstance(value, list | tuple):
            stack.extend(value)
    return False


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return "a deeply nested list"
    return text if len(text) <= limit else text[: limit - 3] + "..."
