"""The COCO-format reader on the shared samples (../shared/datasets/coco, aic) and on broken copies of them."""

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from hrnet.data.coco import read_coco, read_coco_detections
from hrnet.errors import DataError
from hrnet.keypoints import AIC14, COCO17, CROWDPOSE14


@pytest.fixture(scope="module")
def coco_dir(datasets_dir: Path) -> Path:
    return datasets_dir / "coco"


@pytest.fixture(scope="module")
def coco_json(coco_dir: Path) -> dict:
    return json.loads((coco_dir / "test_coco.json").read_text())


def write_json(tmp_path: Path, data, name: str = "ann.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_reads_sample_skipping_persons_without_keypoints(coco_dir, coco_json):
    records = read_coco(coco_dir / "test_coco.json", coco_dir)
    without_keypoints = {a["id"] for a in coco_json["annotations"] if a["num_keypoints"] == 0}
    assert without_keypoints == {1202706, 508900}
    assert len(coco_json["annotations"]) == 14
    assert len(records) == 12
    assert [r.annotation_id for r in records] == [
        a["id"] for a in coco_json["annotations"] if a["id"] not in without_keypoints
    ]


def test_first_annotation_exact(coco_dir):
    first = read_coco(coco_dir / "test_coco.json", coco_dir)[0]
    assert first.image_path == coco_dir / "000000000785.jpg"
    assert first.image_size == (425, 640)
    assert (first.image_id, first.annotation_id) == (785, 442619)
    assert first.score == 1.0
    assert first.area == pytest.approx(27789.11055)
    # bbox [280.79, 44.73, 218.7, 346.68]; the official clean box is one pixel narrower and shorter.
    np.testing.assert_allclose(first.box, [280.79, 44.73, 217.7, 345.68], rtol=0, atol=1e-9)
    assert first.keypoints.shape == (17, 2) and first.keypoints.dtype == np.float32
    np.testing.assert_array_equal(first.keypoints[0], [367, 81])
    np.testing.assert_array_equal(first.keypoints[16], [396, 341])
    np.testing.assert_array_equal(first.visibility, [2] * 17)


def test_visibility_as_in_file_and_unlabelled_points(coco_dir):
    records = {r.annotation_id: r for r in read_coco(coco_dir / "test_coco.json", coco_dir)}
    occluded = records[467657]
    np.testing.assert_array_equal(occluded.visibility, [2, 2, 2, 0, 2, 2, 2, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1])
    np.testing.assert_array_equal(occluded.keypoints[3], [0, 0])
    np.testing.assert_array_equal(occluded.keypoints[8], [291, 123])


def test_records_are_read_only(coco_dir):
    record = read_coco(coco_dir / "test_coco.json", coco_dir)[0]
    with pytest.raises(ValueError, match="read-only"):
        record.keypoints[0, 0] = 1.0


def test_keypoint_set_from_file_or_builtin(coco_dir, datasets_dir):
    from_file = read_coco(coco_dir / "test_coco.json", coco_dir).keypoint_set
    assert from_file.names == COCO17.names
    assert from_file.flip_pairs == COCO17.flip_pairs
    assert from_file.skeleton == COCO17.skeleton
    assert read_coco(coco_dir / "test_coco.json", coco_dir, keypoint_set="coco17").keypoint_set is COCO17
    aic = read_coco(datasets_dir / "aic" / "test_aic.json", datasets_dir / "aic", keypoint_set="aic14")
    assert aic.keypoint_set is AIC14
    assert len(aic) == 9


def test_aic_coco_form_without_area_uses_box_area(datasets_dir):
    aic = read_coco(datasets_dir / "aic" / "test_aic.json", datasets_dir / "aic", keypoint_set="aic14")
    assert aic[0].area == 213 * 544  # bbox [279, 55, 213, 544], no 'area' field
    assert aic[0].image_size == (600, 900)


def test_crowd_empty_and_outside_boxes_are_skipped(tmp_path, coco_dir, coco_json):
    data = copy.deepcopy(coco_json)
    anns = data["annotations"]
    anns[0]["iscrowd"] = 1
    anns[1]["bbox"] = [700.0, 10.0, 50.0, 50.0]  # image 40083 is 500 wide: nothing left after clipping
    anns[2]["area"] = 0
    keypoints = anns[4]["keypoints"]
    anns[4]["keypoints"] = [v if i % 3 != 2 else 0 for i, v in enumerate(keypoints)]  # every point unlabelled
    records = read_coco(write_json(tmp_path, data), coco_dir)
    ids = {r.annotation_id for r in records}
    assert ids.isdisjoint({anns[i]["id"] for i in (0, 1, 2, 4)})
    assert len(records) == 12 - 4


def test_box_is_clipped_to_the_image(tmp_path, coco_dir, coco_json):
    data = copy.deepcopy(coco_json)
    data["annotations"][0]["bbox"] = [-10.0, 300.0, 700.0, 200.0]  # image 785 is 640 × 425
    record = read_coco(write_json(tmp_path, data), coco_dir)[0]
    assert record.box == (0.0, 300.0, 639.0, 124.0)


def test_builtin_set_must_fit_the_file(tmp_path, coco_dir, datasets_dir):
    with pytest.raises(DataError, match=r"test_coco\.json: category 1 has 17 keypoints but keypoint set 'aic14'"):
        read_coco(coco_dir / "test_coco.json", coco_dir, keypoint_set="aic14")
    # CrowdPose also has 14 keypoints, in another order: the left/right pairs tell them apart.
    with pytest.raises(DataError, match=r"test_aic\.json: .* not in the order of keypoint set 'crowdpose14'"):
        read_coco(datasets_dir / "aic" / "test_aic.json", datasets_dir / "aic", keypoint_set="crowdpose14")


def test_file_without_keypoint_category(tmp_path, coco_dir, coco_json):
    data = copy.deepcopy(coco_json)
    data["categories"] = [{"id": 1, "name": "person", "supercategory": "person"}]
    path = write_json(tmp_path, data)
    with pytest.raises(DataError, match=r"ann\.json: no category lists keypoint names"):
        read_coco(path, coco_dir)
    assert len(read_coco(path, coco_dir, keypoint_set="coco17")) == 12


def test_detections_score_threshold(coco_dir):
    det_path = coco_dir / "test_coco_det_AP_H_56.json"
    detections = json.loads(det_path.read_text())
    for threshold in (0.0, 0.5, 0.9):
        records = read_coco_detections(det_path, coco_dir / "test_coco.json", coco_dir, score_threshold=threshold)
        assert len(records) == sum(d["score"] >= threshold for d in detections)
    assert len(read_coco_detections(det_path, coco_dir / "test_coco.json", coco_dir)) == len(detections) == 118
    kept = read_coco_detections(det_path, coco_dir / "test_coco.json", coco_dir, score_threshold=0.5)
    assert 0 < len(kept) < 118
    first = kept[0]
    assert first.box == tuple(detections[0]["bbox"])  # unclipped, as the official loader
    assert first.score == detections[0]["score"]
    assert first.image_path == coco_dir / "000000000785.jpg" and first.image_size == (425, 640)
    assert first.annotation_id == 0
    assert not first.keypoints.any() and not first.visibility.any()


def test_detections_that_are_all_filtered_out_are_one_clear_error(coco_dir):
    det_path = coco_dir / "test_coco_det_AP_H_56.json"
    with pytest.raises(DataError, match=r"det_AP_H_56\.json: no detection is left to evaluate: .* a score below 2 "):
        read_coco_detections(det_path, coco_dir / "test_coco.json", coco_dir, score_threshold=2.0)


def test_detections_other_category_and_degenerate_boxes(tmp_path, coco_dir, caplog):
    dets = [
        {"image_id": 785, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9},
        {"image_id": 785, "category_id": 2, "bbox": [10, 10, 50, 80], "score": 0.9},
        {"image_id": 785, "category_id": 1, "bbox": [10, 10, 0, 80], "score": 0.9},
    ]
    with caplog.at_level(logging.WARNING):
        records = read_coco_detections(write_json(tmp_path, dets, "det.json"), coco_dir / "test_coco.json", coco_dir)
    assert [r.annotation_id for r in records] == [0]
    assert "dropped 1 detections whose box has zero or negative size" in caplog.text


@pytest.mark.parametrize(
    ("dets", "message"),
    [
        ([], r"det\.json: expected a non-empty JSON list"),
        (
            [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 1}],
            r"det\.json: detection #0 .*image id 1",
        ),
        ([{"image_id": 785, "category_id": 1, "score": 1}], r"det\.json: detection #0 \(image 785\): missing .*bbox"),
        ([{"image_id": 785, "category_id": 1, "bbox": [0, 0, 5, 5], "score": float("nan")}], r"#0.*non-finite"),
    ],
)
def test_detection_errors(tmp_path, coco_dir, dets, message):
    with pytest.raises(DataError, match=message):
        read_coco_detections(write_json(tmp_path, dets, "det.json"), coco_dir / "test_coco.json", coco_dir)


def test_unreadable_and_truncated_files(tmp_path, coco_dir):
    with pytest.raises(DataError, match=r"missing\.json: cannot read the annotation file"):
        read_coco(tmp_path / "missing.json", coco_dir)
    text = (coco_dir / "test_coco.json").read_text()
    truncated = tmp_path / "truncated.json"
    truncated.write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"truncated\.json: not valid JSON at line \d+, column \d+.*truncated"):
        read_coco(truncated, coco_dir)


def _set(field, value):
    def mutate(ann):
        ann[field] = value

    return mutate


def _delete(field):
    def mutate(ann):
        del ann[field]

    return mutate


def _keypoint(index, value):
    def mutate(ann):
        ann["keypoints"][index] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_delete("bbox"), r"missing field 'bbox'"),
        (_delete("keypoints"), r"missing field 'keypoints'"),
        (_set("keypoints", [1, 2, 2] * 16 + [1, 2]), r"keypoints has 50 values, expected 3 × 17 = 51"),
        (_set("keypoints", "none"), r"keypoints must be a list of 3 × 17 numbers"),
        (_keypoint(0, float("nan")), r"keypoints has non-finite values"),
        (_keypoint(1, float("inf")), r"keypoints has non-finite values"),
        (_keypoint(2, 3), r"keypoint 0 has visibility 3; this file's coding allows \[0, 1, 2\]"),
        (_set("bbox", [280.79, 44.73, 0.0, 346.68]), r"the box .* has zero or negative size \(w=0, h=346\.68\)"),
        (_set("bbox", [280.79, 44.73, 218.7, -5.0]), r"the box .* has zero or negative size \(w=218\.7, h=-5\)"),
        (_set("bbox", [280.79, 44.73, 218.7]), r"bbox must have shape \(4,\)"),
        (_set("image_id", 999), r"image id 999 is not listed in .*test\.json's 'images'"),
        (_set("image_id", [785]), r"image id \[785\] is not listed"),
        (_set("iscrowd", "no"), r"iscrowd must be 0 or 1, got 'no'"),
        (_set("iscrowd", 2), r"iscrowd must be 0 or 1, got 2"),
        (_set("iscrowd", None), r"iscrowd must be 0 or 1, got None"),
        (_set("category_id", "1"), r"category_id must be an integer, got '1'"),
        (_set("area", "big"), r"area must be numbers, got \['big'\]"),
        (_set("area", float("nan")), r"area has non-finite values"),
    ],
)
def test_malformed_annotation(tmp_path, coco_dir, coco_json, mutate, message):
    data = copy.deepcopy(coco_json)
    mutate(data["annotations"][0])
    path = write_json(tmp_path, data, "test.json")
    with pytest.raises(DataError, match=r"test\.json: annotation 442619 \(image \[?\d+\]?\): " + message):
        read_coco(path, coco_dir)


def test_malformed_image_entry(tmp_path, coco_dir, coco_json):
    data = copy.deepcopy(coco_json)
    del data["images"][1]["file_name"]
    with pytest.raises(DataError, match=r"ann\.json: image 40083: missing field 'file_name'"):
        read_coco(write_json(tmp_path, data), coco_dir)
    data = copy.deepcopy(coco_json)
    data["images"][0]["height"] = 0
    with pytest.raises(DataError, match=r"ann\.json: image 785: height and width must be positive integers"):
        read_coco(write_json(tmp_path, data), coco_dir)


def test_keypoint_count_differs_from_model(coco_dir, datasets_dir):
    with pytest.raises(DataError, match=r"test_coco\.json: the data set has 17 keypoints .* model predicts 14"):
        read_coco(coco_dir / "test_coco.json", coco_dir, num_keypoints=14)
    assert len(read_coco(coco_dir / "test_coco.json", coco_dir, num_keypoints=17)) == 12
    with pytest.raises(DataError, match=r"test_aic\.json: the data set has 14 keypoints .* model predicts 17"):
        read_coco(datasets_dir / "aic" / "test_aic.json", datasets_dir / "aic", num_keypoints=17)


def test_ill_typed_annotation_id(tmp_path, coco_dir, coco_json):
    data = copy.deepcopy(coco_json)
    data["annotations"][3]["id"] = {"a": 1}
    with pytest.raises(DataError, match=r"ann\.json: annotation \{'a': 1\} .*: id must be an integer or a string"):
        read_coco(write_json(tmp_path, data), coco_dir)


def test_crowd_annotations_are_checked_too(tmp_path, coco_dir, coco_json):
    """pycocotools reads crowd annotations' box and area when it scores: they are checked up front as well."""
    data = copy.deepcopy(coco_json)
    data["annotations"][0].update(iscrowd=1, area="lots")
    with pytest.raises(DataError, match=r"ann\.json: annotation 442619 .*: area must be numbers"):
        read_coco(write_json(tmp_path, data), coco_dir)
    data["annotations"][0].update(area=10.0, bbox=[1, 2, 3])
    with pytest.raises(DataError, match=r"ann\.json: annotation 442619 .*: bbox must have shape \(4,\)"):
        read_coco(write_json(tmp_path, data), coco_dir)


def test_duplicate_annotation_ids_are_refused(tmp_path, coco_dir, coco_json):
    data = copy.deepcopy(coco_json)
    anns = data["annotations"]
    anns[5]["id"] = anns[2]["id"]
    anns[9]["id"] = anns[7]["id"]
    with pytest.raises(DataError) as err:
        read_coco(write_json(tmp_path, data), coco_dir)
    msg = str(err.value)
    assert "ann.json: 2 annotation ids appear more than once" in msg
    assert str(anns[2]["id"]) in msg and str(anns[7]["id"]) in msg and "each person needs its own id" in msg


def test_no_usable_person_names_the_file_and_why(tmp_path, coco_dir, coco_json):
    data = copy.deepcopy(coco_json)
    for ann in data["annotations"]:
        ann["iscrowd"] = 1
    with pytest.raises(
        DataError,
        match=r"ann\.json: no person with a box and ≥ ?1 labelled keypoint in the file "
        r"\(14 annotations: 14 crowd",
    ):
        read_coco(write_json(tmp_path, data), coco_dir)
    data["annotations"] = []
    with pytest.raises(
        DataError,
        match=r"ann\.json: no person with a box and ≥ ?1 labelled keypoint in the file "
        r"\(0 annotations",
    ):
        read_coco(write_json(tmp_path, data), coco_dir)


CROWDPOSE_NAMES = [
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
]  # fmt: skip


def test_crowdpose_file_with_cocos_skeleton_drops_the_invalid_links(tmp_path, coco_dir, coco_json, caplog):
    """CrowdPose's own annotation file carries COCO's 17-keypoint skeleton for its 14 keypoints."""
    data = copy.deepcopy(coco_json)
    coco_skeleton = data["categories"][0]["skeleton"]
    assert max(max(link) for link in coco_skeleton) == 17
    data["categories"][0].update(keypoints=CROWDPOSE_NAMES, skeleton=[*coco_skeleton, [1, "x"], [3]])
    for ann in data["annotations"]:
        ann["keypoints"] = ann["keypoints"][: 3 * 14]
    with caplog.at_level(logging.WARNING, logger="hrnet.data"):
        records = read_coco(write_json(tmp_path, data), coco_dir)
    assert records.keypoint_set is CROWDPOSE14 and len(records) > 0  # CrowdPose's names: its own set and skeleton
    valid = [(a - 1, b - 1) for a, b in coco_skeleton if max(a, b) <= 14]
    dropped = len(coco_skeleton) + 2 - len(valid)
    assert f"ann.json: dropped {dropped} skeleton links" in caplog.text and "[16, 14]" in caplog.text
