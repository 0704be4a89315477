"""MPII Human Pose in the official HRNet JSON form → person records.

The JSON (``annot/train.json``, ``valid.json``, ``test.json`` of the official code) is a list of persons::

    {"image": "015601864.jpg", "center": [x, y], "scale": s, "joints": [[x, y] × 16], "joints_vis": [0|1 × 16]}

in MATLAB's 1-based pixel coordinates, with the person's size as ``scale`` = (roughly) its height / 200 pixels.
``joints_vis`` says whether a joint is annotated (1) or not (0, its coordinates are then -1): it does not tell
occluded from visible, so annotated joints get COCO visibility 2. Test-set entries have no ``joints``.

From center and scale to our box, reproducing the official ``lib/dataset/mpii.py`` crop. The official code
moves the center down by ``15·s`` pixels and enlarges the scale by 1.25 ("to avoid cropping limbs"), then makes
both 0-based::

    c = (cx - 1, cy + 15·s - 1),   region width = 1.25 · 200·s pixels (its height follows the input's aspect).

Our crop turns a box into a region of width ``1.25 · max(w, h · W_in / H_in)`` centered on the box
(``transforms.box_to_center_size``). The box chosen here is the square of side ``200·s`` centered at ``c``: for
any input no wider than tall (the official MPII input is 256 × 256) its region is exactly the official one. The
official "center x == -1 means no adjustment" sentinel marks entries without a person center; those are an error
here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hrnet.data.records import (
    PoseRecord,
    RecordSet,
    map_visibility,
    read_entries,
    require,
    to_finite,
    unlabelled_to_zero,
)
from hrnet.errors import DataError
from hrnet.io.images import image_size
from hrnet.keypoints import MPII16

log = logging.getLogger(__name__)

PIXEL_STD = 200.0  # the official "scale" unit: pixels per unit of scale
CENTRE_SHIFT = 15.0  # official: the center moves down by 15 · scale pixels
MPII_VISIBILITY = {0: 0, 1: 2}  # joints_vis: 0 not annotated, 1 annotated → COCO unlabelled / visible


def read_mpii(
    annotations: str | Path,
    image_dir: str | Path,
    *,
    num_keypoints: int | None = None,
    head_sizes: Sequence[float] | None = None,
) -> RecordSet:
    """Persons of an MPII file in the official JSON form, with the ``MPII16`` keypoint set.

    Args:
        annotations: the JSON list of persons.
        image_dir: folder holding the ``image`` files; each image's header is read once for its size.
        num_keypoints: the model's keypoint count; anything but 16 is a ``DataError``.
        head_sizes: optional PCKh normalisers in pixels, one per entry of the file (the JSON has no head boxes;
            the official evaluation takes them from ``gt_valid.mat``: 0.6 × the head box's diagonal).

    Returns:
        records in file order: keypoints (16, 2) in 0-based image pixels (unlabelled (0, 0)), visibility 2 or 0
        (all 0 for test entries), the box described in the module docstring, ``image_id`` the file name,
        ``annotation_id`` the entry's index, ``area`` the box's.

    Raises:
        DataError: a malformed file or entry (a scale ≤ 0 and a center of -1 included), an unreadable image, or
            an empty file.
    """
    path = Path(annotations)
    entries = read_entries(path, MPII16, num_keypoints, "the official MPII JSON form, a list of persons")
    if head_sizes is not None and len(head_sizes) != len(entries):
        raise DataError(f"{path}: {len(head_sizes)} head sizes given for {len(entries)} entries")
    if not entries:
        raise DataError(f"{path}: no person in the file (an empty list)")
    k = MPII16.num_keypoints
    sizes: dict[str, tuple[int, int]] = {}
    records = []
    for i, entry in enumerate(entries):
        where = f"{path}: entry #{i}"
        image = require(entry, "image", where)
        if not isinstance(image, str) or not image:
            raise DataError(f"{where}: image must be a file name (a non-empty string), got {image!r}")
        where = f"{path}: entry #{i} (image {image!r})"
        cx, cy = (float(v) for v in to_finite(require(entry, "center", where), (2,), "center", where))
        scale = float(to_finite([require(entry, "scale", where)], (1,), "scale", where)[0])
        if scale <= 0:
            raise DataError(f"{where}: scale {scale:g} gives a box of zero or negative size")
        if cx == -1:
            raise DataError(f"{where}: the center is [-1, ...], the official mark of a person without a position")
        if "joints" in entry:
            joints = to_finite(entry["joints"], (k, 2), f"joints ({k} × [x, y])", where)
            codes = to_finite(require(entry, "joints_vis", where), (k,), f"joints_vis ({k} values)", where)
            visibility = map_visibility(codes, MPII_VISIBILITY, where)
            points = unlabelled_to_zero(joints - 1.0, visibility)
        else:
            points, visibility = np.zeros((k, 2), np.float32), np.zeros(k, np.uint8)
        side = PIXEL_STD * scale
        center_x, center_y = cx - 1.0, cy + CENTRE_SHIFT * scale - 1.0
        image_path = Path(image_dir) / image
        if image not in sizes:
            sizes[image] = image_size(image_path)
        records.append(
            PoseRecord(
                image_path=image_path,
                image_size=sizes[image],
                box=(center_x - side / 2, center_y - side / 2, side, side),
                keypoints=points,
                visibility=visibility,
                image_id=image,
                annotation_id=i,
                area=side * side,
                head_size=None if head_sizes is None else float(head_sizes[i]),
            )
        )
    log.info("%s: %d persons", path, len(records))
    return RecordSet(records=tuple(records), keypoint_set=MPII16, source=path)
