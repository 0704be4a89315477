"""The COCO-format reader on the shared samples (../shared/datasets/coco, aic) and on broken copies of them."""

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml

from hrnet.data.coco import coco_ground_truth, read_coco, read_coco_detections
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


def test_a_string_image_id_among_numbers_is_refused_before_anything_runs(tmp_path, coco_dir, coco_json):
    data = copy.deepcopy(coco_json)
    old = data["images"][1]["id"]
    data["images"][1]["id"] = str(old)
    for ann in data["annotations"]:
        ann["image_id"] = str(old) if ann["image_id"] == old else ann["image_id"]
    with pytest.raises(DataError, match=rf"ann\.json: image ids are numbers, but image '{old}' has a string id"):
        read_coco(write_json(tmp_path, data), coco_dir)


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


# ------------------------------------------------- real COCO-format files as they come (AP-10K, 300W, WholeBody)


@pytest.fixture(scope="module")
def ap10k_json(datasets_dir: Path) -> dict:
    return json.loads((datasets_dir / "ap10k" / "test_ap10k.json").read_text())


@pytest.fixture(scope="module")
def wholebody_json(coco_dir: Path) -> dict:
    return json.loads((coco_dir / "test_coco_wholebody.json").read_text())


def write_keypoint_set(tmp_path: Path, names: list[str], name: str = "mine") -> Path:
    """A metainfo file of ``names`` with uniform sigmas (flip pairs derived from left/right in the names)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "keypoints": names, "sigmas": [0.05] * len(names)}))
    return path


def wholebody_set(tmp_path: Path) -> Path:
    """133 keypoints in MMPose's order: COCO's 17 body names, then 116 more (feet, face, left and right hand)."""
    return write_keypoint_set(tmp_path, [*COCO17.names, *(f"k{i}" for i in range(17, 133))], "wholebody")


def test_ap10k_species_sharing_one_keypoint_list_are_one_set(datasets_dir, ap10k_json):
    assert len(ap10k_json["categories"]) == 54 and len({tuple(c["keypoints"]) for c in ap10k_json["categories"]}) == 1
    folder = datasets_dir / "ap10k"
    records = read_coco(folder / "test_ap10k.json", folder, num_keypoints=17)
    assert [(r.annotation_id, r.category_id) for r in records] == [(9284, 26), (6, 1)]
    # The file's "left_front_paw" is MMPose's "L_F_Paw": the shipped AP-10K set, with its own sigmas.
    assert records.keypoint_set.name == "ap10k17" and records.keypoint_set.task == "animal"
    assert records.keypoint_set.names[7] == "L_F_Paw" and records.keypoint_set.sigmas[7] == 0.062
    np.testing.assert_array_equal(records[0].keypoints[0], ap10k_json["annotations"][0]["keypoints"][:2])
    one = read_coco(folder / "test_ap10k.json", folder, category_id=26)
    assert [r.annotation_id for r in one] == [9284] and one.keypoint_set.name == "ap10k17"


def test_categories_with_different_keypoint_lists_are_an_error_naming_data_category_id(
    tmp_path, datasets_dir, ap10k_json
):
    data = copy.deepcopy(ap10k_json)
    data["categories"][1]["keypoints"] = data["categories"][1]["keypoints"][:16]  # id 2, argali sheep
    path = write_json(tmp_path, data)
    with pytest.raises(
        DataError,
        match=r"ann\.json: the categories list different keypoints \(categories \[1, 3, 4, 5, 6, \.\.\.\]: 17 "
        r"keypoints; categories \[2\]: 16 keypoints\); .* choose one category with data\.category_id",
    ):
        read_coco(path, datasets_dir / "ap10k")
    assert [r.category_id for r in read_coco(path, datasets_dir / "ap10k", category_id=1)] == [1]
    with pytest.raises(
        DataError, match=r"ann\.json: no category with id 99 \(data\.category_id\); .* \[1, 2, 3, 4, 5,"
    ):
        read_coco(path, datasets_dir / "ap10k", category_id=99)


def test_nested_keypoints_read_as_the_flat_ones(tmp_path, coco_dir, coco_json):
    data = copy.deepcopy(coco_json)
    for ann in data["annotations"]:
        flat = ann["keypoints"]
        ann["keypoints"] = [flat[i : i + 3] for i in range(0, len(flat), 3)]
    nested = read_coco(write_json(tmp_path, data), coco_dir)
    flat = read_coco(coco_dir / "test_coco.json", coco_dir)
    assert len(nested) == len(flat) == 12
    for a, b in zip(nested, flat, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.visibility, b.visibility)
    data["annotations"][0]["keypoints"].pop()
    with pytest.raises(
        DataError, match=r"ann\.json: annotation 442619 \(image 785\): keypoints has 16 triples, expected 17"
    ):
        read_coco(write_json(tmp_path, data), coco_dir)


def test_300w_without_keypoint_names_takes_the_set_named_in_the_config(tmp_path, datasets_dir):
    folder = datasets_dir / "300w"
    with pytest.raises(
        DataError,
        match=r"test_300w\.json: no category lists keypoint names, so data\.keypoint_set 'from_annotations' .*: "
        r"name the set with data\.keypoint_set, a shipped one \(.*coco17.*\) or a keypoint set \.yaml file",
    ):
        read_coco(folder / "test_300w.json", folder)
    face = write_keypoint_set(tmp_path, [f"p{i}" for i in range(68)], "face68")
    records = read_coco(folder / "test_300w.json", folder, keypoint_set=str(face), num_keypoints=68)
    assert records.keypoint_set.name == "face68" and [r.annotation_id for r in records] == [197, 565]
    first = json.loads((folder / "test_300w.json").read_text())["annotations"][0]["keypoints"]
    np.testing.assert_allclose(records[0].keypoints[[0, 67]], [first[0:2], first[201:203]], rtol=1e-6)
    assert records[0].visibility.tolist() == [1] * 68
    with pytest.raises(
        DataError, match=r"test_300w\.json: annotation 197 \(image 197\): keypoints has 204 values, expected 3 × 17"
    ):
        read_coco(folder / "test_300w.json", folder, keypoint_set="coco17")


def test_wholebody_fields_make_133_keypoints_in_mmposes_order(tmp_path, coco_dir, wholebody_json):
    records = read_coco(
        coco_dir / "test_coco_wholebody.json", coco_dir, keypoint_set=str(wholebody_set(tmp_path)), num_keypoints=133
    )
    assert len(records) == 12 and records.keypoint_set.num_keypoints == 133
    ann = wholebody_json["annotations"][0]
    first = records[0]
    assert first.annotation_id == ann["id"] == 442619
    # body 0-16, feet 17-22, face 23-90, left hand 91-111, right hand 112-132 (the left hand is unlabelled here)
    for index, field in ((0, "keypoints"), (17, "foot_kpts"), (23, "face_kpts"), (112, "righthand_kpts")):
        np.testing.assert_allclose(first.keypoints[index], ann[field][:2], rtol=1e-6)
    assert not first.keypoints[91:112].any() and not first.visibility[91:112].any()
    assert first.num_labelled == 17 + 6 + 68 + 21  # body 2, feet 2, face 1.0, right hand 1
    assert first.visibility[[0, 17, 23, 112]].tolist() == [2, 2, 1, 1]
    # Some hand keypoints carry a confidence in (0, 1): labelled, as COCO-WholeBody's evaluation counts them.
    scored = next(r for r in records if r.annotation_id == 531914)
    codes = np.array(wholebody_json["annotations"][11]["righthand_kpts"][2::3])
    assert ((codes > 0) & (codes < 1)).all()
    assert scored.visibility[112:].tolist() == [1] * 21


def test_wholebody_file_with_a_body_set_reads_the_body_and_says_so_once(coco_dir, caplog):
    with caplog.at_level(logging.INFO, logger="hrnet.data"):
        records = read_coco(coco_dir / "test_coco_wholebody.json", coco_dir, keypoint_set="coco17")
    assert len(records) == 12 and records.keypoint_set is COCO17
    lines = [r.getMessage() for r in caplog.records if "are not read" in r.getMessage()]
    assert lines == [
        f"{coco_dir / 'test_coco_wholebody.json'}: the annotations' foot_kpts, face_kpts, lefthand_kpts, "
        "righthand_kpts are not read: keypoint set 'coco17' has the 17 body keypoints (a set of 133 such as "
        "coco_wholebody133 reads them all)"
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_delete("face_kpts"), r"missing field 'face_kpts'"),
        (_set("lefthand_kpts", [0.0] * 60), r"lefthand_kpts has 60 values, expected 3 × 21 = 63"),
        (_set("foot_kpts", "none"), r"foot_kpts must be a list of 3 × 6 numbers"),
        (_set("righthand_kpts", [1.0, 2.0, -1.0] * 21), r"righthand_kpts keypoint 0 has visibility -1; expected 0"),
    ],
)
def test_wholebody_fields_missing_or_short_name_file_annotation_and_field(
    tmp_path, coco_dir, wholebody_json, mutate, message
):
    data = copy.deepcopy(wholebody_json)
    mutate(data["annotations"][0])
    with pytest.raises(DataError, match=r"test\.json: annotation 442619 \(image 785\): " + message):
        read_coco(write_json(tmp_path, data, "test.json"), coco_dir, keypoint_set=str(wholebody_set(tmp_path)))


def test_ground_truth_for_pycocotools_holds_the_keypoints_as_read(tmp_path, coco_dir, wholebody_json, datasets_dir):
    kset = wholebody_set(tmp_path)
    truth = coco_ground_truth(coco_dir / "test_coco_wholebody.json", str(kset))
    # Every annotation, the two without a labelled keypoint too (pycocotools ignores them itself).
    assert [a["id"] for a in truth["annotations"]] == [a["id"] for a in wholebody_json["annotations"]]
    assert truth["images"] == wholebody_json["images"]
    assert [(c["id"], len(c["keypoints"])) for c in truth["categories"]] == [(1, 133)]
    first = truth["annotations"][0]
    assert len(first["keypoints"]) == 3 * 133 and first["num_keypoints"] == 112
    assert first["keypoints"][3 * 23 : 3 * 23 + 3] == [*wholebody_json["annotations"][0]["face_kpts"][:2], 1.0]
    assert {k: first[k] for k in ("bbox", "area", "iscrowd", "image_id")} == {
        k: wholebody_json["annotations"][0][k] for k in ("bbox", "area", "iscrowd", "image_id")
    }
    # AP-10K: every species category is kept, each annotation in its own.
    path = datasets_dir / "ap10k" / "test_ap10k.json"
    ap10k = coco_ground_truth(path, read_coco(path, path.parent).keypoint_set)
    assert len(ap10k["categories"]) == 54 and [a["category_id"] for a in ap10k["annotations"]] == [26, 1]


def test_detections_of_every_category_of_the_set(tmp_path, datasets_dir):
    folder = datasets_dir / "ap10k"
    dets = [
        {"image_id": 37516, "category_id": 26, "bbox": [66, 192, 1092, 512], "score": 0.9},
        {"image_id": 4, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.8},
        {"image_id": 4, "category_id": 99, "bbox": [10, 10, 50, 80], "score": 0.8},
    ]
    records = read_coco_detections(write_json(tmp_path, dets, "det.json"), folder / "test_ap10k.json", folder)
    assert [(r.annotation_id, r.category_id) for r in records] == [(0, 26), (1, 1)]


def test_detections_all_of_another_category_are_said(tmp_path, caplog):
    from hrnet.data.coco import read_detections

    path = tmp_path / "yolo.json"
    path.write_text(json.dumps([{"image_id": 1, "category_id": 0, "bbox": [1, 2, 30, 40], "score": 0.9}] * 3))
    assert read_detections(path) == {1: []}
    assert "yolo.json: no detection has category_id 1; its categories are [0]" in caplog.text
