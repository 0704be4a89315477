"""Videos (``hrnet.video``): track ids through a synthetic clip, detection every N frames, smoothing, H.264
output, webcams and streams, and the errors. A tiny network with random weights stands in for a trained one: the
tracking is tested with a detector that returns the clip's true boxes (``tests.synthetic_clip.TruthDetector``)."""

import copy
import functools
import http.server
import json
import threading

import av
import numpy as np
import pytest

from hrnet.cli import main
from hrnet.errors import DataError
from hrnet.inference import PoseEstimator
from hrnet.outputs import MANIFEST
from hrnet.track import OneEuroSettings, box_from_keypoints, box_iou
from hrnet.video import (
    H264Writer,
    VideoOptions,
    VideoPoseTracker,
    is_live_source,
    predict_video,
    source_stem,
)
from tests.engine.conftest import random_weights_experiment
from tests.synthetic_clip import TruthDetector, moving_figures, write_clip


@pytest.fixture(scope="module")
def tiny(datasets_dir, tmp_path_factory):
    """A tiny network with random weights (non-trivial outputs), its config file and an estimator."""
    tmp = tmp_path_factory.mktemp("video")
    config, config_path, weights, _ = random_weights_experiment(datasets_dir, tmp)
    return PoseEstimator.from_config(config, weights, device="cpu"), config_path, weights


@pytest.fixture(scope="module")
def clip():
    return moving_figures(num_frames=12)


def _run(tracker, frames, fps=10.0):
    return [tracker(frame, i / fps) for i, frame in enumerate(frames)]


def test_ids_stay_with_their_figures_and_never_swap(tiny, clip):
    estimator = tiny[0]
    detector = TruthDetector(clip)
    results = _run(VideoPoseTracker(estimator, detector, VideoOptions(detect_every=1)), clip.frames)
    assert detector.calls == list(range(12))
    owner = {}
    for tracked, truth in zip(results, clip.boxes, strict=True):
        assert len(tracked) == 3 and all(t.detected for t in tracked)
        figures = box_iou(np.stack([t.pose.box for t in tracked]), truth).argmax(axis=1)
        for t, figure in zip(tracked, figures.tolist(), strict=True):
            assert owner.setdefault(t.track_id, figure) == figure, f"id {t.track_id} changed figure"
    assert sorted(owner) == [1, 2, 3] and sorted(owner.values()) == [0, 1, 2]


def test_detect_every_n_carries_boxes_from_the_previous_keypoints(tiny, clip):
    estimator = tiny[0]
    detector = TruthDetector(clip)
    # The random network's keypoint scores are low: every keypoint counts for the carried box here.
    options = VideoOptions(detect_every=4, keypoint_threshold=0.0)
    results = _run(VideoPoseTracker(estimator, detector, options), clip.frames)
    assert detector.calls == [0, 4, 8]
    for f in range(1, 12):
        before = {t.track_id: t.pose for t in results[f - 1]}
        for t in results[f]:
            assert t.detected == (f % 4 == 0)
            if not t.detected:
                expected = box_from_keypoints(
                    before[t.track_id].keypoints, before[t.track_id].scores, threshold=0.0, image_size=(192, 320)
                )
                np.testing.assert_allclose(t.pose.box, expected)
    assert {t.track_id for t in results[0]} == {1, 2, 3}


def test_the_estimators_own_detector_runs_only_on_detection_frames(tiny, clip):
    """``PoseEstimator(..., detector=...)`` detects when given no boxes; the video path always gives boxes, so its
    detector runs every N frames only, as the video's."""
    estimator = copy.copy(tiny[0])
    estimator.detector = TruthDetector(clip)
    results = _run(
        VideoPoseTracker(estimator, None, VideoOptions(detect_every=4, keypoint_threshold=0.0)), clip.frames[:6]
    )
    assert estimator.detector.calls == [0, 4]
    assert [len(r) for r in results] == [3] * 6


def _jitter(results) -> float:
    keypoints = np.stack([r[0].pose.keypoints for r in results])
    return float(np.linalg.norm(np.diff(keypoints, axis=0), axis=-1).mean())


def test_smoothing_lowers_the_jitter_of_still_keypoints_in_whole_image_mode(tiny):
    """A still figure filmed with sensor noise: the keypoints jump from frame to frame; One-Euro steadies them.
    Without a detector the whole frame is one person, whose id stays 1."""
    still = moving_figures(num_frames=16, starts=(160.0,), speeds=(0.0,), size=(192, 192), noise=12.0)
    estimator = tiny[0]
    raw = _run(VideoPoseTracker(estimator, None, VideoOptions()), still.frames, fps=30.0)
    smooth = _run(VideoPoseTracker(estimator, None, VideoOptions(smooth=OneEuroSettings())), still.frames, fps=30.0)
    assert all([t.track_id for t in r] == [1] for r in raw + smooth)
    assert _jitter(raw) > 0.1
    # The random network's keypoints jump by tens of pixels, which One-Euro partly takes for motion (its speed
    # term opens the filter); without the speed term (beta 0) it holds them far steadier.
    assert _jitter(smooth) < 0.8 * _jitter(raw)
    steady = VideoOptions(smooth=OneEuroSettings(beta=0.0))
    assert _jitter(_run(VideoPoseTracker(estimator, None, steady), still.frames, fps=30.0)) < 0.4 * _jitter(raw)


def test_predict_cli_writes_h264_and_json_lines_with_track_ids(tiny, clip, tmp_path):
    _, config_path, weights = tiny
    video = tmp_path / "walk.avi"
    write_clip(clip, video)
    out = tmp_path / "out"
    args = [str(config_path), "--weights", str(weights), "--out", str(out), "--detect-every", "3", "--smooth"]
    args += ["--threshold", "0"]  # the random network scores its keypoints low: carry boxes with all of them
    assert main(["predict", *args, str(video)]) == 0
    lines = [json.loads(line) for line in (out / "walk.avi.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(12))
    assert [line["time"] for line in lines] == pytest.approx([i / clip.fps for i in range(12)])
    for line in lines:  # whole-image mode: one person a frame, always id 1
        (person,) = line["persons"]
        assert person["track_id"] == 1 and len(person["keypoints"]) == 17 * 3 and len(person["bbox"]) == 4
    with av.open(str(out / "walk_pose_avi.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 12 and frames[0].shape == (192, 320, 3)
    assert [p.name for p in out.glob(".*")] == [MANIFEST]  # no temporary file and no lock left


def test_h264_writer_pads_odd_sizes_and_reads_back(tmp_path):
    path = tmp_path / "odd.mp4"
    writer = H264Writer(path, fps=30000 / 1001)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 5, (5, 33, 47, 3), dtype=np.uint8)
    frames = [np.full((33, 47, 3), 40 * i, np.uint8) + noise[i] for i in range(5)]
    for frame in frames:
        writer.write(frame)
    with pytest.raises(DataError, match="a frame of 48×32 after frames of 47×33"):
        writer.write(np.zeros((32, 48, 3), np.uint8))
    writer.close()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (48, 34)
        assert float(stream.average_rate) == pytest.approx(30000 / 1001)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == 5
    for got, sent in zip(decoded, frames, strict=True):
        assert np.abs(got[:33, :47].astype(int) - sent).mean() < 4  # lossy, but the same picture


def test_encoder_failure_is_one_clear_error(tmp_path):
    writer = H264Writer(tmp_path / "x.mp4", fps=10, codec="no_such_encoder")
    with pytest.raises(DataError, match="no_such_encoder encoder is not available"):
        writer.write(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(DataError, match=r"missing/x.mp4: .*No such file or directory"):
        writer = H264Writer(tmp_path / "missing" / "x.mp4", fps=10)
        writer.write(np.zeros((16, 16, 3), np.uint8))
        writer.close()


def test_unwritable_out_folder_and_unopenable_sources_are_one_line(tiny, clip, tmp_path, capsys):
    _, config_path, weights = tiny
    video = tmp_path / "walk.avi"
    write_clip(clip, video)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    args = ["predict", str(config_path), "--weights", str(weights)]
    assert main([*args, "--out", str(blocker / "out"), str(video)]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot write the --out folder" in err and len(err.splitlines()) == 1
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main([*args, "--out", str(tmp_path / "out"), str(broken), "999"]) == 1
    err = capsys.readouterr().err
    assert "OpenCV cannot open the video" in err and "999: OpenCV cannot open the webcam" in err
    assert not any((tmp_path / "out").iterdir())


def test_sources_and_their_output_names():
    assert is_live_source("0") and is_live_source("rtsp://cam.local:554/live") and is_live_source("http://x/y.mp4")
    assert not is_live_source("clip.mp4")
    assert source_stem("0") == "webcam0"
    assert source_stem("rtsp://user@cam.local:554/live/ch1?tcp") == "stream_user_cam.local_554_live_ch1"
    assert source_stem("videos/walk.mp4") == "walk"


def test_a_stream_over_http_is_read_to_its_end(tiny, clip, tmp_path):
    """A stream URL (here HTTP from 127.0.0.1): read frame by frame with no known length, outputs completed."""
    estimator = tiny[0]
    served = tmp_path / "served"
    served.mkdir()
    write_clip(clip, served / "walk.avi")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/walk.avi"
        written = predict_video(
            estimator, url, tmp_path / "out", detector=TruthDetector(clip), progress=False, draw=False
        )
    finally:
        server.shutdown()
        thread.join()
    assert [p.name for p in written] == [f"stream_127.0.0.1_{server.server_address[1]}_walk.avi.jsonl"]
    lines = [json.loads(line) for line in written[0].read_text().splitlines()]
    assert len(lines) == 12
    assert all(sorted(p["track_id"] for p in line["persons"]) == [1, 2, 3] for line in lines)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the standard library's signature
        pass
