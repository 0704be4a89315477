"""A keypoint set nobody shipped, end to end: a tiny network trained on the real OneHand10K sample (21 hand
keypoints named by its COCO-format category), whose weights alone then predict, evaluate and export, and whose
exported ONNX file alone predicts."""

import json

import numpy as np
import pytest

from hrnet.cli import main
from hrnet.config import ExperimentConfig, load_config
from hrnet.errors import ConfigError
from hrnet.keypoints import metainfo_text
from hrnet.models.checkpoint import experiment_for, keypoint_set_for, read_metadata
from tests.conftest import tiny_model_config

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def hand_run(datasets_dir, tmp_path_factory):
    """(best.safetensors of a 1-epoch run on OneHand10K with the set from its category, the run's config)."""
    from hrnet.engine.train import train

    root = datasets_dir / "onehand10k"
    out = tmp_path_factory.mktemp("hand_runs")
    config = load_config(
        None,
        [
            f"data.root={root}",
            "data.train_annotations=test_onehand10k.json",
            "data.train_images=.",
            "data.val_annotations=test_onehand10k.json",
            "data.val_images=.",
            "data.keypoint_set=from_annotations",  # no count given: the network follows the file's 21
            "model.input_size=[64, 64]",
            "runtime.num_workers=0",
            "runtime.device=cpu",
            f"train.out_dir={out}",
            "train.name=hand",
            "train.epochs=1",
            "train.batch_size=4",
        ],
        base=ExperimentConfig(model=tiny_model_config()),
    )
    assert config.model.num_keypoints == 0
    result = train(config, progress=False)
    return result.run_dir / "best.safetensors", config


def test_the_network_follows_the_keypoint_set_and_its_weights_record_it(hand_run):
    best, _ = hand_run
    recorded = experiment_for(best)
    assert recorded.model.num_keypoints == 21
    kset = keypoint_set_for(best, recorded)
    assert kset.num_keypoints == 21 and kset.names[:2] == ("wrist", "thumb1")
    assert kset.skeleton[0] == (0, 1)  # the category's 1-based [1, 2]
    assert kset.name == "onehand10k21" and kset.task == "hand"  # the shipped set with the file's names
    assert read_metadata(best)["keypoint_set"] == metainfo_text(kset)


def test_a_config_naming_another_set_is_refused(hand_run):
    best, _ = hand_run
    with pytest.raises(
        ConfigError, match=r"were trained on the keypoint set 'onehand10k21' \(21 keypoints: wrist, thumb1"
    ):
        keypoint_set_for(best, experiment_for(best, None, ["data.keypoint_set=coco17"]))


def boxes_file(datasets_dir, tmp_path):
    """The ground-truth hand boxes of the sample as a COCO detection-results file."""
    annotations = json.loads((datasets_dir / "onehand10k" / "test_onehand10k.json").read_text())["annotations"]
    path = tmp_path / "hand_boxes.json"
    detections = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0} for a in annotations]
    path.write_text(json.dumps(detections))
    return path


def test_weights_alone_predict_export_and_evaluate(hand_run, datasets_dir, tmp_path, capsys):
    best, _ = hand_run
    image = datasets_dir / "onehand10k" / "784.jpg"
    boxes = boxes_file(datasets_dir, tmp_path)
    base = ["--boxes", str(boxes), "--backend", "pytorch", "--detector", "none"]
    assert main(["predict", str(image), "--weights", str(best), *base, "--out", str(tmp_path / "pred")]) == 0
    (result,) = json.loads((tmp_path / "pred" / "784.jpg.json").read_text())
    assert result["image_id"] == 784 and len(result["keypoints"]) == 21 * 3

    onnx = tmp_path / "hand.onnx"
    assert main(["export", "--weights", str(best), "--out", str(onnx)]) == 0
    assert read_metadata(onnx)["keypoint_set"] == read_metadata(best)["keypoint_set"]
    out = tmp_path / "pred_onnx"
    argv = ["predict", str(image), "--weights", str(onnx), "--boxes", str(boxes), "--detector", "none"]
    assert main([*argv, "--out", str(out)]) == 0
    (from_onnx,) = json.loads((out / "784.jpg.json").read_text())
    np.testing.assert_allclose(from_onnx["keypoints"], result["keypoints"], atol=0.5)

    assert main(["eval", "--weights", str(best), "--out", str(tmp_path / "eval")]) == 0
    assert "results in" in capsys.readouterr().out


def test_the_python_api_needs_only_the_weights(hand_run, datasets_dir):
    from hrnet import PoseEstimator

    best, _ = hand_run
    estimator = PoseEstimator.from_weights(best, detector=None)
    persons = estimator(datasets_dir / "onehand10k" / "784.jpg", np.array([[63.0, 92, 99, 194]]))
    assert persons[0].keypoints.shape == (21, 2)
    assert estimator.keypoint_set.names[0] == "wrist"
