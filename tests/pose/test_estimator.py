"""PoseEstimator and `hrnet predict`: same road as evaluation, batching, boxes, files, folders, videos."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from hrnet.apps.predict import DetectionBoxes, person_results
from hrnet.cli import main
from hrnet.engine.evaluate import Evaluator
from hrnet.errors import ConfigError, DataError
from hrnet.io.files import json_text
from hrnet.io.images import read_image
from hrnet.io.outputs import LOCK, MANIFEST, OutputFolder
from hrnet.pose.estimator import PersonPose, PoseEstimator


def test_estimator_equals_the_evaluation_road(random_experiment):
    config, _, weights, model = random_experiment
    evaluator = Evaluator.from_config(config, torch.device("cpu"), progress=False)
    expected = evaluator.predict(model)
    estimator = PoseEstimator.from_config(config, weights, device="cpu", backend="pytorch")
    records = evaluator.split.records
    images = [read_image(r.image_path) for r in records]
    persons = estimator.predict(images, [np.array([r.box]) for r in records])
    got = np.stack([p[0].keypoints for p in persons])
    np.testing.assert_allclose(got, expected.keypoints, atol=1e-3)
    np.testing.assert_allclose(np.stack([p[0].scores for p in persons]), expected.scores, atol=1e-5)


def test_persons_of_many_images_batch_like_one_at_a_time(random_experiment, datasets_dir):
    config, _, weights, _ = random_experiment
    estimator = PoseEstimator.from_config(config, weights, device="cpu", backend="pytorch")
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


def test_bad_inputs(random_experiment):
    config, _, weights, _ = random_experiment
    estimator = PoseEstimator.from_config(config, weights, device="cpu", backend="pytorch")
    with pytest.raises(DataError, match="under 1 pixel wide or high"):
        estimator(np.zeros((50, 50, 3), np.uint8), np.array([[0, 0, 0, 10]]))
    with pytest.raises(DataError, match=r"image 0: expected a uint8 image, got dtype float32"):
        estimator(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(DataError, match="2 person boxes but 1 box scores"):
        estimator(np.zeros((50, 50, 3), np.uint8), np.ones((2, 4)), np.ones(1))
    assert estimator(np.zeros((50, 50, 3), np.uint8), np.zeros((0, 4))) == []
    image, box = np.zeros((50, 50, 3), np.uint8), np.array([[5.0, 5, 20, 30]])
    with pytest.raises(ConfigError, match=r"boxes: give one entry per image \(2 images\).*got an array"):
        estimator.predict([image, image], box)
    with pytest.raises(ConfigError, match=r"box_scores: give one entry per image \(2 images\).*got 1 entries"):
        estimator.predict([image, image], [box, box], [np.ones(1)])
    for bad in (np.zeros((5, 5), bool), np.zeros((5, 5), np.int64), np.zeros((0, 5, 3), np.uint8)):
        with pytest.raises(DataError, match=r"image 0: expected"):
            estimator(bad)


def test_channel_order_is_explicit(random_experiment, datasets_dir):
    """Arrays are BGR by default (cv2.imread's order, as MMPose/rtmlib/ultralytics take them); "rgb" on request;
    a file path decodes the same whatever the order. The wrong order does move keypoints, hence the choice."""
    config, _, weights, _ = random_experiment
    path = datasets_dir / "coco" / "000000000785.jpg"
    box = np.array([[280.0, 44.0, 218.0, 346.0]])
    bgr = cv2.imread(str(path))
    estimator = PoseEstimator.from_config(config, weights, device="cpu", backend="pytorch")
    from_file = estimator(path, box)[0].keypoints
    np.testing.assert_array_equal(estimator(bgr, box)[0].keypoints, from_file)
    np.testing.assert_array_equal(estimator(bgr[..., ::-1], box, channel_order="rgb")[0].keypoints, from_file)
    as_rgb = PoseEstimator.from_config(config, weights, device="cpu", backend="pytorch", channel_order="rgb")
    np.testing.assert_array_equal(as_rgb(bgr[..., ::-1], box)[0].keypoints, from_file)
    np.testing.assert_array_equal(as_rgb(path, box)[0].keypoints, from_file)
    assert np.abs(as_rgb(bgr, box)[0].keypoints - from_file).max() > 0
    with pytest.raises(DataError, match="channel_order must be 'rgb' or 'bgr', got 'BGR'"):
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


def test_predict_cli_images_folders_videos_and_failures(predict_argv, datasets_dir, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 128))
    frame = cv2.imread(str(datasets_dir / "coco" / "000000000785.jpg"))[40:296, 280:472]
    for _ in range(3):
        writer.write(cv2.resize(frame, (96, 128)))
    writer.release()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "out"
    boxes = datasets_dir / "coco" / "test_coco_det_AP_H_56.json"
    status = main(predict_argv("--out", out, "--boxes", boxes, datasets_dir / "coco", video, broken))
    assert status == 1  # the broken file failed, the rest completed
    results = json.loads((out / "000000000785.jpg.json").read_text())
    assert results and results[0]["image_id"] == 785 and len(results[0]["keypoints"]) == 17 * 3
    assert {"bbox", "score", "category_id"} <= set(results[0])
    assert (out / "000000000785_pose.jpg").is_file() and (out / "000000197388.jpg.json").is_file()
    lines = (out / "clip.mp4.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 1, 2]
    capture = cv2.VideoCapture(str(out / "clip_pose.mp4"))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()
    assert not (out / "broken.jpg.json").exists()
    assert sorted(p.name for p in out.glob(".*")) == [LOCK, MANIFEST]  # no temporary files left


def test_onnxruntime_backend_gives_the_torch_keypoints(random_experiment, datasets_dir, tmp_path, capsys):
    config, config_path, weights, _ = random_experiment
    onnx = tmp_path / "tiny.onnx"
    assert main(["export", str(config_path), "--weights", str(weights), "--out", str(onnx)]) == 0
    assert "checked against ONNX Runtime" in capsys.readouterr().out
    reference = PoseEstimator.from_config(config, weights, device="cpu", backend="pytorch-fast")
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
    args = ["predict", str(config_path), "--weights", str(weights), option, "--no-draw", "--detector", "none"]
    assert main([*args, "--out", str(out), str(path)]) == 0
    assert (out / "000000040083.jpg.json").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="torch.compile needs a C++ compiler")
def test_compiled_fast_path_gives_the_plain_keypoints(random_experiment, datasets_dir, tmp_path):
    """``hrnet predict --compile`` (about 10 s of compilation on 2 cores) against the plain network."""
    config, config_path, weights, _ = random_experiment
    plain = PoseEstimator.from_config(config, weights, device="cpu", backend="pytorch")
    compiled = PoseEstimator.from_config(config, weights, device="cpu", compile=True)
    _assert_same_person_and_cli_runs(plain, compiled, datasets_dir, tmp_path, config_path, weights, "--compile")


def test_predict_never_replaces_an_input(predict_argv, datasets_dir, tmp_path, capsys):
    """--out equal to the input folder: a.jpg and a.png get their own results, the photos and an unrelated
    photo.json stay as they were; a second run does not take the first run's drawings for photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(datasets_dir / "coco" / "000000000785.jpg", folder / "a.jpg")
    shutil.copy(datasets_dir / "coco" / "000000040083.jpg", folder / "photo.jpg")
    cv2.imwrite(str(folder / "a.png"), cv2.imread(str(datasets_dir / "coco" / "000000040083.jpg")))
    (folder / "photo.json").write_text('{"mine": true}')
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    args = predict_argv()
    for _ in range(2):
        assert main([*args, "--out", str(folder), str(folder)]) == 0
        assert all((folder / name).read_bytes() == data for name, data in before.items())
    names = {p.name for p in folder.iterdir()} - set(before)
    assert names == {
        "a.jpg.json", "a.png.json", "photo.jpg.json", "a_pose.jpg", "a_pose.png", "photo_pose.jpg", LOCK, MANIFEST
    }  # fmt: skip
    assert json.loads((folder / "a.jpg.json").read_text())[0]["image_id"] == "a.jpg"
    assert json.loads((folder / "a.png.json").read_text())[0]["image_id"] == "a.png"
    # An output onto a file that is an input (here the boxes file) is refused before anything runs.
    boxes = folder / "photo.jpg.json"
    boxes.write_text(json.dumps([{"file_name": "photo.jpg", "bbox": [10, 10, 100, 200], "score": 1.0}]))
    assert main([*args, "--out", str(folder), "--boxes", str(boxes), str(folder / "photo.jpg")]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert json.loads(boxes.read_text())[0]["bbox"] == [10, 10, 100, 200]
    # ... and so is an input given as the same file under another name (a hard link).
    (folder / "link").mkdir()
    os.link(folder / "photo.jpg", folder / "link" / "photo_pose.jpg")
    assert main([*args, "--out", str(folder / "link"), str(folder / "photo.jpg")]) == 2
    assert "would replace the input" in capsys.readouterr().err
    shutil.copy(folder / "a.jpg", tmp_path / "a.jpg")
    assert main([*args, "--out", str(tmp_path / "out"), str(folder / "a.jpg"), str(tmp_path / "a.jpg")]) == 2
    assert "would both write" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"image_id": 1, "bbox": "10,20,30,40"}, r"#0 \(image 1\): bbox must be numbers, got '10,20,30,40'"),
        ({"image_id": 1, "bbox": [10, 20, 30]}, r"#0 \(image 1\): bbox must have shape \(4,\), got \[10, 20, 30\]"),
        ({"image_id": 1, "bbox": [10, 20, 30, 40], "score": "high"}, r"#0 \(image 1\): score must be numbers"),
        ({"image_id": 1, "bbox": [10, float("nan"), 30, 40]}, r"#0 \(image 1\): bbox has non-finite values"),
        ({"image_id": 1, "bbox": [10, 20, 30, 40], "score": float("inf")}, r"#0 \(image 1\): score has non-finite"),
        ({"image_id": [1], "bbox": [10, 20, 30, 40]}, r"#0: the image_id or file_name \[1\] is not a number or a"),
        ({"file_name": "a.jpg"}, r"#0 \(image 'a.jpg'\): missing field 'bbox'"),
    ],
)
def test_malformed_detection_entries_are_named(tmp_path, entry, message):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps([entry]))  # json writes NaN and Infinity, as some detectors do
    with pytest.raises(DataError, match=rf"boxes.json: detection {message}"):
        DetectionBoxes(path)


def test_predict_cli_bad_boxes_file_is_one_line(predict_argv, datasets_dir, tmp_path, capsys):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"file_name": "a.jpg", "bbox": [1, 2, 3], "score": 1}]))
    image = datasets_dir / "coco" / "000000040083.jpg"
    assert main(predict_argv("--boxes", str(boxes), "--out", str(tmp_path / "o"), str(image))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "boxes.json: detection #0 (image 'a.jpg'): bbox must have shape (4,)" in err


def test_non_finite_boxes_given_to_the_estimator_are_refused(random_experiment):
    config, _, weights, _ = random_experiment
    estimator = PoseEstimator.from_config(config, weights, device="cpu", backend="pytorch")
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(DataError, match="NaN or infinity"):
        estimator(image, np.array([[0, 0, np.nan, 10]]))
    with pytest.raises(DataError, match="NaN or infinity"):
        estimator(image, np.array([[0, 0, 10, 10]]), np.array([np.inf]))


def test_non_finite_predictions_are_written_as_null_with_a_warning(caplog):
    person = PersonPose(np.array([1.0, 2.0, 3.0, 4.0]), np.full((17, 2), np.nan), np.full(17, np.nan), float("nan"))
    with caplog.at_level("WARNING", logger="hrnet"):
        results = person_results([person], "a.jpg", where="a.jpg")
    text = json_text(results, "a.jpg.json")  # valid JSON: would raise on NaN
    assert json.loads(text)[0]["keypoints"] == [None] * 51 and json.loads(text)[0]["score"] is None
    assert "a.jpg: 52 predicted values are not finite" in caplog.text


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_one_bad_value_among_finite_persons_is_the_only_null(caplog):
    """The finite check runs on the rounded values: a coordinate that rounding to 3 decimals overflows (1e308) is
    caught too, without NumPy's overflow warning on the console, and only it becomes null; a person of finite
    values is left alone."""
    good = PersonPose(np.array([1.0, 2.0, 3.0, 4.0]), np.full((17, 2), 5.0), np.full(17, 0.5), 0.9)
    keypoints = np.full((17, 2), 5.0)
    keypoints[3, 1] = 1e308
    bad = PersonPose(np.array([1.0, 2.0, 3.0, 4.0]), keypoints, np.full(17, 0.5), 0.9)
    with caplog.at_level("WARNING", logger="hrnet"):
        results = json.loads(json_text(person_results([good, bad], 7, where="b.jpg"), "b.jpg.json"))
    assert results[0]["keypoints"] == [5.0, 5.0, 0.5] * 17
    assert results[1]["keypoints"][10] is None and sum(v is None for v in results[1]["keypoints"]) == 1
    assert "b.jpg: 1 predicted values are not finite" in caplog.text


def test_a_photo_named_like_a_drawing_is_predicted_and_never_overwritten(predict_argv, datasets_dir, tmp_path, capsys):
    """Drawings are told from photos by the folder's manifest, not by a ``_pose`` suffix: a photo ``a_pose.jpg``
    beside ``a.jpg`` is an input, so writing a.jpg's drawing onto it is refused (naming both) before anything
    runs; ``tree_pose.jpg`` with --out elsewhere is predicted like any photo."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, sample in (("a.jpg", "000000000785.jpg"), ("a_pose.jpg", "000000040083.jpg")):
        shutil.copy(datasets_dir / "coco" / sample, folder / name)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    args = predict_argv()
    assert main([*args, "--out", str(folder), str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a_pose.jpg is the input" in err and "the output of" in err and "a.jpg would" in err
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != LOCK}
    assert after == before  # nothing written but the lock file, the photo as it was
    assert main([*args, "--overwrite", "--out", str(folder), str(folder)]) == 2  # an input, whatever is asked
    capsys.readouterr()

    trees = tmp_path / "trees"
    trees.mkdir()
    shutil.copy(datasets_dir / "coco" / "000000000785.jpg", trees / "tree.jpg")
    shutil.copy(datasets_dir / "coco" / "000000040083.jpg", trees / "tree_pose.jpg")
    out = tmp_path / "out"
    assert main([*args, "--out", str(out), str(trees)]) == 0
    assert (out / "tree_pose.jpg.json").is_file() and (out / "tree_pose_pose.jpg").is_file()
    assert (out / "tree.jpg.json").is_file() and (out / "tree_pose.jpg").is_file()


def test_predict_replaces_only_its_own_earlier_outputs(predict_argv, datasets_dir, tmp_path, capsys):
    image = str(datasets_dir / "coco" / "000000040083.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "000000040083.jpg.json").write_text('{"mine": true}')
    args = predict_argv("--no-draw", "--out", str(out), image)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "000000040083.jpg.json: the output of" in err and "hrnet predict did not write" in err
    assert "--overwrite" in err and (out / "000000040083.jpg.json").read_text() == '{"mine": true}'
    assert main([*args, "--overwrite"]) == 0
    assert main(args) == 0  # its own output now: replaced without asking


def test_a_second_predict_into_a_taken_folder_is_refused(predict_argv, datasets_dir, tmp_path, capsys):
    out = tmp_path / "out"
    image = str(datasets_dir / "coco" / "000000040083.jpg")
    with OutputFolder(out, command="hrnet predict"):  # another run holds it
        assert main(predict_argv("--out", str(out), image)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out}: another run is writing into this folder" in err
    assert sorted(p.name for p in out.iterdir()) == [LOCK]


def test_the_next_run_removes_what_a_killed_video_run_left(predict_argv, datasets_dir, tmp_path, caplog):
    """SIGTERM during a video predict leaves the temporary .jsonl/.mp4 (SIGINT cleans up; the system lets go of
    the lock): the next run into the folder removes them."""
    out = tmp_path / "out"
    out.mkdir()
    left = [out / ".clip.mp4.1a2b3c4d.hrnet.tmp.jsonl", out / ".clip_pose.5e6f7a8b.hrnet.tmp.mp4"]
    for path in left:
        path.write_bytes(b"half a video")
    image = str(datasets_dir / "coco" / "000000040083.jpg")
    with caplog.at_level("INFO", logger="hrnet"):
        assert main(predict_argv("--no-draw", "--out", str(out), image)) == 0
    assert f"removed {left[0]}, left by a process killed while writing it" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == [LOCK, MANIFEST, "000000040083.jpg.json"]


def test_predict_out_that_cannot_be_a_folder_is_one_error_up_front(predict_argv, datasets_dir, tmp_path, capsys):
    image = str(datasets_dir / "coco" / "000000040083.jpg")
    a_file = tmp_path / "taken"
    a_file.write_text("")
    args = predict_argv()
    assert main([*args, "--out", str(a_file), image]) == 2
    assert "taken: the --out folder is an existing file" in capsys.readouterr().err
    assert main([*args, "--out", str(a_file / "below"), image]) == 2
    assert "below: cannot write the --out folder (a file is in the way" in capsys.readouterr().err


def test_predict_into_a_read_only_folder_is_one_error_up_front(predict_argv, datasets_dir, read_only_dir, capsys):
    """A read-only --out: one line before any input runs (simulated: the tests may run as root, who writes
    anywhere; a non-root run of the next test does it for real)."""
    images = [str(datasets_dir / "coco" / n) for n in ("000000040083.jpg", "000000000785.jpg")]
    assert main(predict_argv("--out", str(read_only_dir), *images)) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "ro: cannot write the --out folder (Permission denied: the folder is read-only" in err
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_predict_into_a_really_read_only_folder(predict_argv, datasets_dir, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        image = str(datasets_dir / "coco" / "000000040083.jpg")
        assert main(predict_argv("--out", str(out), image)) == 2
        assert "cannot write the --out folder" in capsys.readouterr().err
    finally:
        out.chmod(0o755)


def test_photos_are_turned_upright_by_their_exif_orientation(predict_argv, tmp_path):
    """A phone photo stored sideways with orientation 6 (rotate 90° clockwise to view): the whole-image box and
    the drawing are those of the upright photo."""
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :20] = 255  # stored: a white band on the left; upright: at the top
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    out = tmp_path / "out"
    assert main(predict_argv("--out", str(out), str(tmp_path / "phone.jpg"))) == 0
    assert json.loads((out / "phone.jpg.json").read_text())[0]["bbox"] == [0, 0, 40, 80]
    drawing = cv2.imread(str(out / "phone_pose.jpg"))
    assert drawing.shape[:2] == (80, 40) and drawing[:10].mean() > drawing[-10:].mean()
    assert read_image(tmp_path / "phone.jpg").shape[:2] == (40, 80)  # data sets: the stored pixels


def test_a_boxes_file_that_matches_no_input_is_warned_with_its_names(predict_argv, datasets_dir, tmp_path, caplog):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"file_name": "IMG_0001.jpg", "bbox": [1, 2, 30, 40], "score": 1}]))
    image = str(datasets_dir / "coco" / "000000040083.jpg")
    args = predict_argv("--boxes", str(boxes), "--out", str(tmp_path / "o"), "--no-draw")
    with caplog.at_level("WARNING", logger="hrnet"):
        assert main([*args, image]) == 0
    assert "boxes.json: no entry for 1 of 1 input images (e.g. 000000040083.jpg)" in caplog.text
    assert "It names 'IMG_0001.jpg'; an image matches an entry's file_name" in caplog.text


def test_auto_detector_follows_the_keypoint_set(task_experiment, random_experiment, datasets_dir, caplog, monkeypatch):
    """``detector="auto"`` (``from_weights``' default): a hand set takes the whole image as one box and says so in
    one line; a face set finds faces with OpenCV's cascade; a body set asks for the person detector (recorded
    here, not downloaded)."""
    from hrnet.pose import estimator as estimator_module
    from hrnet.pose.detect import Detections, HaarFaceDetector

    config_path, weights, hand_set = task_experiment("hand")
    with caplog.at_level("WARNING"):
        hand = PoseEstimator.from_weights(weights, config=config_path, device="cpu", backend="pytorch")
    assert hand.detector is None and hand.keypoint_set == hand_set
    notes = [r.getMessage() for r in caplog.records if "ONE hand" in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith("no hand detector ships with hrnet") and "boxes=" in notes[0]
    photo = datasets_dir / "300w" / "indoor_020.png"
    assert [p.box.tolist() for p in hand(photo)] == [[0.0, 0.0, 726.0, 768.0]]

    config_path, weights, _ = task_experiment("face")
    face = PoseEstimator.from_weights(weights, config=config_path, device="cpu", backend="pytorch")
    assert isinstance(face.detector, HaarFaceDetector)
    faces = HaarFaceDetector()(cv2.imread(str(photo)))
    assert len(faces) == 1 and [p.box.tolist() for p in face(photo)] == faces.boxes.tolist()

    asked = []

    def nobody(image_bgr: np.ndarray) -> Detections:
        return Detections(np.zeros((0, 4)), np.zeros(0))

    monkeypatch.setattr(estimator_module, "load_detector", lambda spec: asked.append(spec) or nobody)
    monkeypatch.setattr(estimator_module, "resolve_many", lambda specs: list(specs))
    config, _, weights, _ = random_experiment
    body = PoseEstimator.from_config(config, weights, device="cpu", backend="pytorch", detector="auto")
    assert asked == ["rtmdet-nano-person"] and body.detector is nobody


def test_predict_keypoints_blurs_as_the_test_config_says():
    """test.dark_blur_kernel reaches DARK's decoding (MMPose 1.x's 11 at σ 3); 0 leaves the codec's 17."""
    from hrnet.codec import HeatmapCodec
    from hrnet.config import TestConfig
    from hrnet.crop import Crop
    from hrnet.pose.estimator import predict_keypoints

    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.random((2 * 17 * 96, 72), dtype=np.float32), (0, 0), 2)
    heatmaps = torch.from_numpy(smooth.reshape(2, 17, 96, 72))
    codec = HeatmapCodec(Crop((384, 288)), (96, 72), sigma=3.0)
    centers, sizes = np.array([[100.0, 150.0], [50.0, 60.0]]), np.array([[288.0, 384.0], [72.0, 96.0]])

    def run(kernel: int) -> np.ndarray:
        test = TestConfig(decode="dark", flip_test=False, dark_blur_kernel=kernel)
        return predict_keypoints(lambda x: heatmaps, torch.zeros(2, 3, 384, 288), codec, (), test, centers, sizes)[0]

    for kernel, expected in ((11, 11), (0, 17)):
        want = codec.decode(heatmaps.numpy(), centers, sizes, method="dark", blur_kernel=expected)[0]
        np.testing.assert_array_equal(run(kernel), want)
    assert not np.array_equal(run(11), run(0))
