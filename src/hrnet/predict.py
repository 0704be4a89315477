"""``hrnet predict``: image files, folders, videos, webcams and streams → COCO-results JSON and drawings.

Per image ``<name>.json`` (``photo.jpg.json``: COCO keypoint results: image_id, category_id, keypoints
[x, y, score]×K, score, plus the box) and ``<stem>_pose.<ext>`` with the skeletons (``photo_pose.jpg``); per video
``<name>.jsonl`` (one line per frame, persons with track ids) and ``<stem>_pose.mp4`` (H.264), made by
``hrnet.video``. The names keep the input's extension, so ``a.jpg`` and ``a.png`` never share a result. An input
that cannot be read is reported by name and skipped; the others complete. Only regular files are read: folder
entries named like inputs that are something else (a FIFO, socket, device, sub-folder, dangling link or link
loop) are named and skipped unopened, and such an entry given by name is refused. Nothing is run when an output would
replace an input (an image, video, the boxes file, ...), two inputs would write the same file, or the output
folder cannot be written. Photos are turned upright by their EXIF orientation tag (person boxes are then in the
upright image's pixels).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hrnet.data.images import MAX_PIXELS, read_image
from hrnet.errors import DataError, HrnetError, OutputError
from hrnet.fileio import check_writable_dir, output_problem, read_json, write_json_atomic
from hrnet.inference import PoseEstimator
from hrnet.inputs import Skipped, check_not_special, decimal_id, entry_kind, list_inputs
from hrnet.persons import draw_persons, person_results, usable_boxes
from hrnet.video import VIDEO_SUFFIXES, VideoOptions, is_live_source, is_video, predict_video, video_outputs
from hrnet.visualize import write_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class PredictReport:
    """What a ``predict_paths`` call did."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path | str, str]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # folder entries named like inputs, not regular files


def expand_inputs(inputs: Sequence[str | Path]) -> tuple[list[Path | str], list[Skipped]]:
    """Files as given; folders replaced by their images and videos (sorted, not recursive); webcam indices
    (``"0"``) and stream URLs kept as text. Also the folder entries named like images or videos that are not
    regular files (``hrnet.inputs.list_inputs``), which are skipped.

    Raises:
        DataError: an input given by name is a FIFO, socket, device, dangling link or link loop (nothing opens
            it), or a folder holds no image or video.
    """
    paths: list[Path | str] = []
    skipped: list[Skipped] = []
    for text in inputs:
        if is_live_source(text):
            paths.append(str(text))
            continue
        item = Path(text)
        check_not_special(item)
        if entry_kind(item) == "folder":
            found, others = list_inputs(item, IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            drawings = {output.name for p in found for output in _outputs(p, item, True)[1:]}
            found = [p for p in found if p.name not in drawings]  # not the drawings made of the others
            if not found:
                names = ", ".join(s.path.name for s in others[:5]) + (", ..." if len(others) > 5 else "")
                also = f" (not regular files, skipped: {names})" if others else ""
                raise DataError(f"no images or videos found in {item}{also}: give a folder of image or video files")
            paths += found
            skipped += others
        else:
            paths.append(item)
    return paths, skipped


class DetectionBoxes:
    """Person boxes from a COCO detection-results JSON (``[{image_id, category_id, bbox, score}, ...]``), found
    for an input by its file name (an entry's ``file_name``, if any) or its id (COCO's ``000000000785.jpg`` is
    image 785; other names match an ``image_id`` equal to the file name or its stem)."""

    def __init__(self, path: str | Path, score_threshold: float = 0.0, category_id: int = 1):
        self.path = Path(path)
        entries = read_json(path, "detection-results file")
        if not isinstance(entries, list):
            raise DataError(f"{path}: a detection-results file is a JSON list of {{image_id, bbox, score}}")
        self.boxes: dict[Any, list[tuple[list[float], float]]] = {}
        self.names: list[Any] = []  # every image the file names, in its order (for the warning of no match)
        empty = 0
        for i, det in enumerate(entries):
            if not isinstance(det, dict) or "bbox" not in det or ("image_id" not in det and "file_name" not in det):
                raise DataError(f"{path}: entry {i} needs 'bbox' and 'image_id' (or 'file_name')")
            key = det.get("file_name", det.get("image_id"))
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise DataError(f"{path}: entry {i}: the image_id or file_name {key!r} is not a number or a name")
            bbox, score = _box(det.get("bbox"), self.path, i), _number(det.get("score", 1.0), "score", self.path, i)
            if key not in self.boxes:
                self.names.append(key)
            self.boxes.setdefault(key, [])
            if det.get("category_id", category_id) != category_id or score < score_threshold:
                continue
            if bbox[2] <= 0 or bbox[3] <= 0:
                empty += 1
                continue
            self.boxes[key].append((bbox, score))
        if empty:
            log.warning("%s: left out %d boxes of zero or negative width or height", path, empty)

    def matches(self, path: Path) -> bool:
        """Whether the file names the image ``path`` (even with no box above the threshold)."""
        return any(key in self.boxes for key in _keys(path))

    def lookup(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(P, 4) boxes and (P,) scores for an image file; no entry means no person."""
        for key in _keys(path):
            if key in self.boxes:
                found = self.boxes[key]
                return np.array([b for b, _ in found], dtype=np.float64).reshape(-1, 4), np.array(
                    [s for _, s in found], dtype=np.float64
                )
        return np.zeros((0, 4)), np.zeros(0)


def _keys(path: Path) -> list[Any]:
    """The ids a detection entry may give an image file: its name, its stem, and for digits the number."""
    keys: list[Any] = [path.name, path.stem]
    if (number := decimal_id(path.stem)) is not None:
        keys.insert(0, number)
    return keys


def _number(value: Any, what: str, path: Path, index: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{path}: entry {index}: the {what} {value!r} is not a finite number; fix or remove the entry")
    return float(value)


def _box(value: Any, path: Path, index: int) -> list[float]:
    if not isinstance(value, list) or len(value) != 4:
        raise DataError(
            f"{path}: entry {index}: the bbox {value!r} is not a list of 4 numbers [x, y, width, height] in pixels"
        )
    return [_number(v, "bbox value", path, index) for v in value]


def predict_paths(
    estimator: PoseEstimator,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    detections: DetectionBoxes | None = None,
    video: VideoOptions | None = None,
    threshold: float = 0.3,
    draw: bool = True,
    progress: bool = True,
    protected: Sequence[str | Path] = (),
    max_pixels: int = MAX_PIXELS,
) -> PredictReport:
    """Run ``estimator`` on image files, folders, videos, webcams (``"0"``) and stream URLs; write results and
    drawings into ``out_dir``.

    Person boxes come from ``detections`` for images (an image with no detection entry counts as one
    whole-image person only when no detection file is given) or else from the estimator's detector. Videos take
    theirs from the estimator's detector as ``video`` says (``hrnet.video.predict_video``; without a detector the
    whole frame is one person, who still gets a track id). Keypoints scoring below ``threshold`` are not drawn
    (they are still in the JSON). Nothing is run or written when an output would replace an input or one of the
    ``protected`` files (the boxes file, weights, config), or two inputs would write the same output
    (``DataError``), or ``out_dir`` cannot be written (``OutputError``). A write that fails later (a full disk)
    stops the run with an ``OutputError``. An image over ``max_pixels`` (width × height, read from its header
    before decoding) fails like an unreadable one. Folder entries named like inputs that are not regular files
    (``expand_inputs``) are warned about by name, listed in the report's ``skipped`` and never opened.
    """
    out = Path(out_dir)
    paths, skipped = expand_inputs(inputs)
    _check_outputs(paths, out, draw, [Path(p) for p in protected])
    check_writable_dir(out, "--out folder")
    if detections is not None:
        _warn_unmatched(detections, [p for p in paths if isinstance(p, Path) and not is_video(p)])
    report = PredictReport(skipped=skipped)
    if skipped:
        named = ", ".join(f"{s.path} ({s.kind})" for s in skipped[:20]) + (", ..." if len(skipped) > 20 else "")
        log.warning("not regular files, skipped (%d): %s", len(skipped), named)
    for path in tqdm(paths, desc="inputs", unit="file", disable=not progress or len(paths) < 2):
        try:
            if is_video(path):
                report.written += predict_video(
                    estimator,
                    path,
                    out,
                    options=video,
                    threshold=threshold,
                    draw=draw,
                    progress=progress,
                )
            else:
                assert isinstance(path, Path)
                report.written += _predict_image(estimator, path, out, detections, threshold, draw, max_pixels)
        except OutputError:
            raise
        except OSError as err:  # writing failed (reading errors are DataErrors): the next inputs would fail too
            raise OutputError(
                f"{err.filename or out}: cannot write the results of {path} ({output_problem(err)})"
            ) from None
        except HrnetError as err:
            log.error("skipped %s: %s", path, err)
            report.failed.append((path, str(err)))
    return report


def _warn_unmatched(detections: DetectionBoxes, images: Sequence[Path]) -> None:
    """A boxes file that names none (or only some) of the input images is most likely the wrong one."""
    missing = [p for p in images if not detections.matches(p)]
    if not missing:
        return
    named = ", ".join(repr(n) for n in detections.names[:5]) or "nothing"
    if len(missing) == len(images):
        log.warning(
            "%s: no entry matches any input image: it names %s%s; an image matches an entry's file_name or "
            "image_id equal to its file name, its stem, or its number (000000000785.jpg is 785). No person is "
            "predicted without a box",
            detections.path, named, ", ..." if len(detections.names) > 5 else "",
        )  # fmt: skip
    else:
        log.warning(
            "%s: no entry for %d of %d input images (e.g. %s): no person is predicted for them",
            detections.path, len(missing), len(images), ", ".join(p.name for p in missing[:3]),
        )  # fmt: skip


def _drawing(path: Path, out: Path) -> Path:
    """``photo.jpg`` → ``photo_pose.jpg`` (``.jpg``, ``.jpeg``, ``.png`` keep theirs; ``scan.tif`` →
    ``scan_pose_tif.png``)."""
    suffix = path.suffix
    if suffix.lower() in (".jpg", ".jpeg", ".png"):
        return out / f"{path.stem}_pose{suffix}"
    return out / f"{path.stem}_pose_{suffix[1:] or 'image'}.png"


def _outputs(path: Path | str, out: Path, draw: bool) -> list[Path]:
    """The files an input writes into ``out``: ``<name>.json`` and the drawing; a video's from ``hrnet.video``."""
    if is_video(path):
        return video_outputs(path, out, draw)
    path = Path(path)
    return [out / f"{path.name}.json", *([_drawing(path, out)] if draw else [])]


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file: the same file under another name or through a hard link."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _check_outputs(paths: Sequence[Path | str], out: Path, draw: bool, protected: Sequence[Path] = ()) -> None:
    """Refuse, before anything runs, outputs that would replace an input (or a protected file) or each other."""
    sources = [*(p for p in paths if isinstance(p, Path)), *protected]
    inputs = {path.resolve(): path for path in sources}
    identities = {i: path for path in sources if (i := _identity(path)) is not None}
    writers: dict[Path, Path | str] = {}
    for path in paths:
        for output in _outputs(path, out, draw):
            target = output.resolve()
            found = _identity(output)
            same = inputs.get(target) or (identities.get(found) if found is not None else None)
            if same is not None:
                raise DataError(
                    f"{output}: writing the results of {path} there would replace the input "
                    f"{same}; choose another --out folder"
                )
            if target in writers and writers[target] != path:
                raise DataError(
                    f"{writers[target]} and {path} would both write {output}: give them different names or "
                    "predict them into different --out folders"
                )
            writers[target] = path


def _predict_image(
    estimator: PoseEstimator,
    path: Path,
    out: Path,
    detections: DetectionBoxes | None,
    threshold: float,
    draw: bool,
    max_pixels: int,
) -> list[Path]:
    image = read_image(path, apply_orientation=True, max_pixels=max_pixels)
    boxes, scores = None, None
    if detections is not None:
        boxes, scores = detections.lookup(path)
        keep = usable_boxes(boxes, image.shape[:2])
        if not keep.all():
            log.warning(
                "%s: %d of its boxes in %s left out: not finite, under a pixel, wholly outside the %d×%d image or "
                "many times its size",
                path, int((~keep).sum()), detections.path, image.shape[1], image.shape[0],
            )  # fmt: skip
            boxes, scores = boxes[keep], scores[keep]
    persons = estimator(image, boxes, scores, channel_order="rgb")
    number = decimal_id(path.stem)
    image_id: Any = path.name if number is None else number
    written = _outputs(path, out, draw)
    write_json_atomic(written[0], person_results(persons, image_id, where=path))
    if draw:
        write_image(written[1], draw_persons(image, persons, estimator.keypoint_set, threshold))
    return written
