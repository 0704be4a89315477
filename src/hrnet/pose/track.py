"""Persons followed across video frames: track ids, One-Euro smoothing, and the estimator run frame by frame.

``VideoPoseTracker`` finds the person boxes (the detector every ``detect_every``-th frame, the box around each
person's keypoints in between), estimates the keypoints and gives every person a track id through
``PoseTracker``, which matches persons to tracks greedily from the best box IoU or OKS down, as the tracking
baseline of Xiao et al., "Simple Baselines for Human Pose Estimation and Tracking" (ECCV 2018). Ids are never
reused. Keypoints may be smoothed by a One-Euro filter (Casiez, Roussel and Vogel, CHI 2012), whose cut-off rises
with the speed of the signal: a still keypoint is held steady and a moving one lags little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from hrnet.errors import ConfigError, DataError

if TYPE_CHECKING:  # the estimator loads PyTorch; the options are read without it (the command line's defaults)
    from hrnet.pose.estimator import PoseEstimator
    from hrnet.pose.persons import PersonPose

MATCH_METHODS = ("iou", "oks")


@dataclass(frozen=True)
class OneEuroSettings:
    """The One-Euro filter's three knobs (Casiez et al. 2012), for keypoints in image pixels and time in seconds.

    Attributes:
        min_cutoff: cut-off frequency (Hz) at rest; lower holds still keypoints steadier but lags more.
        beta: how fast the cut-off rises with speed (Hz per pixel/s); higher follows fast motion with less lag.
        d_cutoff: cut-off frequency (Hz) of the speed estimate itself (the paper's 1 Hz).
    """

    min_cutoff: float = 1.0  # the paper's starting point: tune it first, with beta = 0, on a person standing still
    beta: float = 0.02  # at 300 px/s (a brisk walk in a 720p frame) the cut-off becomes 7 Hz: little lag
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ConfigError(
                f"One-Euro smoothing needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, got min_cutoff="
                f"{self.min_cutoff}, beta={self.beta}, d_cutoff={self.d_cutoff}"
            )


def _smoothing_factor(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """The exponential smoothing factor of a first-order low-pass filter at ``cutoff`` Hz sampled every ``dt``."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter of an array signal (every element filtered on its own), sampled at given times."""

    def __init__(self, settings: OneEuroSettings):
        self.settings = settings
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time = 0.0

    def __call__(self, value: np.ndarray, time: float) -> np.ndarray:
        """The filtered ``value`` (any shape, fixed from the first call) at ``time`` seconds."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._speed is None:
            self._value, self._speed, self._time = value.copy(), np.zeros_like(value), time
            return value.copy()
        dt = time - self._time
        if dt <= 0:  # the same instant again (a repeated timestamp): nothing new to filter
            return self._value.copy()
        s = self.settings
        speed = (value - self._value) / dt
        self._speed = self._speed + _smoothing_factor(s.d_cutoff, dt) * (speed - self._speed)
        cutoff = s.min_cutoff + s.beta * np.abs(self._speed)
        self._value = self._value + _smoothing_factor(cutoff, dt) * (value - self._value)
        self._time = time
        return self._value.copy()


def box_from_keypoints(
    keypoints: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float = 0.3,
    enlarge: float = 1.2,
    image_size: tuple[int, int] | None = None,
    min_keypoints: int = 3,
) -> np.ndarray | None:
    """The person box (x, y, w, h) around the keypoints scoring at least ``threshold``, enlarged ``enlarge`` times
    about its centre (keypoints lie inside a person: the top of the head and the feet lie beyond them), clipped to
    ``image_size`` (height, width). None when fewer than ``min_keypoints`` keypoints are that sure or the box is
    empty: the person is taken as lost.

    Args:
        keypoints: (K, 2) pixels in the image.
        scores: (K,) keypoint confidences.
    """
    points = np.asarray(keypoints, dtype=np.float64)
    sure = (np.asarray(scores) >= threshold) & np.isfinite(points).all(axis=1)
    if sure.sum() < min_keypoints:
        return None
    low, high = points[sure].min(axis=0), points[sure].max(axis=0)
    center, half = (low + high) / 2, (high - low) / 2 * enlarge
    low, high = center - half, center + half
    if image_size is not None:
        limit = np.array([image_size[1], image_size[0]], dtype=np.float64)
        low, high = np.clip(low, 0, limit), np.clip(high, 0, limit)
    if (high - low < 1.0).any():
        return None
    return np.array([low[0], low[1], high[0] - low[0], high[1] - low[1]])


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B) intersection areas of boxes ``a`` (A, 4) and ``b`` (B, 4), both (x, y, w, h), and their areas (A, 1)
    and (1, B)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    return np.clip(high - low, 0, None).prod(axis=2), a[:, None, 2:].prod(axis=2), b[None, :, 2:].prod(axis=2)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of boxes ``a`` (A, 4) and ``b`` (B, 4), both (x, y, w, h) in pixels."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) intersection of boxes ``a`` (A, 4) and ``b`` (B, 4), both (x, y, w, h) in pixels, over the smaller
    box's area: 1 when one lies inside the other, whatever their sizes (IoU would be small for a box inside a much
    larger one); 0 for an empty box."""
    inter, area_a, area_b = _intersections(a, b)
    smaller = np.minimum(area_a, area_b)
    return np.where(smaller > 0, inter / np.maximum(smaller, 1e-12), 0.0)


def keypoint_similarity(
    reference: np.ndarray,
    reference_scores: np.ndarray,
    reference_boxes: np.ndarray,
    other: np.ndarray,
    other_scores: np.ndarray,
    sigmas: Sequence[float],
    threshold: float,
) -> np.ndarray:
    """(A, B) OKS of persons ``other`` (B, K, 2) against ``reference`` (A, K, 2), as COCO's: per keypoint
    exp(-d² / (2 s² (2σ)²)) with s² the reference's box area (``reference_boxes`` (A, 4)), averaged over the
    keypoints that both score at least ``threshold`` (0 when none do). Pixels in the image."""
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    d2 = ((reference[:, None] - other[None]) ** 2).sum(axis=3)  # (A, B, K)
    area = np.maximum(reference_boxes[:, 2] * reference_boxes[:, 3], 1.0)[:, None, None]
    similarity = np.exp(-d2 / (2 * area * variances))
    both = (reference_scores[:, None] >= threshold) & (other_scores[None] >= threshold)
    count = both.sum(axis=2)
    return np.where(count > 0, (similarity * both).sum(axis=2) / np.maximum(count, 1), 0.0)


def greedy_match(similarity: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, column) taken from the most similar down, each row and column once, similarity ≥ threshold."""
    pairs: list[tuple[int, int]] = []
    if similarity.size == 0:
        return pairs
    rows, cols = np.unravel_index(np.argsort(-similarity, axis=None, kind="stable"), similarity.shape)
    used_rows, used_cols = set(), set()
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if similarity[r, c] < threshold:
            break
        if r not in used_rows and c not in used_cols:
            pairs.append((r, c))
            used_rows.add(r)
            used_cols.add(c)
    return pairs


@dataclass
class Track:
    """One tracked person: the box, keypoints (K, 2) and scores (K,) last seen (before smoothing), in pixels."""

    track_id: int
    box: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    missed: int = 0
    smoother: OneEuroFilter | None = field(default=None, repr=False)


@dataclass(kw_only=True, eq=False)
class PoseTracker:
    """Track ids (and optionally smoothed keypoints) for the persons of successive video frames.

    Args:
        match: "iou" (person boxes) or "oks" (keypoints; needs ``sigmas``).
        threshold: the least IoU or OKS for a person to continue a track.
        max_missed: frames a track may go unmatched before its id is retired.
        sigmas: (K,) OKS sigmas of the keypoint set (``KeypointSet.sigmas``), for ``match="oks"``.
        keypoint_threshold: keypoints scoring below it take no part in OKS.
        smoothing: One-Euro settings, or None for the keypoints as they come.
    """

    match: str = "iou"
    threshold: float = 0.3
    max_missed: int = 10
    sigmas: Sequence[float] | None = None
    keypoint_threshold: float = 0.3
    smoothing: OneEuroSettings | None = None
    tracks: list[Track] = field(default_factory=list, init=False)
    _next_id: int = field(default=1, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.match not in MATCH_METHODS:
            raise ConfigError(f"track matching must be one of {', '.join(MATCH_METHODS)}, got {self.match!r}")
        if self.match == "oks" and self.sigmas is None:
            raise ConfigError("OKS track matching needs the keypoint set's sigmas")
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"the track matching threshold is an IoU or OKS in [0, 1], got {self.threshold}")
        if self.max_missed < 0:
            raise ConfigError(f"max_missed is a number of frames (0 or more), got {self.max_missed}")

    @property
    def active(self) -> list[Track]:
        """The tracks seen in the last frame."""
        return [t for t in self.tracks if t.missed == 0]

    def update(
        self,
        boxes: np.ndarray,
        keypoints: np.ndarray,
        scores: np.ndarray,
        time: float,
        track_ids: Sequence[int | None] | None = None,
    ) -> tuple[list[int], np.ndarray]:
        """Track ids and (smoothed) keypoints for the persons of one frame.

        Args:
            boxes: (P, 4) person boxes (x, y, w, h), pixels.
            keypoints: (P, K, 2) keypoints, pixels.
            scores: (P, K) keypoint confidences.
            time: the frame's time in seconds (the smoothing's clock).
            track_ids: the persons' tracks when already known (a box carried over from a track's own keypoints;
                ``assign``'s answer), None for a person that starts a new track; None for all: matched here.

        Returns:
            P track ids, and (P, K, 2) keypoints: smoothed per track with ``smoothing``, else as given.
        """
        boxes, keypoints, scores = self._check(boxes, keypoints, scores)
        count = len(boxes)
        by_id = {t.track_id: t for t in self.tracks}
        if track_ids is None:
            track_ids = self.assign(boxes, keypoints, scores)
        known = [i for i in track_ids if i is not None]
        if len(track_ids) != count or len(set(known)) != len(known) or any(i not in by_id for i in known):
            shown = str(list(track_ids))[:200]
            raise DataError(f"track ids {shown} are not {count} distinct live tracks (or None for new ones)")
        assigned = [None if i is None else by_id[i] for i in track_ids]
        ids: list[int] = []
        out = keypoints.copy()
        for p, track in enumerate(assigned):
            if track is None:
                smoother = None if self.smoothing is None else OneEuroFilter(self.smoothing)
                track = Track(self._next_id, boxes[p], keypoints[p], scores[p], smoother=smoother)
                self._next_id += 1
                self.tracks.append(track)
            track.box, track.keypoints, track.scores, track.missed = boxes[p], keypoints[p], scores[p], -1
            if track.smoother is not None:
                out[p] = track.smoother(keypoints[p], time)
            ids.append(track.track_id)
        for track in self.tracks:
            track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return ids, out

    @staticmethod
    def _check(
        boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        keypoints = np.asarray(keypoints, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        count = len(boxes)
        if keypoints.shape[:1] != (count,) or scores.shape != keypoints.shape[:2]:
            raise DataError(f"{count} boxes, keypoints {keypoints.shape} and scores {scores.shape} do not match")
        return boxes, keypoints, scores

    def assign(self, boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> list[int | None]:
        """The track id each person of a frame continues (None: none does), by ``match`` and ``threshold``,
        without changing the tracks. Arguments as ``update``'s."""
        boxes, keypoints, scores = self._check(boxes, keypoints, scores)
        tracks = self.tracks
        if not tracks or not len(boxes):
            return [None] * len(boxes)
        track_boxes = np.stack([t.box for t in tracks])
        if self.match == "iou":
            similarity = box_iou(track_boxes, boxes)
        else:
            assert self.sigmas is not None
            similarity = keypoint_similarity(
                np.stack([t.keypoints for t in tracks]),
                np.stack([t.scores for t in tracks]),
                track_boxes,
                keypoints,
                scores,
                self.sigmas,
                self.keypoint_threshold,
            )
        assigned: list[int | None] = [None] * len(boxes)
        for t, p in greedy_match(similarity, max(self.threshold, 1e-9)):
            assigned[p] = tracks[t].track_id
        return assigned


@dataclass(frozen=True)
class VideoOptions:
    """How persons are found and followed from frame to frame.

    Attributes:
        detect_every: run the detector on every N-th frame (1: on all); in between each person's box comes
            from its keypoints in the frame before.
        track_by: "iou" (person boxes) or "oks" (keypoints) to match persons to tracks.
        track_threshold: the least IoU / OKS to continue a track.
        max_missed: frames a track may go unseen before its id is retired.
        keypoint_threshold: keypoints below this score neither make a carried box nor count in OKS.
        smooth: One-Euro settings for each track's keypoints, or None.
        new_track_keypoints: a detected person that continues no track starts one only with at least this many
            keypoints scoring ``keypoint_threshold`` or more (a box on the background gives no such pose).
        max_detector_misses: detection frames in a row on which a track the detector misses is still carried by
            its own keypoints; one more ends it (a carried box that drifted onto the background cannot live on).
    """

    detect_every: int = 1
    track_by: str = "iou"
    track_threshold: float = 0.3
    max_missed: int = 10  # a third of a second at 30 frames/s: a person hidden briefly keeps the id
    keypoint_threshold: float = 0.3
    smooth: OneEuroSettings | None = None
    # More than the 3 a carried box needs, fewer than a head and shoulders show (nose, eyes, ears, shoulders: 7),
    # so that a person partly in view starts a track. Not tuned on real weights (none are in the test data).
    new_track_keypoints: int = 4
    # With --detect-every 5 at 25 frames/s, two seconds carried with no detection; with --detect-every 1, 10 frames.
    max_detector_misses: int = 10

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ConfigError(f"--detect-every is a number of frames (1 or more), got {self.detect_every}")
        if self.new_track_keypoints < 0:
            raise ConfigError(
                f"new_track_keypoints is a number of keypoints (0 or more), got {self.new_track_keypoints}"
            )
        if self.max_detector_misses < 0:
            raise ConfigError(
                f"max_detector_misses is a number of detection frames (0 or more), got {self.max_detector_misses}"
            )


@dataclass(frozen=True)
class TrackedPerson:
    """One person in one frame: its track id, the pose (keypoints smoothed when asked), and how its box came."""

    track_id: int
    pose: PersonPose
    detected: bool  # the box came from the detector (or is the whole frame), not from the frame before


class VideoPoseTracker:
    """Persons with track ids frame by frame: detect every N frames, carry boxes between, estimate, track.

    ``tracker(frame_bgr, time)`` takes the frames in order, each an (H, W, 3) uint8 BGR array at ``time`` seconds;
    detection frames take the estimator's person boxes (its detector's, or the whole frame without one).

    On a detection frame (with a detector), the persons found are matched to the tracks (``PoseTracker.assign``).
    A track seen in the frame before that no detection continues is then given the unmatched detection that lies
    mostly inside the box around its own keypoints, or mostly around it (intersection over the smaller box ≥
    ``SAME_PERSON_OVERLAP``: a detector such as HOG boxes a person with a wide, jittering margin, whose IoU with
    the track's box can fall below ``track_threshold``). A track that still has none is carried by that box, as
    between detections, for at most ``max_detector_misses`` detection frames in a row: a miss never starts a new
    id. A detection that continues no track starts one only when its pose is credible (``new_track_keypoints``),
    so that a box on the background does not become a person.
    """

    # One box mostly inside the other: the same person boxed loosely; two persons side by side overlap less.
    SAME_PERSON_OVERLAP = 0.5

    def __init__(self, estimator: PoseEstimator, options: VideoOptions | None = None):
        self.estimator = estimator
        self.options = options or VideoOptions()
        o = self.options
        self.tracker = PoseTracker(
            match=o.track_by,
            threshold=o.track_threshold,
            max_missed=o.max_missed,
            sigmas=estimator.keypoint_set.sigmas,
            keypoint_threshold=o.keypoint_threshold,
            smoothing=o.smooth,
        )
        self.frame_index = 0
        self._misses: dict[int, int] = {}  # track id → detection frames in a row the detector missed it

    def __call__(
        self, frame_bgr: np.ndarray, time: float, detections: tuple[np.ndarray, np.ndarray] | None = None
    ) -> list[TrackedPerson]:
        """The persons of the next frame, detecting on every ``detect_every``-th. ``detections``: on a detection
        frame, the detector's (boxes, scores) for this frame when already found elsewhere (the read-ahead thread
        of ``predict_video``); None runs the detector here."""
        detection_frame = self.frame_index % self.options.detect_every == 0
        self.frame_index += 1
        if not detection_frame:
            return self._step(frame_bgr, time, None)
        if self.estimator.detector is None:
            return self._step(frame_bgr, time, None, whole_frame=True)
        found = detections if detections is not None else self.estimator.person_boxes.detect(frame_bgr)
        return self._step(frame_bgr, time, found)

    def update(
        self, frame_bgr: np.ndarray, time: float, detections: tuple[np.ndarray, np.ndarray] | None
    ) -> list[TrackedPerson]:
        """The persons of the next frame of a live source whose detector runs beside the network: a detection
        frame with ``detections`` (boxes, scores: found on this frame or a recent one) when given, else every person
        carried by its own keypoints."""
        self.frame_index += 1
        return self._step(frame_bgr, time, detections)

    def _step(
        self,
        frame_bgr: np.ndarray,
        time: float,
        detections: tuple[np.ndarray, np.ndarray] | None,
        *,
        whole_frame: bool = False,
    ) -> list[TrackedPerson]:
        track_ids: list[int | None] | None
        detection_frame = whole_frame or detections is not None
        if whole_frame:
            found = self.estimator.person_boxes(frame_bgr)  # no detector: the whole frame
            persons = self._estimate(frame_bgr, found.boxes, found.scores)
            track_ids, detected = None, [True]
        elif detections is None:
            carried_ids, carried = self._carried_boxes(frame_bgr, self.tracker.active)
            persons = self._estimate(frame_bgr, carried, np.ones(len(carried)))
            track_ids, detected = list(carried_ids), [False] * len(persons)
        else:
            persons, track_ids, detected = self._detection_frame(frame_bgr, *detections)
        ids, keypoints = self.tracker.update(*self._arrays(persons), time, track_ids=track_ids)
        if detection_frame:  # a track the detector found starts counting again; one it missed counts one more
            self._misses = {i: self._misses.get(i, 0) + 1 for i, d in zip(ids, detected, strict=True) if not d}
        return [
            TrackedPerson(i, replace(p, keypoints=k) if self.options.smooth else p, d)
            for i, p, k, d in zip(ids, persons, keypoints, detected, strict=True)
        ]

    def _detection_frame(
        self, frame_bgr: np.ndarray, boxes: np.ndarray, scores: np.ndarray
    ) -> tuple[list[PersonPose], list[int | None], list[bool]]:
        """The persons of a detection frame with the detector's ``boxes`` and ``scores``, the track each continues
        (None: a new one) and whether it was detected (else carried through the detector's miss)."""
        o = self.options
        persons = self._estimate(frame_bgr, boxes, scores)
        ids = self.tracker.assign(*self._arrays(persons))
        carried_ids, carried = self._carried_boxes(frame_bgr, [t for t in self.tracker.active if t.track_id not in ids])
        unmatched = [p for p, i in enumerate(ids) if i is None]
        found_again = set()
        if carried_ids and unmatched:
            overlap = box_overlap(carried, boxes[unmatched])
            for c, u in greedy_match(overlap, self.SAME_PERSON_OVERLAP):
                ids[unmatched[u]] = carried_ids[c]
                found_again.add(c)
        missed = [
            c
            for c, i in enumerate(carried_ids)
            if c not in found_again and self._misses.get(i, 0) < o.max_detector_misses
        ]
        kept = [
            p
            for p, i in enumerate(ids)
            if i is not None or int((persons[p].scores >= o.keypoint_threshold).sum()) >= o.new_track_keypoints
        ]
        through_miss = self._estimate(frame_bgr, carried[missed], np.ones(len(missed)))
        return (
            [persons[p] for p in kept] + through_miss,
            [ids[p] for p in kept] + [carried_ids[c] for c in missed],
            [True] * len(kept) + [False] * len(missed),
        )

    def _carried_boxes(self, frame_bgr: np.ndarray, tracks: Sequence[Track]) -> tuple[list[int], np.ndarray]:
        """The ids of ``tracks`` whose last keypoints are sure enough for a box (``box_from_keypoints``), and those
        (T, 4) boxes (x, y, w, h) in the frame."""
        height, width = frame_bgr.shape[:2]
        ids, boxes = [], []
        for track in tracks:
            box = box_from_keypoints(
                track.keypoints, track.scores, threshold=self.options.keypoint_threshold, image_size=(height, width)
            )
            if box is not None:
                ids.append(track.track_id)
                boxes.append(box)
        return ids, np.array(boxes, dtype=np.float64).reshape(-1, 4)

    def _estimate(self, frame_bgr: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray) -> list[PersonPose]:
        return self.estimator(frame_bgr, boxes, box_scores, channel_order="bgr") if len(boxes) else []

    def _arrays(self, persons: Sequence[PersonPose]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P, 4) boxes, (P, K, 2) keypoints and (P, K) keypoint scores of ``persons``."""
        count, num_keypoints = len(persons), self.estimator.keypoint_set.num_keypoints
        return (
            np.array([p.box for p in persons], dtype=np.float64).reshape(count, 4),
            np.array([p.keypoints for p in persons], dtype=np.float64).reshape(count, num_keypoints, 2),
            np.array([p.scores for p in persons], dtype=np.float64).reshape(count, num_keypoints),
        )
