"""PCK and MPII PCKh on the shared MPII sample with errors planted at known multiples of the head size."""

import json

import numpy as np
import pytest

from hrnet.errors import DataError
from hrnet.metrics.pck import head_sizes_from_segment, mpii_head_sizes, mpii_pckh, pck


@pytest.fixture(scope="module")
def mpii(datasets_dir):
    people = json.loads((datasets_dir / "mpii" / "test_mpii.json").read_text())
    joints = np.array([p["joints"] for p in people], dtype=np.float64)
    visible = np.array([p["joints_vis"] for p in people]) > 0
    return joints, visible


def _planted(joints, sizes, factors):
    """Predictions whose error is ``factors[n, k] * sizes[n]`` pixels, in a direction that varies per keypoint."""
    angle = np.arange(joints.shape[1]) * 0.7
    direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return joints + factors[:, :, None] * sizes[:, None, None] * direction[None]


def test_mpii_pckh_counts_planted_errors(mpii):
    joints, visible = mpii
    sizes = np.array([40.0, 55.0, 61.0, 47.0, 70.0])
    # Factors well away from the thresholds: 0.05 passes both, 0.3 passes 0.5 only, 0.8 passes neither.
    factors = np.random.default_rng(1).choice([0.05, 0.3, 0.8], size=joints.shape[:2])
    table = mpii_pckh(_planted(joints, sizes, factors), joints, visible, sizes)

    def share(index, limit):
        hits = ((factors[:, index] <= limit) & visible[:, index]).sum(axis=0)
        return hits / visible[:, index].sum(axis=0)

    assert table["Head"] == pytest.approx(share([9], 0.5)[0])
    assert table["Wrist"] == pytest.approx(share([10, 15], 0.5).mean())
    assert table["Ankle"] == pytest.approx(share([0, 5], 0.5).mean())  # ankles 0 and 5 are invisible for two people
    counted = np.ones(16, dtype=bool)
    counted[[6, 7]] = False  # pelvis and thorax are left out of the official mean
    for name, limit in (("Mean", 0.5), ("Mean@0.1", 0.1)):
        hits = ((factors <= limit) & visible)[:, counted].sum()
        assert table[name] == pytest.approx(hits / visible[:, counted].sum()), name
    assert list(table) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"]


def test_mpii_pckh_boundary_and_exclusions(mpii):
    joints, visible = mpii
    joints = np.round(joints)  # whole pixels, so that an error of exactly 0.5 × 64 px stays exact
    sizes = np.full(len(joints), 64.0)
    factors = np.full(joints.shape[:2], 0.5)  # exactly at the threshold: counts (the official `<=`)
    factors[:, [6, 7]] = 5.0  # pelvis and thorax far off: must not move the mean
    factors[:, 0] = 0.75  # right ankle off
    predictions = joints.copy()
    predictions[:, :, 0] += factors * 64.0
    table = mpii_pckh(predictions, joints, visible, sizes, thresholds=(0.5, 0.11))
    assert table["Head"] == 1.0 and table["Ankle"] == 0.5
    visible_counted = np.delete(visible, [6, 7], axis=1)
    assert table["Mean"] == pytest.approx(1 - visible[:, 0].sum() / visible_counted.sum())
    assert table["Mean@0.11"] == 0.0


def test_pck_generic_per_keypoint_and_never_visible(mpii):
    joints, visible = mpii
    visible = visible.copy()
    visible[:, 3] = False
    lengths = np.linalg.norm(joints.max(axis=1) - joints.min(axis=1), axis=1)
    factors = np.zeros(joints.shape[:2])
    factors[:2, 1] = 0.3  # two of five right knees beyond 0.2 × the length
    result = pck(_planted(joints, lengths, factors), joints, visible, lengths, 0.2, exclude_from_mean=[6])
    assert result.per_keypoint[1] == pytest.approx(3 / 5)
    assert np.isnan(result.per_keypoint[3]) and result.counts[3] == 0
    assert result.mean == pytest.approx(1 - 2 / visible[:, [k for k in range(16) if k != 6]].sum())
    assert np.isnan(pck(joints, joints, np.zeros_like(visible), lengths, 0.2).mean)


def test_head_sizes(mpii):
    joints, visible = mpii
    np.testing.assert_allclose(mpii_head_sizes(np.array([[10.0, 20.0, 40.0, 60.0]])), [0.6 * 50.0])
    sizes = head_sizes_from_segment(joints, visible)
    np.testing.assert_allclose(sizes, np.linalg.norm(joints[:, 9] - joints[:, 8], axis=1))
    visible = visible.copy()
    visible[2, 9] = False
    sizes = head_sizes_from_segment(joints, visible)
    assert np.isnan(sizes[2]) and np.isfinite(np.delete(sizes, 2)).all()
    with pytest.raises(DataError, match=r"persons \[2\] have no positive normalising length"):
        mpii_pckh(joints, joints, visible, sizes)


def test_errors_name_the_problem(mpii):
    joints, visible = mpii
    sizes = np.ones(len(joints))
    with pytest.raises(DataError, match="needs the 16 MPII keypoints"):
        mpii_pckh(joints[:, :14], joints[:, :14], visible[:, :14], sizes)
    with pytest.raises(DataError, match="must both be"):
        pck(joints, joints[:4], visible, sizes, 0.5)
    with pytest.raises(DataError, match=r"visibility must be \(N, K\)"):
        pck(joints, joints, visible[:, :3], sizes, 0.5)
    with pytest.raises(DataError, match="one normalising length a person"):
        pck(joints, joints, visible, sizes[:3], 0.5)
    with pytest.raises(DataError, match=r"head boxes must be \(N, 4\)"):
        mpii_head_sizes(np.zeros((2, 2)))
