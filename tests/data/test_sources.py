"""From a data section to records: the format table, split paths, detection boxes."""

import dataclasses
from typing import get_args

import pytest

from hrnet.config import AnnotationFormat, DataConfig
from hrnet.data.sources import FORMATS, load_split, split_paths
from hrnet.errors import ConfigError, DataError
from hrnet.metrics.tasks import COCO_AP, Scoring


def _data(datasets_dir, fmt: str) -> DataConfig:
    files = {
        "coco": ("coco", "test_coco.json", 17),
        "aic_raw": ("aic", "keypoint_annotations_raw_sample.json", 14),
        "mpii": ("mpii", "test_mpii.json", 16),
    }
    folder, annotations, _ = files[fmt]
    keypoint_set = {"coco": "coco17", "aic_raw": "aic14", "mpii": "mpii16"}[fmt]
    return DataConfig(
        format=fmt, keypoint_set=keypoint_set, root=str(datasets_dir / folder), val_annotations=annotations,
        val_images=".",
    )  # fmt: skip


def test_every_configurable_format_has_one_table_entry():
    assert tuple(FORMATS) == get_args(AnnotationFormat)
    for fmt in FORMATS.values():
        assert fmt.metric in ("coco", "pckh") and fmt.main_metric in ("AP", "PCKh")


@pytest.mark.parametrize(
    ("fmt", "num_keypoints", "metric"), [("coco", 17, "AP"), ("aic_raw", 14, "AP"), ("mpii", 16, "PCKh")]
)
def test_each_format_is_read_by_its_reader(datasets_dir, fmt, num_keypoints, metric):
    split = load_split(_data(datasets_dir, fmt), "val", num_keypoints)
    assert len(split.records) > 0 and split.keypoint_set.num_keypoints == num_keypoints
    assert split.format is FORMATS[fmt] and split.format.main_metric == metric
    assert split.detections is None and all(r.score == 1.0 for r in split.records)


def test_a_split_is_scored_by_its_formats_metric_or_its_sets_task(datasets_dir):
    assert load_split(_data(datasets_dir, "mpii"), "val", 16).scoring == Scoring("pckh", "PCKh")
    assert load_split(_data(datasets_dir, "coco"), "val", 17).scoring == COCO_AP  # task "body"


def test_detection_boxes_replace_the_ground_truth(datasets_dir):
    data = _data(datasets_dir, "coco")
    detections = datasets_dir / "coco" / "test_coco_det_AP_H_56.json"
    every = load_split(data, "val", 17, boxes=detections)
    confident = load_split(data, "val", 17, boxes=detections, box_score_threshold=0.9)
    assert every.detections == detections
    assert 0 < len(confident.records) < len(every.records)
    assert all(r.score >= 0.9 for r in confident.records)


def test_category_id_chooses_one_category_and_zero_reads_all_that_share_the_keypoints(datasets_dir):
    data = DataConfig(keypoint_set="from_annotations", root=str(datasets_dir / "ap10k"),
                      val_annotations="test_ap10k.json", val_images=".")  # fmt: skip
    assert [r.category_id for r in load_split(data, "val", 17).records] == [26, 1]
    jaguar = load_split(dataclasses.replace(data, category_id=26), "val", 17)
    assert [r.category_id for r in jaguar.records] == [26]
    assert jaguar.ground_truth is not None and [a["category_id"] for a in jaguar.ground_truth()["annotations"]] == [26]


def test_errors_name_the_problem(datasets_dir):
    with pytest.raises(ConfigError, match=r"split must be one of \('train', 'val'\), got 'test'"):
        split_paths(DataConfig(), "test")
    mpii = _data(datasets_dir, "mpii")
    with pytest.raises(ConfigError, match=r"detection file need COCO annotations, not data\.format 'mpii'"):
        load_split(mpii, "val", 16, boxes=datasets_dir / "coco" / "test_coco_det_AP_H_56.json")
    with pytest.raises(DataError, match=r"test_coco\.json: the data set has 17 keypoints .* model predicts 14"):
        load_split(_data(datasets_dir, "coco"), "val", 14)
    missing = dataclasses.replace(mpii, val_annotations="nope.json")
    with pytest.raises(DataError, match=r"nope\.json: cannot read the annotation file"):
        load_split(missing, "val", 16)


def test_split_paths_are_under_the_root_unless_absolute(tmp_path):
    data = DataConfig(root="data/x", train_annotations="a/train.json", train_images=str(tmp_path))
    annotations, images = split_paths(data, "train")
    assert str(annotations) == "data/x/a/train.json" and images == tmp_path
