"""Track ids, One-Euro smoothing and carried boxes (``hrnet.pose.track``), on the true keypoints of a synthetic clip."""

import numpy as np
import pytest

from hrnet.errors import ConfigError, DataError
from hrnet.keypoints import COCO17
from hrnet.pose.track import (
    OneEuroFilter,
    OneEuroSettings,
    PoseTracker,
    box_from_keypoints,
    box_iou,
    box_overlap,
    greedy_match,
    keypoint_similarity,
)
from tests.synthetic_clip import moving_figures


def _figure_of_each_id(ids_per_frame, boxes_per_frame, truth_per_frame):
    """{track id: the figure (index) its box overlaps most, in every frame}; fails on an id that changes figure."""
    owner = {}
    for ids, boxes, truth in zip(ids_per_frame, boxes_per_frame, truth_per_frame, strict=True):
        figures = box_iou(boxes, truth).argmax(axis=1)
        assert len(set(figures.tolist())) == len(figures), "two ids on one figure"
        for track_id, figure in zip(ids, figures.tolist(), strict=True):
            assert owner.setdefault(track_id, figure) == figure, f"id {track_id} swapped figures"
    return owner


@pytest.mark.parametrize("match", ["iou", "oks"])
def test_ids_follow_moving_figures_and_never_swap(match):
    clip = moving_figures(num_frames=12)
    rng = np.random.default_rng(0)
    tracker = PoseTracker(match=match, threshold=0.3, sigmas=COCO17.sigmas)
    ids_per_frame = []
    for f, (boxes, keypoints) in enumerate(zip(clip.boxes, clip.keypoints, strict=True)):
        order = rng.permutation(len(boxes))  # a detector lists persons in any order
        noisy = keypoints[order] + rng.normal(0, 1.5, keypoints[order].shape)
        ids, _ = tracker.update(boxes[order], noisy, np.ones(noisy.shape[:2]), f / clip.fps)
        ids_per_frame.append([ids[list(order).index(i)] for i in range(len(boxes))])  # back in figure order
    assert sorted(ids_per_frame[0]) == [1, 2, 3]
    assert all(ids == ids_per_frame[0] for ids in ids_per_frame)
    owner = _figure_of_each_id(ids_per_frame, clip.boxes, clip.boxes)
    assert sorted(owner.values()) == [0, 1, 2]


def test_new_persons_get_new_ids_and_missing_ones_retire():
    clip = moving_figures(num_frames=1)
    boxes, keypoints = clip.boxes[0], clip.keypoints[0]
    scores = np.ones(keypoints.shape[:2])
    tracker = PoseTracker(max_missed=2)
    assert tracker.update(boxes[:2], keypoints[:2], scores[:2], 0.0)[0] == [1, 2]
    assert tracker.update(boxes, keypoints, scores, 0.1)[0] == [1, 2, 3]  # the third figure walks in
    for t in (0.2, 0.3):  # figure 2 unseen for two frames: its id is kept
        assert tracker.update(boxes[[0, 2]], keypoints[[0, 2]], scores[[0, 2]], t)[0] == [1, 3]
    assert tracker.update(boxes, keypoints, scores, 0.4)[0] == [1, 2, 3]
    for t in (0.5, 0.6, 0.7):  # three frames unseen: retired, and ids are never reused
        tracker.update(boxes[[0, 2]], keypoints[[0, 2]], scores[[0, 2]], t)
    assert tracker.update(boxes, keypoints, scores, 0.8)[0] == [1, 4, 3]  # figure 2 is a new person now
    assert tracker.update(np.zeros((0, 4)), np.zeros((0, 17, 2)), np.zeros((0, 17)), 0.9)[0] == []


def test_known_track_ids_are_kept_and_checked():
    clip = moving_figures(num_frames=1)
    boxes, keypoints = clip.boxes[0], clip.keypoints[0]
    scores = np.ones(keypoints.shape[:2])
    tracker = PoseTracker()
    tracker.update(boxes, keypoints, scores, 0.0)
    # A box carried from track 3's keypoints belongs to track 3 even where it overlaps another more.
    assert tracker.update(boxes[:1], keypoints[:1], scores[:1], 0.1, track_ids=[3])[0] == [3]
    with pytest.raises(DataError, match="not 2 distinct live tracks"):
        tracker.update(boxes[:2], keypoints[:2], scores[:2], 0.2, track_ids=[3, 3])
    with pytest.raises(DataError, match="do not match"):
        tracker.update(boxes, keypoints[:2], scores, 0.3)


def test_assign_leaves_the_tracks_as_they_are_and_update_takes_its_answer_with_none_for_new_tracks():
    clip = moving_figures(num_frames=1)
    boxes, keypoints = clip.boxes[0], clip.keypoints[0]
    scores = np.ones(keypoints.shape[:2])
    tracker = PoseTracker()
    tracker.update(boxes[:2], keypoints[:2], scores[:2], 0.0)
    assert tracker.assign(boxes, keypoints, scores) == [1, 2, None]
    assert tracker.assign(boxes, keypoints, scores) == [1, 2, None]  # asking twice: the same answer
    # The caller decides: person 0 continues track 2, persons 1 and 2 start tracks even where they overlap one.
    assert tracker.update(boxes, keypoints, scores, 0.1, track_ids=[2, None, None])[0] == [2, 3, 4]
    with pytest.raises(DataError, match=r"track ids \[1, 99, None\] are not 3 distinct live tracks"):
        tracker.update(boxes, keypoints, scores, 0.2, track_ids=[1, 99, None])


def test_box_overlap_is_one_for_a_box_inside_a_larger_one():
    big = np.array([0.0, 0.0, 100.0, 200.0])
    others = np.array([[10, 10, 20, 30], [90, 0, 20, 200], [200, 0, 10, 10], [5, 5, 0, 0]], dtype=np.float64)
    np.testing.assert_allclose(box_overlap(big, others), [[1.0, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(box_overlap(others[:1], big), [[1.0]])
    assert box_iou(big, others[:1])[0, 0] < 0.05  # IoU barely sees the small box inside


def test_carried_boxes_hold_the_figure_in_the_next_frame():
    """Between detections a person's box is the box around its keypoints in the frame before (enlarged): with
    true keypoints it still covers the figure one frame later, while it moves 3 pixels a frame."""
    clip = moving_figures(num_frames=6)
    for f in range(1, 6):
        for figure in range(3):
            carried = box_from_keypoints(clip.keypoints[f - 1][figure], np.ones(17), image_size=(192, 320))
            assert box_iou(carried, clip.boxes[f][figure : figure + 1])[0, 0] > 0.6


def test_box_from_keypoints_uses_sure_points_and_clips():
    points = np.array([[10.0, 20.0], [30.0, 60.0], [20.0, 40.0], [500.0, 500.0]])
    scores = np.array([0.9, 0.9, 0.9, 0.1])
    np.testing.assert_allclose(box_from_keypoints(points, scores, enlarge=1.0), [10, 20, 20, 40])
    np.testing.assert_allclose(box_from_keypoints(points, scores, enlarge=1.5), [5, 10, 30, 60])
    np.testing.assert_allclose(box_from_keypoints(points, scores, enlarge=1.5, image_size=(50, 25)), [5, 10, 20, 40])
    assert box_from_keypoints(points, np.array([0.9, 0.9, 0.1, 0.1])) is None  # fewer than 3 sure keypoints
    assert box_from_keypoints(np.zeros((4, 2)), np.ones(4)) is None  # all on one point: no box


def test_greedy_match_takes_the_best_pairs_first():
    similarity = np.array([[0.9, 0.8], [0.85, 0.1], [0.0, 0.2]])
    assert greedy_match(similarity, 0.3) == [(0, 0)]  # row 1 wants column 0, taken; 0.1 and 0.2 are too low
    assert greedy_match(similarity, 0.05) == [(0, 0), (2, 1)]
    assert greedy_match(np.zeros((0, 3)), 0.3) == []


def test_oks_is_one_for_the_same_pose_and_falls_with_distance():
    keypoints = moving_figures(num_frames=1).keypoints[0]
    boxes = np.array([[0, 0, 50.0, 150.0]] * 3)
    ones = np.ones((3, 17))
    oks = keypoint_similarity(keypoints, ones, boxes, keypoints, ones, COCO17.sigmas, 0.3)
    np.testing.assert_allclose(np.diag(oks), 1.0)
    assert (oks[~np.eye(3, dtype=bool)] < 0.01).all()
    shifted = keypoint_similarity(keypoints, ones, boxes, keypoints + 5.0, ones, COCO17.sigmas, 0.3)
    assert 0.2 < shifted[0, 0] < 0.99
    assert keypoint_similarity(keypoints, ones * 0, boxes, keypoints, ones, COCO17.sigmas, 0.3)[0, 0] == 0


def _jitter(track: np.ndarray) -> float:
    """Mean frame-to-frame movement of points (T, ..., 2), pixels."""
    return float(np.linalg.norm(np.diff(track, axis=0), axis=-1).mean())


def test_one_euro_steadies_still_keypoints_and_follows_moving_ones():
    rng = np.random.default_rng(0)
    fps, frames = 30.0, 90
    still = moving_figures(num_frames=1).keypoints[0][0]  # (17, 2)
    noisy = still + rng.normal(0, 2.0, (frames, *still.shape))
    smoother = OneEuroFilter(OneEuroSettings())
    smoothed = np.stack([smoother(k, i / fps) for i, k in enumerate(noisy)])
    assert _jitter(smoothed) < 0.35 * _jitter(noisy)
    # A point moving at 300 px/s: with beta the cut-off rises and the lag behind the point stays small.
    ramp = np.arange(frames)[:, None] * (300 / fps) * np.array([1.0, 0.0])
    lag = {}
    for beta in (0.0, 0.02):
        smoother = OneEuroFilter(OneEuroSettings(beta=beta))
        out = np.stack([smoother(p, i / fps) for i, p in enumerate(ramp)])
        lag[beta] = float(np.abs(out - ramp)[-30:, 0].mean())
    assert lag[0.02] < 0.3 * lag[0.0]
    assert lag[0.02] < 10.0  # pixels, at 10 px a frame
    # the same instant twice changes nothing
    smoother = OneEuroFilter(OneEuroSettings())
    smoother(np.zeros(2), 0.0)
    first = smoother(np.ones(2), 0.1)
    np.testing.assert_allclose(smoother(np.full(2, 9.0), 0.1), first)


def test_tracker_smooths_per_track():
    clip = moving_figures(num_frames=1)
    rng = np.random.default_rng(1)
    tracker = PoseTracker(smoothing=OneEuroSettings())
    raw, out = [], []
    for f in range(40):
        noisy = clip.keypoints[0] + rng.normal(0, 2.0, clip.keypoints[0].shape)
        ids, smoothed = tracker.update(clip.boxes[0], noisy, np.ones(noisy.shape[:2]), f / 30)
        assert ids == [1, 2, 3]
        raw.append(noisy)
        out.append(smoothed)
    assert _jitter(np.stack(out)) < 0.35 * _jitter(np.stack(raw))
    np.testing.assert_allclose(out[0], raw[0])  # a new track starts where its person is


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="one of iou, oks"):
        PoseTracker(match="distance")
    with pytest.raises(ConfigError, match="sigmas"):
        PoseTracker(match="oks")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        PoseTracker(threshold=1.5)
    with pytest.raises(ConfigError, match="max_missed"):
        PoseTracker(max_missed=-1)
    with pytest.raises(ConfigError, match="min_cutoff > 0"):
        OneEuroSettings(min_cutoff=0)
