"""The built-in synthetic data set: COCO-valid, truthful, varied, deterministic."""

import json
import os

import numpy as np
import pytest
from pycocotools.coco import COCO

from hrnet.data import synthetic
from hrnet.data.coco import read_coco
from hrnet.data.synthetic import IMAGE_SIZE, make_image, synthetic_files, write_synthetic
from hrnet.errors import ConfigError
from hrnet.keypoints import COCO17


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    files = write_synthetic(out, 40, 10, seed=3)
    return out, files


def test_every_file_written_is_known_before_writing(tmp_path):
    """``synthetic_files`` (what ``hrnet data synth`` checks before writing) are the files written, each reported."""
    reported = []
    write_synthetic(tmp_path, 3, 2, written_file=reported.append)
    on_disk = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert set(synthetic_files(tmp_path, 3, 2)) == on_disk == set(reported) and len(on_disk) == 7


def test_layout_and_pycocotools_reads_it(dataset):
    out, files = dataset
    assert files == {"train": out / "annotations" / "train.json", "val": out / "annotations" / "val.json"}
    coco = COCO(str(files["train"]))
    assert len(coco.getImgIds()) == 40 and len(coco.getAnnIds()) >= 40
    assert coco.loadCats(1)[0]["keypoints"] == list(COCO17.names)
    assert len(list((out / "images" / "val").glob("*.jpg"))) == 10
    records = read_coco(files["train"], out / "images" / "train", keypoint_set="coco17", num_keypoints=17)
    assert len(records) >= 40  # our own COCO reader takes it as it takes real data


def test_annotations_are_truthful(dataset):
    _, files = dataset
    data = json.loads(files["train"].read_text())
    height, width = IMAGE_SIZE
    occluded = 0
    for ann in data["annotations"]:
        k = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        labelled = k[:, 2] > 0
        assert ann["num_keypoints"] == labelled.sum() > 0
        assert np.all(k[~labelled] == 0)  # unlabelled points are (0, 0, 0)
        assert np.all(
            (k[labelled, 0] >= 0) & (k[labelled, 0] < width) & (k[labelled, 1] >= 0) & (k[labelled, 1] < height)
        )
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
        assert 0 < ann["area"] <= w * h and ann["iscrowd"] == 0
        visible = k[:, 2] == 2
        # visible points lie on the figure's visible pixels, so inside (or on the edge of) its box
        assert np.all((k[visible, 0] >= x - 1) & (k[visible, 0] <= x + w + 1))
        assert np.all((k[visible, 1] >= y - 1) & (k[visible, 1] <= y + h + 1))
        occluded += int((k[:, 2] == 1).sum())
    assert occluded > 0  # people do occlude each other


def test_left_and_right_are_the_persons():
    """A figure facing the camera has its left shoulder on the image's right, and shows its eyes."""
    facing, back = 0, 0
    for index in range(60):
        _, persons = make_image(11, "train", index)
        for ann in persons:
            k = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
            if k[5, 2] and k[6, 2] and k[3, 2] and k[4, 2]:
                if k[1, 2] > 0:  # eyes labelled: facing the camera
                    facing += 1
                    assert k[5, 0] > k[6, 0] and k[3, 0] > k[4, 0]
                else:
                    back += 1
                    assert k[5, 0] < k[6, 0] and k[3, 0] < k[4, 0]
    assert facing > 20 and back > 3


def test_varied_scales_and_people_leaving_the_frame():
    heights, cut = [], 0
    for index in range(60):
        _, persons = make_image(5, "val", index)
        for ann in persons:
            heights.append(ann["bbox"][3])
            cut += ann["num_keypoints"] < 17
    assert max(heights) > 2 * min(heights)
    assert cut > 0


def test_deterministic_by_seed(tmp_path, dataset):
    out, _ = dataset
    again = write_synthetic(tmp_path, 40, 10, seed=3)
    assert again["train"].read_bytes() == (out / "annotations" / "train.json").read_bytes()
    first = (out / "images" / "train" / "000000000007.jpg").read_bytes()
    assert (tmp_path / "images" / "train" / "000000000007.jpg").read_bytes() == first
    other, _ = make_image(4, "train", 6)
    same, _ = make_image(3, "train", 6)
    assert not np.array_equal(other, same)
    assert not np.array_equal(make_image(3, "val", 6)[0], same)  # splits never share an image


def test_cocoeval_scores_the_truth_1_and_swapped_sides_near_0(dataset):
    from hrnet.metrics.coco import evaluate_coco

    _, files = dataset
    data = json.loads(files["val"].read_text())
    truth = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in data["annotations"]]  # fmt: skip
    assert evaluate_coco(files["val"], truth, COCO17.sigmas).metrics["AP"] == 1.0
    swapped = []
    for result in truth:
        k = np.array(result["keypoints"], dtype=float).reshape(17, 3)[list(COCO17.flip_index)]
        swapped.append({**result, "keypoints": k.reshape(-1).tolist()})
    assert evaluate_coco(files["val"], swapped, COCO17.sigmas).metrics["AP"] < 0.1


@pytest.mark.parametrize(("num_train", "num_val", "seed"), [(-5, 2, 0), (2, -1, 0), (0, 0, 0), (2, 1, -1)])
def test_bad_sizes_or_seed_are_refused_before_anything_is_written(tmp_path, num_train, num_val, seed):
    with pytest.raises(ConfigError, match=r"the synthetic data set('s seed must be ≥ 0| needs split sizes ≥ 0)"):
        write_synthetic(tmp_path / "out", num_train, num_val, seed=seed)
    assert not (tmp_path / "out").exists()


def test_drawn_by_several_processes_as_by_one(monkeypatch):
    monkeypatch.setattr(synthetic, "PARALLEL_FROM", 8)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    serial = [synthetic._encoded_image((0, "val", index)) for index in range(20)]
    assert list(synthetic._encoded_images(0, "val", 20)) == serial
