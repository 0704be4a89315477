"""``hrnet predict``: image files, folders, videos, webcams and streams → COCO-results JSON and drawings.

Per image ``<stem>.json`` (COCO keypoint results: image_id, category_id, keypoints [x, y, score]×K, score, plus
the box) and ``<stem>.jpg`` with the skeletons; per video ``<stem>.jsonl`` (one line per frame, persons with
track ids) and ``<stem>.mp4`` (H.264), made by ``hrnet.video``. An input that cannot be read is reported by name
and skipped; the others complete.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hrnet.data.images import read_image
from hrnet.errors import DataError, HrnetError
from hrnet.fileio import read_json, write_json_atomic
from hrnet.inference import PoseEstimator
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


@dataclass
class PredictReport:
    """What a ``predict_paths`` call did."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path | str, str]] = field(default_factory=list)


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path | str]:
    """Files as given; folders replaced by their images and videos (sorted, not recursive); webcam indices
    (``"0"``) and stream URLs kept as text."""
    paths: list[Path | str] = []
    for text in inputs:
        if is_live_source(text):
            paths.append(str(text))
            continue
        item = Path(text)
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        else:
            paths.append(item)
    return paths


class DetectionBoxes:
    """Person boxes from a COCO detection-results JSON (``[{image_id, category_id, bbox, score}, ...]``), found
    for an input by its file name (an entry's ``file_name``, if any) or its id (COCO's ``000000000785.jpg`` is
    image 785; other names match an ``image_id`` equal to the file name or its stem)."""

    def __init__(self, path: str | Path, score_threshold: float = 0.0, category_id: int = 1):
        entries = read_json(path, "detection-results file")
        if not isinstance(entries, list):
            raise DataError(f"{path}: a detection-results file is a JSON list of {{image_id, bbox, score}}")
        self.boxes: dict[Any, list[tuple[list[float], float]]] = {}
        for i, det in enumerate(entries):
            if not isinstance(det, dict) or "bbox" not in det or ("image_id" not in det and "file_name" not in det):
                raise DataError(f"{path}: entry {i} needs 'bbox' and 'image_id' (or 'file_name')")
            if det.get("category_id", category_id) != category_id or det.get("score", 1.0) < score_threshold:
                continue
            key = det.get("file_name", det.get("image_id"))
            self.boxes.setdefault(key, []).append((list(det["bbox"]), float(det.get("score", 1.0))))

    def lookup(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(P, 4) boxes and (P,) scores for an image file; no entry means no person."""
        keys: list[Any] = [path.name, path.stem]
        if path.stem.isdigit():
            keys.insert(0, int(path.stem))
        for key in keys:
            if key in self.boxes:
                found = self.boxes[key]
                return np.array([b for b, _ in found], dtype=np.float64), np.array([s for _, s in found])
        return np.zeros((0, 4)), np.zeros(0)


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
) -> PredictReport:
    """Run ``estimator`` on image files, folders, videos, webcams (``"0"``) and stream URLs; write results and
    drawings into ``out_dir``.

    Person boxes come from ``detections`` for images (an image with no detection entry counts as one
    whole-image person only when no detection file is given). Videos take theirs from ``detector`` as
    ``video`` says (``hrnet.video.predict_video``; without a detector the whole frame is one person, who still
    gets a track id). Keypoints scoring below ``threshold`` are not drawn (they are still in the JSON). Nothing
    is run or written when an output would replace an input, or two inputs would write the same output
    (``DataError``), or the output folder cannot be made.
    """
    out = Path(out_dir)
    paths = expand_inputs(inputs)
    _check_outputs(paths, out, draw)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"{out}: cannot create the output folder ({err.strerror or err}); choose another --out"
        ) from None
    report = PredictReport()
    for path in tqdm(paths, desc="inputs", unit="file", disable=not progress or len(paths) < 2):
        try:
            if is_video(path):
                report.written += predict_video(
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
                report.written += _predict_image(estimator, path, out, detections, threshold, draw)
        except HrnetError as err:
            log.error("skipped %s: %s", path, err)
            report.failed.append((path, str(err)))
    return report


def _outputs(path: Path | str, out: Path, draw: bool) -> list[Path]:
    """The files an input writes into ``out``: ``<stem>.json`` (+ ``.jpg``); a video ``<stem>.jsonl`` (+ ``.mp4``)."""
    if is_video(path):
        return video_outputs(path, out, draw)
    path = Path(path)
    return [out / f"{path.stem}.json", *([out / f"{path.stem}.jpg"] if draw else [])]


def _check_outputs(paths: Sequence[Path | str], out: Path, draw: bool) -> None:
    """Refuse, before anything runs, outputs that would replace an input or each other."""
    inputs = {path.resolve(): path for path in paths if isinstance(path, Path)}
    writers: dict[Path, Path | str] = {}
    for path in paths:
        for output in _outputs(path, out, draw):
            target = output.resolve()
            if target in inputs:
                raise DataError(
                    f"{output}: writing the results of {path} there would replace the input "
                    f"{inputs[target]}; choose another --out folder"
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
) -> list[Path]:
    image = read_image(path)
    boxes, scores = detections.lookup(path) if detections is not None else (None, None)
    persons = estimator(image, boxes, scores, channel_order="rgb")
    image_id: Any = int(path.stem) if path.stem.isdigit() else path.name
    written = _outputs(path, out, draw)
    write_json_atomic(written[0], person_results(persons, image_id))
    if draw:
        write_image(written[1], draw_persons(image, persons, estimator, threshold))
    return written
