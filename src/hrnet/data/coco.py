"""COCO-format keypoint files → person records, as the official HRNet ``lib/dataset/coco.py`` reads them.

Works for any keypoint set in COCO form (COCO-17, CrowdPose, OCHuman, AI Challenger converted to COCO form, AP-10K,
OneHand10K, 300W, COCO-WholeBody, a custom category). The categories read are the one ``category_id`` names, else
every category that lists the same keypoint names (AP-10K keeps each species in a category of its own). The keypoint
set is a shipped one or a metainfo file (``hrnet.keypoints.load_keypoint_set``), checked against the categories'
keypoint names when they have some, or made from those names (``from_annotations``). Keypoints are COCO's flat
``[x, y, v, ...]`` list or nested ``[[x, y, v], ...]`` triples; a set with COCO-WholeBody's extra keypoints reads
them from its ``foot_kpts``, ``face_kpts``, ``lefthand_kpts`` and ``righthand_kpts`` fields after the body's.

Ground truth (``read_coco``) follows ``COCODataset._load_coco_keypoint_annotation_kernal``: crowd annotations
and persons without a labelled keypoint are skipped, boxes are clipped to the image with the official
``w - 1`` rule (``records.clip_box``) and dropped when nothing is left or the annotation's ``area`` is not
positive. ``coco_ground_truth`` gives pycocotools the same file with each annotation's keypoints as read. Person
boxes from a detector (``read_detections``, for evaluation and for ``hrnet predict --boxes``) follow
``COCODataset._load_coco_person_detection_results``: the keypoint categories only, scores below the threshold
dropped, boxes used as they are.
"""

from __future__ import annotations

import logging
import reprlib
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
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
    keypoint_triples,
    map_visibility,
    require,
    to_finite,
)
from hrnet.errors import DataError
from hrnet.io.files import read_json
from hrnet.keypoints import (
    FROM_ANNOTATIONS,
    KeypointSet,
    coco_category,
    derive_flip_pairs,
    from_coco_category,
    load_keypoint_set,
    shipped_keypoint_sets,
)

log = logging.getLogger(__name__)

PERSON_CATEGORY = 1  # the official code keeps COCO's person category when a file describes no keypoint category
COCO_VISIBILITY = {0: 0, 1: 1, 2: 2}  # COCO files already use the COCO coding
_SHOWN = 5  # how many offending ids an error message lists
BODY_FIELD = "keypoints"  # COCO's keypoint field (COCO-WholeBody's body keypoints)
# COCO-WholeBody's keypoint fields after the body's, with their keypoint counts, in the order MMPose's
# ``CocoWholeBodyDataset`` concatenates them into 133 keypoints (mmpose/datasets/datasets/wholebody/).
WHOLEBODY_FIELDS = (("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21))


@dataclass(frozen=True)
class _CocoFile:
    """What every reader needs from a COCO-format annotation file."""

    path: Path
    data: Mapping[str, Any]
    images: dict[Any, tuple[Path, tuple[int, int]]]  # image id → (image file, (height, width))
    keypoint_set: KeypointSet
    category_ids: tuple[int, ...]  # the categories read (several: AP-10K's species)
    fields: tuple[tuple[str, int], ...]  # the annotation fields that hold the keypoints, with their counts


def read_coco(
    annotations: str | Path,
    image_dir: str | Path,
    *,
    keypoint_set: str | Path | KeypointSet = FROM_ANNOTATIONS,
    sigmas: Sequence[float] | None = None,
    num_keypoints: int | None = None,
    category_id: int | None = None,
) -> RecordSet:
    """Ground-truth persons of a COCO-format keypoint file.

    Args:
        annotations: the JSON file (``images``, ``annotations``, ``categories``).
        image_dir: folder holding the images' ``file_name``.
        keypoint_set: a ``KeypointSet``, a shipped set's name (``coco17``, ``aic14``, ...) or a keypoint set .yaml
            file, checked against the categories' keypoint names when they have some; or ``"from_annotations"`` to
            build it from those names. A set with COCO-WholeBody's 116 more keypoints than the category names
            reads them from the annotations' ``foot_kpts``, ``face_kpts``, ``lefthand_kpts``, ``righthand_kpts``.
        sigmas: OKS sigmas for ``"from_annotations"`` (default: COCO's value per COCO-named keypoint, else
            ``keypoints.DEFAULT_SIGMA``).
        num_keypoints: the model's keypoint count; a different count in the data is a ``DataError``.
        category_id: the one category to read; None: every category that lists the same keypoint names.

    Returns:
        records in file order: keypoints (K, 2) in image pixels, visibility in COCO's coding (COCO-WholeBody's
        extra fields: any positive value is labelled), the clipped box, the annotation's ``area`` (w·h of the
        file's box when the file has none, as AI Challenger's COCO form), its ``category_id``.

    Raises:
        DataError: unreadable file, missing field, keypoints that are not K finite triples (flat or nested), a
            visibility outside 0/1/2, a box of zero or negative size, an unknown image id, categories with
            different keypoint names and no ``category_id``, a keypoint count that differs from the keypoint set's
            or the model's, an ill-typed ``id``, ``iscrowd`` (0 or 1), ``category_id`` or ``area`` (crowd
            annotations included: the COCO evaluation reads them), an annotation id used twice, no usable person in
            the whole file. Each names the file, the annotation (id and image) and the field.
    """
    coco = _read_coco_file(annotations, image_dir, keypoint_set, sigmas, category_id)
    if num_keypoints is not None:
        check_num_keypoints(coco.keypoint_set, num_keypoints, coco.path)
    persons = GroundTruth("crowd", "other category")
    entries = _list_field(coco.data, "annotations", coco.path)
    seen_ids: Counter[Any] = Counter()
    unread: list[str] = []  # COCO-WholeBody fields that a set of the body's keypoints leaves out
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
        if not _is_int(category):
            raise DataError(f"{where}: category_id must be an integer, got {category!r}")
        image_path, image_size = _image(coco, require(ann, "image_id", where), where)
        if category not in coco.category_ids:
            persons.skipped["other category"] += 1
            continue
        # Checked for every person, used or skipped: pycocotools reads them all when it scores.
        area = float(to_finite([ann["area"]], (1,), "area", where)[0]) if "area" in ann else None
        to_finite(require(ann, "bbox", where), (4,), "bbox", where)
        points, visibility = _keypoints(ann, coco.fields, where)
        if len(coco.fields) == 1 and not unread:
            unread = [name for name, _ in WHOLEBODY_FIELDS if name in ann]
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
            category_id=category,
        )
    if repeated := [ann_id for ann_id, count in seen_ids.items() if count > 1]:
        raise DataError(
            f"{coco.path}: {len(repeated)} annotation ids appear more than once ({_shown(repeated)}); each person "
            "needs its own id (COCO's evaluation matches predictions to persons by it): renumber the annotations"
        )
    if unread:
        k = coco.keypoint_set.num_keypoints
        log.info(
            "%s: the annotations' %s are not read: keypoint set %r has the %d body keypoints (a set of %d such as "
            "coco_wholebody133 reads them all)",
            coco.path, ", ".join(unread), coco.keypoint_set.name, k, k + sum(n for _, n in WHOLEBODY_FIELDS),
        )  # fmt: skip
    return persons.record_set(coco.keypoint_set, coco.path, f"{len(entries)} annotations")


def coco_ground_truth(
    annotations: str | Path, keypoint_set: str | Path | KeypointSet, *, category_id: int | None = None
) -> dict[str, Any]:
    """The file's ground truth as pycocotools scores predictions of ``keypoint_set`` against it.

    The file's images, and every annotation of the categories ``read_coco`` reads (crowd regions and persons
    without a labelled keypoint included, as COCO's evaluation wants them) with its keypoints as ``read_coco``
    reads them: flat ``[x, y, v] * K`` in the set's order (COCO-WholeBody: all its fields, as its own evaluation
    concatenates them) and ``num_keypoints`` their labelled count; the categories list the set's keypoint names.

    Args:
        annotations: the COCO-format JSON file.
        keypoint_set: the set the records were read with (``read_coco``'s argument or its result's set).
        category_id: as ``read_coco``'s.

    Returns:
        a COCO-format dict (``images``, ``annotations``, ``categories``) for ``metrics.coco.load_ground_truth``.

    Raises:
        DataError: as ``read_coco``.
    """
    coco = _read_coco_file(annotations, Path(), keypoint_set, None, category_id)
    truth = []
    for i, ann in enumerate(_list_field(coco.data, "annotations", coco.path)):
        if not isinstance(ann, Mapping) or ann.get("category_id") not in coco.category_ids:
            continue
        where = _where(coco.path, ann, i)
        points, visibility = _keypoints(ann, coco.fields, where)
        entry = {key: ann[key] for key in ("id", "image_id", "category_id", "iscrowd", "area", "bbox") if key in ann}
        entry.setdefault("id", -(i + 1))  # pycocotools needs one; a negative one cannot clash with the file's
        entry["keypoints"] = np.concatenate([points, visibility[:, None]], axis=1).reshape(-1).tolist()
        entry["num_keypoints"] = int(np.count_nonzero(visibility))
        truth.append(entry)
    known = {c.get("id"): c for c in coco.data.get("categories") or [] if isinstance(c, Mapping)}
    names = list(coco.keypoint_set.names)
    categories = [
        {**known.get(c_id, coco_category(coco.keypoint_set)), "id": c_id, "keypoints": names}
        for c_id in coco.category_ids
    ]
    return {"images": list(_list_field(coco.data, "images", coco.path)), "annotations": truth, "categories": categories}


@dataclass(frozen=True)
class Detection:
    """A kept entry of a detection-results file: its ``index`` in the file, its ``image`` (``file_name`` when it
    has one, else ``image_id``), its ``box`` (x, y, w, h) in image pixels as in the file, its ``score`` (1 if none),
    its ``category`` (the file's ``category_id``, else the first category asked for)."""

    index: int
    image: int | str
    box: tuple[float, float, float, float]
    score: float
    category: int = PERSON_CATEGORY


def read_detections(
    path: str | Path, *, score_threshold: float = 0.0, category_id: int | Collection[int] = PERSON_CATEGORY
) -> dict[int | str, list[Detection]]:
    """Person boxes from a COCO detection-results file (``[{image_id, category_id, bbox, score}, ...]``), the same
    for evaluation (``read_coco_detections``) and ``hrnet predict --boxes``.

    As the official ``_load_coco_person_detection_results``: only ``category_id`` (COCO's person; several: any of
    them), scores from ``score_threshold`` (official ``TEST.IMAGE_THRE``), boxes unclipped. An entry needs ``bbox``
    (four finite numbers) and an ``image_id`` or ``file_name`` (a number or a name; ``file_name`` wins); ``score``
    (default 1) and ``category_id`` (default: the first of ``category_id``) are optional. Boxes of zero or negative
    size cannot be cropped: they are dropped with a warning (a detector's output, unlike ground truth, is not worth
    stopping a run for).

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
    wanted = (category_id,) if isinstance(category_id, int) else tuple(category_id)
    images: dict[int | str, list[Detection]] = {}
    degenerate = 0
    others: Counter[Any] = Counter()  # entries of no wanted category, by their category
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
        category = entry.get("category_id", wanted[0])
        if not (_is_int(category) and category in wanted):
            others[category if isinstance(category, int | str) else repr(category)] += 1
        elif score >= score_threshold:
            if w > 0 and h > 0:
                found.append(Detection(i, image, (x, y, w, h), score, category))
            else:
                degenerate += 1
    if degenerate:
        log.warning("%s: dropped %d detections whose box has zero or negative size", path, degenerate)
    if sum(others.values()) == len(entries):  # e.g. YOLO's class numbers, where person is 0
        log.warning(
            "%s: no detection has category_id %s; its categories are %s: give the boxes the id of the keypoint "
            "category (COCO's person is 1; YOLO numbers it 0)",
            path, " or ".join(map(str, wanted)), sorted(others, key=str)[:5],
        )  # fmt: skip
    kept = sum(map(len, images.values()))
    log.info("%s: %d of %d detections kept (score ≥ %g)", path, kept, len(entries), score_threshold)
    return images


def read_coco_detections(
    detections: str | Path,
    annotations: str | Path,
    image_dir: str | Path,
    *,
    score_threshold: float = 0.0,
    keypoint_set: str | Path | KeypointSet = FROM_ANNOTATIONS,
    sigmas: Sequence[float] | None = None,
    num_keypoints: int | None = None,
    category_id: int | None = None,
) -> RecordSet:
    """One record per detection ``read_detections`` keeps, in file order, for evaluation: the box, ``score`` the
    detector's, keypoints (K, 2) zero and visibility 0, ``area`` the box's w·h, ``annotation_id`` the detection's
    index in the file, ``category_id`` the detection's (one of the categories ``read_coco`` reads).
    ``annotations`` is the COCO-format file of the same images (files, sizes, category), e.g.
    the ground truth or ``image_info_test-dev2017.json``; the other arguments are ``read_coco``'s.

    Raises:
        DataError: as ``read_detections``, an image id the annotation file does not list, or a keypoint count that
            differs from the model's.
    """
    coco = _read_coco_file(annotations, image_dir, keypoint_set, sigmas, category_id)
    if num_keypoints is not None:
        check_num_keypoints(coco.keypoint_set, num_keypoints, coco.path)
    found = read_detections(detections, score_threshold=score_threshold, category_id=coco.category_ids)
    if not any(found.values()):
        raise DataError(
            f"{detections}: no detection is left to evaluate: each has another category than "
            f"{_shown(coco.category_ids)}, a score below {score_threshold:g} (test.box_score_threshold) or a box of "
            "no size"
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
                category_id=det.category,
            )
        )
    return RecordSet(records=tuple(records), keypoint_set=coco.keypoint_set, source=Path(detections))


def _read_coco_file(
    annotations: str | Path,
    image_dir: str | Path,
    keypoint_set: str | Path | KeypointSet,
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
    kinds = {type(image_id) for image_id in images}
    if len(kinds) > 1:  # pycocotools sorts the ids, which fails only after the whole prediction
        name = next(image_id for image_id in images if isinstance(image_id, str))
        raise DataError(
            f"{path}: image ids are numbers, but image {name!r} has a string id: give every image the same kind of id"
        )
    category_ids, category = _keypoint_categories(data, path, category_id)
    kset = _resolve_keypoint_set(keypoint_set, category, sigmas, path)
    fields = _keypoint_fields(kset, category, path)
    return _CocoFile(path, data, images, kset, category_ids, fields)


def _keypoint_categories(
    data: Mapping[str, Any], path: Path, category_id: int | None
) -> tuple[tuple[int, ...], dict[str, Any] | None]:
    """The ids of the categories to read, and the category whose ``keypoints`` name their keypoints (``None``
    when none names them: 300W's category, an image-info file)."""
    categories = data.get("categories") or []
    if not isinstance(categories, list):
        raise DataError(f"{path}: 'categories' must be a list")
    objects = [c for c in categories if isinstance(c, dict)]
    if category_id is not None:
        chosen = [c for c in objects if c.get("id") == category_id]
        if not chosen:
            listed = _shown([c.get("id") for c in objects])
            raise DataError(
                f"{path}: no category with id {category_id} (data.category_id); the file's categories are {listed}"
            )
        return (category_id,), (chosen[0] if chosen[0].get("keypoints") else None)
    named = [c for c in objects if c.get("keypoints")]
    if not named:
        # The official person category, unless the file has one category of its own (300W's "face").
        only = objects[0].get("id") if len(objects) == 1 else None
        return ((only if isinstance(only, int) and _is_int(only) else PERSON_CATEGORY),), None
    groups: dict[str, list[int]] = {}  # a keypoint list (as text) → the ids of the categories that list it
    sizes: dict[str, int] = {}
    for category in named:
        where = f"{path}: category {category.get('name')!r}"
        c_id = require(category, "id", where)
        if not _is_int(c_id):
            raise DataError(f"{where}: id must be an integer, got {c_id!r}")
        key = repr(category["keypoints"])
        groups.setdefault(key, []).append(c_id)
        sizes[key] = len(category["keypoints"]) if isinstance(category["keypoints"], list) else 0
    if len(groups) > 1:
        listed = "; ".join(f"categories {_shown(ids)}: {sizes[key]} keypoints" for key, ids in groups.items())
        raise DataError(
            f"{path}: the categories list different keypoints ({listed}); a data set has one keypoint list: "
            "choose one category with data.category_id"
        )
    ids = tuple(c_id for listed_ids in groups.values() for c_id in listed_ids)
    if len(ids) == 1:
        return ids, named[0]
    log.info("%s: %d categories share one keypoint list, all are read: %s", path, len(ids), _shown(ids))
    return ids, {**named[0], "name": path.stem}  # the set is the file's, not its first category's


def _resolve_keypoint_set(
    keypoint_set: str | Path | KeypointSet, category: dict[str, Any] | None, sigmas: Sequence[float] | None, path: Path
) -> KeypointSet:
    if isinstance(keypoint_set, str) and keypoint_set == FROM_ANNOTATIONS:
        if category is None:
            raise DataError(
                f"{path}: no category lists keypoint names, so data.keypoint_set 'from_annotations' has nothing to "
                f"build the keypoint set from: name the set with data.keypoint_set, a shipped one "
                f"({', '.join(shipped_keypoint_sets())}) or a keypoint set .yaml file"
            )
        return from_coco_category(category, sigmas=sigmas, source=str(path))
    return load_keypoint_set(keypoint_set)


def _keypoint_fields(kset: KeypointSet, category: dict[str, Any] | None, path: Path) -> tuple[tuple[str, int], ...]:
    """The annotation fields that hold ``kset``'s keypoints: ``keypoints``, then COCO-WholeBody's fields when the
    set has that many more keypoints than the category names; the names checked against the set's."""
    k = kset.num_keypoints
    names = category.get("keypoints") if category is not None else None
    if category is None or not isinstance(names, list):
        return ((BODY_FIELD, k),)
    body = len(names)
    if body == k:
        fields: tuple[tuple[str, int], ...] = ((BODY_FIELD, k),)
    elif body + sum(n for _, n in WHOLEBODY_FIELDS) == k:
        fields = ((BODY_FIELD, body), *WHOLEBODY_FIELDS)
    else:
        raise DataError(
            f"{path}: category {category.get('id')!r} has {body} keypoints but keypoint set {kset.name!r} has {k}: "
            "choose the matching set with data.keypoint_set, or 'from_annotations'"
        )
    file_pairs = derive_flip_pairs([str(n) for n in names])
    set_pairs = [pair for pair in kset.flip_pairs if max(pair) < body]
    if file_pairs and set(file_pairs) != set(set_pairs):
        raise DataError(
            f"{path}: the file's keypoints {names} are not in the order of keypoint set {kset.name!r} "
            f"(left/right pairs {list(file_pairs)} vs {set_pairs}): choose the matching set with data.keypoint_set, "
            "or 'from_annotations'"
        )
    return fields


def _keypoints(
    ann: Mapping[str, Any], fields: tuple[tuple[str, int], ...], where: str
) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) points in image pixels and (K,) visibility in COCO's coding from the annotation's keypoint fields."""
    points, visibility = [], []
    for name, count in fields:
        xy, codes = keypoint_triples(require(ann, name, where), count, where, name)
        points.append(xy)
        visibility.append(
            map_visibility(codes, COCO_VISIBILITY, where) if name == BODY_FIELD else _labelled(codes, name, where)
        )
    if len(fields) == 1:
        return points[0], visibility[0]
    return np.concatenate(points), np.concatenate(visibility)


def _labelled(codes: np.ndarray, field: str, where: str) -> np.ndarray:
    """COCO-WholeBody's extra fields → COCO's coding: any positive value is labelled, as its evaluation counts them
    (some hand keypoints carry a confidence in (0, 1) rather than 1 or 2); 2 stays visible, the others are 1."""
    if np.any(codes < 0):
        i = int(np.argmax(codes < 0))
        raise DataError(
            f"{where}: {field} keypoint {i} has visibility {codes[i]:g}; expected 0 (unlabelled) or a positive number"
        )
    return np.where(codes == 2, 2, codes > 0).astype(np.uint8)


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(values: Sequence[Any]) -> str:
    """Up to ``_SHOWN`` values for a message, and "..." when there are more."""
    return "[" + ", ".join(repr(v) for v in values[:_SHOWN]) + (", ...]" if len(values) > _SHOWN else "]")
