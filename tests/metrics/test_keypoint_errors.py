"""The hand and face metrics (MMPose 1.3.2's definitions), pinned to values worked out by hand on tiny cases.

Errors are planted along 3-4-5 triangles so that every distance is a whole number of pixels: (3, 4) → 5,
(6, 8) → 10, (9, 12) → 15, (12, 16) → 20, (15, 20) → 25.
"""

import numpy as np
import pytest

from hrnet.errors import DataError
from hrnet.metrics.keypoint_errors import auc, box_sizes, epe, keypoint_pair_distances, nme, pck_accuracy
from hrnet.metrics.pck import pck

# Three persons, four keypoints; keypoint 3 is never visible (its planted errors must not count anywhere).
TRUTH = np.array(
    [
        [[10.0, 10.0], [20.0, 10.0], [30.0, 10.0], [40.0, 10.0]],
        [[50.0, 50.0], [60.0, 50.0], [70.0, 50.0], [80.0, 50.0]],
        [[5.0, 5.0], [6.0, 5.0], [7.0, 5.0], [8.0, 5.0]],
    ]
)
OFFSETS = np.array(
    [
        [[0, 0], [9, 12], [12, 16], [15, 20]],  # 0, 15, 20, (25)
        [[3, 4], [6, 8], [0, 0], [300, 400]],  # 5, 10, 0, (500)
        [[30, 40], [1, 0], [3, 4], [60, 80]],  # (50), 1, 5, (100)
    ],
    dtype=np.float64,
)
VISIBLE = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [0, 1, 1, 0]], dtype=bool)
LENGTHS = np.array([100.0, 40.0, 10.0])  # 0.2 × length: 20, 8 and 2 px


def test_pck_is_strict_and_averages_over_keypoints():
    result = pck_accuracy(TRUTH + OFFSETS, TRUTH, VISIBLE, LENGTHS, 0.2)
    # keypoint 0: 0/100 < 0.2 ✓, 5/40 = 0.125 ✓, person 2 invisible            → 2/2
    # keypoint 1: 15/100 = 0.15 ✓, 10/40 = 0.25 ✗, 1/10 = 0.1 ✓                  → 2/3
    # keypoint 2: 20/100 = 0.2 ✗ (strict <), 0/40 ✓, 5/10 = 0.5 ✗               → 1/3
    # keypoint 3: never visible                                                   → undefined, out of the mean
    np.testing.assert_allclose(result.per_keypoint[:3], [1.0, 2 / 3, 1 / 3])
    assert np.isnan(result.per_keypoint[3])
    np.testing.assert_array_equal(result.counts, [2, 3, 3, 0])
    assert result.mean == pytest.approx((1.0 + 2 / 3 + 1 / 3) / 3)  # 2/3, not the pooled 5/8
    # The official HRNet PCK (``<=`` and pooled) on the same case differs in both ways: 6 of 8.
    assert pck(TRUTH + OFFSETS, TRUTH, VISIBLE, LENGTHS, 0.2).mean == pytest.approx(6 / 8)


def test_pck_leaves_out_a_person_whose_length_is_zero():
    lengths = np.array([100.0, 0.0, 10.0])  # person 1 is left out whole
    result = pck_accuracy(TRUTH + OFFSETS, TRUTH, VISIBLE, lengths, 0.2)
    # keypoint 0: 1/1; keypoint 1: 15/100 ✓, 1/10 ✓ → 2/2; keypoint 2: 20/100 ✗, 5/10 ✗ → 0/2
    np.testing.assert_allclose(result.per_keypoint[:3], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(result.counts, [1, 2, 2, 0])
    assert result.mean == pytest.approx(2 / 3)
    assert np.isnan(pck_accuracy(TRUTH, TRUTH, np.zeros_like(VISIBLE), LENGTHS).mean)  # nothing to count


def test_auc_averages_pck_over_twenty_pixel_thresholds():
    truth = np.array([[[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]], [[50.0, 50.0], [90.0, 90.0], [10.0, 10.0]]])
    offsets = np.array([[[0, 3], [6, 8], [5, 5]], [[0, 0], [1, 1], [7, 7]]], dtype=np.float64)
    visible = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)  # errors 3 and 10 px, then 0 px; keypoint 2 never
    # Thresholds 1.5·i px for i = 0..19, strict: an error e counts from the first i with 1.5·i > e.
    # keypoint 0: e = 3 counts for i = 3..19 (17 of 20; at i = 2, 3 < 3 fails), e = 0 for i = 1..19 (19)
    #             → mean over thresholds of the per-threshold share = (17 + 19) / 2 / 20 = 18/20
    # keypoint 1: e = 10 counts for i = 7..19 → 13/20
    # AUC = mean over the two keypoints = (18/20 + 13/20) / 2 = 31/40
    assert auc(truth + offsets, truth, visible) == pytest.approx(31 / 40)
    # Another normaliser: 60 px, 10 thresholds (0, 6, ..., 54 px): e = 3 → 9, e = 0 → 9, e = 10 → 8 of 10.
    assert auc(truth + offsets, truth, visible, norm_factor=60, num_thresholds=10) == pytest.approx((0.9 + 0.8) / 2)


def test_epe_is_the_pooled_mean_pixel_distance():
    # Visible distances: 0, 15, 20 | 5, 10, 0 | 1, 5 → 56 / 8 = 7 px (invisible ones: 25, 500, 50, 100, 50 left out).
    assert epe(TRUTH + OFFSETS, TRUTH, VISIBLE) == pytest.approx(7.0)
    assert np.isnan(epe(TRUTH, TRUTH, np.zeros_like(VISIBLE)))


def test_nme_by_keypoint_pair_pools_every_counted_keypoint():
    truth = np.array(
        [
            [[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [40.0, 0.0]],  # pair (0, 3) 40 px apart
            [[0.0, 0.0], [5.0, 5.0], [8.0, 3.0], [12.0, 16.0]],  # 20 px apart
            [[7.0, 7.0], [1.0, 1.0], [2.0, 2.0], [7.0, 7.0]],  # 0 px apart: the face is left out
        ]
    )
    offsets = np.array(
        [
            [[0, 0], [4, 0], [0, 8], [0, 0]],  # 0, 4, 8, 0 px → 0, 0.1, 0.2, 0
            [[2, 0], [3, 4], [9, 9], [0, 0]],  # 2, 5, (invisible), 0 px → 0.1, 0.25, 0
            [[1, 0], [1, 0], [1, 0], [1, 0]],
        ],
        dtype=np.float64,
    )
    visible = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [1, 1, 1, 1]], dtype=bool)
    lengths = keypoint_pair_distances(truth, (0, 3))
    np.testing.assert_allclose(lengths, [40.0, 20.0, 0.0])
    # Pooled over the 7 counted keypoints: (0 + 0.1 + 0.2 + 0 + 0.1 + 0.25 + 0) / 7 = 0.65 / 7
    # (a mean per face first would give (0.3/4 + 0.35/3) / 2 ≈ 0.0958).
    assert nme(truth + offsets, truth, visible, lengths) == pytest.approx(0.65 / 7)
    assert np.isnan(nme(truth, truth, visible, np.zeros(3)))


def test_box_sizes_clip_the_files_box_as_mmpose():
    image_sizes = np.array([[100, 200]] * 4)  # (height, width): x in 0..199, y in 0..99
    boxes = np.array(
        [
            [10, 20, 30, 50],  # inside: corners (10, 20)-(40, 70) → max(30, 50) = 50
            [-10, 20, 50, 30],  # out on the left: x 0..40, y 20..50 → max(40, 30) = 40
            [150, 80, 100, 40],  # out right and below: x 150..199, y 80..99 → max(49, 19) = 49
            [10, 10, 0.5, 0.25],  # smaller than a pixel stays as it is: 0.5
        ],
        dtype=np.float64,
    )
    np.testing.assert_allclose(box_sizes(boxes, image_sizes), [50.0, 40.0, 49.0, 0.5])
    # NME of the box: person errors 5 and 10 px against box sizes 50 and 40 → (0.1 + 0.25) / 2
    truth = np.zeros((2, 1, 2))
    found = np.array([[[3.0, 4.0]], [[6.0, 8.0]]])
    assert nme(found, truth, np.ones((2, 1), bool), box_sizes(boxes[:2], image_sizes[:2])) == pytest.approx(0.175)


def test_bad_inputs_name_the_metric():
    with pytest.raises(DataError, match=r"PCK: predictions \(3, 4, 2\) and ground truth \(3, 3, 2\) must both be"):
        pck_accuracy(TRUTH, TRUTH[:, :3], VISIBLE, LENGTHS)
    with pytest.raises(DataError, match=r"EPE: visibility must be \(N, K\)"):
        epe(TRUTH, TRUTH, VISIBLE[:, :2])
    with pytest.raises(DataError, match=r"NME: expected one normalising length a person \(3\)"):
        nme(TRUTH, TRUTH, VISIBLE, LENGTHS[:2])
    with pytest.raises(DataError, match=r"NME: persons \[1\] have a negative or non-finite normalising length"):
        nme(TRUTH, TRUTH, VISIBLE, np.array([1.0, -1.0, 2.0]))
    with pytest.raises(DataError, match=r"NME: the normalising pair \(0, 4\) must be two of the 4 keypoints"):
        keypoint_pair_distances(TRUTH, (0, 4))
    with pytest.raises(DataError, match="AUC: norm_factor must be > 0"):
        auc(TRUTH, TRUTH, VISIBLE, norm_factor=0)
    with pytest.raises(DataError, match=r"expected \(N, 4\) boxes"):
        box_sizes(np.zeros((2, 3)), np.zeros((2, 2)))
