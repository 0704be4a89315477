"""Evaluation picks the keypoint set's task's metrics: hands PCK/AUC/EPE, faces NME (lower is better), on the
shared OneHand10K sample read with a hand (or, for the face path, a face) keypoint set written into tmp_path."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from hrnet import config as cfg
from hrnet.cli import main
from hrnet.codec import codec_from_config
from hrnet.config import DataConfig, ModelConfig, dump_config
from hrnet.data.coco import read_coco
from hrnet.data.sources import load_split
from hrnet.engine import train as train_module
from hrnet.engine.evaluate import Evaluator, Predictions, score_predictions
from hrnet.engine.train import train
from hrnet.errors import DataError
from hrnet.keypoints import metainfo_text
from hrnet.metrics.tasks import COCO_AP, FACE_NME, HAND_PCK
from hrnet.models.checkpoint import save_weights
from hrnet.models.hrnet import build_model
from tests.engine.conftest import tiny_experiment

ANNOTATIONS = "test_onehand10k.json"


@pytest.fixture
def hand_set(datasets_dir, tmp_path):
    """``hand_set(**changes)``: the OneHand10K category as a keypoint set file with ``changes`` (default: task
    hand), its path."""

    def write(**changes):
        read = read_coco(datasets_dir / "onehand10k" / ANNOTATIONS, datasets_dir / "onehand10k")
        keypoint_set = dataclasses.replace(read.keypoint_set, **{"task": "hand", **changes})
        path = tmp_path / f"{keypoint_set.task}.yaml"
        path.write_text(metainfo_text(keypoint_set))
        return path

    return write


def _data(datasets_dir, keypoint_set) -> DataConfig:
    return DataConfig(keypoint_set=str(keypoint_set), root=str(datasets_dir / "onehand10k"),
                      train_annotations=ANNOTATIONS, train_images=".", val_annotations=ANNOTATIONS,
                      val_images=".")  # fmt: skip


def _predictions(split, offsets):
    """Predictions at the ground truth moved by ``offsets`` (N, K, 2) pixels."""
    crop = codec_from_config(ModelConfig(), DataConfig()).crop
    keypoints = np.stack([r.keypoints for r in split.records]).astype(np.float64) + offsets
    scores = np.stack([(r.visibility > 0).astype(np.float32) for r in split.records])
    centers, sizes = crop.regions(np.array([r.box for r in split.records]))
    return Predictions(keypoints, scores, centers, sizes)


def test_a_hand_set_is_scored_by_pck_auc_and_epe(datasets_dir, hand_set, tmp_path):
    split = load_split(_data(datasets_dir, hand_set()), "val", 21)
    assert split.scoring == HAND_PCK and split.scoring.main == "PCK"
    shape = (len(split.records), 21, 2)
    # Every keypoint 5 px off ((3, 4)): EPE 5; PCK 1 (the boxes' longer sides, 68 to 376 px, exceed 5 / 0.2 = 25);
    # AUC: 5/30 < i/20 from i = 4, so 16 of the 20 thresholds.
    metrics = score_predictions(_predictions(split, np.broadcast_to([3.0, 4.0], shape)), split, cfg.TestConfig(),
                                tmp_path)  # fmt: skip
    assert metrics["main_metric"] == "PCK" and metrics["persons"] == 4
    assert metrics["PCK"] == pytest.approx(1.0)
    assert metrics["AUC"] == pytest.approx(16 / 20)
    assert metrics["EPE"] == pytest.approx(5.0)
    assert 0.0 <= metrics["AP"] <= 1.0 and (tmp_path / "keypoints_results.json").is_file()  # COCO AP as well
    assert "PCK@0.2 of the box" in metrics["summary"] and "main metric, higher is better" in metrics["summary"]
    assert "EPE, pixels" in metrics["summary"] and "Average Precision" in metrics["summary"]


def test_pck_is_normalised_by_the_files_box_as_mmpose_clips_it(datasets_dir, hand_set):
    """Hand 9's box is [63, 92, 99, 194] inside its 238×358 image: MMPose's length is 194 (0.2 × 194 = 38.8 px);
    the record's box, cleaned by the official rule, is one pixel shorter (0.2 × 193 = 38.6 px)."""
    split = load_split(_data(datasets_dir, hand_set()), "val", 21)
    first = [r.annotation_id for r in split.records].index(9)
    assert split.records[first].box[3] == 193
    offsets = np.zeros((len(split.records), 21, 2))
    offsets[first, :, 0] = 38.7  # within MMPose's 38.8, beyond the record box's 38.6
    metrics = score_predictions(_predictions(split, offsets), split, cfg.TestConfig(), None)
    assert metrics["PCK"] == pytest.approx(1.0)
    offsets[first, :, 0] = 38.9
    labelled = split.records[first].visibility > 0
    # Hand 9 misses every labelled keypoint; each of those keypoints is then right for the other hands only.
    counts = np.stack([r.visibility > 0 for r in split.records]).sum(axis=0)
    expected = np.mean(np.where(labelled, (counts - 1) / counts, 1.0)[counts > 0])
    assert score_predictions(_predictions(split, offsets), split, cfg.TestConfig(), None)["PCK"] == pytest.approx(
        expected
    )


def test_a_face_set_is_scored_by_nme_of_its_pair_or_its_box(datasets_dir, hand_set):
    # A "face" on the hand sample: the wrist-to-middle_finger1 distance normalises NME.
    pair_set = hand_set(task="face", nme_pair=(0, 9))
    split = load_split(_data(datasets_dir, pair_set), "val", 21)
    assert split.scoring == FACE_NME and split.scoring.lower_is_better
    truth = np.stack([r.keypoints for r in split.records]).astype(np.float64)
    visible = np.stack([r.visibility > 0 for r in split.records])
    offsets = np.broadcast_to([6.0, 8.0], (len(truth), 21, 2))  # 10 px
    metrics = score_predictions(_predictions(split, offsets), split, cfg.TestConfig(), None)
    lengths = np.linalg.norm(truth[:, 0] - truth[:, 9], axis=1)
    # Hand 9 has no wrist and hand 784 no middle_finger1: their (0, 0) still gives a length, as in MMPose.
    assert (lengths > 0).all()
    counted = visible
    expected = (10.0 / np.broadcast_to(lengths[:, None], visible.shape))[counted].mean()
    assert metrics["NME"] == pytest.approx(expected) and metrics["main_metric"] == "NME"
    assert "NME of the wrist-middle_finger1 distance" in metrics["summary"] and "lower is better" in metrics["summary"]
    # Without a pair: the box size, max(w, h) of the file's box clipped to the image (all four lie inside):
    # 194, 68, 376 and 210 px.
    box_split = load_split(_data(datasets_dir, hand_set(task="face")), "val", 21)
    metrics = score_predictions(_predictions(box_split, offsets), box_split, cfg.TestConfig(), None)
    sizes = {9: 194.0, 33: 68.0, 784: 376.0, 1402: 210.0}
    per_person = np.array([sizes[r.annotation_id] for r in box_split.records])
    expected = (10.0 / np.broadcast_to(per_person[:, None], visible.shape))[visible].mean()
    assert metrics["NME"] == pytest.approx(expected)
    assert "NME of the box size" in metrics["summary"]


def test_body_animal_and_other_sets_keep_coco_ap(datasets_dir, hand_set):
    for task in ("body", "animal", "other", "wholebody"):
        split = load_split(_data(datasets_dir, hand_set(task=task)), "val", 21)
        assert split.scoring == COCO_AP
        metrics = score_predictions(_predictions(split, 0.0), split, cfg.TestConfig(), None)
        assert metrics["AP"] == pytest.approx(1.0) and "PCK" not in metrics and metrics["main_metric"] == "AP"


def test_hands_and_faces_cannot_be_scored_on_detection_boxes(datasets_dir, hand_set, tmp_path):
    detections = tmp_path / "boxes.json"
    detections.write_text(json.dumps([{"image_id": 9, "category_id": 1, "bbox": [60, 90, 100, 200], "score": 0.9}]))
    config = cfg.ExperimentConfig(model=ModelConfig(num_keypoints=21), data=_data(datasets_dir, hand_set()))
    with pytest.raises(DataError, match=r"boxes\.json: PCK compares each hand with its own ground truth"):
        Evaluator.from_config(config, torch.device("cpu"), boxes=detections, progress=False)


def test_nme_pair_at_one_point_for_every_face_is_refused_before_predicting(datasets_dir, hand_set, tmp_path):
    entries = json.loads((datasets_dir / "onehand10k" / ANNOTATIONS).read_text())
    for ann in entries["annotations"]:
        ann["keypoints"][27:30] = ann["keypoints"][0:3]  # middle_finger1 onto the wrist
    (tmp_path / "same.json").write_text(json.dumps(entries))
    data = dataclasses.replace(_data(datasets_dir, hand_set(task="face", nme_pair=(0, 9))),
                               val_annotations=str(tmp_path / "same.json"))  # fmt: skip
    config = cfg.ExperimentConfig(model=ModelConfig(num_keypoints=21), data=data)
    with pytest.raises(
        DataError, match=r"same\.json: NME is normalised by the wrist-middle_finger1 distance, which is 0"
    ):
        Evaluator.from_config(config, torch.device("cpu"), progress=False)


def test_training_keeps_the_lowest_nme_and_eval_prints_it(datasets_dir, hand_set, tmp_path, monkeypatch, caplog,
                                                          capsys):  # fmt: skip
    data = _data(datasets_dir, hand_set(task="face"))
    overrides = [f"data.{key}={getattr(data, key)}" for key in ("keypoint_set", "root", "train_annotations",
                                                                 "val_annotations")]  # fmt: skip
    config = tiny_experiment(datasets_dir, tmp_path / "runs", ["model.num_keypoints=21", *overrides], epochs=2)
    scripted = iter([0.10, 0.30])  # epoch 1 is the best: the lowest NME, not the highest
    real = Evaluator.evaluate

    def evaluate(self, model, *args, **kwargs):
        return {**real(self, model, *args, **kwargs), "NME": next(scripted)}

    monkeypatch.setattr(Evaluator, "evaluate", evaluate)
    with caplog.at_level("INFO", logger=train_module.__name__):
        result = train(config, progress=False)
    with safe_open(str(result.run_dir / "last.safetensors"), "pt") as f:
        state = json.loads(f.metadata()["state"])
    assert state["best_epoch"] == 1 and state["best_metric"] == pytest.approx(0.10)
    assert "epoch 1: best NME so far, 0.1 (lower is better)" in caplog.text
    written = json.loads((result.run_dir / "eval_epoch002" / "metrics.json").read_text())
    assert written["main_metric"] == "NME" and written["NME"] > 0

    monkeypatch.setattr(Evaluator, "evaluate", real)
    path = tmp_path / "experiment.yaml"
    path.write_text(dump_config(config))
    weights = tmp_path / "w.safetensors"
    save_weights(build_model(config.model), weights)
    assert main(["eval", str(path), "--weights", str(weights), "--out", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    assert "NME of the box size" in printed and "main metric: NME " in printed and "(lower is better)" in printed
