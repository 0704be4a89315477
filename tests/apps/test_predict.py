"""`hrnet predict`'s inputs: only regular files are read, empty folders, decimal ids, the pixel limit."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from hrnet.apps.predict import DetectionBoxes, expand_inputs, predict_paths
from hrnet.cli import main
from hrnet.errors import DataError
from hrnet.io.outputs import LOCK, MANIFEST
from tests.io.test_images import _png_header
from tests.io.test_inputs import special_folder

# Runs `hrnet predict` several times in one process and predict_video on a FIFO: a command that opens a FIFO
# nobody writes to blocks forever, so these run in a subprocess with a timeout.
RUNS = """
import json, sys
from hrnet.cli import main
from hrnet.config import load_config
from hrnet.errors import DataError
from hrnet.pose.estimator import PoseEstimator
from hrnet.apps.video import predict_video

plan = json.loads(sys.argv[1])
print("statuses", json.dumps([main(argv) for argv in plan["commands"]]), flush=True)
estimator = PoseEstimator.from_config(load_config(plan["config"]), plan["weights"], device="cpu")
try:
    predict_video(estimator, plan["video"], plan["out"], progress=False)
except DataError as err:
    print("video:", err)
"""


def test_only_regular_files_are_read_and_the_rest_is_named(random_experiment, predict_argv, datasets_dir, tmp_path):
    folder = tmp_path / "photos"
    kinds = special_folder(folder)
    shutil.copy(datasets_dir / "coco" / "000000000785.jpg", folder / "000000000785.jpg")
    shutil.copy(datasets_dir / "coco" / "000000000785.jpg", folder / "².jpg")  # "²".isdigit(), int("²") fails
    os.mkfifo(tmp_path / "direct.jpg")
    os.mkfifo(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    plan = {
        "commands": [
            predict_argv("--out", out, folder),
            predict_argv("--out", tmp_path / "out2", tmp_path / "direct.jpg"),
            predict_argv("--out", tmp_path / "out3", tmp_path / "clip.mp4"),
            predict_argv("--out", tmp_path / "out4", "²"),  # no such file, and not a webcam
        ],
        "config": str(random_experiment[1]),
        "weights": str(random_experiment[2]),
        "video": str(tmp_path / "clip.mp4"),
        "out": str(tmp_path / "out5"),
    }
    done = subprocess.run(
        [sys.executable, "-c", RUNS, json.dumps(plan)], capture_output=True, text=True, timeout=240, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "statuses [0, 2, 2, 1]" in done.stdout
    assert f"not regular files, skipped ({len(kinds)}): " in done.stderr
    for name, kind in kinds.items():
        assert f"{folder / name} ({kind})" in done.stderr
    assert "direct.jpg: the input is a named pipe (FIFO), not a regular file" in done.stderr
    assert "clip.mp4: the input is a named pipe (FIFO)" in done.stderr
    assert "failed: ²: cannot read the image file (No such file or directory)" in done.stderr
    assert "video: " + str(tmp_path / "clip.mp4") + ": the video is a named pipe (FIFO)" in done.stdout
    assert "Traceback" not in done.stderr
    assert json.loads((out / "².jpg.json").read_text())[0]["image_id"] == "².jpg"
    assert json.loads((out / "000000000785.jpg.json").read_text())[0]["image_id"] == 785
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["000000000785.jpg.json", "000000000785_pose.jpg", "².jpg.json", "²_pose.jpg", LOCK, MANIFEST]
    )


def test_a_folder_without_images_or_videos_is_an_error(predict_argv, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no picture here")
    assert main(predict_argv("--out", tmp_path / "out", empty)) == 2
    err = capsys.readouterr().err
    assert f"no images or videos found in {empty}: give a folder of image or video files" in err
    (empty / "folder.jpg").mkdir()
    with pytest.raises(DataError, match=r"no images or videos found in .*empty \(not regular files, skipped: folder"):
        expand_inputs([empty])
    assert not (tmp_path / "out").exists()


def test_expand_inputs_returns_the_skipped_entries(tmp_path, datasets_dir):
    shutil.copy(datasets_dir / "coco" / "000000000785.jpg", tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "b.jpg")
    paths, skipped = expand_inputs([tmp_path, "0", "rtsp://cam/live"])
    assert paths == [tmp_path / "a.jpg", "0", "rtsp://cam/live"]
    assert [(s.path.name, s.kind) for s in skipped] == [("b.jpg", "a named pipe (FIFO)")]


def test_file_names_give_decimal_ids_only(tmp_path):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([
        {"image_id": "².jpg", "bbox": [1, 2, 3, 4], "score": 0.9},
        {"image_id": 785, "bbox": [5, 6, 7, 8], "score": 0.8},
    ]))  # fmt: skip
    detections = DetectionBoxes(boxes)
    assert detections.lookup(Path("².jpg"))[0].tolist() == [[1, 2, 3, 4]]
    assert detections.lookup(Path("000000000785.jpg"))[0].tolist() == [[5, 6, 7, 8]]


def test_images_over_the_pixel_limit_fail_by_name(predict_argv, datasets_dir, tmp_path, capsys):
    bomb = _png_header(tmp_path / "bomb.png", 25_000, 25_000)
    photo = datasets_dir / "coco" / "000000000785.jpg"
    out = tmp_path / "out"
    assert main(predict_argv("--out", out, "--no-draw", bomb, photo)) == 1
    err = capsys.readouterr().err
    assert "bomb.png: the image is over" in err and "Pillow's guard against decompression bombs" in err
    assert (out / "000000000785.jpg.json").is_file() and not (out / "bomb.png.json").exists()
    assert main(predict_argv("--out", out, "--no-draw", "--max-megapixels", "0.1", photo)) == 1
    assert "the JPEG is 640×425 = 272,000 pixels, over the limit of 100,000" in capsys.readouterr().err


class _CountingNetwork:
    """Wraps an estimator's network: the batch size of every forward pass it was asked for."""

    def __init__(self, network):
        self.network, self.batches = network, []

    def __call__(self, images):
        self.batches.append(len(images))
        return self.network(images)


def test_a_folders_persons_share_forward_passes_and_match_one_image_at_a_time(
    random_experiment, datasets_dir, tmp_path
):
    """The images of a folder go through the network together (up to test.batch_size crops a pass): fewer passes
    than images, and every result equal to the image predicted alone."""
    import numpy as np

    from hrnet.pose.estimator import PoseEstimator

    config, _, weights, _ = random_experiment
    estimator = PoseEstimator.from_config(config, weights, device="cpu", backend="pytorch")
    folder = tmp_path / "photos"
    folder.mkdir()
    names = ["000000000785.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg"]
    for name in names:
        shutil.copy(datasets_dir / "coco" / name, folder / name)
    counting = _CountingNetwork(estimator.model)
    estimator.model = counting
    report = predict_paths(estimator, [folder], tmp_path / "out", progress=False, draw=False)
    assert not report.failed and len(report.written) == len(names)
    passes = len(counting.batches) // (2 if config.test.flip_test else 1)
    assert passes < len(names), counting.batches  # several images' persons in one pass
    for name in names:
        alone = estimator(folder / name)
        written = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert len(written) == len(alone) == 1
        np.testing.assert_allclose(np.array(written[0]["keypoints"]).reshape(-1, 3)[:, :2], alone[0].keypoints,
                                   atol=2e-3)  # fmt: skip


def test_predict_with_nothing_but_a_photo_names_every_file_to_download(tmp_path, monkeypatch, capsys, free_port):
    """`hrnet predict photo.jpg` on a machine with no network: the default pose weights and person detector are
    both missing, and one error lists both, with their URLs, their cache paths and the way round."""
    from dataclasses import replace

    from hrnet.hub.registry import DEFAULT_DETECTOR, DEFAULT_WEIGHTS, REGISTRY, cached_path

    monkeypatch.setenv("HRNET_CACHE", str(tmp_path / "cache"))
    for name in (DEFAULT_WEIGHTS, DEFAULT_DETECTOR):  # nothing may reach the internet here
        monkeypatch.setitem(REGISTRY, name, replace(REGISTRY[name], url=f"http://127.0.0.1:{free_port()}/{name}"))
    assert main(["predict", "photo.jpg"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "hrnet predict: error: 2 weights files are not in the cache and could not be downloaded:"
    assert len(lines) == 7 and max(map(len, lines)) < 300
    for line, name in zip(lines[1:3], (DEFAULT_WEIGHTS, DEFAULT_DETECTOR), strict=True):
        assert line.startswith(f"  {name}: {cached_path(REGISTRY[name]).parent}") and REGISTRY[name].url in line
    assert f"run `hrnet weights get {DEFAULT_WEIGHTS} {DEFAULT_DETECTOR}`, then copy" in lines[4]
    # A way round for each missing file that works: the pose name stays as the config (a .pth does not say its
    # network); --detector none does without the detector only.
    assert lines[6] == (
        f"  - give files you have: --weights FILE with the name as the config (`hrnet predict {DEFAULT_WEIGHTS} "
        "...`); --detector FILE.onnx, or --detector none (each image one person), or --boxes FILE (your own boxes)"
    )
    monkeypatch.setenv("HRNET_CACHE", str(tmp_path / "cache2"))
    assert main(["serve", DEFAULT_WEIGHTS, "--detector", "none"]) == 2  # the pose weights alone; serve has no --boxes
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "hrnet serve: error: 1 weights file is not in the cache and could not be downloaded:"
    assert lines[-1] == "  - give files you have: --weights FILE" and len(lines) == 6


def test_the_python_api_offline_raises_one_public_error_naming_every_missing_file(tmp_path, monkeypatch, free_port):
    """README's `PoseEstimator.from_weights()` on a machine with no network: one WeightsUnavailableError (a
    DownloadError, so older catches hold) listing the pose weights and the detector, with what to do."""
    from dataclasses import replace

    from hrnet.errors import DownloadError, WeightsUnavailableError
    from hrnet.hub.registry import DEFAULT_DETECTOR, DEFAULT_WEIGHTS, REGISTRY
    from hrnet.pose.estimator import PoseEstimator

    monkeypatch.setenv("HRNET_CACHE", str(tmp_path / "cache"))
    for name in (DEFAULT_WEIGHTS, DEFAULT_DETECTOR):  # nothing may reach the internet here
        monkeypatch.setitem(REGISTRY, name, replace(REGISTRY[name], url=f"http://127.0.0.1:{free_port()}/{name}"))
    with pytest.raises(WeightsUnavailableError) as err:
        PoseEstimator.from_weights()
    assert isinstance(err.value, DownloadError)
    assert [name for name, _ in err.value.missing] == [DEFAULT_WEIGHTS, DEFAULT_DETECTOR]
    assert str(err.value).splitlines()[-1].startswith("  - pass the path of a file you have in place of the name")
    assert not (tmp_path / "cache").exists()


def test_our_own_weights_say_their_config_and_what_they_were_trained_on(datasets_dir, tmp_path, caplog, capsys):
    """A run's best.safetensors records its config (so predict needs none) and, trained on the synthetic figures,
    predict says once that its keypoints mean nothing on real photos, and runs without a detector."""
    from hrnet.data.synthetic import write_synthetic
    from hrnet.engine.train import train
    from hrnet.models.checkpoint import experiment_for
    from hrnet.pose.estimator import PoseEstimator
    from tests.engine.conftest import tiny_experiment

    write_synthetic(tmp_path / "synthetic", 4, 2, seed=1)
    config = tiny_experiment(
        datasets_dir,
        tmp_path / "runs",
        [f"data.root={tmp_path / 'synthetic'}", "data.train_annotations=annotations/train.json",
         "data.train_images=images/train", "data.val_annotations=annotations/val.json", "data.val_images=images/val"],
        epochs=1, lr_steps="[1]",
    )  # fmt: skip
    best = train(config, progress=False).run_dir / "best.safetensors"
    assert experiment_for(best).model == config.model
    assert PoseEstimator.from_weights(best, detector=None).keypoint_set.name == "coco17"
    photo = tmp_path / "photo.jpg"
    shutil.copy(datasets_dir / "coco" / "000000000785.jpg", photo)
    with caplog.at_level("WARNING"):
        assert main(["predict", str(photo), "--weights", str(best), "--out", str(tmp_path / "out")]) == 0
    assert caplog.text.count("trained on hrnet's synthetic stick figures") == 1
    assert "every image and video frame is taken as ONE person" in caplog.text
    assert "wrote 2 files" in capsys.readouterr().out


def test_box_score_keeps_the_detections_scoring_enough(predict_argv, datasets_dir, tmp_path):
    photo = tmp_path / "000000000785.jpg"
    shutil.copy(datasets_dir / "coco" / "000000000785.jpg", photo)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([
        {"image_id": 785, "bbox": [10, 10, 200, 300], "score": 0.9, "category_id": 1},
        {"image_id": 785, "bbox": [50, 20, 100, 200], "score": 0.2, "category_id": 1},
    ]))  # fmt: skip
    for score, persons in (("0.3", 1), ("0.1", 2)):
        out = tmp_path / f"out{score}"
        assert main(predict_argv(photo, "--boxes", boxes, "--box-score", score, "--out", out)) == 0
        assert len(json.loads((out / "000000000785.jpg.json").read_text())) == persons


def test_thousands_of_boxes_for_one_image_are_capped_best_first(predict_argv, datasets_dir, tmp_path, caplog):
    photo = tmp_path / "000000000785.jpg"
    shutil.copy(datasets_dir / "coco" / "000000000785.jpg", photo)
    boxes = tmp_path / "boxes.json"
    entries = [{"image_id": 785, "bbox": [i % 400, 10, 100, 200], "score": i / 10_009} for i in range(10_009)]
    boxes.write_text(json.dumps(entries))
    out = tmp_path / "out"
    assert main(predict_argv(photo, "--boxes", boxes, "--box-score", "0", "--max-boxes", "3", "--out", out)) == 0
    results = json.loads((out / "000000000785.jpg.json").read_text())
    assert [r["bbox"][0] for r in results] == [10_008 % 400, 10_007 % 400, 10_006 % 400]
    assert "names 10009 boxes for it; the 3 best-scoring are used (--max-boxes)" in caplog.text


def test_hand_and_face_models_find_their_own_boxes_offline(
    task_experiment, datasets_dir, tmp_path, caplog, capsys, monkeypatch
):
    """No --boxes, no --detector, an empty cache: a hand model runs on the whole image and says so in one line
    (no person detector is downloaded); a face model finds the face with OpenCV's cascade."""
    from hrnet.pose.detect import HaarFaceDetector

    photo = tmp_path / "face.png"
    shutil.copy(datasets_dir / "300w" / "indoor_029.png", photo)
    cache = tmp_path / "cache"
    monkeypatch.setenv("HRNET_CACHE", str(cache))
    for task in ("hand", "face"):
        config_path, weights, _ = task_experiment(task)
        argv = ["predict", str(config_path), str(photo), "--weights", str(weights), "--out", str(tmp_path / task)]
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main([*argv, "--no-draw", "--backend", "pytorch"]) == 0, capsys.readouterr().err
        notes = [r.getMessage() for r in caplog.records if "taken as ONE" in r.getMessage()]
        results = json.loads((tmp_path / task / "face.png.json").read_text())
        if task == "hand":
            assert len(notes) == 1 and notes[0].startswith("no hand detector ships with hrnet: every image and video")
            assert "to find every hand: --boxes FILE or --detector SPEC" in notes[0]
            assert [r["bbox"] for r in results] == [[0.0, 0.0, 960.0, 845.0]]
        else:
            assert notes == []
            faces = HaarFaceDetector()(cv2.imread(str(photo)))
            assert len(faces) == 1 and [r["bbox"] for r in results] == faces.boxes.round(2).tolist()
    assert not cache.exists()  # nothing was downloaded
