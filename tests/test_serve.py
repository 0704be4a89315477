"""`hrnet serve`: every route, every bad input (each followed by a good request), batching, the CLI."""

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="hrnet serve needs the 'serve' extra (pip install -e '.[serve]')")
from fastapi.testclient import TestClient

from hrnet.cli import main
from hrnet.detect import Detections, load_detector
from hrnet.errors import DataError
from hrnet.inference import PoseEstimator
from hrnet.serve import PoseBatcher, ServeLimits, create_app, decode_image
from tests.engine.conftest import random_weights_experiment

LIMITS = ServeLimits(max_upload_bytes=1 << 20, max_pixels=1_000_000, max_boxes=5)


@pytest.fixture(scope="module")
def served(datasets_dir, tmp_path_factory):
    """A tiny experiment with random weights (non-trivial outputs), its files and an estimator."""
    tmp = tmp_path_factory.mktemp("serve")
    config, config_path, weights, _ = random_weights_experiment(datasets_dir, tmp)
    estimator = PoseEstimator.from_config(config, weights, device="cpu")
    return estimator, config_path, weights


@pytest.fixture(scope="module")
def client(served):
    with TestClient(create_app(served[0], limits=LIMITS, model_name="tiny")) as c:
        yield c


@pytest.fixture(scope="module")
def photo(datasets_dir) -> Path:
    return datasets_dir / "coco" / "000000000785.jpg"


def _upload(path: Path, **fields: str) -> dict:
    return {"files": {"image": (path.name, path.read_bytes(), "image/jpeg")}, "data": fields}


def _keypoints(result: dict) -> np.ndarray:
    return np.array([p["keypoints"] for p in result["persons"]]).reshape(len(result["persons"]), -1, 3)


def _png(width: int, height: int, rows: int = 0) -> bytes:
    """A grey PNG of ``width`` × ``height`` whose first ``rows`` rows of zero pixels are really compressed in (a
    small file that decodes to a huge image); 0 rows: a header with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = b""
    if rows:
        packer = zlib.compressobj(1)
        row = b"\0" * (width + 1)  # filter byte + pixels
        pixels = chunk(b"IDAT", b"".join(packer.compress(row) for _ in range(rows)) + packer.flush())
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + pixels + chunk(b"IEND", b"")


def test_healthz_and_model(client, served):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    model = client.get("/v1/model").json()
    estimator = served[0]
    assert model["name"] == "tiny" and model["keypoint_set"] == "coco17" and model["num_keypoints"] == 17
    assert model["keypoint_names"] == list(estimator.keypoint_set.names)
    assert model["input_size"] == [128, 96] and model["precision"] == "float32" and model["backend"] == "torch"
    assert len(model["skeleton"]) == len(model["limb_colours"]) == 19 and len(model["keypoint_colours"]) == 17
    assert model["detector"] is False and model["limits"]["max_boxes"] == 5 and model["limits"]["max_batch"] == 8


def test_multipart_upload_gives_the_estimators_keypoints(client, served, photo):
    response = client.post("/v1/pose", **_upload(photo))
    assert response.status_code == 200, response.text
    result = response.json()
    expected = served[0](photo)  # a file path: decoded by the estimator itself
    assert result["image"] == {"height": 425, "width": 640}
    assert len(result["persons"]) == 1
    person = result["persons"][0]
    assert person["bbox"] == [0.0, 0.0, 640.0, 425.0] and person["category_id"] == 1
    np.testing.assert_allclose(_keypoints(result)[0, :, :2], expected[0].keypoints, atol=2e-3)
    np.testing.assert_allclose(_keypoints(result)[0, :, 2], expected[0].scores, atol=2e-3)
    assert person["score"] == pytest.approx(expected[0].score, abs=1e-4)
    assert result["keypoint_names"][0] == "nose"
    assert set(result["timing_ms"]) == {"decode", "detect", "pose", "queue", "total"}
    assert result["timing_ms"]["total"] >= result["timing_ms"]["pose"] > 0


def test_json_with_boxes_scores_and_image_id(client, served, photo):
    boxes = [[280.0, 44.0, 218.0, 346.0], [10.0, 20.0, 100.0, 200.0]]
    body = {"image": base64.b64encode(photo.read_bytes()).decode(), "boxes": boxes, "box_scores": [0.9, 0.5]}
    result = client.post("/v1/pose", json=body | {"image_id": 785}).json()
    expected = served[0](photo, np.array(boxes), np.array([0.9, 0.5]))
    assert [p["image_id"] for p in result["persons"]] == [785, 785]
    assert [p["bbox"] for p in result["persons"]] == boxes
    np.testing.assert_allclose(_keypoints(result)[..., :2], np.stack([p.keypoints for p in expected]), atol=2e-3)
    assert [p["score"] for p in result["persons"]] == pytest.approx([p.score for p in expected], abs=1e-4)
    # A data URL (as a browser's FileReader gives) works too, and the same boxes come as multipart fields.
    data_url = client.post("/v1/pose", json=body | {"image": "data:image/jpeg;base64," + body["image"]}).json()
    form = client.post("/v1/pose", **_upload(photo, boxes=json.dumps(boxes), box_scores="[0.9, 0.5]")).json()
    assert data_url["persons"] == form["persons"] == [p | {"image_id": 0} for p in result["persons"]]
    named = client.post("/v1/pose", **_upload(photo, image_id="me.jpg")).json()["persons"][0]["image_id"]
    assert (
        named == "me.jpg"
        and client.post("/v1/pose", **_upload(photo, image_id="7")).json()["persons"][0]["image_id"] == 7
    )
    # No box at all: no person.
    assert client.post("/v1/pose", json=body | {"boxes": [], "box_scores": []}).json()["persons"] == []


def test_draw_returns_the_drawn_jpeg(client, photo):
    response = client.post("/v1/pose?draw=1", **_upload(photo))
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    drawn = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imread(str(photo))
    assert drawn.shape == original.shape
    # The box (white, 3 px, around the whole image) and skeleton change many pixels beyond JPEG noise.
    changed = np.abs(drawn.astype(int) - original.astype(int)).max(axis=2) > 60
    assert changed.mean() > 0.005
    assert (drawn[1, 5:-5] > 200).all(axis=1).mean() > 0.9  # the whole-image box's top edge (limbs may cross it)


def test_page_needs_nothing_from_elsewhere(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'id="file"' in page and 'id="view"' in page and 'id="keypoints"' in page
    assert "http://" not in page and "https://" not in page and "@import" not in page
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "font-src 'none'" in policy


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) >= {"/v1/pose", "/v1/model", "/healthz"}
    body = spec["paths"]["/v1/pose"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}


def _chunks(data: bytes, size: int = 65536):
    for start in range(0, len(data), size):
        yield data[start : start + size]


BAD_INPUTS = {
    "body over the limit": (
        lambda p: {"files": {"image": ("big.jpg", b"\xff" * (1 << 20), "image/jpeg")}},
        413,
        "over this server's limit of 1,048,576 bytes",
    ),
    "chunked body over the limit": (
        lambda p: {"content": _chunks(b"{" * (2 << 20)), "headers": {"content-type": "application/json"}},
        413,
        "over this server's limit",
    ),
    "not an image": (
        lambda p: {"files": {"image": ("a.jpg", b"GIF? no, just text", "image/jpeg")}},
        400,
        "not an image",
    ),
    "corrupt image": (
        lambda p: {"files": {"image": ("a.jpg", p.read_bytes()[:3000], "image/jpeg")}},
        400,
        "does not decode: truncated or corrupt",
    ),
    "zero bytes": (lambda p: {"files": {"image": ("a.jpg", b"", "image/jpeg")}}, 400, "the image is empty"),
    "zero-size image": (lambda p: {"files": {"image": ("a.png", _png(0, 10), "image/png")}}, 400, "not an image"),
    "decompression bomb": (
        lambda p: {"files": {"image": ("bomb.png", _png(6000, 6000, rows=6000), "image/png")}},
        400,
        "6000×6000 = 36,000,000 pixels, over this server's limit of 1,000,000",
    ),
    "decompression bomb beyond Pillow's own limit": (
        lambda p: {"files": {"image": ("bomb.png", _png(20000, 20000), "image/png")}},
        400,
        "too many pixels to decode safely",
    ),
    "too many boxes": (
        lambda p: _upload(p, boxes=json.dumps([[0, 0, 10, 10]] * 6)),
        400,
        "too many boxes: 6, this server's limit is 5",
    ),
    "NaN box (JSON)": (
        lambda p: {
            "content": b'{"image": "%s", "boxes": [[NaN, 0, 10, 10]]}' % base64.b64encode(p.read_bytes()),
            "headers": {"content-type": "application/json"},
        },
        400,
        "box 0 holds NaN or infinity",
    ),
    "infinite box (multipart)": (
        lambda p: _upload(p, boxes="[[0, 0, 10, 10], [0, 0, Infinity, 10]]"),
        400,
        "box 1 holds NaN or infinity",
    ),
    "box of strings": (lambda p: _upload(p, boxes='[["0", 0, 10, 10]]'), 400, "expected a list of person boxes"),
    "box of 3 numbers": (lambda p: _upload(p, boxes="[[0, 0, 10]]"), 400, "expected a list of person boxes"),
    "zero-width box": (lambda p: _upload(p, boxes="[[0, 0, 0, 10]]"), 400, "zero or negative width or height"),
    "boxes not JSON": (lambda p: _upload(p, boxes="[[0, 0"), 400, "boxes: not valid JSON"),
    "scores not matching boxes": (
        lambda p: _upload(p, boxes="[[0, 0, 10, 10]]", box_scores="[1, 1]"),
        400,
        "a list of 1 numbers, one per box",
    ),
    "NaN score": (lambda p: _upload(p, boxes="[[0, 0, 10, 10]]", box_scores="[NaN]"), 400, "NaN or infinity"),
    "bad base64": (lambda p: {"json": {"image": "not base64!"}}, 400, "not valid base64"),
    "JSON without image": (lambda p: {"json": {"boxes": []}}, 400, 'must be an object with "image"'),
    "JSON with an unknown field": (lambda p: {"json": {"image": "", "box": []}}, 400, "unknown JSON field(s) ['box']"),
    "image_id of the wrong type": (
        lambda p: {"json": {"image": "", "image_id": [1]}},
        400,
        "image_id: expected a number",
    ),
    "malformed JSON": (
        lambda p: {"content": b'{"image": ', "headers": {"content-type": "application/json"}},
        400,
        "does not parse",
    ),
    "multipart without an image field": (
        lambda p: {"files": {"photo": ("a.jpg", p.read_bytes(), "image/jpeg")}},
        400,
        "field named 'image'",
    ),
    "wrong content type": (
        lambda p: {"content": p.read_bytes(), "headers": {"content-type": "image/jpeg"}},
        415,
        "send multipart/form-data",
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_refused_and_the_server_goes_on(client, photo, name):
    request, status, message = BAD_INPUTS[name]
    response = client.post("/v1/pose", **request(photo))
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    good = client.post("/v1/pose", **_upload(photo))
    assert good.status_code == 200 and len(good.json()["persons"]) == 1
    assert client.get("/healthz").json()["status"] == "ok"


class _CountingModel:
    """The estimator's network, counting its calls (a flip-test forward pass is two)."""

    def __init__(self, model):
        self.model = model
        self.calls = 0
        self.batch_sizes: list[int] = []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.batch_sizes.append(len(images))
        return self.model(images)


def test_concurrent_requests_share_forward_passes(served, datasets_dir):
    estimator = served[0]
    counting = _CountingModel(estimator.model)
    shared = PoseEstimator(counting, estimator.codec, estimator.keypoint_set, estimator.test)
    photos = sorted((datasets_dir / "coco").glob("*.jpg"))[:4] * 2
    limits = ServeLimits(max_batch=8, batch_window_s=0.3)
    results: list = [None] * len(photos)
    with TestClient(create_app(shared, limits=limits)) as c:
        start = threading.Barrier(len(photos))

        def post(i: int) -> None:
            start.wait()
            results[i] = c.post("/v1/pose", **_upload(photos[i]))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(len(photos))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        health = c.get("/healthz").json()
    assert all(r.status_code == 200 for r in results)
    assert health["requests"] == len(photos)
    assert health["forward_batches"] < len(photos), health
    assert health["busy_seconds"] > 0
    passes = counting.calls // 2 if estimator.test.flip_test else counting.calls
    assert passes == health["forward_batches"] and max(counting.batch_sizes) > 1
    assert max(r.json()["batch"]["requests"] for r in results) > 1
    # Batched, each image gets what it gets alone.
    for path, response in zip(photos, results, strict=True):
        alone = estimator(path)[0]
        np.testing.assert_allclose(_keypoints(response.json())[0, :, :2], alone.keypoints, atol=2e-3)


def test_a_failing_image_fails_alone(served, datasets_dir):
    batcher = PoseBatcher(served[0], max_batch=8, window_s=0.3)
    try:
        image = cv2.imread(str(datasets_dir / "coco" / "000000000785.jpg"))
        good = batcher.submit(image, None, None)
        bad = batcher.submit(image.astype(np.float32), None, None)  # the estimator refuses float pixels
        persons, info = good.result(timeout=60)
        assert len(persons) == 1 and info.requests == 1
        with pytest.raises(DataError, match="uint8"):
            bad.result(timeout=60)
        assert batcher.alive
        assert len(batcher.submit(image, np.zeros((0, 4)), None).result(timeout=60)[0]) == 0
    finally:
        batcher.close()
    assert not batcher.alive


class _FixedDetector:
    """A detector of fixed answers (records the image it was given): two persons, a NaN box and a zero-size one
    (both dropped)."""

    def __init__(self):
        self.seen: list[np.ndarray] = []

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        self.seen.append(image_bgr)
        boxes = np.array([[10.0, 20.0, 100.0, 200.0], [np.nan, 0, 5, 5], [280.0, 44.0, 218.0, 346.0], [0, 0, 0, 5]])
        return Detections(boxes, np.array([0.6, 0.99, 0.8, 0.99]))


def test_detector_boxes_are_used_when_the_request_has_none(served, photo):
    detector = _FixedDetector()
    with TestClient(create_app(served[0], detector, limits=LIMITS)) as c:
        assert c.get("/v1/model").json()["detector"] is True
        result = c.post("/v1/pose", **_upload(photo)).json()
        assert [p["bbox"] for p in result["persons"]] == [[280.0, 44.0, 218.0, 346.0], [10.0, 20.0, 100.0, 200.0]]
        given = c.post("/v1/pose", **_upload(photo, boxes="[[1, 2, 30, 40]]")).json()
        assert [p["bbox"] for p in given["persons"]] == [[1.0, 2.0, 30.0, 40.0]]
    assert len(detector.seen) == 1
    np.testing.assert_array_equal(detector.seen[0], cv2.imread(str(photo)))  # BGR, as cv2.imread gives


def test_requests_over_the_pending_limit_get_503(served, photo):
    release = threading.Event()

    def slow_detector(image_bgr: np.ndarray):
        release.wait(60)
        return _FixedDetector()(image_bgr)

    limits = ServeLimits(max_pending=1, max_upload_bytes=1 << 20)
    with TestClient(create_app(served[0], slow_detector, limits=limits)) as c:
        first: list = []
        holder = threading.Thread(target=lambda: first.append(c.post("/v1/pose", **_upload(photo))))
        holder.start()
        deadline = time.monotonic() + 30
        while c.get("/healthz").json()["in_progress"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        busy = c.post("/v1/pose", **_upload(photo))
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "busy: 1 requests in progress, the limit is 1" in busy.json()["detail"]
        release.set()
        holder.join(60)
        assert first[0].status_code == 200 and len(first[0].json()["persons"]) == 2
        assert c.post("/v1/pose", **_upload(photo)).status_code == 200
        assert c.get("/healthz").json()["in_progress"] == 0


def test_decode_image_reads_the_header_before_the_pixels():
    _, png = cv2.imencode(".png", np.full((20, 30), 7, np.uint8))
    image = decode_image(png.tobytes(), max_pixels=600)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    with pytest.raises(DataError, match="30×20 = 600 pixels, over this server's limit of 599"):
        decode_image(png.tobytes(), max_pixels=599)


def test_the_hog_detector_and_the_estimators_own(served, photo):
    estimator = served[0]
    hog = load_detector("hog")
    found = hog(cv2.imread(str(photo)))
    with TestClient(create_app(estimator, hog, limits=LIMITS)) as c:
        result = c.post("/v1/pose", **_upload(photo)).json()
    np.testing.assert_allclose([p["bbox"] for p in result["persons"]], found.boxes.reshape(-1, 4), atol=0.01)
    # An estimator built with a detector brings it along.
    carrying = PoseEstimator(estimator.model, estimator.codec, estimator.keypoint_set, estimator.test, detector=hog)
    with TestClient(create_app(carrying, limits=LIMITS)) as c:
        assert c.get("/v1/model").json()["detector"] is True
        assert len(c.post("/v1/pose", **_upload(photo)).json()["persons"]) == len(found)


def test_cli_unknown_detector_is_one_line(served, capsys):
    _, config_path, weights = served
    assert main(["serve", str(config_path), "--weights", str(weights), "--detector", "no-such-detector"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hrnet serve: error: detector 'no-such-detector'") and len(err.splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_cli_serves_until_stopped(served, photo):
    _, config_path, weights = served
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    command = [sys.executable, "-m", "hrnet", "serve", str(config_path), "--weights", str(weights)]
    server = subprocess.Popen([*command, "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    assert json.load(r)["status"] == "ok"
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer within 2 minutes"
                time.sleep(0.5)
        body = json.dumps({"image": base64.b64encode(photo.read_bytes()).decode()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/pose", body, {"content-type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            assert len(json.load(r)["persons"]) == 1
    finally:
        server.terminate()
        server.wait(30)
