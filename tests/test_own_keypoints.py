"""Any keypoint set, end to end, on the real small samples (read in ../shared/datasets, never copied): a tiny
network trained one epoch on OneHand10K (its set made from the file's category), AP-10K (54 species sharing one
keypoint list), 300W (a category without keypoint names: the config names the set) and COCO-WholeBody (133
keypoints from five fields); then its weights alone, with no config, show the data, evaluate with the task's
metric, predict with given boxes, export to ONNX (which alone predicts again) and serve."""

import base64
import json
from dataclasses import dataclass

import numpy as np
import pytest

from hrnet.cli import main, parse_args
from hrnet.config import ExperimentConfig, dump_config, load_config
from hrnet.errors import ConfigError
from hrnet.keypoints import metainfo_text
from hrnet.models.checkpoint import experiment_for, keypoint_set_for, read_metadata
from tests.conftest import tiny_model_config

pytest.importorskip("onnxruntime")


@dataclass(frozen=True)
class Sample:
    folder: str
    annotations: str
    keypoint_set: str  # data.keypoint_set
    image: str  # predicted, with its ground-truth boxes
    k: int
    task: str
    main_metric: str


SAMPLES = {
    "onehand10k": Sample("onehand10k", "test_onehand10k.json", "from_annotations", "784.jpg", 21, "hand", "PCK"),
    "ap10k": Sample("ap10k", "test_ap10k.json", "ap10k17", "000000037516.jpg", 17, "animal", "AP"),
    "300w": Sample("300w", "test_300w.json", "300w68", "indoor_020.png", 68, "face", "NME"),
    "wholebody": Sample(
        "coco", "test_coco_wholebody.json", "coco_wholebody133", "000000000785.jpg", 133, "wholebody", "AP"
    ),
}  # fmt: skip


@pytest.fixture(scope="module", params=list(SAMPLES))
def run(request, datasets_dir, tmp_path_factory):
    """(sample, its data folder, the config file, best.safetensors of a 1-epoch run): one run per sample."""
    from hrnet.engine.train import train

    sample = SAMPLES[request.param]
    root = datasets_dir / sample.folder
    out = tmp_path_factory.mktemp(f"own_{request.param}")
    config = load_config(
        None,
        [
            f"data.root={root}",
            f"data.train_annotations={sample.annotations}",
            "data.train_images=.",
            f"data.val_annotations={sample.annotations}",
            "data.val_images=.",
            f"data.keypoint_set={sample.keypoint_set}",  # no model.num_keypoints: the network follows the set
            "model.input_size=[64, 64]",
            "runtime.num_workers=0",
            "runtime.device=cpu",
            f"train.out_dir={out}",
            f"train.name={request.param}",
            "train.epochs=1",
            "train.batch_size=4",
        ],
        base=ExperimentConfig(model=tiny_model_config()),
    )
    path = out / "config.yaml"
    path.write_text(dump_config(config))
    result = train(config, progress=False)
    return sample, root, path, result.run_dir / "best.safetensors"


def _gt_boxes(root, sample, tmp_path):
    """The sample image's ground-truth boxes, as a COCO detection-results file and as a list."""
    data = json.loads((root / sample.annotations).read_text())
    (image_id,) = [i["id"] for i in data["images"] if i["file_name"] == sample.image]
    boxes = [a["bbox"] for a in data["annotations"] if a["image_id"] == image_id]
    path = tmp_path / "boxes.json"
    entry = {"image_id": image_id, "file_name": sample.image, "category_id": 1, "score": 1.0}  # 300W's ids are no names
    path.write_text(json.dumps([entry | {"bbox": b} for b in boxes]))
    return path, boxes


def test_the_weights_record_the_set_the_network_follows(run):
    sample, _, _, best = run
    recorded = experiment_for(best)
    kset = keypoint_set_for(best, recorded)
    assert recorded.model.num_keypoints == kset.num_keypoints == sample.k
    assert kset.task == sample.task
    assert read_metadata(best)["keypoint_set"] == metainfo_text(kset)
    assert (best.parent / "keypoints.yaml").read_text() == metainfo_text(kset)  # the run folder shows it too


def test_data_show_eval_predict_export_and_serve_from_the_weights_alone(run, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from hrnet.apps.serve import create_app
    from hrnet.cli.predict import _network_setup, _open_estimator

    sample, root, config_path, best = run
    assert main(["data", "show", str(config_path), "--out", str(tmp_path / "shown.jpg")]) == 0
    assert (tmp_path / "shown.jpg").stat().st_size > 0

    assert main(["eval", "--weights", str(best), "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["main_metric"] == sample.main_metric and np.isfinite(metrics[sample.main_metric])
    assert f"main metric: {sample.main_metric}" in capsys.readouterr().out

    boxes_file, boxes = _gt_boxes(root, sample, tmp_path)
    image = root / sample.image
    argv = ["predict", str(image), "--boxes", str(boxes_file), "--out"]
    assert main([*argv, str(tmp_path / "pred"), "--weights", str(best), "--backend", "pytorch"]) == 0
    results = json.loads((tmp_path / "pred" / f"{sample.image}.json").read_text())
    assert len(results) == len(boxes)  # each given box (300W's found by the entries' file_name)
    assert all(len(r["keypoints"]) == 3 * sample.k for r in results)

    onnx = tmp_path / "net.onnx"
    assert main(["export", "--weights", str(best), "--out", str(onnx)]) == 0
    assert read_metadata(onnx)["keypoint_set"] == read_metadata(best)["keypoint_set"]
    assert main([*argv, str(tmp_path / "pred_onnx"), "--weights", str(onnx)]) == 0
    from_onnx = json.loads((tmp_path / "pred_onnx" / f"{sample.image}.json").read_text())
    # The export checked the graph against PyTorch; an untrained network's flat heatmaps may tie differently.
    scores = [[r["keypoints"][2::3] for r in rs] for rs in (from_onnx, results)]
    np.testing.assert_allclose(*scores, atol=1e-3)

    args = parse_args(["serve", "--weights", str(onnx), "--detector", "none"])
    estimator = _open_estimator(args, *_network_setup(args))
    with TestClient(create_app(estimator, model_name="own")) as client:
        body = {"image": base64.b64encode(image.read_bytes()).decode(), "boxes": boxes}
        answer = client.post("/v1/pose", json=body).json()
        assert [len(p["keypoints"]) for p in answer["persons"]] == [3 * sample.k] * len(boxes)
        assert answer["keypoint_names"] == list(estimator.keypoint_set.names)


def test_a_config_naming_another_set_is_refused(run):
    sample, _, _, best = run
    other = "coco17" if sample.k != 17 else "aic14"
    with pytest.raises(ConfigError, match=rf"were trained on the keypoint set .* \({sample.k} keypoints: .* but the "):
        keypoint_set_for(best, experiment_for(best, None, [f"data.keypoint_set={other}"]))


def test_the_python_api_needs_only_the_weights(run, tmp_path):
    from hrnet import PoseEstimator

    sample, root, _, best = run
    _, boxes = _gt_boxes(root, sample, tmp_path)
    estimator = PoseEstimator.from_weights(best, detector=None)
    persons = estimator(root / sample.image, np.array(boxes, dtype=np.float64))
    assert [p.keypoints.shape for p in persons] == [(sample.k, 2)] * len(boxes)
