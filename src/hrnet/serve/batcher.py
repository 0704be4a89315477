"""The pose worker of ``hrnet serve``: one thread that runs the estimator, requests that arrive together batched
into one forward pass."""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from hrnet.inference import PersonPose, PoseEstimator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchInfo:
    """The forward batch that served a request: its persons and requests, and the estimator's seconds."""

    persons: int
    requests: int
    seconds: float


@dataclass
class _Job:
    image: np.ndarray
    boxes: np.ndarray | None
    scores: np.ndarray | None
    future: concurrent.futures.Future[tuple[list[PersonPose], BatchInfo]] = field(
        default_factory=concurrent.futures.Future
    )

    @property
    def persons(self) -> int:
        return 1 if self.boxes is None else len(self.boxes)


class PoseBatcher:
    """Runs ``estimator`` on one worker thread; jobs submitted together share one ``estimator.predict`` call.

    The worker takes the first waiting job, then more while they keep coming within ``window_s`` of each
    other's arrival and the persons fit in ``max_batch`` (a single job with more persons runs alone, split by
    the estimator into ``test.batch_size`` passes). A job that fails fails alone: the batch is retried one job at
    a time, so one bad image cannot fail its neighbours, and nothing stops the worker.
    """

    def __init__(self, estimator: PoseEstimator, max_batch: int, window_s: float):
        self.estimator = estimator
        self.max_batch = max_batch
        self.window_s = window_s
        self.batches = 0  # estimator calls
        self.requests = 0
        self.persons = 0
        self.busy_seconds = 0.0  # inside the estimator
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the pose batcher is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hrnet-pose-batcher", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, then stop the worker."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(
        self, image: np.ndarray, boxes: np.ndarray | None, scores: np.ndarray | None
    ) -> concurrent.futures.Future[tuple[list[PersonPose], BatchInfo]]:
        """Queue one (H, W, 3) uint8 BGR image with its (P, 4) boxes and (P,) scores (None: the
        whole image); the future gives its persons and the batch that served it."""
        self.start()
        job = _Job(image, boxes, scores)
        self._queue.put(job)
        return job.future

    def _run(self) -> None:
        carried: _Job | None = None
        while True:
            job = carried or self._queue.get()
            carried = None
            if job is None:
                return
            jobs, persons, stop = [job], job.persons, False
            deadline = time.monotonic() + self.window_s
            while persons < self.max_batch:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        waiting = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if waiting is None:
                    stop = True
                    break
                if persons + waiting.persons > self.max_batch:
                    carried = waiting
                    break
                jobs.append(waiting)
                persons += waiting.persons
                deadline = time.monotonic() + self.window_s
            self._serve(jobs)
            if stop:
                self._serve_rest()
                return

    def _serve_rest(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._serve([job])

    def _serve(self, jobs: list[_Job]) -> None:
        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        if not live:
            return
        start = time.perf_counter()
        try:
            results = self.estimator.predict(
                [j.image for j in live], [j.boxes for j in live], [j.scores for j in live], channel_order="bgr"
            )
        except Exception as err:
            if len(live) > 1:
                for j in live:
                    self._serve_alone(j)
                return
            log.exception("pose estimation failed")
            live[0].future.set_exception(err)
            return
        info = BatchInfo(sum(j.persons for j in live), len(live), time.perf_counter() - start)
        self.busy_seconds += info.seconds
        self.batches += 1
        self.requests += len(live)
        self.persons += sum(len(r) for r in results)
        for j, persons in zip(live, results, strict=True):
            j.future.set_result((persons, info))

    def _serve_alone(self, job: _Job) -> None:
        # The job's future is already running: run it again as a batch of one.
        start = time.perf_counter()
        try:
            persons = self.estimator.predict([job.image], [job.boxes], [job.scores], channel_order="bgr")[0]
        except Exception as err:
            log.exception("pose estimation failed")
            job.future.set_exception(err)
            return
        info = BatchInfo(job.persons, 1, time.perf_counter() - start)
        self.busy_seconds += info.seconds
        self.batches += 1
        self.requests += 1
        self.persons += len(persons)
        job.future.set_result((persons, info))
