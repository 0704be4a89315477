"""Property tests: the annotation readers (COCO, AI Challenger raw, MPII) and the config loader, fed generated
malformed inputs, either refuse them with the project's own error or return records that hold together; a file
with a known fault is never read silently.

Two kinds of input: a valid sample (``../shared/datasets``) with one field replaced by a value that is wrong for
it (every such file must be refused with ``DataError`` / ``ConfigError``), and a sample with any subtree replaced
by arbitrary JSON (refused with an ``HrnetError``, or read into sane records).
Kept fast: 50 examples a test (a 400-example run passed too).
"""

import copy
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrnet.config import ExperimentConfig, load_config
from hrnet.data.aic import read_aic_raw
from hrnet.data.coco import read_coco
from hrnet.data.mpii import read_mpii
from hrnet.data.records import RecordSet
from hrnet.errors import ConfigError, DataError, HrnetError
from tests.conftest import SHARED

DATASETS = SHARED / "datasets"
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any JSON value: what a careless tool or a hostile user may put anywhere in a file.
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
not_numbers = st.one_of(
    st.none(), st.booleans(), st.text(min_size=1, max_size=6), st.dictionaries(st.text(max_size=2), scalars)
)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
not_ints = not_numbers.filter(lambda v: not isinstance(v, int) or isinstance(v, bool)) | st.floats(0.1, 9.5)


def _load(name: str) -> object:
    return json.loads((DATASETS / name).read_text())


COCO = _load("coco/test_coco.json")
AIC = _load("aic/keypoint_annotations_raw_sample.json")
MPII = _load("mpii/test_mpii.json")
# COCO persons that the reader uses (not crowd, some labelled keypoint): a fault in one of them cannot be skipped.
USED = [i for i, a in enumerate(COCO["annotations"]) if a["num_keypoints"] > 0 and not a["iscrowd"]]


def _read(reader, data, image_dir: Path, **kwargs) -> RecordSet:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "annotations.json"
        path.write_text(json.dumps(data))
        return reader(path, image_dir, **kwargs)


def _assert_sane(records: RecordSet) -> None:
    """What every consumer of records relies on."""
    assert len(records) > 0
    for r in records:
        height, width = r.image_size
        assert height > 0 and width > 0
        assert np.isfinite(r.keypoints).all() and set(np.unique(r.visibility)) <= {0, 1, 2}
        assert r.visibility.any() or r.score != 1.0 or records.keypoint_set.name == "mpii16"
        x, y, w, h = r.box
        assert all(math.isfinite(v) for v in r.box) and w > 0 and h > 0
        if records.keypoint_set.name != "mpii16":  # ground-truth boxes are clipped to the image (MPII's are made)
            assert x >= 0 and x + w <= width - 1 and y >= 0 and y + h <= height - 1
        assert math.isfinite(r.area)


def _replace_anywhere(data, path: list, value):
    """``data`` with the subtree at ``path`` (indices/keys, each reduced modulo the container's size) replaced."""
    data = copy.deepcopy(data)
    node = data
    for i, step in enumerate(path):
        if not isinstance(node, list | dict) or not node:
            break
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = keys[step % len(keys)]
        if i == len(path) - 1 or not isinstance(node[key], list | dict):
            node[key] = value
            return data
        node = node[key]
    return data


paths = st.lists(st.integers(0, 1000), min_size=1, max_size=5)


# ------------------------------------------------------------------------------------------------------ COCO


def _coco_fault(field: str, value):
    def apply(data, index):
        data["annotations"][USED[index % len(USED)]][field] = value

    return apply


coco_faults = st.one_of(
    not_ints.map(lambda v: ("id", v)).filter(lambda f: not isinstance(f[1], str)),
    (not_numbers | st.integers(2, 9) | st.integers(-9, -1) | st.just(0.5)).map(lambda v: ("iscrowd", v)),
    (not_ints | st.just("1")).map(lambda v: ("category_id", v)),
    (st.integers(10**6, 10**7) | st.text(max_size=4) | st.none()).map(lambda v: ("image_id", v)),
    (not_numbers | non_finite | st.lists(st.integers(), max_size=2)).map(lambda v: ("area", v)),
    st.one_of(
        st.lists(st.integers(0, 5), max_size=50),  # wrong length (51 needed)
        st.lists(not_numbers, min_size=51, max_size=51),
        not_numbers,
    ).map(lambda v: ("keypoints", v)),
    st.one_of(
        st.lists(st.floats(1, 50), min_size=0, max_size=3),
        st.lists(st.floats(1, 50), min_size=5, max_size=6),
        st.tuples(st.floats(0, 9), st.floats(0, 9), st.floats(-50, 0), st.floats(1, 50)).map(list),
        st.tuples(st.floats(0, 9), st.floats(0, 9), non_finite, st.floats(1, 50)).map(list),
        not_numbers,
    ).map(lambda v: ("bbox", v)),
)


@FAST
@given(fault=coco_faults, index=st.integers(0, 100))
def test_coco_field_faults_are_refused(fault, index):
    field, value = fault
    data = copy.deepcopy(COCO)
    _coco_fault(field, value)(data, index)
    with pytest.raises(DataError):
        _read(read_coco, data, DATASETS / "coco")


@FAST
@given(index=st.integers(0, 100), other=st.integers(0, 100))
def test_coco_duplicate_ids_and_bad_visibility_are_refused(index, other):
    data = copy.deepcopy(COCO)
    anns = data["annotations"]
    a, b = index % len(anns), other % len(anns)
    if a != b:
        anns[a]["id"] = anns[b]["id"]
    else:
        anns[USED[a % len(USED)]]["keypoints"][3 * (b % 17) + 2] = 3 + b % 4
    with pytest.raises(DataError):
        _read(read_coco, data, DATASETS / "coco")


@FAST
@given(path=paths, value=json_values)
def test_coco_any_subtree_replaced(path, value):
    data = _replace_anywhere(COCO, path, value)
    try:
        records = _read(read_coco, data, DATASETS / "coco")
    except HrnetError:
        return
    _assert_sane(records)
    ids = [r.annotation_id for r in records]
    assert len(ids) == len(set(ids))


@FAST
@given(value=json_values)
def test_coco_whole_file_replaced(value):
    try:
        records = _read(read_coco, value, DATASETS / "coco")
    except HrnetError:
        return
    _assert_sane(records)


# ---------------------------------------------------------------------------------------- AI Challenger raw


def _labelled_human(data, index):
    entry = data[index % len(data)]
    humans = [h for h, v in entry["keypoint_annotations"].items() if any(c != 3 for c in v[2::3])]
    return entry, humans[index % len(humans)]


aic_faults = st.one_of(
    (not_numbers.filter(lambda v: not isinstance(v, str)) | st.integers() | st.just("")).map(lambda v: ("image_id", v)),
    st.one_of(
        st.lists(st.integers(0, 3), max_size=41), st.lists(not_numbers, min_size=42, max_size=42), not_numbers
    ).map(lambda v: ("keypoints", v)),
    st.one_of(
        st.lists(st.floats(1, 50), max_size=3),
        st.tuples(st.floats(100, 200), st.floats(0, 9), st.floats(0, 99), st.floats(10, 50)).map(list),  # x2 < x1
        st.tuples(st.floats(0, 9), non_finite, st.floats(10, 50), st.floats(10, 50)).map(list),
        not_numbers,
    ).map(lambda v: ("box", v)),
    st.integers(4, 9).map(lambda v: ("visibility", v)),
    st.just(("no box", None)),
    st.just(("twice", None)),
)


@FAST
@given(fault=aic_faults, index=st.integers(0, 100))
def test_aic_field_faults_are_refused(fault, index):
    field, value = fault
    data = copy.deepcopy(AIC)
    entry, human = _labelled_human(data, index)
    if field == "image_id":
        entry["image_id"] = value
    elif field == "keypoints":
        entry["keypoint_annotations"][human] = value
    elif field == "box":
        entry["human_annotations"][human] = value
    elif field == "visibility":
        entry["keypoint_annotations"][human][2] = value
    elif field == "no box":
        del entry["human_annotations"][human]
    else:
        data.append(copy.deepcopy(entry))
    with pytest.raises(DataError):
        _read(read_aic_raw, data, DATASETS / "aic")


@FAST
@given(path=paths, value=json_values)
def test_aic_any_subtree_replaced(path, value):
    data = _replace_anywhere(AIC, path, value)
    try:
        records = _read(read_aic_raw, data, DATASETS / "aic")
    except HrnetError:
        return
    _assert_sane(records)
    assert len({r.image_id for r in records}) <= len(data)


# ---------------------------------------------------------------------------------------------------- MPII

mpii_faults = st.one_of(
    (not_numbers.filter(lambda v: not isinstance(v, str)) | st.integers() | st.just("")).map(lambda v: ("image", v)),
    st.one_of(st.lists(st.floats(0, 99), max_size=1), st.lists(non_finite, min_size=2, max_size=2), not_numbers).map(
        lambda v: ("center", v)
    ),
    st.one_of(st.floats(-5, 0), non_finite, not_numbers).map(lambda v: ("scale", v)),
    st.one_of(st.lists(st.lists(st.floats(0, 9), min_size=2, max_size=2), max_size=15), not_numbers).map(
        lambda v: ("joints", v)
    ),
    st.one_of(st.lists(st.integers(0, 1), max_size=15), st.lists(st.integers(2, 5), min_size=16, max_size=16)).map(
        lambda v: ("joints_vis", v)
    ),
)


@FAST
@given(fault=mpii_faults, index=st.integers(0, 100))
def test_mpii_field_faults_are_refused(fault, index):
    field, value = fault
    data = copy.deepcopy(MPII)
    data[index % len(data)][field] = value
    with pytest.raises(DataError):
        _read(read_mpii, data, DATASETS / "mpii")


@FAST
@given(path=paths, value=json_values)
def test_mpii_any_subtree_replaced(path, value):
    data = _replace_anywhere(MPII, path, value)
    try:
        records = _read(read_mpii, data, DATASETS / "mpii")
    except HrnetError:
        return
    _assert_sane(records)


# -------------------------------------------------------------------------------------------- config loader

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "coco" / "w32_256x192.yaml").read_text())
# (dotted key, wrong values for it): each must be a ConfigError.
config_faults = st.one_of(
    st.one_of(non_finite, st.floats(-10, 0), not_numbers.filter(lambda v: not isinstance(v, str))).map(
        lambda v: ("train.lr", v)
    ),
    st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32), st.floats(0.5, 9.5), st.text(max_size=3)).map(
        lambda v: ("train.seed", v)
    ),
    st.one_of(st.integers(max_value=0), not_ints).map(lambda v: ("train.epochs", v)),
    st.one_of(st.text(max_size=6).filter(lambda v: v not in ("error", "warn")), st.integers()).map(
        lambda v: ("data.size_mismatch", v)
    ),
    st.one_of(non_finite, st.floats(1.01, 9), st.floats(-9, -0.01)).map(lambda v: ("data.flip_prob", v)),
    st.one_of(st.lists(st.integers(1, 512), max_size=1), st.lists(st.integers(1, 31), min_size=2, max_size=2)).map(
        lambda v: ("model.input_size", v)
    ),
    st.one_of(st.integers(), st.text(max_size=3)).map(lambda v: ("data.flip", v)),
    st.text(max_size=6).filter(lambda v: v not in ("coco", "aic_raw", "mpii")).map(lambda v: ("data.format", v)),
    st.text(min_size=1, max_size=8).filter(lambda v: "." not in v).map(lambda v: ("train." + v + "_x", 1)),
)


@FAST
@given(fault=config_faults)
def test_config_faults_are_refused(fault):
    key, value = fault
    data = copy.deepcopy(CONFIG)
    section, name = key.split(".")
    data.setdefault(section, {})[name] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError):
            load_config(path)


@FAST
@given(path=paths, value=json_values)
def test_config_any_subtree_replaced(path, value):
    data = _replace_anywhere(CONFIG, path, value)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "c.yaml"
        file.write_text(yaml.safe_dump(data))
        try:
            config = load_config(file)
        except HrnetError:
            return
    assert isinstance(config, ExperimentConfig)
    assert math.isfinite(config.train.lr) and config.train.lr > 0 and 0 <= config.train.seed < 2**32


@FAST
@given(raw=st.binary(max_size=200))
def test_config_arbitrary_bytes(raw):
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "c.yaml"
        file.write_bytes(raw)
        try:
            config = load_config(file)
        except HrnetError:
            return
    assert isinstance(config, ExperimentConfig)
