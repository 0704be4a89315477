"""COCO-format keypoint files → person records, as the official HRNet ``lib/dataset/coco.py`` reads them.

Works for any keypoint set in COCO form (COCO-17, CrowdPose, OCHuman, AI Challenger converted to COCO form, a
custom category): the keypoint set is either a built-in one, checked against the file's category, or made from the
file's category (``hrnet.keypoints.from_coco_category``).

Ground truth (``read_coco``) follows ``COCODataset._load_coco_keypoint_annotation_kernal``: crowd annotations
and persons without a labelled keypoint are skipped, boxes are clipped to the image with the official
``w - 1`` rule (``records.clip_box``) and dropped when nothing is left or the annotation's ``area`` is not
positive. Person boxes from a detector (``read_detections``, for evaluation and for ``hrnet predict --boxes``)
follow ``COCODataset._load_coco_person_detection_results``: the keypoint category only, scores below the threshold
dropped, boxes used as they are.
"""

from __future__ import annotations

import logging
import reprlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrnet.data.records import (
    NO_LABELLED_KEYPOINT,
    GroundTruth,
    PoseRecord,
    RecordSet,
    check_num_keypoints,
    checked_box,
    flat_keypoints,
    map_visibility,
    require,
    to_finite,
)
from hrnet.errors import DataError
from hrnet.io.files import read_json
from hrnet.keypoints import FROM_ANNOTATIONS, KeypointSet, derive_flip_pairs, from_coco_category, get_keypoint_set

log = logging.getLogger(__name__)

PERSON_CATEGORY = 1  # the official code keeps COCO's person category when a file describes no keypoint category
COCO_VISIBILITY = {0: 0, 1: 1, 2: 2}  # COCO files already use the COCO coding
_SHOWN = 5  # how many offending ids an error message lists


@dataclass(frozen=True)
class _CocoFile:
    """What every reader needs from a COCO-format annotation file."""

    path: Path
    data: Mapping[str, Any]
    images: dict[Any, tuple[Path, tuple[int, int]]]  # image id → (image file, (height, width))
    keypoint_set: KeypointSet
    category_id: int


def read_coco(
    annotations: str | Path,
    image_dir: str | Path,
    *,
    keypoint_set: str | KeypointSet = FROM_ANNOTATIONS,
    sigmas: Sequence[float] | None = None,
    num_keypoints: int | None = None,
    category_id: int | None = None,
) -> RecordSet:
    """Ground-truth persons of a COCO-format keypoint file.

    Args:
        annotations: the JSON file (``images``, ``annotations``, ``categories``).
        image_dir: folder holding the images' ``file_name``.
        keypoint_set: a ``KeypointSet``, a built-in name (``coco17``, ``aic14``, ...) checked against the file's
            category, or ``"from_annotations"`` to build it from the file's keypoint category.
        sigmas: OKS sigmas for ``"from_annotations"`` (default: COCO's value per COCO-named keypoint, else
            ``keypoints.DEFAULT_SIGMA``).
        num_keypoints: the model's keypoint count; a different count in the data is a ``DataError``.
        category_id: the keypoint category to read when the file has several.

    Returns:
        records in file order: keypoints (K, 2) in image pixels, visibility as in the file, the clipped box, the
        annotation's ``area`` (w·h of the file's box when the file has none, as AI Challenger's COCO form).

    Raises:
        DataError: unreadable file, missing field, keypoints that are not 3·K finite numbers, a visibility outside
            0/1/2, a box of zero or negative size, an unknown image id, a keypoint count that differs from the
            keypoint set's or the model's, an ill-typed ``id``, ``iscrowd`` (0 or 1), ``category_id`` or ``area``
            (crowd annotations included: the COCO evaluation reads them), an annotation id used twice, no usable
            person in the whole file.
    """
    coco = _read_coco_file(annotations, image_dir, keypoint_set, sigmas, category_id)
    if num_keypoints is not None:
        check_num_keypoints(coco.keypoint_set, num_keypoints, coco.path)
    k = coco.keypoint_set.num_keypoints
    persons = GroundTruth("crowd", "other category")
    entries = _list_field(coco.data, "annotations", coco.path)
    seen_ids: Counter[Any] = Counter()
    for i, ann in enumerate(entries):
        where = _where(coco.path, ann, i)
        if not isinstance(ann, Mapping):
            raise DataError(f"{where}: expected a JSON object, got {type(ann).__name__}")
        if "id" in ann:
            ann_id = ann["id"]
            if isinstance(ann_id, bool) or not isinstance(ann_id, int | str):
                raise DataError(f"{where}: id must be an integer or a string, got {ann_id!r}")
            seen_ids[ann_id] += 1
        crowd = ann.get("iscrowd", 0)
        if isinstance(crowd, bool) or crowd not in (0, 1):  # pycocotools would fail on it after a whole evaluation
            raise DataError(f"{where}: iscrowd must be 0 or 1, got {crowd!r}")
        category = require(ann, "category_id", where)
        if isinstance(category, bool) or not isinstance(category, int):
            raise DataError(f"{where}: category_id must be an integer, got {category!r}")
        image_path, image_size = _image(coco, require(ann, "image_id", where), where)
        if category != coco.category_id:
            persons.skipped["other category"] += 1
            continue
        # Checked for every person, used or skipped: pycocotools reads them all when it scores.
        area = float(to_finite([ann["area"]], (1,), "area", where)[0]) if "area" in ann else None
        to_finite(require(ann, "bbox", where), (4,), "bbox", where)
        points, codes = flat_keypoints(require(ann, "keypoints", where), k, where)
        visibility = map_visibility(codes, COCO_VISIBILITY, where)
        if crowd:
            persons.skipped["crowd"] += 1
            continue
        if not visibility.any():
            persons.skipped[NO_LABELLED_KEYPOINT] += 1
            continue
        box = checked_box(require(ann, "bbox", where), where)
        if area is None:
            area = box[2] * box[3]
        persons.add(
            image_path,
            image_size,
            box,
            points,
            visibility,
            image_id=ann["image_id"],
            annotation_id=ann.get("id", i),
            area=area,
        )
    if repeated := [ann_id for ann_id, count in seen_ids.items() if count > 1]:
        shown = ", ".join(repr(v) for v in repeated[:_SHOWN]) + (" ..." if len(repeated) > _SHOWN else "")
        raise DataError(
            f"{coco.path}: {len(repeated)} annotation ids appear more than once ({shown}); each person needs its own "
            "id (COCO's evaluation matches predictions to persons by it): renumber the annotations"
        )
    return persons.record_set(coco.keypoint_set, coco.path, f"{len(entries)} annotations")


@dataclass(frozen=True)
class Detection:
    """A kept entry of a detection-results file: its ``index`` in the file, its ``image`` (``file_name`` when it
    has one, else ``image_id``), its ``box`` (x, y, w, h) in image pixels as in the file, its ``score`` (1 if none)."""

    index: int
    image: int | str
    box: tuple[float, float, float, float]
    score: float


def read_detections(
    path: str | Path, *, score_threshold: float = 0.0, category_id: int = PERSON_CATEGORY
) -> dict[int | str, list[Detection]]:
    """Person boxes from a COCO detection-results file (``[{image_id, category_id, bbox, score}, ...]``), the same
    for evaluation (``read_coco_detections``) and ``hrnet predict --boxes``.

    As the official ``_load_coco_person_detection_results``: only ``category_id`` (COCO's person), scores from
    ``score_threshold`` (official ``TEST.IMAGE_THRE``), boxes unclipped. An entry needs ``bbox`` (four finite
    numbers) and an ``image_id`` or ``file_name`` (a number or a name; ``file_name`` wins); ``score`` (default 1) and
    ``category_id`` (default: ``category_id``) are optional. Boxes of zero or negative size cannot be cropped: they
    are dropped with a warning (a detector's output, unlike ground truth, is not worth stopping a run for).

    Returns:
        every image the file names, in file order, with its kept detections in file order (none for some).

    Raises:
        DataError: an unreadable or empty file, or an entry that breaks these rules: one line naming the file, the
            entry and its image.
    """
    path = Path(path)
    entries = read_json(path, "detection-results file")
    if not isinstance(entries, list) or not entries:
        raise DataError(
            f"{path}: expected a non-empty JSON list of detections ({{image_id, category_id, bbox, score}})"
        )
    images: dict[int | str, list[Detection]] = {}
    degenerate = 0
    for i, entry in enumerate(entries):
        where = f"{path}: detection #{i}"
        if not isinstance(entry, Mapping):
            raise DataError(f"{where}: expected a JSON object, got {type(entry).__name__}")
        image = entry.get("file_name", entry.get("image_id"))
        if isinstance(image, bool) or not isinstance(image, int | str):
            raise DataError(f"{where}: the image_id or file_name {reprlib.repr(image)} is not a number or a name")
        where += f" (image {image!r})"
        x, y, w, h = (float(v) for v in to_finite(require(entry, "bbox", where), (4,), "bbox", where))
        score = float(to_finite(entry.get("score", 1.0), (), "score", where))
        found = images.setdefault(image, [])
        if entry.get("category_id", category_id) == category_id and score >= score_threshold:
            if w > 0 and h > 0:
                found.append(Detection(i, image, (x, y, w, h), score))
            else:
                degenerate += 1
    if degenerate:
        log.warning("%s: dropped %d detections whose box has zero or negative size", path, degenerate)
    kept = sum(map(len, images.values()))
    log.info("%s: %d of %d detections kept (score ≥ %g)", path, kept, len(entries), score_threshold)
    return images


def read_coco_detections(
    detections: str | Path,
    annotations: str | Path,
    image_dir: str | Path,
    *,
    score_threshold: float = 0.0,
    keypoint_set: str | KeypointSet = FROM_ANNOTATIONS,
    sigmas: Sequence[float] | None = None,
    num_keypoints: int | None = None,
    category_id: int | None = None,
) -> RecordSet:
    """One record per detection ``read_detections`` keeps, in file order, for evaluation: the box, ``score`` the
    detector's, keypoints (K, 2) zero and visibility 0, ``area`` the box's w·h, ``annotation_id`` the detection's
    index in the file. ``annotations`` is the COCO-format file of the same images (files, sizes, category), e.g.
    the ground truth or ``image_info_test-dev2017.json``; the other arguments are ``read_coco``'s.

    Raises:
        DataError: as ``read_detections``, an image id the annotation file does not list, or a keypoint count that
            differs from the model's.
    """
    coco = _read_coco_file(annotations, image_dir, keypoint_set, sigmas, category_id)
    if num_keypoints is not None:
        check_num_keypoints(coco.keypoint_set, num_keypoints, coco.path)
    found = read_detections(detections, score_threshold=score_threshold, category_id=coco.category_id)
    if not any(found.values()):
        raise DataError(
            f"{detections}: no detection is left to evaluate: each has another category than {coco.category_id}, a "
            f"score below {score_threshold:g} (test.box_score_threshold) or a box of no size"
        )
    k = coco.keypoint_set.num_keypoints
    records = []
    for det in sorted((d for kept in found.values() for d in kept), key=lambda d: d.index):
        image_path, image_size = _image(coco, det.image, f"{detections}: detection #{det.index} (image {det.image!r})")
        records.append(
            PoseRecord(
                image_path=image_path,
                image_size=image_size,
                box=det.box,
                keypoints=np.zeros((k, 2), np.float32),
                visibility=np.zeros(k, np.uint8),
                image_id=det.image,
                annotation_id=det.index,
                score=det.score,
                area=det.box[2] * det.box[3],
            )
        )
    return RecordSet(records=tuple(records), keypoint_set=coco.keypoint_set, source=Path(detections))


def _read_coco_file(
    annotations: str | Path,
    image_dir: str | Path,
    keypoint_set: str | KeypointSet,
    sigmas: Sequence[float] | None,
    category_id: int | None,
) -> _CocoFile:
    path = Path(annotations)
    data = read_json(path, "annotation file")
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected a COCO-format JSON object with 'images', 'annotations', 'categories'")
    images: dict[Any, tuple[Path, tuple[int, int]]] = {}
    for i, image in enumerate(_list_field(data, "images", path)):
        where = f"{path}: images[{i}]"
        image_id = require(image, "id", where)
        if isinstance(image_id, bool) or not isinstance(image_id, int | str):
            raise DataError(f"{where}: id must be an integer or a string, got {image_id!r}")
        where = f"{path}: image {image_id!r}"
        if image_id in images:
            raise DataError(f"{where}: the image id appears twice in 'images'")
        height, width = (require(image, key, where) for key in ("height", "width"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (height, width)):
            raise DataError(f"{where}: height and width must be positive integers, got {height!r} and {width!r}")
        images[image_id] = (Path(image_dir) / str(require(image, "file_name", where)), (height, width))
    category = _keypoint_category(data, path, category_id)
    # Without a keypoint category (an image-info file) the official person category is the one to read.
    cat_id = category["id"] if category is not None else (PERSON_CATEGORY if category_id is None else category_id)
    kset = _resolve_keypoint_set(keypoint_set, category, sigmas, path)
    return _CocoFile(path=path, data=data, images=images, keypoint_set=kset, category_id=cat_id)


def _keypoint_category(data: Mapping[str, Any], path: Path, category_id: int | None) -> dict[str, Any] | None:
    """The category whose ``keypoints`` the file annotates (``None`` when no category lists keypoints)."""
    categories = data.get("categories") or []
    if not isinstance(categories, list):
        raise DataError(f"{path}: 'categories' must be a list")
    with_keypoints = [c for c in categories if isinstance(c, dict) and c.get("keypoints")]
    if category_id is not None:
        chosen = [c for c in categories if isinstance(c, dict) and c.get("id") == category_id]
        if not chosen:
            ids = [c.get("id") for c in categories if isinstance(c, dict)]
            raise DataError(f"{path}: no category with id {category_id} (categories: {ids})")
        return chosen[0] if chosen[0].get("keypoints") else None
    if len(with_keypoints) > 1:
        ids = [c.get("id") for c in with_keypoints]
        raise DataError(f"{path}: several keypoint categories {ids}: choose one with category_id")
    if with_keypoints:
        require(with_keypoints[0], "id", f"{path}: category {with_keypoints[0].get('name')!r}")
        return with_keypoints[0]
    return None


def _resolve_keypoint_set(
    keypoint_set: str | KeypointSet, category: dict[str, Any] | None, sigmas: Sequence[float] | None, path: Path
) -> KeypointSet:
    if isinstance(keypoint_set, str) and keypoint_set == FROM_ANNOTATIONS:
        if category is None:
            raise DataError(
                f"{path}: no category lists keypoint names, so the keypoint set cannot come from the annotations; "
                "name a built-in set (coco17, aic14, mpii16, crowdpose14)"
            )
        return from_coco_category(category, sigmas=sigmas, source=str(path))
    kset = get_keypoint_set(keypoint_set) if isinstance(keypoint_set, str) else keypoint_set
    names = category.get("keypoints") if category is not None else None
    if category is not None and isinstance(names, list):
        if len(names) != kset.num_keypoints:
            raise DataError(
                f"{path}: category {category.get('id')!r} has {len(names)} keypoints but keypoint set "
                f"{kset.name!r} has {kset.num_keypoints}: choose the matching set or 'from_annotations'"
            )
        file_pairs = derive_flip_pairs([str(n) for n in names])
        if file_pairs and set(file_pairs) != set(kset.flip_pairs):
            raise DataError(
                f"{path}: the file's keypoints {names} are not in the order of keypoint set {kset.name!r} "
                f"(left/right pairs {list(file_pairs)} vs {list(kset.flip_pairs)}): choose the matching set "
                "or 'from_annotations'"
            )
    return kset


def _image(coco: _CocoFile, image_id: Any, where: str) -> tuple[Path, tuple[int, int]]:
    try:
        return coco.images[image_id]
    except (KeyError, TypeError):
        raise DataError(f"{where}: image id {image_id!r} is not listed in {coco.path}'s 'images'") from None


def _list_field(data: Mapping[str, Any], key: str, path: Path) -> list[Any]:
    value = require(data, key, str(path))
    if not isinstance(value, list):
        raise DataError(f"{path}: {key!r} must be a list, got {type(value).__name__}")
    return value


def _where(path: Path, ann: Any, index: int) -> str:
    if not isinstance(ann, Mapping):
        return f"{path}: annotations[{index}]"
    ann_id = ann.get("id", f"#{index}")
    return f"{path}: annotation {ann_id} (image {ann.get('image_id')!r})"
