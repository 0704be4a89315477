"""``hrnet predict``: image files, folders and videos → COCO-results JSON and drawings.

Per image ``<stem>.json`` (COCO keypoint results: image_id, category_id, keypoints [x, y, score]×K, score, plus
the box) and ``<stem>.jpg`` with the skeletons; per video ``<stem>.jsonl`` (one line per frame) and
``<stem>.mp4``. An input that cannot be read is reported by name and skipped; the others complete.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from hrnet.data.images import read_image
from hrnet.errors import DataError, HrnetError
from hrnet.fileio import atomic_path, json_text, read_json, write_json_atomic, write_text_atomic
from hrnet.inference import PersonPose, PoseEstimator
from hrnet.metrics.coco import keypoint_results
from hrnet.visualize import draw_poses, write_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@dataclass
class PredictReport:
    """What a ``predict_paths`` call did."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders replaced by their images and videos (sorted, not recursive)."""
    paths: list[Path] = []
    for item in map(Path, inputs):
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


def person_results(persons: Sequence[PersonPose], image_id: Any) -> list[dict[str, Any]]:
    """COCO keypoint results (with the box) for the persons of one image, rounded to what a pixel needs."""
    if not persons:
        return []
    keypoints = np.stack([np.concatenate([p.keypoints, p.scores[:, None]], axis=1) for p in persons])
    return keypoint_results(
        [image_id] * len(persons),
        keypoints.astype(np.float64).round(3),
        np.array([p.score for p in persons]).round(4),
        boxes=np.stack([p.box for p in persons]).astype(np.float64).round(2),
    )


def _draw(estimator: PoseEstimator, image: np.ndarray, persons: Sequence[PersonPose], threshold: float) -> np.ndarray:
    if not persons:
        return image
    return draw_poses(
        image,
        np.stack([p.keypoints for p in persons]),
        np.stack([p.scores for p in persons]),
        estimator.keypoint_set,
        threshold=threshold,
        boxes=np.stack([p.box for p in persons]),
    )


def predict_paths(
    estimator: PoseEstimator,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    detections: DetectionBoxes | None = None,
    threshold: float = 0.3,
    draw: bool = True,
    progress: bool = True,
) -> PredictReport:
    """Run ``estimator`` on image files, folders and videos; write results and drawings into ``out_dir``.

    Person boxes come from ``detections`` for images (a frame of a video, or an image with no detection entry,
    counts as one whole-frame person only when no detection file is given). Keypoints scoring below
    ``threshold`` are not drawn (they are still in the JSON). Nothing is run or written when an output would
    replace an input, or two inputs would write the same output (``DataError``).
    """
    out = Path(out_dir)
    paths = expand_inputs(inputs)
    _check_outputs(paths, out, draw)
    out.mkdir(parents=True, exist_ok=True)
    report = PredictReport()
    for path in tqdm(paths, desc="inputs", unit="file", disable=not progress or len(paths) < 2):
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                report.written += _predict_video(estimator, path, out, threshold, draw, progress)
            else:
                report.written += _predict_image(estimator, path, out, detections, threshold, draw)
        except HrnetError as err:
            log.error("skipped %s: %s", path, err)
            report.failed.append((path, str(err)))
    return report


def _outputs(path: Path, out: Path, draw: bool) -> list[Path]:
    """The files an input writes into ``out``: ``<stem>.json`` (+ ``.jpg``); a video ``<stem>.jsonl`` (+ ``.mp4``)."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return [out / f"{path.stem}.jsonl", *([out / f"{path.stem}.mp4"] if draw else [])]
    return [out / f"{path.stem}.json", *([out / f"{path.stem}.jpg"] if draw else [])]


def _check_outputs(paths: Sequence[Path], out: Path, draw: bool) -> None:
    """Refuse, before anything runs, outputs that would replace an input or each other."""
    inputs = {path.resolve(): path for path in paths}
    writers: dict[Path, Path] = {}
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
        write_image(written[1], _draw(estimator, image, persons, threshold))
    return written


def _predict_video(
    estimator: PoseEstimator, path: Path, out: Path, threshold: float, draw: bool, progress: bool
) -> list[Path]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path}: OpenCV cannot open the video (missing file or unsupported codec)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    written = _outputs(path, out, draw)
    jsonl, video = written[0], out / f"{path.stem}.mp4"
    lines: list[str] = []
    writer: cv2.VideoWriter | None = None
    try:
        with atomic_path(video) if draw else contextlib.nullcontext(None) as tmp:
            for i in tqdm(range(count or 10**9), total=count, desc=path.name, unit="frame", disable=not progress):
                ok, bgr = capture.read()
                if not ok:
                    break
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                persons = estimator(frame, channel_order="rgb")
                lines.append(json_text({"frame": i, "persons": person_results(persons, i)}, f"{jsonl}, frame {i}"))
                if tmp is not None:
                    if writer is None:
                        height, width = frame.shape[:2]
                        fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
                        writer = cv2.VideoWriter(str(tmp), fourcc, fps, (width, height))
                    writer.write(cv2.cvtColor(_draw(estimator, frame, persons, threshold), cv2.COLOR_RGB2BGR))
            if writer is not None:
                writer.release()
            if not lines:
                raise DataError(f"{path}: no frame could be decoded")
    finally:
        capture.release()
    write_text_atomic(jsonl, "\n".join(lines) + "\n")
    return written
