"""OKS, OKS-NMS, soft OKS-NMS and rescoring pinned to the official outputs in reference/parity/postprocess.npz."""

import numpy as np
import pytest

from hrnet.errors import DataError
from hrnet.keypoints import AIC14, COCO17
from hrnet.metrics.nms import nms_per_image, oks_matrix, oks_nms, rescore


@pytest.fixture(scope="module")
def official(reference_dir):
    with np.load(reference_dir / "parity" / "postprocess.npz") as data:
        return {key: data[key] for key in data.files if key.startswith(("nms_", "rescore_", "coco_"))}


def test_coco17_sigmas_are_the_official_ones(official):
    np.testing.assert_allclose(COCO17.sigmas, official["coco_sigmas"], rtol=1e-15)


def test_oks_matrix_matches_official(official):
    kpts, areas = official["nms_kpts"], official["nms_areas"]
    ours = oks_matrix(kpts, areas, kpts, areas, official["coco_sigmas"])
    np.testing.assert_allclose(ours, official["nms_oks_matrix"], rtol=1e-6, atol=0)
    # The decimal sigmas of COCO17 differ from the official `array / 10` in the last bit only.
    np.testing.assert_allclose(oks_matrix(kpts, areas, kpts, areas, COCO17.sigmas), ours, rtol=1e-12)


def _naive_oks(g, d, area_g, area_d, sigmas, in_vis_threshold):
    """One pair, written out: the mask comes from the detection side only (the official quirk)."""
    e = ((d[:, 0] - g[:, 0]) ** 2 + (d[:, 1] - g[:, 1]) ** 2) / (2 * sigmas) ** 2 / ((area_g + area_d) / 2) / 2
    counted = d[:, 2] > in_vis_threshold
    return float(np.exp(-e)[counted].mean()) if counted.any() else 0.0


def test_visibility_threshold_uses_the_detection_side_mask(official):
    kpts, areas, sigmas = official["nms_kpts"], official["nms_areas"], official["coco_sigmas"]
    ours = oks_matrix(kpts[:6], areas[:6], kpts, areas, sigmas, in_vis_threshold=0.2)
    expected = [[_naive_oks(kpts[i], kpts[j], areas[i], areas[j], sigmas, 0.2) for j in range(30)] for i in range(6)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    assert not np.allclose(ours, official["nms_oks_matrix"][:6]), "the fixture must exercise the mask"


def test_oks_nms_visibility_quirk_changes_what_is_kept():
    # A: best score, all keypoint scores low; B: same pose, high keypoint scores. With A as the reference only B's
    # scores count, so B (OKS 1) is suppressed; a two-sided mask would count nothing and keep B.
    pose = np.stack([np.arange(17.0) * 10, np.arange(17.0) * 5, np.full(17, 0.1)], axis=1)
    poses = np.stack([pose, pose])
    poses[1, :, 2] = 0.9
    keep = oks_nms(poses, np.array([0.9, 0.8]), np.array([5000.0, 5000.0]), 0.9, COCO17.sigmas, in_vis_threshold=0.2)
    np.testing.assert_array_equal(keep, [0])
    # The other way round B is the reference and A's low scores leave nothing to compare: OKS 0, both kept.
    keep = oks_nms(poses, np.array([0.8, 0.9]), np.array([5000.0, 5000.0]), 0.9, COCO17.sigmas, in_vis_threshold=0.2)
    np.testing.assert_array_equal(keep, [1, 0])


@pytest.mark.parametrize(("in_vis_threshold", "fixture"), [(None, "nms_keep"), (0.2, "nms_keep_in_vis_0p2")])
def test_oks_nms_matches_official(official, in_vis_threshold, fixture):
    keep = oks_nms(
        official["nms_kpts"], official["nms_scores"], official["nms_areas"], 0.9, COCO17.sigmas, in_vis_threshold
    )
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, official[fixture])


def test_soft_oks_nms_matches_official(official):
    keep = oks_nms(official["nms_kpts"], official["nms_scores"], official["nms_areas"], 0.9, COCO17.sigmas, soft=True)
    np.testing.assert_array_equal(keep, official["nms_keep_soft"])
    few = oks_nms(
        official["nms_kpts"][:5], official["nms_scores"][:5], official["nms_areas"][:5], 0.9, COCO17.sigmas, soft=True
    )
    np.testing.assert_array_equal(np.sort(few), np.arange(5))


def test_rescore_matches_official(official):
    scores = rescore(official["rescore_box_scores"], official["nms_kpts"][:, :, 2], 0.2)
    np.testing.assert_allclose(scores, official["rescore_scores"], rtol=1e-12)


def test_rescore_without_confident_keypoints_is_zero():
    keypoint_scores = np.array([[0.1, 0.2, 0.05], [0.3, 0.1, 0.9]])
    np.testing.assert_allclose(rescore(np.array([0.8, 0.5]), keypoint_scores, 0.2), [0.0, 0.5 * 0.6])


def test_nms_per_image_single_image_is_rescore_then_nms(official):
    kpts, areas = official["nms_kpts"], official["nms_areas"]
    keep, scores = nms_per_image(np.zeros(30, dtype=int), kpts, official["rescore_box_scores"], areas, COCO17.sigmas)
    np.testing.assert_allclose(scores, official["rescore_scores"], rtol=1e-12)
    np.testing.assert_array_equal(keep, oks_nms(kpts, scores, areas, 0.9, COCO17.sigmas))
    assert len(keep) < 30, "the fixture must suppress something"
    soft_keep, _ = nms_per_image(np.zeros(30), kpts, official["rescore_box_scores"], areas, COCO17.sigmas, soft=True)
    np.testing.assert_array_equal(soft_keep, oks_nms(kpts, scores, areas, 0.9, COCO17.sigmas, soft=True))


def test_nms_per_image_keeps_images_apart_in_order_of_appearance(official):
    kpts, areas, box_scores = official["nms_kpts"], official["nms_areas"], official["rescore_box_scores"]
    single = oks_nms(kpts, official["rescore_scores"], areas, 0.9, COCO17.sigmas)
    # Two copies of the same 30 poses in two images, shuffled: a pose must never suppress its copy.
    shuffle = np.random.default_rng(0).permutation(60)
    position = np.argsort(shuffle)
    ids = np.array(["second"] * 30 + ["first"] * 30)[shuffle]
    copy = np.arange(60)[shuffle] // 30
    poses = np.concatenate([kpts, kpts])[shuffle]
    keep, scores = nms_per_image(ids, poses, np.tile(box_scores, 2)[shuffle], np.tile(areas, 2)[shuffle], COCO17.sigmas)
    first_copy = copy[0]
    expected = np.concatenate([position[single + 30 * first_copy], position[single + 30 * (1 - first_copy)]])
    np.testing.assert_array_equal(keep, expected)
    np.testing.assert_allclose(scores, np.tile(official["rescore_scores"], 2)[shuffle], rtol=1e-12)


def _image_by_image(ids: np.ndarray, poses: np.ndarray, box_scores: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """``oks_nms`` run image by image in order of first appearance (what nms_per_image must equal)."""
    scores = rescore(box_scores, poses[:, :, 2])
    kept = []
    for image in dict.fromkeys(ids.tolist()):
        index = np.flatnonzero(ids == image)
        kept.append(index[oks_nms(poses[index], scores[index], areas[index], 0.9, COCO17.sigmas)])
    return np.concatenate(kept)


@pytest.mark.parametrize("case", ["near duplicates", "spread out", "tied scores", "exact copies", "NaN score"])
def test_nms_per_image_equals_oks_nms_image_by_image(case):
    # All images are suppressed at once, round by round; images with equal scores go one by one.
    rng = np.random.default_rng(
        ["near duplicates", "spread out", "tied scores", "exact copies", "NaN score"].index(case)
    )
    for _ in range(20):
        n, images = int(rng.integers(1, 80)), int(rng.integers(1, 12))
        ids = rng.choice(np.array([f"image {i}" for i in range(images)]), n)
        people = rng.uniform(0, 300, (images, 17, 2))[rng.integers(0, images, n)]
        jitter = rng.normal(0, 60 if case == "spread out" else 3, (n, 17, 2))
        poses = np.concatenate([people + jitter, rng.random((n, 17, 1))], axis=2)
        if case == "tied scores":
            poses[:, :, 2] = np.round(poses[:, :, 2], 1)
        if case == "exact copies" and n > 3:
            poses[1::2] = poses[0::2][: n // 2]
        if case == "NaN score":
            poses[0, 4, 2] = np.nan
        box_scores, areas = rng.choice([1.0, 0.9], n), rng.uniform(2000, 40000, n)
        keep, _ = nms_per_image(ids, poses, box_scores, areas, COCO17.sigmas)
        np.testing.assert_array_equal(keep, _image_by_image(ids, poses, box_scores, areas))


def test_nms_per_image_empty():
    keep, scores = nms_per_image([], np.zeros((0, 14, 3)), np.zeros(0), np.zeros(0), AIC14.sigmas)
    assert keep.shape == (0,) and scores.shape == (0,)


def test_errors_name_the_problem(official):
    kpts, scores, areas = official["nms_kpts"], official["nms_scores"], official["nms_areas"]
    with pytest.raises(DataError, match="14 values for 17 keypoints"):
        oks_nms(kpts, scores, areas, 0.9, AIC14.sigmas)
    with pytest.raises(DataError, match="reference poses have 14 keypoints, compared poses 17"):
        oks_matrix(kpts[:2, :14], areas[:2], kpts, areas, COCO17.sigmas)
    with pytest.raises(DataError, match=r"shape \(N, K, 3\)"):
        oks_nms(kpts[..., :2], scores, areas, 0.9, COCO17.sigmas)
    with pytest.raises(DataError, match=r"expected shape \(30,\)"):
        oks_nms(kpts, scores[:29], areas, 0.9, COCO17.sigmas)
    with pytest.raises(DataError, match="expected one id a pose"):
        nms_per_image(np.zeros(29), kpts, scores, areas, COCO17.sigmas)
    with pytest.raises(DataError, match=r"must be \(N, K\)"):
        rescore(scores, kpts, 0.2)


def test_oks_nms_suppresses_only_above_the_threshold():
    pose = np.stack([np.arange(17.0) * 10, np.arange(17.0) * 5, np.ones(17)], axis=1)
    poses, scores, areas = np.stack([pose, pose]), np.array([0.9, 0.8]), np.array([5000.0, 5000.0])
    # Identical poses have OKS exactly 1: kept at threshold 1 (the official `oks <= thresh` keeps), not below.
    np.testing.assert_array_equal(oks_nms(poses, scores, areas, 1.0, COCO17.sigmas), [0, 1])
    np.testing.assert_array_equal(oks_nms(poses, scores, areas, 0.999, COCO17.sigmas), [0])
