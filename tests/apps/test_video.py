"""Videos (``hrnet.apps.video``): track ids through a synthetic clip, detection every N frames, smoothing, H.264
output, webcams and streams, and the errors. A tiny network with random weights stands in for a trained one: the
tracking is tested with a detector that returns the clip's true boxes (``tests.synthetic_clip.TruthDetector``)."""

import copy
import functools
import http.server
import json
import threading
import time
from fractions import Fraction
from typing import ClassVar

import av
import cv2
import numpy as np
import pytest

from hrnet.apps.video import VideoStats, predict_video
from hrnet.cli import main
from hrnet.drawing.skeletons import draw_persons
from hrnet.errors import ConfigError, DataError
from hrnet.io.frames import H264Writer, is_live_source, source_stem
from hrnet.io.outputs import LOCK, MANIFEST
from hrnet.pose.detect import Detections
from hrnet.pose.estimator import PoseEstimator
from hrnet.pose.persons import PersonPose
from hrnet.pose.track import OneEuroSettings, VideoOptions, VideoPoseTracker, box_from_keypoints, box_iou, box_overlap
from tests.synthetic_clip import TruthDetector, TruthEstimator, WeakDetector, moving_figures, write_clip


@pytest.fixture(scope="module")
def tiny(random_experiment):
    """An estimator of the tiny network with random weights (non-trivial outputs), its config file and weights."""
    config, config_path, weights, _ = random_experiment
    return PoseEstimator.from_config(config, weights, device="cpu"), config_path, weights


@pytest.fixture(autouse=True)
def no_detector_left_behind(tiny):
    """Tests give the shared estimator a detector; each test starts and ends without one."""
    tiny[0].detector = None
    yield
    tiny[0].detector = None


@pytest.fixture(scope="module")
def clip():
    return moving_figures(num_frames=12)


def _run(tracker, frames, fps=10.0):
    return [tracker(frame, i / fps) for i, frame in enumerate(frames)]


def test_ids_stay_with_their_figures_and_never_swap(tiny, clip):
    estimator = tiny[0]
    detector = estimator.detector = TruthDetector(clip)
    results = _run(VideoPoseTracker(estimator, VideoOptions(detect_every=1)), clip.frames)
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
    detector = estimator.detector = TruthDetector(clip)
    # The random network's keypoint scores are low: every keypoint counts for the carried box here.
    options = VideoOptions(detect_every=4, keypoint_threshold=0.0)
    results = _run(VideoPoseTracker(estimator, options), clip.frames)
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
    results = _run(VideoPoseTracker(estimator, VideoOptions(detect_every=4, keypoint_threshold=0.0)), clip.frames[:6])
    assert estimator.detector.calls == [0, 4]
    assert [len(r) for r in results] == [3] * 6


# Clutter that a weak detector boxes in every frame, clear of the walker's path (x 90 to 240 px).
BACKGROUND = [(2.0, 10.0, 45.0, 100.0), (262.0, 90.0, 55.0, 95.0)]


def _walker(num_frames: int = 40):
    """One figure walking right at 2 px a frame across a 320 × 192 frame."""
    return moving_figures(num_frames=num_frames, starts=(120.0,), speeds=(2.0,))


def _follow(clip, detector, options):
    """Every frame of ``clip`` through a ``VideoPoseTracker`` with the clip's stand-in estimator."""
    tracker = VideoPoseTracker(TruthEstimator(clip, detector), options)  # type: ignore[arg-type]
    return [tracker(frame, i / clip.fps) for i, frame in enumerate(clip.frames)]


@pytest.mark.parametrize("detect_every", [1, 5])
def test_one_person_keeps_one_id_through_a_weak_detectors_misses_and_clutter(detect_every):
    """The detector misses the walker on every other detection frame, boxes it loosely and jittering when it
    finds it, and boxes the background every time: the walker is in every frame with id 1 (carried by its own
    keypoints through the misses), and nobody is on the background."""
    walk = _walker()
    detector = WeakDetector(walk, BACKGROUND)
    results = _follow(walk, detector, VideoOptions(detect_every=detect_every, smooth=OneEuroSettings()))
    assert detector.calls == list(range(0, 40, detect_every))
    for f, tracked in enumerate(results):
        (person,) = tracked
        assert person.track_id == 1
        assert person.detected == (f % detect_every == 0 and f // detect_every % 2 == 0)
        assert box_overlap(person.pose.box, walk.boxes[f])[0, 0] > 0.8
        assert np.abs(person.pose.keypoints - walk.keypoints[f][0]).max() < 10


def test_a_detection_without_a_credible_pose_starts_no_track():
    """The background boxes give poses with no sure keypoint: with ``new_track_keypoints`` 0 they become persons
    (as every detection did before), with the default they never do."""
    walk = _walker(num_frames=4)
    every_box = _follow(walk, WeakDetector(walk, BACKGROUND), VideoOptions(new_track_keypoints=0))
    assert [sorted(t.track_id for t in r) for r in every_box] == [[1, 2, 3]] * 4  # the walker and the clutter
    credible = _follow(walk, WeakDetector(walk, BACKGROUND), VideoOptions())
    assert [[t.track_id for t in r] for r in credible] == [[1]] * 4


def test_a_track_the_detector_keeps_missing_ends_after_max_detector_misses():
    walk = _walker(num_frames=7)
    truth = TruthDetector(walk)

    def first_call_only(image):
        found = truth(image)
        return found if len(truth.calls) == 1 else Detections(np.zeros((0, 4)), np.zeros(0))

    results = _follow(walk, first_call_only, VideoOptions(max_detector_misses=3))
    assert [[(t.track_id, t.detected) for t in r] for r in results] == [[(1, True)]] + [[(1, False)]] * 3 + [[]] * 3
    with pytest.raises(ConfigError, match="max_detector_misses is a number of detection frames"):
        VideoOptions(max_detector_misses=-1)
    with pytest.raises(ConfigError, match="new_track_keypoints is a number of keypoints"):
        VideoOptions(new_track_keypoints=-1)


def _jitter(results) -> float:
    keypoints = np.stack([r[0].pose.keypoints for r in results])
    return float(np.linalg.norm(np.diff(keypoints, axis=0), axis=-1).mean())


def test_smoothing_lowers_the_jitter_of_still_keypoints_in_whole_image_mode(tiny):
    """A still figure filmed with sensor noise: the keypoints jump from frame to frame; One-Euro steadies them.
    Without a detector the whole frame is one person, whose id stays 1."""
    still = moving_figures(num_frames=16, starts=(160.0,), speeds=(0.0,), size=(192, 192), noise=12.0)
    estimator = tiny[0]
    raw = _run(VideoPoseTracker(estimator, VideoOptions()), still.frames, fps=30.0)
    smooth = _run(VideoPoseTracker(estimator, VideoOptions(smooth=OneEuroSettings())), still.frames, fps=30.0)
    assert all([t.track_id for t in r] == [1] for r in raw + smooth)
    assert _jitter(raw) > 0.1
    # The random network's keypoints jump by tens of pixels, which One-Euro partly takes for motion (its speed
    # term opens the filter); without the speed term (beta 0) it holds them far steadier.
    assert _jitter(smooth) < 0.8 * _jitter(raw)
    steady = VideoOptions(smooth=OneEuroSettings(beta=0.0))
    assert _jitter(_run(VideoPoseTracker(estimator, steady), still.frames, fps=30.0)) < 0.4 * _jitter(raw)


def test_predict_cli_writes_h264_and_json_lines_with_track_ids(predict_argv, clip, tmp_path):
    video = tmp_path / "walk.avi"
    write_clip(clip, video)
    out = tmp_path / "out"
    args = ["--out", out, "--detect-every", "3", "--smooth", "--threshold", "0"]  # random keypoints score low
    assert main(predict_argv(*args, video)) == 0
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
    assert sorted(p.name for p in out.glob(".*")) == [LOCK, MANIFEST]  # no temporary file left


# A variable frame rate: 25 frames/s for 0.28 s, a second's gap, three frames, two seconds' gap, one last frame.
VFR_TIMES = [0.04 * i for i in range(8)] + [1.28 + 0.04 * i for i in range(3)] + [3.36]


def _write_vfr(frames, times, path, format=None) -> None:
    """BGR frames as an H.264 MP4 whose frames carry the presentation ``times`` (seconds, in milliseconds);
    ``format="h264"``: a raw H.264 stream, which has no timestamps."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format=format) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for bgr, time in zip(frames, times, strict=True):
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), format="rgb24")
            frame.pts, frame.time_base = round(time * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_a_variable_frame_rate_file_keeps_its_presentation_times(tiny, tmp_path):
    """The JSON lines' times are the frames' own (not frame / the nominal rate that OpenCV reports), and the
    One-Euro smoothing ran on them: tracking the decoded frames at those times gives the written keypoints, at
    frame / rate times others."""
    estimator = tiny[0]
    walk = moving_figures(num_frames=len(VFR_TIMES), size=(96, 128), starts=(64.0,), speeds=(1.0,))
    video = tmp_path / "vfr.mp4"
    _write_vfr(walk.frames, VFR_TIMES, video)
    smooth = VideoOptions(smooth=OneEuroSettings())
    (written,) = predict_video(estimator, video, tmp_path / "out", options=smooth, draw=False, progress=False)
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    assert [line["time"] for line in lines] == pytest.approx(VFR_TIMES, abs=1e-4)
    capture = cv2.VideoCapture(str(video))
    nominal = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    assert len(frames) == len(VFR_TIMES) and nominal > 0
    keypoints = [np.array(line["persons"][0]["keypoints"]).reshape(-1, 3)[:, :2] for line in lines]
    for times, same in ((VFR_TIMES, True), ([i / nominal for i in range(len(frames))], False)):
        tracker = VideoPoseTracker(estimator, smooth)
        tracked = [tracker(frame, time)[0].pose.keypoints for frame, time in zip(frames, times, strict=True)]
        assert all(np.abs(a - b).max() <= 1e-3 for a, b in zip(tracked, keypoints, strict=True)) == same
    # Without timestamps (OpenCV reads 0 for every frame of a raw stream) the frames are 1 / rate apart.
    raw = tmp_path / "raw.h264"
    _write_vfr(walk.frames[:4], VFR_TIMES[:4], raw, format="h264")
    (written,) = predict_video(estimator, raw, tmp_path / "out", draw=False, progress=False)
    assert [json.loads(line)["time"] for line in written.read_text().splitlines()] == [0, 0.04, 0.08, 0.12]


def _label_extent(estimator, box, size=(192, 320)):
    """(top, bottom, left, right) pixels that the track-id label changes in the drawing of a person in ``box``."""
    image = np.full((*size, 3), 90, np.uint8)
    person = PersonPose(np.array(box, dtype=np.float64), np.zeros((17, 2)), np.zeros(17), 0.9)
    plain = draw_persons(image, [person], estimator.keypoint_set, 0.3)
    labelled = draw_persons(image, [person], estimator.keypoint_set, 0.3, track_ids=[7])
    rows, cols = np.nonzero((plain != labelled).any(axis=2))
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.mark.parametrize("box", [(100, 0, 60, 90), (290, 0, 30, 90), (300, 60, 20, 80), (100, 2, 60, 190)])
def test_track_id_labels_stay_whole_inside_the_frame(tiny, box):
    """A person whose box touches the top edge (the label goes below the box's top), the top-right corner, the
    right edge, or fills the frame's height: the label keeps the size it has in open space, inside the frame."""
    estimator = tiny[0]
    top, bottom, left, right = _label_extent(estimator, (100, 80, 60, 90))  # room above and to the right
    assert bottom < 80 and left >= 100  # above the box, at its left corner
    edge = _label_extent(estimator, box)
    assert (edge[1] - edge[0], edge[3] - edge[2]) == (bottom - top, right - left)
    assert edge[0] > 0 and edge[1] < 191 and edge[3] < 319


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
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(decoded) == 5
    for got, sent in zip(decoded, frames, strict=True):
        assert np.abs(got[:33, :47].astype(int) - sent).mean() < 4  # lossy, but the same picture


def test_h264_writer_makes_no_b_frames(tmp_path):
    """The writer runs beside the network: x264's B-frame decisions cost it a fifth or more of its time, so none are
    made (every packet is decoded in the order it is shown)."""
    path = tmp_path / "moving.mp4"
    writer = H264Writer(path, fps=25)
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    for i in range(30):
        writer.write(np.roll(background, 2 * i, axis=1))
    writer.close()
    with av.open(str(path)) as container:
        kinds = [av.video.frame.PictureType(frame.pict_type).name for frame in container.decode(video=0)]
    assert len(kinds) == 30 and kinds[0] == "I"
    assert "B" not in kinds and "P" in kinds


def test_h264_writer_keeps_colours(tmp_path):
    """Blocks of red, green, blue, white, black and mid grey come back as they went in: the 4:2:0 conversion's
    colour matrix and range are the ones players decode with (BT.601, limited range)."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0), (128, 128, 128)]
    frame = np.concatenate([np.full((64, 32, 3), c, np.uint8) for c in colours], axis=1)
    for order, image in (("rgb", frame), ("bgr", np.ascontiguousarray(frame[..., ::-1]))):
        path = tmp_path / f"colours_{order}.mp4"
        writer = H264Writer(path, fps=10)
        for _ in range(3):
            writer.write(image, channel_order=order)
        writer.close()
        with av.open(str(path)) as container:
            got = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
        for i, colour in enumerate(colours):
            block = got[8:56, 32 * i + 8 : 32 * i + 24]  # inside the block: clear of 4:2:0 chroma at the edges
            assert np.abs(block - np.array(colour)).max() <= 6, (order, colour, block.mean(axis=(0, 1)))
    with pytest.raises(DataError, match="channel_order must be 'rgb' or 'bgr', got 'yuv'"):
        H264Writer(tmp_path / "never.mp4", fps=10).write(frame, channel_order="yuv")


def test_encoder_failure_is_one_clear_error(tmp_path):
    writer = H264Writer(tmp_path / "x.mp4", fps=10, codec="no_such_encoder")
    with pytest.raises(DataError, match="no_such_encoder encoder is not available"):
        writer.write(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(DataError, match=r"missing/x.mp4: .*No such file or directory"):
        writer = H264Writer(tmp_path / "missing" / "x.mp4", fps=10)
        writer.write(np.zeros((16, 16, 3), np.uint8))
        writer.close()


def test_unwritable_out_folder_and_unopenable_sources_are_one_line(predict_argv, clip, tmp_path, capsys):
    video = tmp_path / "walk.avi"
    write_clip(clip, video)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(predict_argv("--out", blocker / "out", video)) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot write the --out folder" in err and len(err.splitlines()) == 1
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main(predict_argv("--out", tmp_path / "out", broken, "999")) == 1
    err = capsys.readouterr().err
    assert "OpenCV cannot open the video" in err and "999: OpenCV cannot open the webcam" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == [LOCK]  # nothing written but the lock file


def test_sources_and_their_output_names():
    assert is_live_source("0") and is_live_source("rtsp://cam.local:554/live") and is_live_source("http://x/y.mp4")
    assert not is_live_source("clip.mp4")
    assert source_stem("0") == "webcam0"
    assert source_stem("rtsp://user@cam.local:554/live/ch1?tcp") == "stream_user_cam.local_554_live_ch1"
    assert source_stem("videos/walk.mp4") == "walk"


def test_a_webcam_index_is_ascii_digits_that_fit_opencv():
    # "²".isdigit() and "³⁴".isdigit() are true but int() refuses them: they are file names, not webcams.
    for name in ("²", "³⁴", "٣", "99999999999"):
        assert not is_live_source(name) and source_stem(name) == name
    assert is_live_source("2147483647") and source_stem("007") == "webcam007"


def test_a_stream_over_http_is_read_to_its_end(tiny, clip, tmp_path):
    """A stream URL (here HTTP from 127.0.0.1): read frame by frame with no known length, outputs completed."""
    estimator = tiny[0]
    estimator.detector = TruthDetector(clip)
    served = tmp_path / "served"
    served.mkdir()
    write_clip(clip, served / "walk.avi")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/walk.avi"
        written = predict_video(estimator, url, tmp_path / "out", progress=False, draw=False)
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


class _MjpegStream(http.server.BaseHTTPRequestHandler):
    """A live camera over HTTP: the frames as a multipart MJPEG stream, paced at ``fps`` frames a second."""

    frames: ClassVar[list[bytes]] = []
    fps = 50.0

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        start = time.monotonic()
        try:
            for i, jpeg in enumerate(self.frames):
                time.sleep(max(0.0, start + i / self.fps - time.monotonic()))
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
                self.wfile.write(jpeg + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format, *args):  # the standard library's signature
        pass


class _SlowNetwork:
    """An estimator's network that takes at least ``seconds`` a call, as a big one on a small CPU."""

    def __init__(self, network, seconds):
        self.network, self.seconds = network, seconds

    def __call__(self, images):
        time.sleep(self.seconds)
        return self.network(images)


def test_a_live_source_drops_the_frames_it_cannot_keep_up_with(tiny, tmp_path):
    """A camera at 50 frames/s and a network that takes 80 ms a frame: the newest frame is always the one
    estimated, so most frames are dropped rather than queued and the latency stays near one network call; the
    detector runs in its own thread, on fewer frames than the network, and its boxes reach the tracks."""
    walk = moving_figures(num_frames=60, starts=(120.0,), speeds=(2.0,))
    _MjpegStream.frames = [cv2.imencode(".jpg", f)[1].tobytes() for f in walk.frames]
    estimator = copy.copy(tiny[0])
    estimator.model = _SlowNetwork(estimator.model, 0.08)
    detector = estimator.detector = TruthDetector(walk)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MjpegStream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stats = VideoStats()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.mjpg"
        options = VideoOptions(detect_every=3, keypoint_threshold=0.0)
        (written,) = predict_video(estimator, url, tmp_path / "out", options=options, draw=False, progress=False,
                                   stats=stats)  # fmt: skip
    finally:
        server.shutdown()
        thread.join()
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    assert len(lines) == stats.estimated and stats.offered == 60
    assert stats.estimated < 0.6 * stats.offered  # dropped, not queued
    # Queued, the frames would wait ever longer (the 60th about 60 × 80 ms - 1.2 s = 3.6 s); dropped, a frame waits
    # one network call or so (the bound leaves room for a loaded machine).
    assert stats.percentile(50) < 1.0
    assert 0 < len(detector.calls) <= stats.estimated
    assert any(p["track_id"] == 1 for line in lines for p in line["persons"])


def test_a_truncated_file_says_where_decoding_stopped(tiny, tmp_path, caplog):
    whole = tmp_path / "whole.avi"
    write_clip(moving_figures(num_frames=30, size=(96, 128), starts=(64.0,), speeds=(1.0,)), whole)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 5])  # the header still announces 30 frames
    (written,) = predict_video(tiny[0], cut, tmp_path / "out", draw=False, progress=False)
    decoded = len(written.read_text().splitlines())
    assert 0 < decoded < 30
    assert f"cut.avi: decoding stopped at frame {decoded} of the 30 its header announces" in caplog.text
    caplog.clear()
    predict_video(tiny[0], whole, tmp_path / "out_whole", draw=False, progress=False)
    assert "decoding stopped" not in caplog.text
