"""Person records and the checks every reader shares: one wording for every fault, read-only arrays."""

import numpy as np
import pytest

from hrnet.data.records import (
    PoseRecord,
    check_num_keypoints,
    checked_box,
    clip_box,
    keypoint_triples,
    map_visibility,
    require,
    to_finite,
    unlabelled_to_zero,
)
from hrnet.errors import DataError
from hrnet.keypoints import COCO17


def _record(**changes):
    fields = dict(
        image_path="a.jpg", image_size=(480, 640), box=(1.0, 2.0, 30.0, 40.0), keypoints=np.zeros((17, 2)),
        visibility=np.r_[np.full(5, 2), np.zeros(12)], image_id=1, annotation_id=7,
    )  # fmt: skip
    return PoseRecord(**{**fields, **changes})


def test_record_arrays_are_typed_and_read_only():
    record = _record()
    assert record.keypoints.dtype == np.float32 and record.visibility.dtype == np.uint8
    assert record.num_keypoints == 17 and record.num_labelled == 5 and record.image_path.name == "a.jpg"
    with pytest.raises(ValueError, match="read-only"):
        record.keypoints[0, 0] = 1.0
    with pytest.raises(ValueError, match=r"keypoints must be \(K, 2\) and visibility \(K,\)"):
        _record(visibility=np.zeros(16))


def test_keypoint_triples_flat_or_nested_and_their_errors():
    where = "f.json: annotation 3"
    for values in ([1, 2, 2, 3, 4, 0], [[1, 2, 2], [3, 4, 0]]):
        points, codes = keypoint_triples(values, 2, where)
        np.testing.assert_array_equal(points, [[1, 2], [3, 4]])
        np.testing.assert_array_equal(codes, [2, 0])
    with pytest.raises(DataError, match=r"f\.json: annotation 3: keypoints has 5 values, expected 3 × 2 = 6"):
        keypoint_triples([1, 2, 2, 3, 4], 2, where)
    with pytest.raises(DataError, match=r"annotation 3: face_kpts has 1 triples, expected 2 \[x, y, visibility\]"):
        keypoint_triples([[1, 2, 2]], 2, where, "face_kpts")
    with pytest.raises(DataError, match=r"annotation 3: keypoints\[1\] is \[3, 4\], expected \[x, y, visibility\]"):
        keypoint_triples([[1, 2, 2], [3, 4]], 2, where)
    with pytest.raises(DataError, match=r"annotation 3: keypoints\[1\] is 3, expected \[x, y, visibility\]"):
        keypoint_triples([[1, 2, 2], 3, 4, 0], 2, where)
    with pytest.raises(DataError, match=r"annotation 3: keypoints must be numbers"):
        keypoint_triples([[1, 2, 2], [3, "4", 0]], 2, where)
    with pytest.raises(DataError, match=r"keypoints must be a list of 3 × 2 numbers or 2 \[x, y, visibility\] triples"):
        keypoint_triples("1 2 2", 2, where)
    for values in ([1, 2, 2, float("nan"), 4, 0], [[1, 2, 2], [float("inf"), 4, 0]]):
        with pytest.raises(DataError, match="keypoints has non-finite values"):
            keypoint_triples(values, 2, where)


def test_visibility_codes_are_mapped_or_refused():
    aic = {1: 2, 2: 1, 3: 0}  # AI Challenger: 1 visible, 2 occluded, 3 unlabelled
    np.testing.assert_array_equal(map_visibility(np.array([1.0, 2.0, 3.0]), aic, "w"), [2, 1, 0])
    with pytest.raises(DataError, match=r"w: keypoint 1 has visibility 0.5; this file's coding allows \[1, 2, 3\]"):
        map_visibility(np.array([1.0, 0.5, 3.0]), aic, "w")


def test_boxes_are_checked_and_clipped_as_the_official_code():
    assert checked_box([1, 2, 3, 4], "w") == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(DataError, match=r"w: the box \[1, 2, 0, 4\] has zero or negative size"):
        checked_box([1, 2, 0, 4], "w")
    with pytest.raises(DataError, match="w: bbox must have shape"):
        checked_box([1, 2, 3], "w")
    # Official cleaning: the far corner is x1 + w - 1 from the clipped near corner, clipped to width - 1.
    assert clip_box((-5.0, 10.0, 20.0, 30.0), (100, 50)) == (0.0, 10.0, 19.0, 29.0)
    assert clip_box((40.0, 90.0, 20.0, 30.0), (100, 50)) == (40.0, 90.0, 9.0, 9.0)
    assert clip_box((60.0, 10.0, 5.0, 5.0), (100, 50)) is None  # wholly right of the image
    assert clip_box((10.0, 10.0, 1.0, 1.0), (100, 50)) is None  # a single point


def test_small_checks_name_where():
    assert require({"a": 1}, "a", "w") == 1
    with pytest.raises(DataError, match="w: missing field 'b'"):
        require({"a": 1}, "b", "w")
    with pytest.raises(DataError, match="w: expected a JSON object, got list"):
        require([1], "a", "w")
    with pytest.raises(DataError, match="w: score must be numbers"):
        to_finite("high", (), "score", "w")
    points = unlabelled_to_zero(np.ones((3, 2)), np.array([2, 0, 1]))
    np.testing.assert_array_equal(points, [[1, 1], [0, 0], [1, 1]])
    with pytest.raises(DataError, match=r"x\.json: the data set has 17 keypoints \(keypoint set 'coco17'\)"):
        check_num_keypoints(COCO17, 14, "x.json")


def test_numbers_must_be_json_numbers_at_any_depth():
    from hrnet.data.records import to_finite

    for bad in (["1", 2], [True, 2], [[1.0, "2"]], [[1.0, False]]):
        with pytest.raises(DataError, match=r"rec: box must be numbers"):
            to_finite(bad, (2,), "box", "rec")
    deep: list = [1.0]
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(DataError, match=r"rec: box must (be numbers|have shape)"):
        to_finite(deep, (2,), "box", "rec")
    with pytest.raises(DataError, match=r"rec: box has non-finite values"):
        to_finite([1.0, 1e39], (2,), "box", "rec")  # infinity in a record's float32
