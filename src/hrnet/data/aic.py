"""AI Challenger keypoint files (raw form) → person records.

The raw form (Wu et al., "AI Challenger: A Large-scale Dataset for Going Deeper in Image Understanding", 2017) is
a JSON list of images::

    {"image_id": "<hash>", "keypoint_annotations": {"human1": [x, y, v] × 14, ...},
     "human_annotations": {"human1": [x1, y1, x2, y2], ...}}

with visibility 1 visible, 2 occluded, 3 unlabelled (mapped here to COCO's 2, 1, 0) and the image file
``<image_id>.jpg``. The file gives no image sizes: they are read from the image headers.

A raw file yields exactly the records that its COCO-form conversion (box ``(x1, y1, x2 - x1, y2 - y1)``, no
``area``) yields through ``hrnet.data.coco.read_coco``: the same skipping of persons without a labelled keypoint
and the same official box clipping. ``area`` is the box's ``(x2 - x1)·(y2 - y1)``, the scale that the AI
Challenger evaluation (``keypoint_eval.py``) puts in its OKS.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hrnet.data.records import (
    NO_LABELLED_KEYPOINT,
    GroundTruth,
    RecordSet,
    checked_box,
    keypoint_triples,
    map_visibility,
    read_entries,
    require,
    to_finite,
)
from hrnet.errors import DataError
from hrnet.io.images import image_size
from hrnet.keypoints import AIC14

AIC_VISIBILITY = {1: 2, 2: 1, 3: 0}  # AI Challenger visible / occluded / unlabelled → COCO coding
IMAGE_SUFFIX = ".jpg"


def read_aic_raw(annotations: str | Path, image_dir: str | Path, *, num_keypoints: int | None = None) -> RecordSet:
    """Persons of an AI Challenger raw keypoint file, with the ``AIC14`` keypoint set.

    Args:
        annotations: the raw JSON (e.g. ``keypoint_train_annotations_20170909.json``).
        image_dir: folder of ``<image_id>.jpg``; each image's header is read once for its size.
        num_keypoints: the model's keypoint count; anything but 14 is a ``DataError``.

    Returns:
        records in file order (images, then humans as listed): keypoints (K, 2) image pixels, visibility in COCO
        coding, the clipped box, ``image_id`` the hash, ``annotation_id`` the human's key (``"human1"``).

    Raises:
        DataError: a malformed file, entry, human or box, an image listed twice or unreadable, or no usable person.
    """
    path = Path(annotations)
    entries = read_entries(path, AIC14, num_keypoints, "the AI Challenger raw form, a JSON list of images")
    k = AIC14.num_keypoints
    persons = GroundTruth()
    first_entry: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: entry #{i}"
        image_id = require(entry, "image_id", where)
        if not isinstance(image_id, str) or not image_id:
            raise DataError(f"{where}: image_id must be the image's name (a non-empty string), got {image_id!r}")
        if image_id in first_entry:
            # Its persons would count twice in the evaluation: perfect predictions would score below 1.
            raise DataError(
                f"{where}: image {image_id!r} is listed twice (first as entry #{first_entry[image_id]}); list each "
                "image once with all its humans"
            )
        first_entry[image_id] = i
        where = f"{path}: image {image_id!r}"
        keypoints = _object_field(entry, "keypoint_annotations", where)
        boxes = _object_field(entry, "human_annotations", where)
        image_path = Path(image_dir) / f"{image_id}{IMAGE_SUFFIX}"
        size = image_size(image_path)
        for human, values in keypoints.items():
            human_where = f"{where}, {human}"
            if human not in boxes:
                raise DataError(f"{human_where}: has keypoints but no box in 'human_annotations'")
            points, codes = keypoint_triples(values, k, human_where)
            visibility = map_visibility(codes, AIC_VISIBILITY, human_where)
            if not visibility.any():
                persons.skipped[NO_LABELLED_KEYPOINT] += 1
                continue
            x1, y1, x2, y2 = (float(v) for v in to_finite(boxes[human], (4,), "box", human_where))
            box = checked_box([x1, y1, x2 - x1, y2 - y1], f"{human_where} (box [x1, y1, x2, y2] = {boxes[human]})")
            area = box[2] * box[3]
            persons.add(image_path, size, box, points, visibility, image_id=image_id, annotation_id=human, area=area)
    return persons.record_set(AIC14, path, f"{len(entries)} images")


def _object_field(entry: Mapping, key: str, where: str) -> Mapping:
    value = require(entry, key, where)
    if not isinstance(value, Mapping):
        raise DataError(f"{where}: {key!r} must be an object {{'human1': ...}}, got {type(value).__name__}")
    return value
