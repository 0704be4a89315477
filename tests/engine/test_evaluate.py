"""Evaluation: scoring by the data format's metric, the official NMS areas, files written, the whole loop."""

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from hrnet import config as cfg
from hrnet.codec import codec_from_config
from hrnet.config import DataConfig, ModelConfig, RuntimeConfig
from hrnet.data.sources import FORMATS, load_split
from hrnet.engine.evaluate import SCORERS, Evaluator, Predictions, score_predictions
from hrnet.errors import DataError, OutputError
from hrnet.io.outputs import LOCK
from hrnet.keypoints import COCO17
from hrnet.models.hrnet import build_model
from tests.conftest import tiny_model_config

FILES = {
    "coco": ("coco", "test_coco.json", "coco17", 17),
    "aic_raw": ("aic", "keypoint_annotations_raw_sample.json", "aic14", 14),
    "mpii": ("mpii", "test_mpii.json", "mpii16", 16),
}


def _split(datasets_dir, fmt):
    folder, annotations, keypoint_set, k = FILES[fmt]
    data = DataConfig(format=fmt, keypoint_set=keypoint_set, root=str(datasets_dir / folder),
                      val_annotations=annotations, val_images=".")  # fmt: skip
    return load_split(data, "val", k), data


def _truth(split, jitter=0.0, seed=0):
    """Predictions at the ground truth (plus optional noise): every labelled keypoint scores 1."""
    crop = codec_from_config(ModelConfig(), DataConfig()).crop
    records = split.records
    keypoints = np.stack([r.keypoints for r in records]).astype(np.float32)
    keypoints += np.random.default_rng(seed).normal(0, jitter, keypoints.shape).astype(np.float32)
    scores = np.stack([(r.visibility > 0).astype(np.float32) for r in records])
    centers, sizes = crop.regions(np.array([r.box for r in records]))
    return Predictions(keypoints, scores, centers, sizes)


def test_every_format_metric_has_a_scorer():
    assert {fmt.metric for fmt in FORMATS.values()} <= set(SCORERS)


@pytest.mark.parametrize(
    ("fmt", "metric", "best"), [("coco", "AP", 1.0), ("aic_raw", "AP", 1.0), ("mpii", "PCKh", 1.0)]
)
def test_the_truth_scores_the_best_value_and_noise_scores_less(datasets_dir, tmp_path, fmt, metric, best):
    split, _ = _split(datasets_dir, fmt)
    perfect = score_predictions(_truth(split), split, cfg.TestConfig(), tmp_path)
    assert perfect[metric] == pytest.approx(best)
    noisy = score_predictions(_truth(split, jitter=25.0), split, cfg.TestConfig(), None)
    assert noisy[metric] < best
    if metric == "AP":  # the results file pycocotools scored, NaN-free
        results = json.loads((tmp_path / "keypoints_results.json").read_text())
        assert len(results) >= 1 and all(len(r["keypoints"]) == 3 * split.keypoint_set.num_keypoints for r in results)


def test_wholebody_file_is_scored_on_all_133_keypoints_with_the_sets_sigmas(datasets_dir, tmp_path):
    names = [*COCO17.names, *(f"k{i}" for i in range(17, 133))]
    # OKS-NMS keeps every person: the truth's unlabelled keypoints, many here, all sit at (0, 0) in each of them.
    test = cfg.TestConfig(oks_threshold=1.0)
    scores = {}
    for sigma in (0.05, 10.0):
        path = tmp_path / f"wholebody_{sigma}.yaml"
        path.write_text(yaml.safe_dump({"name": "wholebody", "keypoints": names, "sigmas": [sigma] * 133}))
        data = DataConfig(keypoint_set=str(path), root=str(datasets_dir / "coco"),
                          val_annotations="test_coco_wholebody.json", val_images=".")  # fmt: skip
        split = load_split(data, "val", 133)
        assert score_predictions(_truth(split), split, test, tmp_path)["AP"] == pytest.approx(1.0)
        results = json.loads((tmp_path / "keypoints_results.json").read_text())
        assert {len(r["keypoints"]) for r in results} == {3 * 133}
        off_face = _truth(split)
        off_face.keypoints[:, 23:91] += 40.0  # the face's 68 keypoints only
        scores[sigma] = score_predictions(off_face, split, test, None)["AP"]
    assert scores[0.05] < 0.9 and scores[10.0] == pytest.approx(1.0)


def test_species_are_scored_each_in_its_category(datasets_dir):
    """AP-10K's two persons are of species 26 and 1: a result in another category than its person's matches none."""
    data = DataConfig(keypoint_set="from_annotations", root=str(datasets_dir / "ap10k"),
                      val_annotations="test_ap10k.json", val_images=".")  # fmt: skip
    split = load_split(data, "val", 17)
    assert [r.category_id for r in split.records] == [26, 1]
    assert score_predictions(_truth(split), split, cfg.TestConfig(), None)["AP"] == pytest.approx(1.0)


def test_nms_areas_are_the_official_float32_products(datasets_dir, monkeypatch):
    split, _ = _split(datasets_dir, "coco")
    predictions = _truth(split)
    seen = {}

    def spy(image_ids, kpts, box_scores, areas, sigmas, **kwargs):
        seen["areas"] = areas
        return np.arange(len(kpts)), box_scores

    monkeypatch.setattr("hrnet.engine.evaluate.nms_per_image", spy)
    score_predictions(predictions, split, cfg.TestConfig(), None)
    # official: np.prod(s * 200, 1) with s float32, multiplied in float32
    expected = predictions.sizes.astype(np.float32)[:, 0] * predictions.sizes.astype(np.float32)[:, 1]
    np.testing.assert_array_equal(seen["areas"], expected)
    assert seen["areas"].dtype == np.float32


def test_evaluator_runs_a_model_and_writes_its_files(datasets_dir, tmp_path):
    split, data = _split(datasets_dir, "coco")
    model_config = tiny_model_config()
    codec = codec_from_config(model_config, data)
    evaluator = Evaluator(split, codec, cfg.TestConfig(batch_size=5), RuntimeConfig(num_workers=0), torch.device("cpu"),
                          progress=False)  # fmt: skip
    torch.manual_seed(0)
    model = build_model(model_config).train()
    metrics = evaluator.evaluate(model, tmp_path / "eval", draw=2)
    assert model.training  # evaluation gives the model back as it found it
    assert evaluator.main_metric == "AP" and 0.0 <= metrics["AP"] <= 1.0
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["AP"] == metrics["AP"]
    assert (tmp_path / "eval" / "keypoints_results.json").is_file()
    assert sorted(p.name for p in (tmp_path / "eval").glob("prediction_*.jpg")) == [
        "prediction_000.jpg",
        "prediction_001.jpg",
    ]
    predictions = evaluator.predict(model)
    assert predictions.keypoints.shape == (len(split.records), 17, 2)
    np.testing.assert_array_equal(predictions.sizes, codec.crop.regions(np.array([r.box for r in split.records]))[1])


def test_evaluation_never_writes_over_its_annotations(datasets_dir, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(datasets_dir / "coco" / "test_coco.json", folder / "metrics.json")
    data = DataConfig(root=str(datasets_dir / "coco"), val_annotations=str(folder / "metrics.json"), val_images=".")
    split = load_split(data, "val", 17)
    codec = codec_from_config(tiny_model_config(), data)
    runtime = RuntimeConfig(num_workers=0)
    evaluator = Evaluator(split, codec, cfg.TestConfig(), runtime, torch.device("cpu"), progress=False)
    before = (folder / "metrics.json").read_bytes()
    with pytest.raises(OutputError, match=r"metrics\.json is the input .*: the evaluation's results would replace"):
        evaluator.evaluate(build_model(tiny_model_config()), folder, overwrite=True)
    assert (folder / "metrics.json").read_bytes() == before


def test_drawings_never_replace_a_file_that_is_not_an_earlier_evaluations(datasets_dir, tmp_path):
    """``hrnet eval --out D --draw N`` wrote prediction_000.jpg over whatever D held under that name: now a file
    that hrnet eval did not write needs ``overwrite``, and an image of the split is never replaced."""
    split, data = _split(datasets_dir, "coco")
    codec = codec_from_config(tiny_model_config(), data)
    evaluator = Evaluator(split, codec, cfg.TestConfig(batch_size=12), RuntimeConfig(num_workers=0),
                          torch.device("cpu"), progress=False)  # fmt: skip
    model = build_model(tiny_model_config())
    out = tmp_path / "D"
    out.mkdir()
    (out / "prediction_001.jpg").write_bytes(b"my photo")
    with pytest.raises(OutputError, match=r"prediction_001\.jpg: a drawing of the evaluation would replace a file"):
        evaluator.evaluate(model, out, draw=2)
    assert (out / "prediction_001.jpg").read_bytes() == b"my photo"
    assert sorted(p.name for p in out.iterdir()) == [LOCK, "prediction_001.jpg"]  # refused before anything was written
    evaluator.evaluate(model, out, draw=2, overwrite=True)
    evaluator.evaluate(model, out, draw=2)  # its own drawings now: replaced without asking
    assert (out / "prediction_001.jpg").read_bytes()[:2] == b"\xff\xd8"  # a JPEG drawing
    # An image of the split itself under a drawing's name stays, whatever is asked.
    (out / "prediction_000.jpg").unlink()
    (out / "prediction_000.jpg").symlink_to(split.records[0].image_path)
    with pytest.raises(OutputError, match=r"prediction_000\.jpg is the input"):
        evaluator.evaluate(model, out, draw=2, overwrite=True)
    assert (out / "prediction_000.jpg").is_symlink()


def test_mpii_file_without_joints_is_refused_before_predicting(datasets_dir, tmp_path):
    """A test-set file (no ``joints``) has no ground truth: PCKh would be NaN; say so before the prediction pass."""
    entries = json.loads((datasets_dir / "mpii" / "test_mpii.json").read_text())
    for entry in entries:
        del entry["joints"], entry["joints_vis"]
    (tmp_path / "test.json").write_text(json.dumps(entries))
    data = DataConfig(format="mpii", keypoint_set="mpii16", root=str(tmp_path), val_annotations="test.json",
                      val_images=str(datasets_dir / "mpii"))  # fmt: skip
    config = cfg.ExperimentConfig(model=tiny_model_config(num_keypoints=16), data=data)
    with pytest.raises(DataError, match=r"test\.json: no entry has labelled joints with a head size .*PCKh"):
        Evaluator.from_config(config, torch.device("cpu"), progress=False)


def test_drawings_with_detected_boxes_show_the_ground_truth(datasets_dir, tmp_path):
    """eval --boxes --draw: the detections carry no keypoints, so the right-hand panel is drawn from the split's
    ground truth of the same image (it was empty)."""
    import numpy as np

    from hrnet.engine.evaluate import Evaluator, draw_predictions
    from hrnet.models.hrnet import build_model
    from tests.engine.conftest import tiny_experiment

    config = tiny_experiment(datasets_dir, tmp_path / "runs")
    boxes = datasets_dir / "coco" / "test_coco_det_AP_H_56.json"
    evaluator = Evaluator.from_config(config, torch.device("cpu"), boxes=boxes, progress=False)
    predictions = evaluator.predict(build_model(config.model).eval())
    truth = Evaluator.from_config(config, torch.device("cpu"), progress=False).split
    with_truth = draw_predictions(predictions, evaluator.split, 2, truth=truth)
    without = draw_predictions(predictions, evaluator.split, 2)
    for drawn, empty in zip(with_truth, without, strict=True):
        half = drawn.shape[1] // 2
        assert not np.array_equal(drawn[:, half:], empty[:, half:])  # skeletons where there were none
        np.testing.assert_array_equal(drawn[:, :half], empty[:, :half])  # the prediction panel unchanged
    metrics = evaluator.evaluate(build_model(config.model).eval(), tmp_path / "eval", draw=2)
    assert isinstance(metrics, dict) and (tmp_path / "eval" / "prediction_001.jpg").is_file()
