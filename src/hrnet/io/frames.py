"""Frames in and out: video files, webcams and streams as OpenCV's FFmpeg back end opens them (what a source
is, the names of its outputs, each frame's presentation time) and H.264 MP4 files written by PyAV, which every
browser plays.

A source is a video file, a webcam index (``"0"``: ASCII digits) or a stream URL (``rtsp://``, ``http://``, ...).
``hrnet.apps.video`` runs the network on their frames.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hrnet.errors import DataError
from hrnet.io.files import atomic_path
from hrnet.io.images import check_channel_order, check_image
from hrnet.io.inputs import check_not_special, decimal_id
from hrnet.system import encoder_threads

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


DEFAULT_FPS = 25.0  # when a source does not say (some webcams and streams report 0)


_MAX_WEBCAM = 2**31 - 1  # OpenCV takes the index as a C int


def is_live_source(source: str | Path) -> bool:
    """Whether ``source`` is a webcam index (``"0"``: ASCII digits, no file of that name) or a stream URL rather
    than a file."""
    text = str(source)
    index = decimal_id(text)
    return _URL.match(text) is not None or (index is not None and index <= _MAX_WEBCAM and not Path(text).exists())


def is_video(source: str | Path) -> bool:
    """A video file (by its suffix), a webcam index or a stream URL."""
    return is_live_source(source) or Path(source).suffix.lower() in VIDEO_SUFFIXES


def source_stem(source: str | Path) -> str:
    """The stem of a source's output files: the file's stem, ``webcam0``, or a stream URL made file-safe."""
    text = str(source)
    if not is_live_source(text):
        return Path(text).stem
    if decimal_id(text) is not None:
        return f"webcam{text}"
    tail = re.sub(r"[^A-Za-z0-9.-]+", "_", _URL.sub("", text).split("?")[0]).strip("_.")
    return f"stream_{tail[:80] or 'video'}"


_TO_I420 = {"rgb": cv2.COLOR_RGB2YUV_I420, "bgr": cv2.COLOR_BGR2YUV_I420}


class H264Writer:
    """Frames → an H.264 MP4 (yuv420p, ``faststart``) through PyAV: the format every browser plays.

    ``writer.write(image)`` takes (H, W, 3) uint8 BGR frames (RGB with ``channel_order="rgb"``) of one size; odd
    sizes are padded by a pixel (4:2:0 needs even ones). ``close()`` flushes the encoder. Every failure is a
    ``DataError`` naming the file.
    """

    def __init__(
        self, path: str | Path, fps: float, *, codec: str = "libx264", crf: int = 23, preset: str = "veryfast"
    ):
        import av

        self.path = Path(path)
        self._av = av
        self._rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(int(DEFAULT_FPS))
        threads = encoder_threads()  # x264 runs beside the network: it must leave the network its cores
        # No B-frames: choosing them costs the encoder thread more time than the slightly larger files are worth
        # (docs/speed.md), and a live source's output does not lag by their reordering.
        self._codec = codec
        self._options = {"crf": str(crf), "preset": preset, "threads": str(threads), "bf": "0"}
        self._stream: Any = None
        self._size: tuple[int, int] | None = None
        try:
            self._container: Any = av.open(str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"})
        except (av.FFmpegError, OSError) as err:
            raise DataError(f"{self.path}: cannot write the video ({err})") from None

    def write(self, image: np.ndarray, channel_order: str = "bgr") -> None:
        """Encode one (H, W, 3) uint8 frame in ``channel_order`` ("bgr" or "rgb")."""
        check_channel_order(channel_order)
        image = check_image(image, f"{self.path}: a frame")
        height, width = image.shape[:2]
        if self._stream is None:
            self._open_stream(width + width % 2, height + height % 2)
            self._size = (height, width)
        elif self._size != (height, width):
            first = f"{self._size[1]}×{self._size[0]}" if self._size else "?"
            raise DataError(f"{self.path}: a frame of {width}×{height} after frames of {first}")
        if height % 2 or width % 2:
            image = cv2.copyMakeBorder(image, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
        # OpenCV's conversion to 4:2:0 (BT.601, limited range, as FFmpeg's swscale) is several times faster than
        # swscale's, on the thread that runs beside the network (docs/speed.md).
        yuv = np.asarray(cv2.cvtColor(image, _TO_I420[channel_order]), dtype=np.uint8)
        self._encode(self._av.VideoFrame.from_ndarray(yuv, format="yuv420p"))

    def close(self) -> None:
        """Flush the encoder and finish the file (a file with no frame is left empty)."""
        try:
            if self._stream is not None:
                self._encode(None)
            self._container.close()
        except (self._av.FFmpegError, OSError) as err:
            raise DataError(f"{self.path}: the video could not be finished ({err})") from None

    def _open_stream(self, width: int, height: int) -> None:
        try:
            stream = self._container.add_stream(self._codec, rate=self._rate, options=self._options)
        except (self._av.FFmpegError, ValueError) as err:
            raise DataError(
                f"{self.path}: the {self._codec} encoder is not available in this PyAV build ({err}); reinstall "
                "the 'av' package from PyPI (its wheels include libx264)"
            ) from None
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        self._stream = stream

    def _encode(self, frame: Any) -> None:
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (self._av.FFmpegError, OSError, ValueError) as err:
            raise DataError(f"{self.path}: the {self._codec} encoder failed ({err})") from None


@contextmanager
def open_capture(source: str | Path) -> Iterator[cv2.VideoCapture]:
    text = str(source)
    live = is_live_source(text)
    if not live:
        check_not_special(text, "video")  # a FIFO or device would block OpenCV's reader
    index = decimal_id(text) if live else None
    capture = cv2.VideoCapture(index) if index is not None else cv2.VideoCapture(text)
    try:
        if not capture.isOpened():
            what = "webcam" if index is not None else "stream" if live else "video"
            raise DataError(f"{text}: OpenCV cannot open the {what} (missing, unreachable or an unsupported codec)")
        yield capture
    finally:
        capture.release()


def video_outputs(source: str | Path, out: Path, draw: bool) -> list[Path]:
    """The files a video source writes into ``out``: ``<name>.jsonl`` and, when drawn, ``<stem>_pose.mp4``
    (``clip.mp4`` → ``clip.mp4.jsonl``, ``clip_pose.mp4``; ``clip.avi`` → ``clip_pose_avi.mp4``: never another
    input's name); a webcam or stream ``<stem>.jsonl`` and ``<stem>.mp4``."""
    stem = source_stem(source)
    if is_live_source(source):
        return [out / f"{stem}.jsonl", *([out / f"{stem}.mp4"] if draw else [])]
    path = Path(source)
    drawing = f"{stem}_pose.mp4" if path.suffix == ".mp4" else f"{stem}_pose_{path.suffix[1:]}.mp4"
    return [out / f"{path.name}.jsonl", *([out / drawing] if draw else [])]


def frame_time(capture: cv2.VideoCapture, previous: float, fps: float) -> float:
    """Seconds from a file's first frame to the frame just read: the decoder's presentation timestamp.

    OpenCV's ``CAP_PROP_POS_MSEC`` after ``read()`` is the returned frame's pts less the stream's start time, exact
    for variable frame rates, from the one decoder that also reads webcams and streams. A container without
    timestamps reads 0 for every frame: a time that is not after ``previous`` (the frame before; -inf for the first)
    becomes ``previous + 1 / fps``, so that times always advance, as the smoothing needs.
    """
    seconds = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
    if math.isfinite(seconds) and seconds > previous:
        return seconds
    return previous + 1 / fps if math.isfinite(previous) else 0.0


@contextmanager
def atomic_video(paths: list[Path], fps: float) -> Iterator[H264Writer | None]:
    """An ``H264Writer`` on a temporary file renamed onto ``paths[0]`` when the block ends well (None: no video)."""
    if not paths:
        yield None
        return
    with atomic_path(paths[0]) as tmp:
        writer = H264Writer(tmp, fps)
        try:
            yield writer
        finally:
            writer.close()
