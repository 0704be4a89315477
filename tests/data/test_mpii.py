"""The MPII reader on the shared official-JSON sample (../shared/datasets/mpii) and on broken copies."""

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from hrnet.crop import box_to_center_size, get_affine_transform
from hrnet.data.mpii import read_mpii
from hrnet.errors import DataError
from hrnet.keypoints import MPII16

PIXEL_STD = 200.0


@pytest.fixture(scope="module")
def mpii_dir(datasets_dir: Path) -> Path:
    return datasets_dir / "mpii"


@pytest.fixture(scope="module")
def mpii_json(mpii_dir: Path) -> list:
    return json.loads((mpii_dir / "test_mpii.json").read_text())


def write_json(tmp_path: Path, data) -> Path:
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps(data))
    return path


def test_first_record_exact(mpii_dir):
    records = read_mpii(mpii_dir / "test_mpii.json", mpii_dir)
    assert len(records) == 5 and records.keypoint_set is MPII16
    first = records[0]
    assert (first.image_id, first.annotation_id) == ("005808361.jpg", 0)
    assert first.image_path == mpii_dir / "005808361.jpg"
    assert first.image_size == (720, 1280)  # from the JPEG header
    # joints are 1-based in the file: [804, 711] → (803, 710); [982.7591, 235.9694] → (981.7591, 234.9694).
    np.testing.assert_allclose(first.keypoints[0], [803.0, 710.0])
    np.testing.assert_allclose(first.keypoints[8], [981.7591, 234.9694], rtol=1e-6)
    np.testing.assert_array_equal(first.visibility, [2] * 16)


@pytest.mark.parametrize("input_size", [(256, 256), (256, 192)])
def test_crop_region_equals_the_official_one(mpii_dir, input_size):
    first = read_mpii(mpii_dir / "test_mpii.json", mpii_dir)[0]
    # File: center [966, 340], scale 4.718488. Official lib/dataset/mpii.py: c = (966, 340 + 15 s) - 1,
    # s' = 1.25 s, so the crop region is 1.25 · 200 · s = 1179.622 px wide, centered at (965, 409.77732).
    center, size = box_to_center_size(first.box, input_size)
    np.testing.assert_allclose(center, [965.0, 409.77732], rtol=0, atol=1e-9)
    np.testing.assert_allclose(size[0], 1179.622, rtol=0, atol=1e-9)
    official = get_affine_transform([965.0, 409.77732], [1179.622, 1179.622], 0.0, input_size)
    np.testing.assert_allclose(get_affine_transform(center, size, 0.0, input_size), official, atol=1e-9)


def test_unannotated_joints(mpii_dir):
    third = read_mpii(mpii_dir / "test_mpii.json", mpii_dir)[2]  # joints_vis 0 for both ankles, coordinates -1
    assert third.image_id == "051423444.jpg"
    np.testing.assert_array_equal(third.visibility, [0, 2, 2, 2, 2, 0] + [2] * 10)
    np.testing.assert_array_equal(third.keypoints[[0, 5]], np.zeros((2, 2)))
    np.testing.assert_allclose(third.keypoints[1], [1032.0, 648.0])


def test_test_set_entries_without_joints(tmp_path, mpii_dir, mpii_json):
    data = copy.deepcopy(mpii_json)
    for entry in data:
        del entry["joints"], entry["joints_vis"]
    records = read_mpii(write_json(tmp_path, data), mpii_dir)
    assert len(records) == 5
    assert not records[0].visibility.any() and not records[0].keypoints.any()
    assert records[0].box == read_mpii(mpii_dir / "test_mpii.json", mpii_dir)[0].box


def test_head_sizes(mpii_dir):
    records = read_mpii(mpii_dir / "test_mpii.json", mpii_dir, head_sizes=[10.0, 20.0, 30.0, 40.0, 50.0])
    assert [r.head_size for r in records] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert read_mpii(mpii_dir / "test_mpii.json", mpii_dir)[0].head_size is None
    with pytest.raises(DataError, match=r"test_mpii\.json: 2 head sizes given for 5 entries"):
        read_mpii(mpii_dir / "test_mpii.json", mpii_dir, head_sizes=[1.0, 2.0])


def _set(field, value):
    def mutate(entry):
        entry[field] = value

    return mutate


def _delete(field):
    def mutate(entry):
        del entry[field]

    return mutate


def _joint(index, value):
    def mutate(entry):
        entry["joints"][index] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_delete("scale"), r"missing field 'scale'"),
        (_delete("center"), r"missing field 'center'"),
        (_delete("joints_vis"), r"missing field 'joints_vis'"),
        (_set("scale", 0.0), r"scale 0 gives a box of zero or negative size"),
        (_set("scale", -1.5), r"scale -1.5 gives a box of zero or negative size"),
        (_set("center", [-1, -1]), r"the center is \[-1, \.\.\.\]"),
        (_set("center", [966.0, float("nan")]), r"center has non-finite values"),
        (_joint(3, [1040.0, float("inf")]), r"joints \(16 × \[x, y\]\) has non-finite values"),
        (_joint(3, [1040.0]), r"joints \(16 × \[x, y\]\) must be numbers"),
        (_set("joints", [[1.0, 2.0]] * 15), r"joints \(16 × \[x, y\]\) must have shape \(16, 2\)"),
        (_set("joints_vis", [1] * 15 + [2]), r"keypoint 15 has visibility 2; this file's coding allows \[0, 1\]"),
    ],
)
def test_malformed_entry(tmp_path, mpii_dir, mpii_json, mutate, message):
    data = copy.deepcopy(mpii_json)
    mutate(data[0])
    with pytest.raises(DataError, match=r"mpii\.json: entry #0 \(image '005808361\.jpg'\): " + message):
        read_mpii(write_json(tmp_path, data), mpii_dir)


def test_missing_image_name_and_file(tmp_path, mpii_dir, mpii_json):
    data = copy.deepcopy(mpii_json)
    del data[1]["image"]
    with pytest.raises(DataError, match=r"mpii\.json: entry #1: missing field 'image'"):
        read_mpii(write_json(tmp_path, data), mpii_dir)
    data = copy.deepcopy(mpii_json)
    data[1]["image"] = "absent.jpg"
    with pytest.raises(DataError, match=r"absent\.jpg: cannot read the image file \(No such file"):
        read_mpii(write_json(tmp_path, data), mpii_dir)


def test_unreadable_and_truncated_files(tmp_path, mpii_dir):
    with pytest.raises(DataError, match=r"nope\.json: cannot read the annotation file"):
        read_mpii(tmp_path / "nope.json", mpii_dir)
    path = tmp_path / "cut.json"
    path.write_text((mpii_dir / "test_mpii.json").read_text()[:200])
    with pytest.raises(DataError, match=r"cut\.json: not valid JSON"):
        read_mpii(path, mpii_dir)


def test_keypoint_count_differs_from_model(mpii_dir):
    with pytest.raises(DataError, match=r"test_mpii\.json: the data set has 16 keypoints .* model predicts 17"):
        read_mpii(mpii_dir / "test_mpii.json", mpii_dir, num_keypoints=17)
    assert len(read_mpii(mpii_dir / "test_mpii.json", mpii_dir, num_keypoints=16)) == 5


@pytest.mark.parametrize("image", [None, 5, ["a.jpg"], ""])
def test_image_must_be_a_file_name(tmp_path, mpii_dir, mpii_json, image):
    data = copy.deepcopy(mpii_json)
    data[2]["image"] = image
    with pytest.raises(
        DataError,
        match=r"mpii\.json: entry #2: image must be a file name \(a non-empty string\), "
        rf"got {re.escape(repr(image))}",
    ):
        read_mpii(write_json(tmp_path, data), mpii_dir)


def test_an_empty_file_names_itself(tmp_path, mpii_dir):
    with pytest.raises(DataError, match=r"mpii\.json: no person in the file \(an empty list\)"):
        read_mpii(write_json(tmp_path, []), mpii_dir)
