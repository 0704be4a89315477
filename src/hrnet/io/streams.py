"""Pipelining for streams of images and frames: reading ahead in a producer thread, writing behind in a consumer
thread, and, for live sources, always the newest frame.

On a CPU the network is the slow step, but decoding (JPEG, H.264), drawing and encoding are not free: run in
series with it they add their time to every image. Here they run beside it, each in one thread:

- ``ReadAhead(items, depth)``: iterates ``items`` (decoding as it goes) in a thread, at most ``depth`` ahead of
  the consumer, so the next images are ready when the network finishes a batch. Bounded, so memory stays flat.
- ``WriteBehind(depth)``: runs submitted jobs (draw, encode, write) in order in a thread, at most ``depth`` behind;
  a failure is raised in the submitting thread at the next ``submit`` or at ``close``.
- ``LatestFrame(read)``: for a webcam or stream, a reader thread keeps only the newest frame; a frame that arrives
  while the network is busy replaces the one waiting, so latency stays bounded instead of a queue growing.

OpenCV's decoders and PyAV's encoder release the GIL; the network's own threads (``torch.get_num_threads()``) are
the caller's choice (``hrnet.system``). Exceptions in a thread are re-raised where the results are consumed, with
the original traceback chained.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
F = TypeVar("F")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class ReadAhead(Generic[T]):
    """``for item in ReadAhead(items, depth)``: the items of ``items``, produced by a background thread at most
    ``depth`` ahead. An exception raised while producing is raised here, at the item where it happened. ``close()``
    (or leaving a ``with`` block) stops the producer early; the iterable's own cleanup (a generator's ``finally``)
    runs in the producer thread."""

    def __init__(self, items: Iterable[T], depth: int = 2, name: str = "hrnet-read-ahead"):
        if depth < 1:
            raise ValueError(f"depth must be ≥ 1, got {depth}")
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(items,), name=name, daemon=True)
        self._thread.start()

    def _put(self, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, items: Iterable[T]) -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not self._put(item):
                    break
        except BaseException as err:  # handed to the consumer, raised there
            self._put(_Failure(err))
            return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        self._put(_DONE)

    def __iter__(self) -> Iterator[T]:
        while True:
            value = self._queue.get()
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value  # type: ignore[misc]

    def ready(self) -> int:
        """How many items are waiting (produced, not yet taken)."""
        return self._queue.qsize()

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteBehind:
    """Runs ``submit``-ted jobs in order in one background thread, at most ``depth`` waiting. The first failure
    stops the jobs after it and is raised in the caller's thread at the next ``submit`` or at ``close``
    (``close`` waits for the jobs before it)."""

    def __init__(self, depth: int = 4, name: str = "hrnet-write-behind"):
        if depth < 1:
            raise ValueError(f"depth must be ≥ 1, got {depth}")
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as err:  # raised in the submitting thread
                    self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, job: Callable[[], object]) -> None:
        self._raise()
        self._queue.put(job)

    def close(self) -> None:
        """Wait for every submitted job; raise the first failure."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:
            self.close()
        else:  # already failing: finish the thread, keep the first error
            if self._thread.is_alive():
                self._queue.put(None)
                self._thread.join()


@dataclass(frozen=True)
class Frame(Generic[F]):
    """A frame of a live source: its ``index`` among the frames read (dropped ones count), the ``time`` (seconds,
    ``time.monotonic``) it was read, and how many frames were dropped since the one taken before."""

    image: F
    index: int
    time: float
    dropped: int


class LatestFrame(Generic[F]):
    """A live source read in a thread that keeps only the newest frame: ``take()`` waits for a frame newer than
    the last one taken and returns it (None once the source has ended and every frame was taken). ``read`` returns
    the next frame, or None at the end of the source; its exceptions are raised by ``take``."""

    def __init__(self, read: Callable[[], F | None], name: str = "hrnet-latest-frame"):
        self._read = read
        self._condition = threading.Condition()
        self._frame: Frame[F] | None = None
        self._taken = -1
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.offered = 0  # frames read from the source
        self.dropped = 0  # frames replaced before anyone took them
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                image = self._read()
                if image is None:
                    break
                with self._condition:
                    if self._frame is not None and self._frame.index > self._taken:
                        self.dropped += 1
                    self._frame = Frame(image, self.offered, time.monotonic(), 0)
                    self.offered += 1
                    self._condition.notify_all()
        except BaseException as err:  # raised by take()
            self._error = err
        finally:
            with self._condition:
                self._ended = True
                self._condition.notify_all()

    def take(self, timeout: float | None = None) -> Frame[F] | None:
        """The newest frame not taken yet (waiting for one up to ``timeout`` seconds; None when the source ended,
        or on timeout)."""
        with self._condition:
            ready = self._condition.wait_for(
                lambda: (self._frame is not None and self._frame.index > self._taken) or self._ended, timeout
            )
            if self._error is not None:
                raise self._error
            frame = self._frame
            if not ready or frame is None or frame.index <= self._taken:
                return None
            dropped = frame.index - self._taken - 1
            self._taken = frame.index
            return Frame(frame.image, frame.index, frame.time, dropped)

    def close(self) -> None:
        """Stop reading (the reader stops after its current ``read``)."""
        self._stop.set()

    def __enter__(self) -> LatestFrame[F]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
