"""The pose worker of ``hrnet serve``: one thread that runs the estimator, with the requests that arrive together
batched into one forward pass (``PoseBatcher``)."""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hrnet.pose.estimator import PersonPose, PoseEstimator

log = logging.getLogger(__name__)

# The worker waits for the clients it has just answered for at most this share of a forward pass: a request that
# misses a batch waits a whole pass for the next one, so a short wait for it costs the batch less than it saves.
WAIT_FRACTION = 0.25
# The weight of the newest pass in the average of the estimator's seconds: the average follows a change of load
# within a few passes, and one slow pass (a large image's crops, a burst of other work) moves it by a fifth.
AVERAGE_WEIGHT = 0.2
# How often an idle worker in the caller's thread (``PoseBatcher.work_here``) asks whether to stop.
POLL_S = 0.1


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

    The worker takes the first waiting job, then more while their persons fit in ``max_batch`` (a single job with
    more persons runs alone, split by the estimator into ``test.batch_size`` passes):

    - jobs that are already waiting, and jobs that arrive back to back, each within ``window_s`` of the last;
    - when the previous pass left more persons in the service than the batch holds so far (the persons it served
      plus those that were waiting when it ended), the jobs of the clients it has just answered: they come back
      with their next request a few milliseconds later. The worker waits for them up to ``WAIT_FRACTION`` of the
      estimator's seconds per pass (an exponential average, ``forward_seconds``), and at most ``max_wait_s``.
      Without this, concurrent clients settle into two groups that take turns in half-full batches: the group
      answered last comes back while the other group's batch, which arrived during the pass, already runs.

    A lone client is held back by at most ``window_s``: the previous pass left only its own request. A job that
    fails fails alone (the batch is retried one job at a time), and nothing stops the worker. The worker is a
    thread of its own (``start``), or the caller's thread (``work_here``, as ``hrnet serve``'s ``run_beside``).
    """

    def __init__(self, estimator: PoseEstimator, max_batch: int, window_s: float, max_wait_s: float = 0.2):
        self.estimator = estimator
        self.max_batch = max_batch
        self.window_s = window_s
        self.max_wait_s = max_wait_s
        self.batches = 0  # estimator calls
        self.requests = 0
        self.persons = 0
        self.busy_seconds = 0.0  # inside the estimator
        self.forward_seconds: float | None = None  # average seconds of an estimator call, once there was one
        self._queue: collections.deque[_Job] = collections.deque()
        self._changed = threading.Condition()
        self._expected = 0  # persons the previous pass left in the service
        self._thread: threading.Thread | None = None  # the worker's thread, once there is a worker
        self._finished = threading.Event()  # the worker has stopped
        self._closed = False

    def start(self) -> None:
        """Start the worker thread, unless there is a worker already (a thread, or one ``work_here``)."""
        with self._changed:
            if self._closed:
                raise RuntimeError("the pose batcher is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hrnet-pose-batcher", daemon=True)
                self._thread.start()

    def work_here(self, until: Callable[[], bool], ready: Callable[[], object] | None = None) -> None:
        """Be the worker in the calling thread until the batcher is closed (and its queue served), or ``until()``
        is true: it is asked every ``POLL_S`` while no job waits; the queued jobs are served first. ``ready`` is
        called once this thread is the worker (a ``start`` after it changes nothing): it starts what submits."""
        with self._changed:
            if self._closed or self._thread is not None:
                raise RuntimeError("the pose batcher is closed or has a worker already")
            self._thread = threading.current_thread()
        if ready is not None:
            ready()
        self._run(until)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, then stop the worker (waiting for it at most ``timeout`` seconds)."""
        with self._changed:
            self._closed = True
            worker = self._thread
            self._changed.notify_all()
        if worker is not None and worker is not threading.current_thread():
            self._finished.wait(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._finished.is_set()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def wait_s(self) -> float:
        """The longest the worker now waits for the persons it expects (see the class doc)."""
        if self.forward_seconds is None:
            return self.window_s
        return max(self.window_s, min(self.max_wait_s, WAIT_FRACTION * self.forward_seconds))

    def submit(
        self, image: np.ndarray, boxes: np.ndarray | None, scores: np.ndarray | None
    ) -> concurrent.futures.Future[tuple[list[PersonPose], BatchInfo]]:
        """Queue one (H, W, 3) uint8 BGR image (OpenCV's order: the estimator turns each crop to RGB) with its
        (P, 4) boxes and (P,) scores (None: the whole image); the future gives its persons and the batch that
        served it."""
        self.start()
        job = _Job(image, boxes, scores)
        with self._changed:
            self._queue.append(job)
            self._changed.notify()
        return job.future

    def _run(self, stop: Callable[[], bool] | None = None) -> None:
        try:
            while jobs := self._next_batch(stop):
                if live := [j for j in jobs if j.future.set_running_or_notify_cancel()]:
                    self._predict(live)
                with self._changed:  # the persons this pass served and those that waited meanwhile
                    self._expected = min(self.max_batch, sum(j.persons for j in [*jobs, *self._queue]))
        finally:
            self._finished.set()

    def _next_batch(self, stop: Callable[[], bool] | None = None) -> list[_Job]:
        """The jobs of the next pass (see the class doc); empty once the batcher is closed (or ``stop()``, asked
        every ``POLL_S`` while idle, is true) and drained."""
        with self._changed:
            while not self._queue and not self._closed:
                if stop is None:
                    self._changed.wait()
                elif not self._changed.wait(POLL_S) and stop():
                    self._closed = True
            if not self._queue:
                return []
            jobs = [self._queue.popleft()]
            persons = jobs[0].persons
            now = time.monotonic()
            expected_until = now + self.wait_s
            back_to_back_until = now + self.window_s
            while persons < self.max_batch:
                if self._queue:
                    if persons + self._queue[0].persons > self.max_batch:
                        break
                    jobs.append(self._queue.popleft())
                    persons += jobs[-1].persons
                    back_to_back_until = time.monotonic() + self.window_s
                    continue
                until = max(back_to_back_until, expected_until) if persons < self._expected else back_to_back_until
                remaining = until - time.monotonic()
                if self._closed or remaining <= 0:
                    break
                self._changed.wait(remaining)
            return jobs

    def _predict(self, jobs: list[_Job]) -> None:
        start = time.perf_counter()
        try:
            results = self.estimator.predict(
                [j.image for j in jobs], [j.boxes for j in jobs], [j.scores for j in jobs], channel_order="bgr"
            )
        except Exception as err:
            if len(jobs) > 1:  # again one job at a time, so that only the bad one fails
                for j in jobs:
                    self._predict([j])
                return
            log.exception("pose estimation failed")
            jobs[0].future.set_exception(err)
            return
        info = BatchInfo(sum(j.persons for j in jobs), len(jobs), time.perf_counter() - start)
        self._count(info, sum(len(r) for r in results))
        for j, persons in zip(jobs, results, strict=True):
            j.future.set_result((persons, info))

    def _count(self, info: BatchInfo, persons: int) -> None:
        self.busy_seconds += info.seconds
        self.batches += 1
        self.requests += info.requests
        self.persons += persons
        average = self.forward_seconds
        self.forward_seconds = info.seconds if average is None else average + AVERAGE_WEIGHT * (info.seconds - average)
