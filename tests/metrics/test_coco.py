"""COCO keypoint evaluation plumbing on the shared COCO and AI Challenger samples.

The expected numbers come from the OKS formula, not from a run: the ground truth fed back as results must score
AP 1; shifting every keypoint by a known offset gives each person a computable OKS, and with person scores that
rank by that OKS, pycocotools' AP at threshold t is the share of its 101 recall points r with r ≤ (#OKS ≥ t) / n.
"""

import json

import numpy as np
import pytest

from hrnet.errors import DataError
from hrnet.keypoints import AIC14, COCO17
from hrnet.metrics.coco import (
    STAT_NAMES,
    evaluate_coco,
    keypoint_results,
    load_ground_truth,
    write_keypoint_results,
)

OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@pytest.fixture(scope="module")
def coco_gt(datasets_dir):
    return datasets_dir / "coco" / "test_coco.json"


@pytest.fixture(scope="module")
def aic_gt(datasets_dir):
    return datasets_dir / "aic" / "test_aic.json"


def _labelled_people(path):
    """Ground-truth persons that pycocotools scores (at least one labelled keypoint, not crowd)."""
    annotations = json.loads(path.read_text())["annotations"]
    return [a for a in annotations if a["num_keypoints"] > 0 and not a.get("iscrowd", 0)]


def _as_results(people, offset=(0.0, 0.0), scores=None):
    results = []
    for i, person in enumerate(people):
        keypoints = np.array(person["keypoints"], dtype=np.float64).reshape(-1, 3)
        keypoints[:, :2] += offset
        keypoints[:, 2] = 1.0
        score = 1.0 if scores is None else float(scores[i])
        results.append(
            {"image_id": person["image_id"], "category_id": 1, "keypoints": keypoints.ravel().tolist(), "score": score}
        )
    return results


def _expected_oks(people, offset, sigmas, area_ratio=1.0):
    """Per person: mean over labelled keypoints of exp(-d² / (2σ)² / area / 2), pycocotools' OKS."""
    squared = float(np.sum(np.square(offset)))
    oks = []
    for person in people:
        labelled = np.array(person["keypoints"][2::3]) > 0
        area = person.get("area", area_ratio * person["bbox"][2] * person["bbox"][3])
        oks.append(np.exp(-squared / (2 * np.asarray(sigmas)) ** 2 / area / 2)[labelled].mean())
    return np.array(oks)


def _expected_ap(oks, threshold):
    matched = np.count_nonzero(oks >= threshold)
    return np.mean((matched / len(oks) >= RECALL_POINTS) & (matched > 0))


@pytest.mark.parametrize("which", ["coco", "aic"])
def test_ground_truth_as_results_scores_ap_1(which, coco_gt, aic_gt):
    gt, sigmas = (coco_gt, COCO17.sigmas) if which == "coco" else (aic_gt, AIC14.sigmas)
    evaluation = evaluate_coco(gt, _as_results(_labelled_people(gt)), sigmas)
    assert set(evaluation.metrics) == set(STAT_NAMES)
    for name in ("AP", "AP50", "AP75", "AR", "AR50", "AR75"):
        assert evaluation.metrics[name] == 1.0, name
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets= 20 ] = 1.000" in evaluation.summary


@pytest.mark.parametrize(
    ("which", "offset", "area_ratio"),
    [("coco", (3.0, 4.0), 1.0), ("aic", (6.0, 8.0), 1.0), ("aic", (3.0, 4.0), 0.53)],
)
def test_shifted_keypoints_lower_ap_as_oks_predicts(which, offset, area_ratio, coco_gt, aic_gt):
    gt, sigmas = (coco_gt, COCO17.sigmas) if which == "coco" else (aic_gt, AIC14.sigmas)
    people = _labelled_people(gt)
    oks = _expected_oks(people, offset, sigmas, area_ratio)
    assert oks.min() < 0.75 < oks.max(), "the shift must spread the persons over the OKS thresholds"
    results = _as_results(people, offset, scores=oks)
    metrics = evaluate_coco(gt, results, sigmas, missing_area_ratio=area_ratio).metrics
    per_threshold = np.array([_expected_ap(oks, t) for t in OKS_THRESHOLDS])
    assert metrics["AP"] == pytest.approx(per_threshold.mean(), abs=1e-12)
    assert metrics["AP50"] == pytest.approx(per_threshold[0], abs=1e-12)
    assert metrics["AP75"] == pytest.approx(per_threshold[5], abs=1e-12)
    recall = np.array([np.count_nonzero(oks >= t) / len(oks) for t in OKS_THRESHOLDS])
    assert metrics["AR"] == pytest.approx(recall.mean(), abs=1e-12)
    assert metrics["AP"] < 1.0


@pytest.mark.parametrize(("target", "ap50_matched"), [(0.51, True), (0.49, False)])
def test_one_person_just_above_or_below_oks_half(target, ap50_matched, coco_gt):
    people = _labelled_people(coco_gt)
    # Shift only the first person, by the distance (found by bisection on the OKS formula) that gives OKS target.
    low, high = 0.0, 200.0
    for _ in range(60):
        middle = (low + high) / 2
        if _expected_oks(people[:1], (middle, 0.0), COCO17.sigmas)[0] > target:
            low = middle
        else:
            high = middle
    results = _as_results(people, scores=[0.5] + [1.0] * (len(people) - 1))
    results[0] = _as_results(people[:1], (low, 0.0), scores=[0.5])[0]
    metrics = evaluate_coco(coco_gt, results, COCO17.sigmas).metrics
    matched = len(people) if ap50_matched else len(people) - 1
    assert metrics["AP50"] == pytest.approx(np.mean(matched / len(people) >= RECALL_POINTS), abs=1e-12)
    assert metrics["AR50"] == pytest.approx(matched / len(people), abs=1e-12)


def test_empty_results_score_zero(coco_gt):
    evaluation = evaluate_coco(coco_gt, [], COCO17.sigmas)
    assert evaluation.metrics["AP"] == 0.0 and evaluation.metrics["AR"] == 0.0
    assert "Average Recall" in evaluation.summary


def test_results_file_round_trip(coco_gt, tmp_path):
    people = _labelled_people(coco_gt)
    keypoints = np.array([p["keypoints"] for p in people], dtype=np.float64).reshape(len(people), 17, 3)
    ids = np.array([p["image_id"] for p in people])
    results = keypoint_results(ids, keypoints, np.linspace(1.0, 0.5, len(people)))
    path = tmp_path / "results" / "keypoints.json"
    write_keypoint_results(path, results)
    assert [p.name for p in path.parent.iterdir()] == ["keypoints.json"], "no temporary file may remain"
    loaded = json.loads(path.read_text())
    assert loaded == results
    assert set(loaded[0]) == {"image_id", "category_id", "keypoints", "score"}
    assert isinstance(loaded[0]["image_id"], int) and len(loaded[0]["keypoints"]) == 51
    assert evaluate_coco(coco_gt, path, COCO17.sigmas).metrics["AP"] == 1.0


def test_results_carry_one_category_or_each_persons():
    keypoints, scores = np.zeros((2, 17, 3)), np.ones(2)
    assert [r["category_id"] for r in keypoint_results([1, 2], keypoints, scores)] == [1, 1]
    assert [r["category_id"] for r in keypoint_results([1, 2], keypoints, scores, np.array([26, 1]))] == [26, 1]
    with pytest.raises(DataError, match="results: 1 category ids for 2 image ids"):
        keypoint_results([1, 2], keypoints, scores, [26])


def test_results_given_are_not_modified(coco_gt):
    results = _as_results(_labelled_people(coco_gt))
    before = json.dumps(results)
    evaluate_coco(coco_gt, results, COCO17.sigmas)
    assert json.dumps(results) == before


def test_subset_of_images(coco_gt):
    people = [p for p in _labelled_people(coco_gt) if p["image_id"] == 197388]
    evaluation = evaluate_coco(coco_gt, _as_results(people), COCO17.sigmas, image_ids=[197388])
    assert evaluation.metrics["AP"] == 1.0
    assert evaluate_coco(coco_gt, _as_results(people), COCO17.sigmas).metrics["AR"] < 1.0
    with pytest.raises(DataError, match=r"image ids \['12345'\] are not in the ground truth"):
        evaluate_coco(coco_gt, [], COCO17.sigmas, image_ids=[12345])


def test_ground_truth_without_area_gets_box_area(aic_gt):
    coco = load_ground_truth(aic_gt, missing_area_ratio=0.53)
    annotation = coco.dataset["annotations"][0]
    assert annotation["area"] == pytest.approx(0.53 * annotation["bbox"][2] * annotation["bbox"][3])
    assert annotation["iscrowd"] == 0
    assert load_ground_truth(coco).dataset["annotations"][0]["area"] == annotation["area"], "present areas stay"


def test_errors_name_the_problem(coco_gt, aic_gt, tmp_path):
    results = _as_results(_labelled_people(coco_gt))
    with pytest.raises(DataError, match="has 17 keypoints but 14 OKS sigmas"):
        evaluate_coco(coco_gt, results, AIC14.sigmas)
    with pytest.raises(DataError, match=r"result 0 has 51 keypoint values; expected 42"):
        evaluate_coco(aic_gt, results, AIC14.sigmas)
    with pytest.raises(DataError, match=r"missing\.json: cannot read the COCO ground truth"):
        evaluate_coco(tmp_path / "missing.json", results, COCO17.sigmas)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match=r"broken\.json: not valid JSON at line 1, column 2 .*COCO ground truth"):
        evaluate_coco(broken, results, COCO17.sigmas)
    broken.write_text("[]")
    with pytest.raises(DataError, match=r"broken\.json: not a COCO annotation file"):
        evaluate_coco(broken, results, COCO17.sigmas)
    broken.write_text("{}")
    with pytest.raises(DataError, match=r"broken\.json: keypoint results must be a JSON list"):
        evaluate_coco(coco_gt, broken, COCO17.sigmas)
    with pytest.raises(DataError, match="image id 1 is not in the ground truth"):
        evaluate_coco(coco_gt, [{**results[0], "image_id": 1}], COCO17.sigmas)
    with pytest.raises(DataError, match="result 0 needs 'image_id'"):
        evaluate_coco(coco_gt, [{"keypoints": results[0]["keypoints"]}], COCO17.sigmas)
    nan_result = {**results[0], "keypoints": [float("nan")] * 51}
    with pytest.raises(DataError, match="non-finite keypoint"):
        evaluate_coco(coco_gt, [nan_result], COCO17.sigmas)
    with pytest.raises(DataError, match=r"expected \(N, K, 3\) keypoints"):
        keypoint_results([1, 2], np.zeros((2, 17, 2)), np.zeros(2))
