"""`hrnet serve`: every route, every bad input (each followed by a good request), batching, slow and vanishing
clients against a real server on 127.0.0.1, a soak run, the CLI."""

import base64
import contextlib
import http.client
import json
import logging
import math
import signal
import socket
import struct
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
import uvicorn
from fastapi.testclient import TestClient

from hrnet.apps.serve import PoseBatcher, ServeLimits, create_app, run_beside, serve
from hrnet.apps.serve.app import uvicorn_config
from hrnet.cli import main
from hrnet.config import load_config
from hrnet.errors import ConfigError, DataError
from hrnet.io.images import decode_image_bytes
from hrnet.pose.detect import Detections, load_detector
from hrnet.pose.estimator import PoseEstimator

LIMITS = ServeLimits(max_upload_bytes=1 << 20, max_pixels=1_000_000, max_boxes=5)


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
    assert model["input_size"] == [128, 96] and model["precision"] == "fp32" and model["backend"] == "pytorch-fast"
    assert model["engine"] == "PyTorch" and model["device"] == "cpu"
    assert len(model["skeleton"]) == len(model["limb_colours"]) == 19 and len(model["keypoint_colours"]) == 17
    assert model["detector"] is False and model["limits"]["max_boxes"] == 5 and model["limits"]["max_batch"] == 8
    assert (model["instance"], model["instances"]) == ("person", "persons")


@pytest.mark.parametrize(("task", "words"), [("hand", ("hand", "hands")), ("other", ("instance", "instances"))])
def test_the_model_says_what_its_boxes_hold(task_experiment, task, words):
    """/v1/model names what a box holds by the keypoint set's task; the page shows those words."""
    config_path, weights, keypoint_set = task_experiment(task)
    estimator = PoseEstimator.from_config(config_path, weights, device="cpu", backend="pytorch")
    with TestClient(create_app(estimator, model_name=task)) as client:
        model = client.get("/v1/model").json()
        page = client.get("/").text
    assert model["keypoint_set"] == keypoint_set.name and (model["instance"], model["instances"]) == words
    assert 'class="instance"' in page and "m.instance" in page and "person detector" not in page


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


@pytest.mark.parametrize("text, image_id", [("²", "²"), ("³⁴", "³⁴"), ("٣", "٣"), ("0042", 42), ("12a", "12a")])
def test_a_form_image_id_is_a_number_only_in_ascii_digits(client, photo, text, image_id):
    response = client.post("/v1/pose", **_upload(photo, image_id=text))
    assert response.status_code == 200, response.text
    assert response.json()["persons"][0]["image_id"] == image_id


def test_a_box_partly_outside_the_image_is_used(client, photo):
    boxes = [[-50.0, -40.0, 200.0, 300.0], [600.0, 400.0, 100.0, 100.0]]
    response = client.post("/v1/pose", **_upload(photo, boxes=json.dumps(boxes)))
    assert response.status_code == 200, response.text
    persons = response.json()["persons"]
    assert [p["bbox"] for p in persons] == boxes
    assert all(v is not None and math.isfinite(v) for p in persons for v in p["keypoints"])


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
        "the image does not decode: its JPEG data run out after 24 of its 425 rows (3,000 bytes; the file is cut",
    ),
    "zero bytes": (lambda p: {"files": {"image": ("a.jpg", b"", "image/jpeg")}}, 400, "does not decode (0 bytes"),
    "zero-size image": (lambda p: {"files": {"image": ("a.png", _png(0, 10), "image/png")}}, 400, "not an image"),
    "decompression bomb": (
        lambda p: {"files": {"image": ("bomb.png", _png(6000, 6000, rows=6000), "image/png")}},
        400,
        "6000×6000 = 36,000,000 pixels, over the limit of 1,000,000 (a guard against decompression bombs)",
    ),
    "decompression bomb beyond Pillow's own limit": (
        lambda p: {"files": {"image": ("bomb.png", _png(20000, 20000), "image/png")}},
        400,
        "pixels, refused by Pillow's guard against decompression bombs",
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
        "person box 0 [nan, 0, 10, 10] holds NaN or infinity",
    ),
    "infinite box (multipart)": (
        lambda p: _upload(p, boxes="[[0, 0, 10, 10], [0, 0, Infinity, 10]]"),
        400,
        "person box 1 [0, 0, inf, 10] holds NaN or infinity",
    ),
    "box of 1e308s, wholly outside the image": (
        lambda p: _upload(p, boxes="[[10, 10, 50, 50], [1e308, 1e308, 1e308, 1e308]]"),
        400,
        "person box 1 [1e+308, 1e+308, 1e+308, 1e+308] lies wholly outside the 640×425 image",
    ),
    "box left of the image": (
        lambda p: _upload(p, boxes="[[-100, 10, 100, 50]]"),
        400,
        "person box 0 [-100, 10, 100, 50] lies wholly outside the 640×425 image",
    ),
    "box below a pixel": (
        lambda p: _upload(p, boxes="[[10, 10, 1e-300, 1e-300]]"),
        400,
        "person box 0 [10, 10, 1e-300, 1e-300] is under 1 pixel wide or high",
    ),
    "box of the float limit's size": (
        lambda p: _upload(p, boxes="[[-1e308, -1e308, 1.7e308, 1.7e308]]"),
        400,
        "person box 0 [-1e+308, -1e+308, 1.7e+308, 1.7e+308] is more than 8 times the size of the 640×425 image",
    ),
    "integer too large for a float": (
        lambda p: {"json": {"image": base64.b64encode(p.read_bytes()).decode(), "boxes": [[0, 0, 10**400, 10]]}},
        400,
        "person box 0 [0, 0, inf, 10] holds NaN or infinity",
    ),
    "boxes nested 100,000 deep (multipart)": (
        lambda p: _upload(p, boxes="[" * 100_000 + "]" * 100_000),
        400,
        "boxes: JSON nested too deeply to read",
    ),
    "boxes nested 100,000 deep (JSON)": (
        lambda p: {
            "content": b'{"image": "%s", "boxes": %s%s}'
            % (base64.b64encode(p.read_bytes()), b"[" * 100_000, b"]" * 100_000),
            "headers": {"content-type": "application/json"},
        },
        400,
        "the JSON body does not parse: JSON nested too deeply to read",
    ),
    "image_id of 5,000 digits (JSON)": (
        lambda p: {
            "content": b'{"image": "", "image_id": %s}' % (b"9" * 5000),
            "headers": {"content-type": "application/json"},
        },
        400,
        "the JSON body does not parse: not valid JSON (Exceeds the limit (4300 digits)",
    ),
    "image_id of 201 characters": (lambda p: _upload(p, image_id="7" * 201), 400, "image_id: 201 characters"),
    "box of strings": (lambda p: _upload(p, boxes='[["0", 0, 10, 10]]'), 400, "expected a list of person boxes"),
    "box of 3 numbers": (lambda p: _upload(p, boxes="[[0, 0, 10]]"), 400, "expected a list of person boxes"),
    "zero-width box": (lambda p: _upload(p, boxes="[[0, 0, 0, 10]]"), 400, "under 1 pixel wide or high (width 0,"),
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


class _TimedEstimator:
    """Takes the estimator's place in a ``PoseBatcher`` to test its timing: every call takes ``seconds`` (the
    first also waits for ``gate`` when given) and is recorded as (start time, images); no persons come back."""

    def __init__(self, seconds: float, gate: threading.Event | None = None):
        self.seconds = seconds
        self.gate = gate
        self.calls: list[tuple[float, int]] = []

    def predict(self, images, boxes, box_scores, channel_order):
        self.calls.append((time.monotonic(), len(images)))
        if self.gate is not None and len(self.calls) == 1:
            assert self.gate.wait(30)
        time.sleep(self.seconds)
        return [[] for _ in images]


def _wait_until_queued(batcher: PoseBatcher, jobs: int) -> None:
    _wait_for(lambda: batcher.waiting == jobs, what=f"{jobs} queued jobs")


IMAGE = np.zeros((8, 8, 3), np.uint8)


def test_clients_answered_together_come_back_into_one_full_batch():
    """Eight clients in two groups of four (the second arrives while the first group's batch runs), each posting
    again 10-45 ms after its answer: the group answered last comes back while the other group waits, and the
    worker, expecting 8 persons, waits for it. Without that wait the groups take turns in batches of 4."""
    gate = threading.Event()
    estimator = _TimedEstimator(0.5, gate)
    batcher = PoseBatcher(estimator, max_batch=8, window_s=0.005, max_wait_s=1.0)

    def client(i: int, first_call: int) -> None:
        _wait_for(lambda: len(estimator.calls) >= first_call, what=f"call {first_call}")
        for _ in range(3):
            batcher.submit(IMAGE, None, None).result(60)
            time.sleep(0.01 + 0.005 * i)

    try:
        batcher.submit(IMAGE, None, None)  # holds the worker until the first group is queued
        threads = [threading.Thread(target=client, args=(i, 1 if i < 4 else 2)) for i in range(8)]
        for t in threads:
            t.start()
        _wait_until_queued(batcher, 4)
        gate.set()
        for t in threads:
            t.join(60)
    finally:
        batcher.close()
    assert [n for _, n in estimator.calls] == [1, 4, 8, 8, 4]
    assert batcher.forward_seconds == pytest.approx(0.5, abs=0.25)


def test_a_lone_request_waits_at_most_the_window_or_the_bound():
    """After a full batch the worker expects 8 persons: a request that comes alone waits for the others at most
    ``max_wait_s`` (here below a quarter of a pass); once the passes serve one request, it waits only the window."""
    gate = threading.Event()
    estimator = _TimedEstimator(0.6, gate)
    batcher = PoseBatcher(estimator, max_batch=8, window_s=0.005, max_wait_s=0.1)
    try:
        batcher.submit(IMAGE, None, None)
        _wait_for(lambda: len(estimator.calls) == 1, what="the first call")
        futures = [batcher.submit(IMAGE, None, None) for _ in range(8)]
        _wait_until_queued(batcher, 8)
        gate.set()
        for f in futures:
            f.result(60)
        assert [n for _, n in estimator.calls] == [1, 8]
        assert batcher.wait_s == pytest.approx(0.1)  # a quarter of the 0.6 s pass is 0.15, above the bound
        delays = []
        for _ in range(2):
            submitted = time.monotonic()
            batcher.submit(IMAGE, None, None).result(60)
            delays.append(estimator.calls[-1][0] - submitted)
    finally:
        batcher.close()
    assert [n for _, n in estimator.calls] == [1, 8, 1, 1]
    assert 0.095 <= delays[0] < 0.5, delays  # expected 8 persons: waited, up to the bound
    assert delays[1] < 0.08, delays  # the last pass served one: only the 5 ms window


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


def _with_detector(estimator: PoseEstimator, detector) -> PoseEstimator:
    """The same network and settings with another person detector."""
    network = estimator.backend or estimator.model
    return PoseEstimator(network, estimator.codec, estimator.keypoint_set, estimator.test, detector=detector)


def test_detector_boxes_are_used_when_the_request_has_none(served, photo):
    detector = _FixedDetector()
    with TestClient(create_app(_with_detector(served[0], detector), limits=LIMITS)) as c:
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
    with TestClient(create_app(_with_detector(served[0], slow_detector), limits=limits)) as c:
        first: list = []
        holder = threading.Thread(target=lambda: first.append(c.post("/v1/pose", **_upload(photo))))
        holder.start()
        deadline = time.monotonic() + 30
        while c.get("/healthz").json()["in_progress"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        try:
            busy = c.post("/v1/pose", **_upload(photo))
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert "busy: 1 requests in progress, the limit is 1" in busy.json()["detail"]
            health = c.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "saturated"
            assert health.json()["in_progress"] == health.json()["max_pending"] == 1
        finally:
            release.set()
        holder.join(60)
        assert first[0].status_code == 200 and len(first[0].json()["persons"]) == 2
        assert c.post("/v1/pose", **_upload(photo)).status_code == 200
        assert c.get("/healthz").json()["in_progress"] == 0
        assert c.get("/healthz").json()["status"] == "ok"


def test_decode_image_reads_the_header_before_the_pixels():
    _, png = cv2.imencode(".png", np.full((20, 30), 7, np.uint8))
    image = decode_image_bytes(png.tobytes(), max_pixels=600)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    with pytest.raises(DataError, match="30×20 = 600 pixels, over the limit of 599"):
        decode_image_bytes(png.tobytes(), max_pixels=599)


def test_the_hog_detector_and_the_estimators_own(served, photo):
    estimator = served[0]
    hog = load_detector("hog")
    found = hog(cv2.imread(str(photo)))
    with TestClient(create_app(_with_detector(estimator, hog), limits=LIMITS)) as c:
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


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("max_pixels", math.inf, "max_pixels must be a whole number ≥ 1, got inf"),
        ("max_upload_bytes", 0, "max_upload_bytes must be a whole number ≥ 1, got 0"),
        ("max_boxes", True, "max_boxes must be a whole number ≥ 1, got True"),
        ("batch_window_s", math.nan, "batch_window_s must be within 0-1 s, got nan"),
        ("max_batch_wait_s", math.inf, "max_batch_wait_s must be within 0-10 s, got inf"),
        ("body_timeout_s", 0.0, "body_timeout_s must be within 0.01-3600 s, got 0.0"),
        ("header_timeout_s", math.nan, "header_timeout_s must be within 0.01-3600 s, got nan"),
        ("answer_timeout_s", -1, "answer_timeout_s must be within 0.01-3600 s, got -1"),
        ("draw_threshold", math.nan, "draw_threshold must be a finite number, got nan"),
    ],
)
def test_serve_limits_refuse_values_out_of_range(field, value, message):
    with pytest.raises(ConfigError, match=f"^serve limits: {message}$"):
        ServeLimits(**{field: value})


@pytest.mark.parametrize(
    "option, message",
    [
        (["--max-upload-mb", "nan"], "argument --max-upload-mb: 'nan' is not a finite number above 0"),
        (["--max-megapixels", "inf"], "argument --max-megapixels: 'inf' is not a finite number above 0"),
        (["--max-megapixels", "-1"], "argument --max-megapixels: '-1' is not a finite number above 0"),
        (["--batch-window-ms", "nan"], "argument --batch-window-ms: 'nan' is not a finite number from 0 to 1000"),
        (["--batch-window-ms", "5000"], "argument --batch-window-ms: '5000' is not a finite number from 0 to 1000"),
        (["--port", "99999"], "argument --port: '99999' is not a whole number from 1 to 65535"),
    ],
)
def test_cli_limits_out_of_range_are_one_line(served, capsys, option, message):
    _, config_path, weights = served
    with pytest.raises(SystemExit) as refused:
        main(["serve", str(config_path), "--weights", str(weights), *option])
    err = capsys.readouterr().err.strip()
    assert refused.value.code == 2 and len(err.splitlines()) == 1 and err.startswith(f"hrnet serve: error: {message}")


@pytest.mark.parametrize("port", [0, 65536, 99999, -1])
def test_a_port_outside_1_to_65535_is_refused(served, port):
    with pytest.raises(ConfigError, match=rf"^port {port}: a TCP port is a whole number from 1 to 65535"):
        serve(served[0], port=port)


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "status"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)])
def test_cli_serves_until_stopped(hrnet_serve, photo, stop, status):
    server, port, log_path = hrnet_serve()
    try:
        body = json.dumps({"image": base64.b64encode(photo.read_bytes()).decode()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/pose", body, {"content-type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            assert len(json.load(r)["persons"]) == 1
    finally:
        server.send_signal(stop)
        server.wait(30)
    # SIGTERM and Ctrl-C stop it as they stop uvicorn (the network runs in the main thread, uvicorn beside it):
    # SIGTERM by the signal, Ctrl-C as every hrnet command (status 130, one line); no traceback.
    log = log_path.read_text()
    assert server.returncode == status, log
    assert "Traceback" not in log


def test_the_network_runs_in_the_thread_that_serves(served, photo, monkeypatch):
    """hrnet serve runs the pose worker in its own thread, the one that loaded the network (``run_beside``: one
    OpenMP team, the first memory arena), uvicorn beside it; the server stops when told, the worker with it."""
    estimator = served[0]
    threads = []
    predict = estimator.predict

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread())
        return predict(*args, **kwargs)

    monkeypatch.setattr(estimator, "predict", recorded)
    limits = ServeLimits()
    app = create_app(estimator, limits=limits)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=sock.getsockname()[1], limits=limits))
    answers = []

    def drive():
        try:
            _wait_for(lambda: server.started, what="the server's start")
            answers.append(_request(sock.getsockname()[1], "POST", "/v1/pose", *_multipart(photo.read_bytes()))[0])
            answers.append(_health(sock.getsockname()[1])["status"])
        finally:
            server.should_exit = True

    driver = threading.Thread(target=drive)
    driver.start()
    with sock:
        assert run_beside(server, app.state.batcher, sockets=[sock])
    driver.join(30)
    assert answers == [200, "ok"]
    assert threads == [threading.current_thread()]
    assert not app.state.batcher.alive


def test_serve_exits_1_when_its_port_is_taken(served):
    """uvicorn cannot start (it logs why): hrnet serve stops at once with status 1, as uvicorn itself does."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        start = time.monotonic()
        with pytest.raises(SystemExit) as stopped:
            serve(served[0], port=taken.getsockname()[1])
    assert stopped.value.code == 1 and time.monotonic() - start < 30


def test_a_worker_in_the_callers_thread_is_the_only_one(served):
    """``work_here``: a later ``start`` (the app's start-up) starts no second worker; ``close`` from another
    thread waits until the worker has served the queue; a second ``work_here`` is refused."""
    batcher = PoseBatcher(_TimedEstimator(0.05), max_batch=4, window_s=0.001)
    futures = []

    def ready():
        batcher.start()
        futures.append(batcher.submit(np.zeros((8, 8, 3), np.uint8), None, None))
        threading.Thread(target=batcher.close).start()

    batcher.work_here(until=lambda: False, ready=ready)
    assert futures[0].done() and futures[0].result()[1].requests == 1
    assert threading.active_count() < 50 and not batcher.alive
    with pytest.raises(RuntimeError, match="closed or has a worker already"):
        batcher.work_here(until=lambda: True)


# ------------------------------------------------------------------------- a real server: slow and vanishing clients


def test_answers_are_not_held_back_by_nagles_algorithm(served, live_server):
    """An answer is two writes (head, body): with Nagle's algorithm on, the body waits for the client to
    acknowledge the head, which Linux delays by 40 ms, on every request. ``live_server`` hands uvicorn a socket made
    with ``socket.socket()``, on which asyncio leaves the algorithm on: the protocol turns it off."""
    app = create_app(served[0], limits=ServeLimits())
    with live_server(app, ServeLimits()) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        seconds = []
        for _ in range(9):  # one kept-alive connection, as a client that posts photo after photo
            start = time.perf_counter()
            connection.request("GET", "/v1/model")
            response = connection.getresponse()
            response.read()
            seconds.append(time.perf_counter() - start)
        connection.close()
    assert sorted(seconds)[4] < 0.025, seconds  # the median: 40 ms and more with the algorithm on


def _request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None, timeout: float = 60):
    """(status, parsed JSON or raw bytes) of one request on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        payload = response.read()
        is_json = response.getheader("content-type", "").startswith("application/json")
        return response.status, json.loads(payload) if is_json else payload
    finally:
        connection.close()


def _health(port: int) -> dict:
    return _request(port, "GET", "/healthz")[1]


def _wait_for(condition, seconds: float = 30, what: str = "the condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not come true within {seconds} s"
        time.sleep(0.02)


BOUNDARY = "hrnet-test-boundary"


def _multipart(image: bytes, **fields: str) -> tuple[bytes, dict]:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
    parts.append(head.encode() + b"Content-Type: image/jpeg\r\n\r\n" + image + b"\r\n")
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.fixture(scope="module")
def small_jpeg(photo) -> bytes:
    """The sample photo at 160×106: a request whose decoding and drawing cost little."""
    ok, encoded = cv2.imencode(".jpg", cv2.resize(cv2.imread(str(photo)), (160, 106)))
    assert ok
    return encoded.tobytes()


def _stall(port: int, multipart: bool = False) -> socket.socket:
    """A client that sends a POST head announcing 1,000 bytes of body, then the first 20 of them, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    kind, body = ("application/json", b'{"image": "' + b"A" * 990)
    if multipart:
        kind = f"multipart/form-data; boundary={BOUNDARY}"
        body = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'.encode()
    head = f"POST /v1/pose HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\nContent-Length: 1000\r\n\r\n"
    sock.sendall(head.encode() + body[:20])
    return sock


def _read_until_closed(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    sock.settimeout(seconds)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_stalled_clients_hold_no_slot_and_are_cut_off_at_the_body_deadline(served, small_jpeg, live_server):
    """70 clients that send a head and 20 bytes of body, then stall, against 64 slots: a good request is answered
    within a second, /healthz says so, and at the body deadline each stalled client gets a 408 and is closed."""
    limits = ServeLimits(body_timeout_s=3.0)
    assert limits.max_pending == 64
    body, headers = _multipart(small_jpeg)
    with live_server(create_app(served[0], limits=limits), limits) as port:
        assert _request(port, "POST", "/v1/pose", body, headers)[0] == 200  # warm
        stalled = [_stall(port, multipart=i % 2 == 1) for i in range(70)]
        _wait_for(lambda: _health(port)["receiving"] == 70, what="70 bodies arriving")
        start = time.monotonic()
        status, result = _request(port, "POST", "/v1/pose", body, headers)
        assert status == 200 and len(result["persons"]) == 1
        assert time.monotonic() - start < 1.0
        health = _health(port)
        assert health["status"] == "ok" and health["in_progress"] == 0 and health["receiving"] == 70
        for sock in stalled:
            answer = _read_until_closed(sock, 30)
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b"connection: close" in answer.lower() and b"did not arrive within 3 s" in answer
            sock.close()
        health = _health(port)
        assert health["receiving"] == 0 and health["body_timeouts"] == 70 and health["status"] == "ok"
        assert _request(port, "POST", "/v1/pose", body, headers)[0] == 200


def test_a_request_head_must_arrive_within_the_header_timeout(served, small_jpeg, live_server):
    """A connection that sends nothing, and one that trickles its head a byte at a time, are closed at the
    deadline; a kept-alive connection's next request gets its own deadline."""
    limits = ServeLimits(header_timeout_s=1.0)
    with live_server(create_app(served[0], limits=limits), limits) as port:
        silent = socket.create_connection(("127.0.0.1", port), timeout=30)
        trickle = socket.create_connection(("127.0.0.1", port), timeout=30)
        start = time.monotonic()
        stop = threading.Event()

        def send_slowly() -> None:
            head = b"POST /v1/pose HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Pad: " + b"a" * 99
            for byte in head:
                if stop.wait(0.05):
                    return
                try:
                    trickle.send(bytes([byte]))
                except OSError:
                    return

        sender = threading.Thread(target=send_slowly)
        sender.start()
        try:
            assert _read_until_closed(silent, 10) == b""
            silent_closed = time.monotonic() - start
            assert _read_until_closed(trickle, 10) == b""
            trickle_closed = time.monotonic() - start
        finally:
            stop.set()
            sender.join()
            silent.close()
            trickle.close()
        assert 0.9 < silent_closed < 5 and 0.9 < trickle_closed < 5, (silent_closed, trickle_closed)
        # A kept-alive connection answers a request, then waits for the next head at most the deadline.
        body, headers = _multipart(small_jpeg)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/v1/pose", body, headers)
        assert connection.getresponse().read() and connection.sock is not None
        answered = time.monotonic()
        assert _read_until_closed(connection.sock, 10) == b""
        assert 0.9 < time.monotonic() - answered < 5
        connection.close()


@pytest.mark.parametrize("multipart", [False, True])
def test_a_client_that_goes_away_mid_body_is_one_info_line(served, small_jpeg, caplog, multipart, live_server):
    limits = ServeLimits()
    with live_server(create_app(served[0], limits=limits), limits) as port:
        uvicorn_log = logging.getLogger("uvicorn.error")  # its errors (tracebacks) go to uvicorn's own handler
        uvicorn_log.addHandler(caplog.handler)
        caplog.set_level(logging.INFO, logger="hrnet.apps.serve")
        try:
            _stall(port, multipart).close()
            _wait_for(lambda: _health(port)["client_disconnects"] == 1, what="the disconnect")
            assert _request(port, "POST", "/v1/pose", *_multipart(small_jpeg))[0] == 200
        finally:
            uvicorn_log.removeHandler(caplog.handler)
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO and gone[0].exc_info is None
    assert "(20 bytes of its body came)" in gone[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def _post_raw(port: int, body: bytes, headers: dict, path: str = "/v1/pose") -> socket.socket:
    """A connection that has sent one whole POST (head and body) and reads nothing yet."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(head.encode() + b"\r\n" + body)
    return sock


def test_a_client_that_half_closes_after_its_request_gets_its_answer(served, small_jpeg, live_server):
    """A client that sends its whole request, then shuts its side down (``nc -N``, some proxies): the answer comes,
    then the server closes. One that shuts down mid-body is a client gone, as before."""
    limits = ServeLimits()
    with live_server(create_app(served[0], limits=limits), limits) as port:
        sock = _post_raw(port, *_multipart(small_jpeg))
        sock.shutdown(socket.SHUT_WR)
        start = time.monotonic()
        answer = _read_until_closed(sock, 30)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert len(json.loads(answer.split(b"\r\n\r\n", 1)[1])["persons"]) == 1
        assert time.monotonic() - start < 5  # closed after the answer, not at a deadline
        health = socket.create_connection(("127.0.0.1", port), timeout=30)
        health.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        health.shutdown(socket.SHUT_WR)
        assert _read_until_closed(health, 30).startswith(b"HTTP/1.1 200 ")
        health.close()
        half = _stall(port)
        half.shutdown(socket.SHUT_WR)
        _wait_for(lambda: _health(port)["client_disconnects"] == 1, what="the disconnect")
        assert _read_until_closed(half, 30) == b""
        half.close()


def test_a_connection_answered_before_its_large_body_came_is_closed_when_idle(
    served, live_server, monkeypatch, small_jpeg
):
    """A 3 MB body answered before it is read (415 here): once its last byte has come, the connection is idle and
    closed after the keep-alive seconds, as after a small request (uvicorn's wait stopped at the body's first byte
    after the answer, leaving only the 10 s head deadline)."""
    from hrnet.apps.serve import app as serve_app

    monkeypatch.setattr(serve_app, "KEEP_ALIVE_S", 1)
    limits = ServeLimits()
    assert limits.header_timeout_s >= 5
    with live_server(create_app(served[0], limits=limits), limits) as port:
        for body, kind in [(small_jpeg, "image/jpeg"), (bytes(3 << 20), "image/jpeg")]:
            sock = _post_raw(port, body, {"Content-Type": kind})
            answer = http.client.HTTPResponse(sock)
            answer.begin()
            assert answer.status == 415 and b"send multipart/form-data" in answer.read()
            start = time.monotonic()
            assert _read_until_closed(sock, 30) == b""
            assert time.monotonic() - start < 3, (len(body), time.monotonic() - start)
            sock.close()


def test_an_answer_the_client_does_not_take_does_not_hold_the_connection(served, live_server, caplog):
    """A drawn answer of several MB that the client never reads: the part that does not fit in the sockets' buffers
    would wait in the server for ever (closing waits until it is sent); it is dropped after ``answer_timeout_s``
    with none of it taken, in one INFO line."""
    limits = ServeLimits(answer_timeout_s=1.0)
    noise = np.random.default_rng(0).integers(0, 256, (3000, 3000, 3), np.uint8)
    ok, photo = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok and 6 << 20 < len(photo) < limits.max_upload_bytes
    caplog.set_level(logging.INFO, logger="hrnet.apps.serve")
    with live_server(create_app(served[0], limits=limits), limits) as port:
        sock = _post_raw(port, *_multipart(photo.tobytes()), path="/v1/pose?draw=1")
        _wait_for(lambda: "took none of the rest of its answer" in caplog.text, what="the drop")
        answer = _read_until_closed(sock, 30)
        sock.close()
        head, body = answer.split(b"\r\n\r\n", 1)
        length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")).split(b":")[1])
        assert head.startswith(b"HTTP/1.1 200 ") and len(body) < length
        assert _health(port)["status"] == "ok"
    dropped = [r for r in caplog.records if "took none of the rest of its answer" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelno == logging.INFO and "for 1 s: connection dropped" in caplog.text


@pytest.mark.slow
def test_a_second_interrupt_answers_the_requests_in_progress_503(hrnet_serve, small_jpeg):
    """Ctrl-C twice under load: uvicorn stops without waiting and cancels the requests still in progress; each is
    answered 503 (or was answered 200 before), and the log says so in one line, with no traceback."""
    server, port, log_path = hrnet_serve()
    body, headers = _multipart(small_jpeg, boxes=json.dumps([[5, 5, 100, 90]] * 16))
    assert _request(port, "POST", "/v1/pose", body, headers)[0] == 200  # warm
    statuses: list = []

    def client() -> None:
        try:
            statuses.append(_request(port, "POST", "/v1/pose", body, headers, timeout=60))
        except (OSError, http.client.HTTPException) as err:
            statuses.append((type(err).__name__, None))

    clients = [threading.Thread(target=client) for _ in range(6)]
    try:
        for c in clients:
            c.start()
        _wait_for(lambda: _health(port)["in_progress"] == 6, what="6 requests in progress")
        server.send_signal(signal.SIGINT)
        time.sleep(0.3)
        server.send_signal(signal.SIGINT)
        for c in clients:
            c.join(60)
        server.wait(30)
    finally:
        server.kill()
    log = log_path.read_text()
    assert sorted({s for s, _ in statuses}) in ([200, 503], [503]), (statuses, log[-3000:])
    for status, answer in statuses:
        assert status == 200 or answer["detail"] == "the server stopped before this request was answered: send it again"
    assert server.returncode == 130, log[-3000:]
    assert "Traceback" not in log and "Exception in ASGI" not in log and " ERROR " not in log, log[-3000:]
    assert log.count("interrupted again: stopping now") == 1, log


# ------------------------------------------------------------------------------------------------------- the soak


def _soak_requests(small_jpeg: bytes) -> list:
    """One of each kind of request the soak run sends: (method, path, body, headers, expected status), or the
    string "leave" for a client that goes away mid-body."""
    image = base64.b64encode(small_jpeg).decode()
    json_type = {"Content-Type": "application/json"}
    form, form_headers = _multipart(small_jpeg)
    with_boxes = json.dumps({"image": image, "boxes": [[5, 5, 50, 90]], "box_scores": [0.8]}).encode()
    return [
        ("POST", "/v1/pose", form, form_headers, 200),
        ("POST", "/v1/pose", *_multipart(small_jpeg, boxes="[[10, 10, 60, 80], [-20, 0, 90, 106]]", image_id="²"), 200),
        ("POST", "/v1/pose", with_boxes, json_type, 200),
        ("POST", "/v1/pose?draw=1", form, form_headers, 200),
        ("GET", "/healthz", b"", {}, 200),
        ("POST", "/v1/pose", *_multipart(b"not an image at all"), 400),
        ("POST", "/v1/pose", *_multipart(small_jpeg[: len(small_jpeg) // 4]), 400),  # cut short: 33 of 106 rows
        ("POST", "/v1/pose", *_multipart(small_jpeg, boxes="[[1e308, 1e308, 1e308, 1e308]]"), 400),
        ("POST", "/v1/pose", *_multipart(small_jpeg, boxes="[" * 100_000 + "]" * 100_000), 400),
        ("POST", "/v1/pose", b'{"image": ', json_type, 400),
        ("POST", "/v1/pose", *_multipart(_png(20000, 20000)), 400),
        ("POST", "/v1/pose", small_jpeg, {"Content-Type": "image/jpeg"}, 415),
        ("POST", "/v1/pose", b"", {"Content-Type": "application/json", "Content-Length": str(30 << 20)}, 413),
        "leave",
    ]  # fmt: skip


def _soak(port: int, kinds: list, count: int, clients: int = 4) -> dict:
    """``count`` requests cycling through ``kinds`` from ``clients`` threads with kept-alive connections; the
    statuses seen and the requests whose status was not the expected one."""
    seen: dict = {}
    wrong: list = []
    lock = threading.Lock()

    def client(first: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for i in range(first, count, clients):
            kind = kinds[i % len(kinds)]
            if kind == "leave":
                _stall(port, multipart=i % 2 == 0).close()
                status, expected = "left", "left"
            else:
                method, path, body, headers, expected = kind
                try:
                    connection.request(method, path, body, headers)
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException) as err:
                    status = type(err).__name__
                    connection.close()
            with lock:
                seen[status] = seen.get(status, 0) + 1
                if status != expected:
                    wrong.append((i % len(kinds), status))
        connection.close()

    threads = [threading.Thread(target=client, args=(t,)) for t in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seen": seen, "wrong": wrong}


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_soak_1000_mixed_requests_leave_the_servers_memory_flat(hrnet_serve, small_jpeg):
    """``hrnet serve`` in its own process: after a warm-up of the same mix, 1,000 good and junk requests (and
    clients that leave mid-body) are each answered as expected, the server's resident memory grows by < 5 % and
    its log holds no traceback."""
    server, port, log_path = hrnet_serve("--set", "test.flip_test=false")  # flip: half the time; nothing needs it
    try:
        kinds = _soak_requests(small_jpeg)
        warm = _soak(port, kinds, 30 * len(kinds))  # the allocator's heap settles within a few hundred requests
        before = _rss_kib(server.pid)
        soak = _soak(port, kinds, 1000)
        after = _rss_kib(server.pid)
        health = _health(port)
    finally:
        server.terminate()
        server.wait(30)
    assert not warm["wrong"] and not soak["wrong"], (warm["wrong"][:10], soak["wrong"][:10])
    assert soak["seen"][200] > 300 and soak["seen"][400] > 300 and soak["seen"]["left"] > 50, soak["seen"]
    assert health["status"] == "ok" and health["receiving"] == 0 and health["in_progress"] == 0
    assert after < 1.05 * before, f"the server's RSS grew from {before} to {after} KiB over 1,000 requests"
    log = log_path.read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log and " ERROR " not in log, log[-3000:]
    assert log.count("went away while sending its request") == warm["seen"]["left"] + soak["seen"]["left"]


def test_serve_precision_int8_with_an_int8_file_answers(served, photo, tmp_path):
    """`hrnet serve CONFIG --weights int8.onnx --precision int8`: the command's options open the int8 network
    (ONNX Runtime), /v1/model says so, and a request is answered."""
    from hrnet.cli import parse_args
    from hrnet.cli.predict import _network_setup, _open_estimator
    from hrnet.runtime.export import export_from_config

    _, config_path, weights = served
    config = load_config(config_path)
    onnx = export_from_config(config, weights, tmp_path / "int8.onnx", precision="int8", calibration_crops=8)
    args = parse_args(["serve", str(config_path), "--weights", str(onnx), "--precision", "int8", "--detector", "none"])
    int8 = _open_estimator(args, *_network_setup(args))
    with TestClient(create_app(int8, limits=LIMITS)) as c:
        model = c.get("/v1/model").json()
        assert (model["backend"], model["precision"], model["engine"]) == ("onnxruntime-int8", "int8", "ONNX Runtime")
        response = c.post("/v1/pose", **_upload(photo, boxes="[[280, 44, 218, 346]]"))
    assert response.status_code == 200 and len(response.json()["persons"]) == 1


@pytest.mark.parametrize("host", ["", "0.0.0.0", "::"])
def test_listening_on_every_interface_is_said(served, monkeypatch, caplog, host):
    from hrnet.apps.serve import app as serve_app

    monkeypatch.setattr(serve_app, "run_beside", lambda server, batcher: True)  # no server is started
    serve_app.serve(served[0], host=host, port=8123)
    assert f"--host {host!r} listens on every network interface" in caplog.text
    caplog.clear()
    serve_app.serve(served[0], host="127.0.0.1", port=8123)
    assert "every network interface" not in caplog.text
