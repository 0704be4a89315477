"""The TF port's metric, pinned to its evaluate.py / calculate_distance outputs (tf_port_parity/metric.npz)."""

import dataclasses
import json

import numpy as np
import pytest

from hrnet.errors import DataError
from hrnet.tf_port.metric import (
    fraction_above,
    from_port_rows,
    keypoint_distances,
    labelled_from_port_classes,
    oks_per_sample,
    port_ap,
    sigma2_per_keypoint,
)
from tests.conftest import SHARED

TOLERANCE = 1e-6


# Every TF-port fixture set's metric.npz (the one beside a port checkpoint), wherever under reference/ it lies.
METRIC_FILES = sorted(p for p in (SHARED / "reference").rglob("metric.npz") if any(p.parent.glob("*.ckpt.index")))


CASES = ("", "edge_allclass3_row_", "edge_zero_column_")


def check_metric_fixture(metric: dict[str, np.ndarray]) -> None:
    """What the tests below read from a metric.npz, with the shapes, dtypes and agreements they rely on (README in
    tf_port_parity/): per case a (samples, keypoints) grid of distances and classes 1-3 (3: unlabelled, distance
    0), σ² the per-keypoint mean squared distance, one OKS a sample, AP50/AP75 fractions; ``decode_*`` rows of
    [ver, hor, class] per keypoint. An AssertionError names what is wrong."""
    for case in CASES:
        distances, classes = metric[f"{case}distances"], metric[f"{case}classes"]
        assert distances.dtype == np.float64 and distances.ndim == 2, case
        num_samples = distances.shape[0]
        assert classes.dtype == np.uint8 and classes.shape == distances.shape, case
        assert set(np.unique(classes)) <= {0, 1, 2, 3}, case
        assert np.isfinite(distances).all() and (distances >= 0).all() and (distances[classes == 3] == 0).all(), case
        np.testing.assert_allclose(metric[f"{case}sigma2s"], (distances**2).mean(axis=0), rtol=1e-12, err_msg=case)
        assert metric[f"{case}oks"].shape == (num_samples,), case
        for ap in ("ap50", "ap75"):
            assert metric[f"{case}{ap}"].shape == () and 0 <= metric[f"{case}{ap}"] <= 1, case + ap
    assert str(metric["evaluate_stdout"]) == f"AP50 = {metric['ap50']}, AP75 = {metric['ap75']}"
    num_maps, _, _, num_keypoints = metric["decode_net_output"].shape
    for name, shape in (("prediction", (num_maps, 3 * num_keypoints)), ("distances", (num_maps, num_keypoints))):
        assert metric[f"decode_{name}"].shape == shape, name
    rows = metric["decode_gt_all"].reshape(num_maps, num_keypoints, 3)
    for k, name in enumerate(("ver", "hor", "class")):
        assert metric[f"decode_gt_{name}"].dtype == np.uint8, name
        np.testing.assert_array_equal(rows[..., k], metric[f"decode_gt_{name}"], err_msg=name)


def test_every_fixture_set_holds_what_the_tests_read():
    # An empty list would not fail: every test below would be skipped for want of a parameter.
    assert METRIC_FILES, f"no metric.npz beside a *.ckpt.index under {SHARED / 'reference'}"
    for path in METRIC_FILES:
        with np.load(path) as npz:
            check_metric_fixture(dict(npz))


@pytest.fixture(scope="module", params=METRIC_FILES, ids=lambda p: p.parent.name)
def metric(request) -> dict[str, np.ndarray]:
    with np.load(request.param) as npz:
        return dict(npz)


def _tampered(metric: dict[str, np.ndarray], how: str) -> dict[str, np.ndarray]:
    changed = {k: v.copy() for k, v in metric.items()}
    labelled = np.argwhere(changed["classes"] != 3)[0]
    unlabelled = np.argwhere(changed["classes"] == 3)[0]
    if how == "a distance":
        changed["distances"][tuple(labelled)] += 1.0
    elif how == "a distance where unlabelled":
        changed["distances"][tuple(unlabelled)] = 5.0
    elif how == "an OKS dropped":
        changed["oks"] = changed["oks"][:-1]
    elif how == "the printed line":
        changed["evaluate_stdout"] = np.array(f"AP50 = {1 - float(changed['ap50'])}, AP75 = {changed['ap75']}")
    elif how == "a decoded row":
        changed["decode_gt_all"][0, 1] += 1
    return changed


@pytest.mark.parametrize(
    "how", ["a distance", "a distance where unlabelled", "an OKS dropped", "the printed line", "a decoded row"]
)
def test_a_tampered_fixture_is_caught(metric, how):
    with pytest.raises(AssertionError):
        check_metric_fixture(_tampered(metric, how))


@pytest.mark.parametrize("case", ["", "edge_allclass3_row_", "edge_zero_column_"])
def test_sigma2_oks_and_ap_are_the_ports(metric, case):
    distances, labelled = metric[f"{case}distances"], labelled_from_port_classes(metric[f"{case}classes"])
    sigma2 = sigma2_per_keypoint(distances, labelled)
    np.testing.assert_allclose(sigma2, metric[f"{case}sigma2s"], rtol=TOLERANCE, atol=0)
    oks = oks_per_sample(distances, labelled)
    np.testing.assert_allclose(oks, metric[f"{case}oks"], rtol=0, atol=TOLERANCE)  # NaN where the port has NaN
    summary = port_ap(distances, labelled)
    assert summary.ap50 == pytest.approx(float(metric[f"{case}ap50"]), abs=TOLERANCE)
    assert summary.ap75 == pytest.approx(float(metric[f"{case}ap75"]), abs=TOLERANCE)
    assert summary.num_nan_oks == np.isnan(metric[f"{case}oks"]).sum()
    json.dumps(dataclasses.asdict(summary), allow_nan=False)  # never NaN, whatever the OKS


def test_the_scripts_printed_line(metric):
    summary = port_ap(metric["distances"], labelled_from_port_classes(metric["classes"]))
    assert f"AP50 = {summary.ap50}, AP75 = {summary.ap75}" == str(metric["evaluate_stdout"])


def test_nan_oks_cases(metric):
    """A sample with no labelled keypoint has OKS 0/0; a keypoint with σ = 0 makes every OKS NaN."""
    oks = oks_per_sample(
        metric["edge_allclass3_row_distances"], labelled_from_port_classes(metric["edge_allclass3_row_classes"])
    )
    assert np.isnan(oks[0]) and not np.isnan(oks[1:]).any()
    summary = port_ap(
        metric["edge_zero_column_distances"], labelled_from_port_classes(metric["edge_zero_column_classes"])
    )
    assert (summary.ap50, summary.ap75, summary.num_nan_oks) == (0.0, 0.0, 40)
    assert fraction_above(np.array([np.nan, 0.9, 0.6, 0.5]), 0.5) == 0.5  # NaN fails; 0.5 is not above 0.5


def test_distances_of_decoded_predictions(metric):
    """``calculate_distance`` on ``decode_output``'s [ver, hor, class] rows: unlabelled truth gives 0, an
    undetected prediction (class 3 at (0, 0)) still counts."""
    predicted, predicted_classes = from_port_rows(metric["decode_prediction"])
    truth, classes = from_port_rows(metric["decode_gt_all"])
    np.testing.assert_array_equal(classes, metric["decode_gt_class"])
    np.testing.assert_array_equal(truth[..., 0], metric["decode_gt_hor"])  # (x, y) = (hor, ver)
    distances = keypoint_distances(predicted, truth, labelled_from_port_classes(classes))
    np.testing.assert_allclose(distances, metric["decode_distances"], rtol=0, atol=TOLERANCE)
    assert (distances[classes == 3] == 0).all()
    assert (predicted_classes == 3).any()


def test_coco_visibility_gives_the_same_mask(metric):
    """AI Challenger classes 1 / 2 / 3 are COCO visibility 2 / 1 / 0: ``visibility > 0`` is the same mask."""
    classes = metric["classes"]
    visibility = np.select([classes == 1, classes == 2], [2, 1], default=0)
    np.testing.assert_array_equal(visibility > 0, labelled_from_port_classes(classes))


def test_bad_inputs_are_errors():
    with pytest.raises(DataError, match="labelled must be a boolean"):
        sigma2_per_keypoint(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(DataError, match=r"labelled has shape \(2, 4\), the keypoints \(2, 3\)"):
        oks_per_sample(np.ones((2, 3)), np.ones((2, 4), bool))
    with pytest.raises(DataError, match="N ≥ 1"):
        port_ap(np.ones((0, 3)), np.ones((0, 3), bool))
    with pytest.raises(DataError, match=r"must both be \(N, K, 2\)"):
        keypoint_distances(np.ones((2, 3, 2)), np.ones((2, 3, 3)), np.ones((2, 3), bool))
    with pytest.raises(DataError, match=r"\(N, 3K\)"):
        from_port_rows(np.ones((2, 41)))
