"""PoseEstimator and `hrnet predict`: same road as evaluation, batching, boxes, files, folders, videos."""

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from hrnet.cli import main
from hrnet.config import dump_config
from hrnet.data.images import read_image
from hrnet.engine.evaluate import Evaluator
from hrnet.errors import ConfigError, DataError
from hrnet.inference import PoseEstimator
from hrnet.models.checkpoint import save_weights
from hrnet.models.hrnet import build_model
from hrnet.predict import DetectionBoxes
from tests.engine.conftest import tiny_experiment


@pytest.fixture(scope="module")
def setup(datasets_dir, tmp_path_factory):
    """A tiny experiment on the COCO sample and random weights with non-trivial outputs."""
    tmp = tmp_path_factory.mktemp("inference")
    config = tiny_experiment(datasets_dir, tmp / "runs")
    torch.manual_seed(0)
    model = build_model(config.model)
    for p in model.parameters():
        p.data.normal_(0, 0.3)
    weights = tmp / "w.safetensors"
    save_weights(model, weights)
    config_path = tmp / "config.yaml"
    config_path.write_text(dump_config(config))
    return config, config_path, weights, model


def test_estimator_equals_the_evaluation_road(setup):
    config, _, weights, model = setup
    evaluator = Evaluator.from_config(config, torch.device("cpu"), progress=False)
    expected = evaluator.predict(model)
    estimator = PoseEstimator.from_config(config, weights, device="cpu", fast=False)
    records = evaluator.split.records
    images = [read_image(r.image_path) for r in records]
    persons = estimator.predict(images, [np.array([r.box]) for r in records], channel_order="rgb")
    got = np.stack([p[0].keypoints for p in persons])
    np.testing.assert_allclose(got, expected.keypoints, atol=1e-3)
    np.testing.assert_allclose(np.stack([p[0].scores for p in persons]), expected.scores, atol=1e-5)


def test_persons_of_many_images_batch_like_one_at_a_time(setup, datasets_dir):
    config, _, weights, _ = setup
    estimator = PoseEstimator.from_config(config, weights, device="cpu", fast=False)
    a = cv2.imread(str(datasets_dir / "coco" / "000000000785.jpg"))
    b = cv2.imread(str(datasets_dir / "coco" / "000000040083.jpg"))
    boxes_a = np.array([[280.0, 44.0, 218.0, 346.0], [10.0, 20.0, 100.0, 200.0]])
    together = estimator.predict([a, b], [boxes_a, None])
    alone = [estimator(a, boxes_a), estimator(b)]
    for x, y in zip(together, alone, strict=True):
        assert len(x) == len(y)
        for p, q in zip(x, y, strict=True):
            np.testing.assert_allclose(p.keypoints, q.keypoints, atol=1e-4)
    # boxes=None is the whole image
    whole = estimator(b, np.array([[0.0, 0.0, b.shape[1], b.shape[0]]]))[0]
    np.testing.assert_allclose(alone[1][0].keypoints, whole.keypoints)
    assert alone[1][0].keypoints.shape == (17, 2) and alone[1][0].score >= 0.0


def test_bad_inputs(setup):
    config, _, weights, _ = setup
    estimator = PoseEstimator.from_config(config, weights, device="cpu", fast=False)
    with pytest.raises(DataError, match="zero or negative size"):
        estimator(np.zeros((50, 50, 3), np.uint8), np.array([[0, 0, 0, 10]]))
    with pytest.raises(DataError, match=r"\(H, W, 3\) BGR uint8"):
        estimator(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(DataError, match="2 boxes but 1 box scores"):
        estimator(np.zeros((50, 50, 3), np.uint8), np.ones((2, 4)), np.ones(1))
    assert estimator(np.zeros((50, 50, 3), np.uint8), np.zeros((0, 4))) == []


def test_channel_order_is_explicit(setup, datasets_dir):
    """Arrays are BGR by default (cv2.imread's order, as MMPose/rtmlib/ultralytics take them); "rgb" on request;
    a file path decodes the same whatever the order. The wrong order does move keypoints, hence the choice."""
    config, _, weights, _ = setup
    path = datasets_dir / "coco" / "000000000785.jpg"
    box = np.array([[280.0, 44.0, 218.0, 346.0]])
    bgr = cv2.imread(str(path))
    estimator = PoseEstimator.from_config(config, weights, device="cpu", fast=False)
    from_file = estimator(path, box)[0].keypoints
    np.testing.assert_array_equal(estimator(bgr, box)[0].keypoints, from_file)
    np.testing.assert_array_equal(estimator(bgr[..., ::-1], box, channel_order="rgb")[0].keypoints, from_file)
    as_rgb = PoseEstimator.from_config(config, weights, device="cpu", fast=False, channel_order="rgb")
    np.testing.assert_array_equal(as_rgb(bgr[..., ::-1], box)[0].keypoints, from_file)
    np.testing.assert_array_equal(as_rgb(path, box)[0].keypoints, from_file)
    assert np.abs(as_rgb(bgr, box)[0].keypoints - from_file).max() > 0
    with pytest.raises(ConfigError, match="channel_order must be one of"):
        estimator(bgr, box, channel_order="BGR")


def test_detection_boxes_match_by_id_and_name(tmp_path, datasets_dir):
    dets = DetectionBoxes(datasets_dir / "coco" / "test_coco_det_AP_H_56.json", score_threshold=0.5)
    boxes, scores = dets.lookup(datasets_dir / "coco" / "000000000785.jpg")
    assert len(boxes) >= 1 and (scores >= 0.5).all()
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"file_name": "me.png", "bbox": [1, 2, 3, 4], "score": 0.9}]))
    assert DetectionBoxes(path).lookup(tmp_path / "me.png")[0].tolist() == [[1, 2, 3, 4]]
    path.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DataError, match="JSON list"):
        DetectionBoxes(path)


def test_predict_cli_images_folders_videos_and_failures(setup, datasets_dir, tmp_path):
    _, config_path, weights, _ = setup
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 128))
    frame = cv2.imread(str(datasets_dir / "coco" / "000000000785.jpg"))[40:296, 280:472]
    for _ in range(3):
        writer.write(cv2.resize(frame, (96, 128)))
    writer.release()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "out"
    status = main([
        "predict", str(config_path), "--weights", str(weights), "--plain", "--out", str(out),
        "--boxes", str(datasets_dir / "coco" / "test_coco_det_AP_H_56.json"),
        str(datasets_dir / "coco"), str(video), str(broken),
    ])  # fmt: skip
    assert status == 1  # the broken file failed, the rest completed
    results = json.loads((out / "000000000785.json").read_text())
    assert results and results[0]["image_id"] == 785 and len(results[0]["keypoints"]) == 17 * 3
    assert {"bbox", "score", "category_id"} <= set(results[0])
    assert (out / "000000000785.jpg").is_file() and (out / "000000197388.json").is_file()
    lines = (out / "clip.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 1, 2]
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()
    assert not (out / "broken.json").exists()
    assert not list(out.glob(".*"))  # no temporary files left


def test_onnxruntime_backend_gives_the_torch_keypoints(setup, datasets_dir, tmp_path, capsys):
    config, config_path, weights, _ = setup
    onnx = tmp_path / "tiny.onnx"
    assert main(["export", str(config_path), "--weights", str(weights), "--out", str(onnx)]) == 0
    assert "checked against ONNX Runtime" in capsys.readouterr().out
    reference = PoseEstimator.from_config(config, weights, device="cpu", fast=True)
    other = PoseEstimator.from_config(config, onnx, backend="onnxruntime")
    _assert_same_person_and_cli_runs(
        reference, other, datasets_dir, tmp_path, config_path, onnx, "--backend=onnxruntime"
    )


def _assert_same_person_and_cli_runs(reference, other, datasets_dir, tmp_path, config_path, weights, option):
    """``other`` finds ``reference``'s keypoints on a sample image, and ``hrnet predict ... option`` runs."""
    path = datasets_dir / "coco" / "000000040083.jpg"
    image, box = read_image(path), np.array([[100.0, 50.0, 200.0, 260.0]])
    expected, got = reference(image, box)[0], other(image, box)[0]
    np.testing.assert_allclose(got.keypoints, expected.keypoints, atol=0.05)
    np.testing.assert_allclose(got.scores, expected.scores, atol=1e-4)
    out = tmp_path / "out"
    args = ["predict", str(config_path), "--weights", str(weights), option, "--no-draw"]
    assert main([*args, "--out", str(out), str(path)]) == 0
    assert (out / "000000040083.json").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="torch.compile needs a C++ compiler")
def test_compiled_fast_path_gives_the_plain_keypoints(setup, datasets_dir, tmp_path):
    """``hrnet predict --compile`` (about 10 s of compilation on 2 cores) against the plain network."""
    config, config_path, weights, _ = setup
    plain = PoseEstimator.from_config(config, weights, device="cpu", fast=False)
    compiled = PoseEstimator.from_config(config, weights, device="cpu", compile=True)
    _assert_same_person_and_cli_runs(plain, compiled, datasets_dir, tmp_path, config_path, weights, "--compile")


def test_predict_never_replaces_an_input(setup, datasets_dir, tmp_path, capsys):
    _, config_path, weights, _ = setup
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(datasets_dir / "coco" / "000000000785.jpg", folder / "a.jpg")
    original = (folder / "a.jpg").read_bytes()
    args = ["predict", "--config", str(config_path), "--weights", str(weights), "--plain"]
    assert main([*args, "--out", str(folder), str(folder / "a.jpg")]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert (folder / "a.jpg").read_bytes() == original and sorted(p.name for p in folder.iterdir()) == ["a.jpg"]
    assert main([*args, "--out", str(folder), "--no-draw", str(folder / "a.jpg")]) == 0  # only a.json: no clash
    shutil.copy(folder / "a.jpg", folder / "a.png")
    assert main([*args, "--out", str(tmp_path / "out"), str(folder)]) == 2
    assert "would both write" in capsys.readouterr().err and not (tmp_path / "out").exists()
