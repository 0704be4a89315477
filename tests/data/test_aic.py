"""The AI Challenger raw-form reader on the shared sample (../shared/datasets/aic) and on broken copies."""

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnet.data.aic import read_aic_raw
from hrnet.data.coco import read_coco
from hrnet.errors import DataError
from hrnet.keypoints import AIC14

FIRST_IMAGE = "054d9ce9201beffc76e5ff2169d2af2f027002ca"


@pytest.fixture(scope="module")
def aic_dir(datasets_dir: Path) -> Path:
    return datasets_dir / "aic"


@pytest.fixture(scope="module")
def raw_path(aic_dir: Path) -> Path:
    return aic_dir / "keypoint_annotations_raw_sample.json"


@pytest.fixture(scope="module")
def raw_json(raw_path: Path) -> list:
    return json.loads(raw_path.read_text())


def write_json(tmp_path: Path, data) -> Path:
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(data))
    return path


def test_first_human_exact(raw_path, aic_dir):
    records = read_aic_raw(raw_path, aic_dir)
    assert len(records) == 9 and records.keypoint_set is AIC14
    human1 = records[0]
    assert (human1.image_id, human1.annotation_id) == (FIRST_IMAGE, "human1")
    assert human1.image_path == aic_dir / f"{FIRST_IMAGE}.jpg"
    assert human1.image_size == (600, 900)  # from the JPEG header
    # File visibility 1 visible / 2 occluded / 3 unlabelled → COCO 2 / 1 / 0:
    # raw 1, 2, 1, 2, 2, 1, 2, 3, 3, 1, 3, 3, 1, 1
    np.testing.assert_array_equal(human1.visibility, [2, 1, 2, 1, 1, 2, 1, 0, 0, 2, 0, 0, 2, 2])
    np.testing.assert_array_equal(human1.keypoints[0], [313, 201])
    np.testing.assert_array_equal(human1.keypoints[13], [372, 170])
    np.testing.assert_array_equal(human1.keypoints[7], [0, 0])
    # [x1, y1, x2, y2] = [279, 55, 492, 599] → (279, 55, 213, 544), cleaned as the official COCO loader does.
    assert human1.box == (279.0, 55.0, 212.0, 543.0)
    assert human1.area == 213 * 544  # the AI Challenger evaluation's OKS scale
    assert human1.score == 1.0


def test_same_records_as_the_coco_form(raw_path, aic_dir):
    raw = read_aic_raw(raw_path, aic_dir)
    coco = read_coco(aic_dir / "test_aic.json", aic_dir, keypoint_set="aic14")
    assert len(raw) == len(coco) == 9
    for a, b in zip(raw, coco, strict=True):
        assert (a.image_path, a.image_size, a.box, a.area) == (b.image_path, b.image_size, b.box, b.area)
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.visibility, b.visibility)


def test_human_without_labelled_keypoint_is_skipped(tmp_path, raw_json, aic_dir):
    data = copy.deepcopy(raw_json)
    data[0]["keypoint_annotations"]["human2"] = [0, 0, 3] * 14
    records = read_aic_raw(write_json(tmp_path, data), aic_dir)
    assert len(records) == 8
    assert [r.annotation_id for r in records[:2]] == ["human1", "human3"]


def test_image_size_comes_from_the_file_and_clips_the_box(tmp_path, raw_json):
    cv2.imwrite(str(tmp_path / "small.jpg"), np.zeros((300, 400, 3), np.uint8))  # (height, width)
    data = [dict(copy.deepcopy(raw_json[0]), image_id="small")]
    human1 = read_aic_raw(write_json(tmp_path, data), tmp_path)[0]
    assert human1.image_path == tmp_path / "small.jpg" and human1.image_size == (300, 400)
    # [279, 55, 492, 599] ends beyond the image: x2 = min(400 - 1, 279 + 212), y2 = min(300 - 1, 55 + 543).
    assert human1.box == (279.0, 55.0, 120.0, 244.0)


def _human1(field, value):
    def mutate(entry):
        entry[field]["human1"] = value

    return mutate


def _delete(field, key=None):
    def mutate(entry):
        del (entry[field] if key else entry)[key or field]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_delete("human_annotations"), r": missing field 'human_annotations'"),
        (_delete("human_annotations", "human1"), r", human1: has keypoints but no box in 'human_annotations'"),
        (_human1("keypoint_annotations", [1, 2, 1] * 13), r", human1: keypoints has 39 values, expected 3 × 14 = 42"),
        (_human1("keypoint_annotations", [1, 2, 1] * 13 + [float("nan"), 2, 1]), r", human1: .*non-finite"),
        (_human1("keypoint_annotations", [1, 2, 0] * 14), r", human1: keypoint 0 has visibility 0; .*\[1, 2, 3\]"),
        (
            _human1("human_annotations", [279, 55, 279, 599]),
            r", human1 \(box \[x1, y1, x2, y2\] = \[279, 55, 279, 599\]\): the box .* size \(w=0, h=544\)",
        ),
        (
            _human1("human_annotations", [279, 599, 492, 55]),
            r", human1 \(box .*\): the box .* zero or negative size \(w=213, h=-544\)",
        ),
        (_human1("human_annotations", [279, 55, 492]), r", human1: box must have shape \(4,\)"),
    ],
)
def test_malformed_entry(tmp_path, raw_json, aic_dir, mutate, message):
    data = copy.deepcopy(raw_json)
    mutate(data[0])
    with pytest.raises(DataError, match=rf"raw\.json: image '{FIRST_IMAGE}'" + message):
        read_aic_raw(write_json(tmp_path, data), aic_dir)


def test_missing_image_id_and_image(tmp_path, raw_json, aic_dir):
    data = copy.deepcopy(raw_json)
    del data[1]["image_id"]
    with pytest.raises(DataError, match=r"raw\.json: entry #1: missing field 'image_id'"):
        read_aic_raw(write_json(tmp_path, data), aic_dir)
    data = copy.deepcopy(raw_json)
    data[2]["image_id"] = "not_there"
    with pytest.raises(DataError, match=r"not_there\.jpg: cannot read the image file \(No such file"):
        read_aic_raw(write_json(tmp_path, data), aic_dir)


def test_unreadable_and_truncated_files(tmp_path, raw_path, aic_dir):
    with pytest.raises(DataError, match=r"nothing\.json: cannot read the annotation file"):
        read_aic_raw(tmp_path / "nothing.json", aic_dir)
    path = tmp_path / "cut.json"
    path.write_text(raw_path.read_text()[:-10])
    with pytest.raises(DataError, match=r"cut\.json: not valid JSON"):
        read_aic_raw(path, aic_dir)
    path.write_text('{"image_id": "x"}')
    with pytest.raises(DataError, match=r"cut\.json: expected the AI Challenger raw form, a JSON list"):
        read_aic_raw(path, aic_dir)


def test_keypoint_count_differs_from_model(raw_path, aic_dir):
    with pytest.raises(DataError, match=r"raw_sample\.json: the data set has 14 keypoints .* model predicts 17"):
        read_aic_raw(raw_path, aic_dir, num_keypoints=17)
    assert len(read_aic_raw(raw_path, aic_dir, num_keypoints=14)) == 9


def test_an_image_listed_twice_is_refused(tmp_path, raw_json, aic_dir):
    data = [*copy.deepcopy(raw_json), copy.deepcopy(raw_json[1])]
    with pytest.raises(
        DataError,
        match=rf"raw\.json: entry #{len(raw_json)}: image {raw_json[1]['image_id']!r} is "
        r"listed twice \(first as entry #1\)",
    ):
        read_aic_raw(write_json(tmp_path, data), aic_dir)


@pytest.mark.parametrize("image_id", [None, 7, ["a"], ""])
def test_image_id_must_be_a_name(tmp_path, raw_json, aic_dir, image_id):
    data = copy.deepcopy(raw_json)
    data[0]["image_id"] = image_id
    with pytest.raises(DataError, match=r"raw\.json: entry #0: image_id must be the image's name \(a non-empty string"):
        read_aic_raw(write_json(tmp_path, data), aic_dir)


def test_no_usable_person_names_the_file_and_why(tmp_path, raw_json, aic_dir):
    with pytest.raises(
        DataError,
        match=r"raw\.json: no person with a box and ≥ 1 labelled keypoint in the file "
        r"\(0 images",
    ):
        read_aic_raw(write_json(tmp_path, []), aic_dir)
    data = copy.deepcopy(raw_json)
    for entry in data:
        for human in entry["keypoint_annotations"]:
            entry["keypoint_annotations"][human] = [0, 0, 3] * 14
    with pytest.raises(DataError, match=r"raw\.json: no person .*: \d+ no labelled keypoint"):
        read_aic_raw(write_json(tmp_path, data), aic_dir)
