"""``hrnet predict``: image files, folders, videos, webcams and streams → COCO-results JSON and drawings.

Per image ``<name>.json`` (``photo.jpg.json``: COCO keypoint results: image_id, category_id, keypoints
[x, y, score]×K, score, plus the box) and ``<stem>_pose.<ext>`` with the skeletons (``photo_pose.jpg``); per video
``<name>.jsonl`` (one line per frame, persons with track ids) and ``<stem>_pose.mp4`` (H.264), made by
``hrnet.video``. The names keep the input's extension, so ``a.jpg`` and ``a.png`` never share a result. An input
that cannot be read is reported by name and skipped; the others complete. Photos are turned upright by their EXIF
orientation tag (person boxes are then in the upright image's pixels).

The output folder is held for the run (``hrnet.outputs.OutputFolder``):

- it is locked (``.hrnet-lock``, holding the pid and command): a second run into the same folder while one is
  going is refused, naming the first one's pid; the lock of a run that was killed is taken over with a warning,
  and the temporary files that run left (``.clip.mp4.1a2b3c4d.tmp.jsonl``, after a SIGTERM) are removed;
- the files a run writes are listed in the folder's manifest (``.hrnet-outputs.json``). That list, not a name,
  tells a drawing from a photo: a folder given as input leaves out the drawings that ``hrnet predict`` wrote into
  it (and that have not changed since); every other image in it, ``tree_pose.jpg`` included, is an input;
- nothing is run when an output would replace an input (an image, video, the boxes file, ...: a drawing whose
  name is that of a photo in the folder is refused, naming both, rather than written under another name, so
  that drawings keep the names other tools expect), two inputs would write the same file, an existing file
  that ``hrnet predict`` did not write is in the way (unless ``overwrite``, ``--overwrite``), or the folder
  cannot be written.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hrnet.data.images import read_image
from hrnet.errors import DataError, HrnetError, OutputError
from hrnet.fileio import output_problem, read_json, write_json_atomic
from hrnet.inference import PoseEstimator
from hrnet.outputs import Manifest, OutputFolder
from hrnet.video import (
    VIDEO_SUFFIXES,
    Detector,
    VideoOptions,
    draw_persons,
    is_live_source,
    is_video,
    person_results,
    predict_video,
    video_outputs,
)
from hrnet.visualize import write_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
COMMAND = "hrnet predict"  # the name its outputs are recorded under (``hrnet.outputs``)


@dataclass
class PredictReport:
    """What a ``predict_paths`` call did."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path | str, str]] = field(default_factory=list)


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path | str]:
    """Files as given; folders replaced by their images and videos (sorted, not recursive) less the drawings
    that ``hrnet predict`` wrote there (by the folder's manifest); webcam indices (``"0"``) and stream URLs kept as
    text."""
    paths: list[Path | str] = []
    for text in inputs:
        if is_live_source(text):
            paths.append(str(text))
            continue
        item = Path(text)
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            manifest = Manifest.load(item)
            paths += [p for p in found if not manifest.holds(p, COMMAND)]
        else:
            paths.append(item)
    return paths


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
    if path.stem.isdigit():
        keys.insert(0, int(path.stem))
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
    detector: Detector | None = None,
    video: VideoOptions | None = None,
    threshold: float = 0.3,
    draw: bool = True,
    progress: bool = True,
    protected: Sequence[str | Path] = (),
    overwrite: bool = False,
) -> PredictReport:
    """Run ``estimator`` on image files, folders, videos, webcams (``"0"``) and stream URLs; write results and
    drawings into ``out_dir``.

    Person boxes come from ``detections`` for images (an image with no detection entry counts as one
    whole-image person only when no detection file is given). Videos take theirs from ``detector`` as
    ``video`` says (``hrnet.video.predict_video``; without a detector the whole frame is one person, who still
    gets a track id). Keypoints scoring below ``threshold`` are not drawn (they are still in the JSON).

    ``out_dir`` is held for the run (module docstring). Nothing is run or written when an output would replace
    an input or one of the ``protected`` files (the boxes file, weights, config), a file that ``hrnet predict``
    did not write (unless ``overwrite``), or ``out_dir`` cannot be written or is taken by another run
    (``OutputError``), or two inputs would write the same output (``DataError``). A write that fails later (a
    full disk) stops the run with an ``OutputError``.
    """
    paths = expand_inputs(inputs)
    sources = [*(p for p in paths if isinstance(p, Path)), *map(Path, protected)]
    with OutputFolder(out_dir, command=COMMAND, inputs=sources, overwrite=overwrite) as folder:
        _claim_outputs(paths, folder, draw)
        if detections is not None:
            _warn_unmatched(detections, [p for p in paths if isinstance(p, Path) and not is_video(p)])
        return _predict_all(estimator, paths, folder, detections, detector, video, threshold, draw, progress)


def _predict_all(
    estimator: PoseEstimator,
    paths: Sequence[Path | str],
    folder: OutputFolder,
    detections: DetectionBoxes | None,
    detector: Detector | None,
    video: VideoOptions | None,
    threshold: float,
    draw: bool,
    progress: bool,
) -> PredictReport:
    out = folder.path
    report = PredictReport()
    for path in tqdm(paths, desc="inputs", unit="file", disable=not progress or len(paths) < 2):
        try:
            if is_video(path):
                written = predict_video(
                    estimator,
                    path,
                    out,
                    detector=detector,
                    options=video,
                    threshold=threshold,
                    draw=draw,
                    progress=progress,
                )
            else:
                assert isinstance(path, Path)
                written = _predict_image(estimator, path, out, detections, threshold, draw)
            for output in written:
                folder.record(output)
            report.written += written
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


def _claim_outputs(paths: Sequence[Path | str], folder: OutputFolder, draw: bool) -> None:
    """Check every output before anything runs (``OutputFolder.claim``: not an input, not a file that is not
    ours), and that no two inputs write the same file."""
    writers: dict[Path, Path | str] = {}
    for path in paths:
        for output in _outputs(path, folder.path, draw):
            folder.claim(output, f"the output of {path}")
            target = output.resolve()
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
) -> list[Path]:
    image = read_image(path, apply_orientation=True)
    boxes, scores = detections.lookup(path) if detections is not None else (None, None)
    persons = estimator(image, boxes, scores, channel_order="rgb")
    image_id: Any = int(path.stem) if path.stem.isdigit() else path.name
    written = _outputs(path, out, draw)
    write_json_atomic(written[0], person_results(persons, image_id, where=path))
    if draw:
        write_image(written[1], draw_persons(image, persons, estimator, threshold))
    return written
