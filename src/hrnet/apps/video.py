"""Pose estimation on videos, webcams and streams: frames in, ``hrnet.pose.track.VideoPoseTracker`` (person boxes,
track ids, smoothing), JSON lines (one a frame) and, when drawn, an H.264 MP4 (yuv420p, by PyAV) that plays in
browsers out.

A source is a video file, a webcam index (``"0"``) or a stream URL (``rtsp://``, ``http://``, ...) that OpenCV's
FFmpeg back end opens (``hrnet.io.frames``). A file's outputs appear whole or not at all; a webcam's or stream's
(which never end on their own) are completed when the frames stop or on Ctrl-C.
"""

from __future__ import annotations

import logging
import math
import threading
import time as clock
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
from tqdm import tqdm

from hrnet.drawing.skeletons import draw_persons
from hrnet.errors import DataError
from hrnet.io.files import atomic_path, json_text
from hrnet.io.frames import (
    DEFAULT_FPS,
    H264Writer,
    atomic_video,
    frame_time,
    is_live_source,
    open_capture,
    video_outputs,
)
from hrnet.io.inputs import decimal_id
from hrnet.io.streams import LatestFrame, ReadAhead, WriteBehind
from hrnet.pose.estimator import PoseEstimator
from hrnet.pose.persons import person_results
from hrnet.pose.track import TrackedPerson, VideoOptions, VideoPoseTracker

log = logging.getLogger(__name__)


@dataclass
class VideoStats:
    """How a ``predict_video`` call went (filled in when one is passed).

    Attributes:
        offered: frames the source delivered (a live source's dropped frames count).
        estimated: frames that went through the network (all of a file's).
        seconds: wall-clock seconds from the first frame read to the last frame written.
        latency: a live source's seconds from each estimated frame's arrival to its output written.
    """

    offered: int = 0
    estimated: int = 0
    seconds: float = 0.0
    latency: list[float] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.estimated / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of the latency in seconds (nan without any)."""
        return float(np.percentile(self.latency, q)) if self.latency else math.nan


READ_AHEAD = 8  # a file's frames decoded (and detected) ahead of the network


def predict_video(
    estimator: PoseEstimator,
    source: str | Path,
    out_dir: str | Path,
    *,
    options: VideoOptions | None = None,
    threshold: float = 0.3,
    draw: bool = True,
    progress: bool = True,
    stats: VideoStats | None = None,
) -> list[Path]:
    """Persons with track ids in every frame of a video file, webcam or stream; returns the files written.

    The JSON lines file (names: ``video_outputs``): a line per frame, ``{"frame", "time" (seconds), "persons": [COCO
    keypoint result + "bbox" + "track_id"]}``; the MP4: the frames with skeletons, boxes and ids, H.264 (with
    ``draw``). Keypoints below ``threshold`` are not drawn. A file's time is each frame's presentation timestamp
    (``frame_time``), so that a variable-frame-rate video keeps its real times; a live source's is the clock since
    its first frame. The times are also the clock of the One-Euro smoothing. A webcam, or a stream whose length
    is not known, is live; a URL of a video file whose length OpenCV reads is processed like a file.

    Pipelined (``hrnet.io.streams``): a file is decoded (and, on detection frames, detected) in a thread ahead of the
    network, and drawn, encoded and written in a thread behind it. A live source is read in a thread that keeps
    only the newest frame, so that the latency stays bounded: frames arriving while the network is busy are
    dropped, not queued; its detector (when there is one) runs in a thread of its own on the newest frame, and its
    boxes join the tracks when they are ready. ``stats`` (a ``VideoStats``) is filled in: frames offered and
    estimated, frames/s, a live source's latency.
    """
    out = Path(out_dir)
    jsonl_path, *video_path = video_outputs(source, out, draw)
    pose_tracker = VideoPoseTracker(estimator, options)
    stats = stats if stats is not None else VideoStats()
    with open_capture(source) as capture:
        fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
        total = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0) or None
        # A webcam, or a stream of no known length, is live; a URL of a video file (its length known) is read
        # like a file: every frame, at its own timestamps.
        live = is_live_source(source) and (decimal_id(str(source)) is not None or total is None)
        with (
            atomic_path(jsonl_path) as jsonl_tmp,
            atomic_video(video_path, fps) as writer,
            open(jsonl_tmp, "w", encoding="utf-8") as lines,
        ):
            # A live source's detector thread may still be reading a frame that the writer would draw on.
            in_place = not (live and estimator.detector is not None)
            output = _FrameOutput(lines, writer, estimator.keypoint_set, threshold, jsonl_path, stats, in_place)
            bar = tqdm(total=total, desc=str(source), unit="frame", disable=not progress)
            started = clock.monotonic()
            try:
                if live:
                    _run_live(capture, pose_tracker, output, bar, stats)
                else:
                    _run_file(capture, pose_tracker, output, bar, stats, fps)
            except KeyboardInterrupt:
                if not live:
                    raise  # a file's outputs are whole or absent
                log.info("%s: stopped after %d frames; finishing the outputs", source, stats.estimated)
            finally:
                bar.close()
                stats.seconds = clock.monotonic() - started
            if not stats.estimated:
                raise DataError(f"{source}: no frame could be decoded")
            # A header's count may be off by a frame or two; far fewer frames is a damaged or truncated file.
            if not live and total is not None and stats.estimated < total - max(2, total // 50):
                log.warning(
                    "%s: decoding stopped at frame %d of the %d its header announces: the file is damaged or "
                    "truncated; the outputs hold the frames decoded", source, stats.estimated, total,
                )  # fmt: skip
    if live:
        log.info(
            "%s: %d of %d frames estimated (%.1f frames/s; the others arrived while the network was busy), "
            "latency p50 %.0f ms, p99 %.0f ms",
            source, stats.estimated, stats.offered, stats.frames_per_s, 1000 * stats.percentile(50),
            1000 * stats.percentile(99),
        )  # fmt: skip
    return [jsonl_path, *video_path]


@dataclass
class _FrameOutput:
    """A video's outputs, written frame by frame in the write-behind thread: a JSON line, and the drawn frame
    encoded into the MP4. The drawing is made on the decoded frame itself (BGR, as OpenCV decodes it, and as the
    encoder's colour conversion takes it) when ``draw_in_place``: nothing else reads a frame once it is written."""

    lines: IO[str]
    writer: H264Writer | None
    keypoint_set: Any
    threshold: float
    jsonl_path: Path
    stats: VideoStats
    draw_in_place: bool = True

    def write(self, index: int, time: float, bgr: np.ndarray, tracked: list[TrackedPerson], arrived: float) -> None:
        persons, ids = [t.pose for t in tracked], [t.track_id for t in tracked]
        where = f"frame {index}"
        record = {"frame": index, "time": round(time, 4), "persons": person_results(persons, index, ids, where)}
        self.lines.write(json_text(record, f"{self.jsonl_path}, {where}") + "\n")
        if self.writer is not None:
            drawn = draw_persons(bgr, persons, self.keypoint_set, self.threshold, ids, in_place=self.draw_in_place)
            self.writer.write(drawn)
        if not math.isnan(arrived):
            self.stats.latency.append(clock.monotonic() - arrived)


def _run_file(
    capture: cv2.VideoCapture,
    tracker: VideoPoseTracker,
    output: _FrameOutput,
    bar: tqdm,
    stats: VideoStats,
    fps: float,
) -> None:
    """A video file: decoded and detected ahead, estimated and tracked here, written behind."""
    every = tracker.options.detect_every
    boxes = tracker.estimator.person_boxes

    def decoded() -> Iterator[tuple[np.ndarray, float, tuple[np.ndarray, np.ndarray] | None]]:
        now, index = -math.inf, 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            now = frame_time(capture, now, fps)
            detect = boxes.detector is not None and index % every == 0
            yield bgr, now, boxes.detect(bgr) if detect else None
            index += 1

    with (
        ReadAhead(decoded(), READ_AHEAD, name="hrnet-video-read") as frames,
        WriteBehind(READ_AHEAD, name="hrnet-video-write") as writer,
    ):
        for index, (bgr, time, detections) in enumerate(frames):
            stats.offered += 1
            tracked = tracker(bgr, time, detections)
            writer.submit(partial(output.write, index, time, bgr, tracked, math.nan))
            writer.submit(partial(bar.update, 1))
            stats.estimated += 1


def _run_live(
    capture: cv2.VideoCapture, tracker: VideoPoseTracker, output: _FrameOutput, bar: tqdm, stats: VideoStats
) -> None:
    """A webcam or stream: always the newest frame (``LatestFrame``); the detector, when there is one, in a thread
    beside the network, its boxes joined to the tracks when they are ready."""

    def read() -> np.ndarray | None:
        ok, bgr = capture.read()
        return bgr if ok else None

    detector = _DetectorThread(tracker.estimator, tracker.options.detect_every) if tracker.estimator.detector else None
    with LatestFrame(read, name="hrnet-live-read") as source, WriteBehind(2, name="hrnet-live-write") as writer:
        started = None
        try:
            while (frame := source.take()) is not None:
                started = frame.time if started is None else started
                time = frame.time - started
                if detector is None:
                    tracked = tracker(frame.image, time)
                else:
                    detections = detector.result()
                    detector.offer(frame.image, frame.index)
                    tracked = tracker.update(frame.image, time, detections)
                writer.submit(partial(output.write, stats.estimated, time, frame.image, tracked, frame.time))
                writer.submit(partial(bar.update, 1))
                stats.estimated += 1
                stats.offered = source.offered
        finally:
            stats.offered = source.offered
            if detector is not None:
                detector.close()


class _DetectorThread:
    """A live source's person detector in a thread of its own: ``offer`` hands it the newest frame when it is idle
    and at least ``every`` frames have passed since the frame it detected on last; ``result`` gives its newest
    boxes once (then None until it has new ones)."""

    def __init__(self, estimator: PoseEstimator, every: int):
        self.boxes = estimator.person_boxes
        self.every = every
        self._condition = threading.Condition()
        self._frame: tuple[np.ndarray, int] | None = None
        self._result: tuple[np.ndarray, np.ndarray] | None = None
        self._last = -math.inf
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hrnet-live-detect", daemon=True)
        self._thread.start()

    def offer(self, image: np.ndarray, index: int) -> None:
        with self._condition:
            if self._error is not None:
                raise self._error
            if not self._busy and index - self._last >= self.every:
                self._frame, self._busy, self._last = (image, index), True, index
                self._condition.notify_all()

    def result(self) -> tuple[np.ndarray, np.ndarray] | None:
        with self._condition:
            found, self._result = self._result, None
            return found

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._frame is not None or self._closed)
                if self._closed:
                    return
                assert self._frame is not None
                image, self._frame = self._frame[0], None
            try:
                found = self.boxes.detect(image)
            except BaseException as err:  # raised by the next offer
                with self._condition:
                    self._error, self._busy = err, False
                return
            with self._condition:
                self._result, self._busy = found, False

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join(timeout=10)
