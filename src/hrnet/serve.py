"""``hrnet serve``: pose estimation as an HTTP service (FastAPI), and a page at ``/`` to try it on a photo.

Routes (``create_app``):

- ``POST /v1/pose``: one image, as a multipart upload (field ``image``; optional fields ``boxes``, ``box_scores``
  and ``image_id`` holding JSON) or as JSON ``{"image": "<base64>", "boxes": [[x, y, w, h], ...],
  "box_scores": [...], "image_id": ...}``. Answers COCO keypoint results (one per person: ``keypoints`` as
  ``[x, y, score] × K`` in image pixels, ``score``, ``bbox``), the keypoint names and the timing; with
  ``?draw=1`` the image with the skeletons drawn, as a JPEG. Person boxes come from the request, else from the
  detector, else the whole image is one person (as ``hrnet predict``).
- ``GET /healthz`` (the worker is alive; counters), ``GET /v1/model`` (what runs), ``/docs`` (OpenAPI).
- ``GET /``: the page (``serve_page/index.html``; everything it needs is served from here, no external script
  or font).

Requests that arrive together share one forward pass: a worker thread takes the first waiting request, collects
more for at most ``batch_window_s`` (or until ``max_batch`` persons), and runs the estimator once on all their
persons. Under load the queue is never empty, so the forward passes run full batches without waiting.

Bad input never reaches the network: the request body is capped (413), the image header is read before any
pixel is decoded and its pixel count capped (the decompression-bomb guard), and undecodable images, malformed,
non-finite or too many boxes are answered 400 with one line that says what to fix.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import io
import json
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from hrnet.detect import Detector
from hrnet.errors import ConfigError, DataError
from hrnet.fileio import json_text
from hrnet.inference import PersonPose, PoseEstimator
from hrnet.persons import person_results
from hrnet.visualize import draw_poses, keypoint_colours, limb_colours

log = logging.getLogger(__name__)

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse, Response
except ImportError:  # the optional `serve` extra; `create_app` says how to install it
    FastAPI = None  # type: ignore[assignment,misc]

_NEEDS_EXTRA = "hrnet serve needs the 'serve' extra: pip install 'hrnet[serve]' (FastAPI, uvicorn, python-multipart)"
ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]
PAGE_HEADERS = {
    # The page may load nothing from elsewhere: the browser itself refuses any script, style, font or image
    # that is not ours (blob: and data: are the photo the user chose and the drawn canvas).
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; connect-src 'self'; font-src 'none'; object-src 'none'",
}


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask, and how requests are batched.

    Attributes:
        max_upload_bytes: request body limit (the base64 of a JSON request counts 4/3 of the image); 413 above.
        max_pixels: image width × height limit, read from the header before decoding; 400 above. 40 M pixels is
            a 7,300 × 5,500 photo, 120 MB of decoded BGR.
        max_boxes: person boxes a request may give (or the detector may find: the best-scoring are kept).
        max_batch: persons a forward pass; None: the config's ``test.batch_size``.
        batch_window_s: how long the worker waits for more requests to join a batch when the queue runs dry.
        draw_threshold: keypoints scoring below this are not drawn (``?draw=1``); they are still in the JSON.
        max_pending: pose requests in progress at once (each holds its decoded image); more are answered 503
            with ``Retry-After`` instead of queueing without bound.
    """

    max_upload_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    max_boxes: int = 100
    max_batch: int | None = None
    batch_window_s: float = 0.005
    draw_threshold: float = 0.3
    max_pending: int = 64

    def __post_init__(self) -> None:
        if min(self.max_upload_bytes, self.max_pixels, self.max_boxes, self.max_pending) < 1:
            raise ConfigError(f"serve limits must be ≥ 1, got {self}")
        if self.max_batch is not None and self.max_batch < 1:
            raise ConfigError(f"max_batch must be ≥ 1, got {self.max_batch}")
        if not 0 <= self.batch_window_s <= 1:
            raise ConfigError(f"batch_window_s must be within 0-1 s, got {self.batch_window_s}")


# ---------------------------------------------------------------------------------------------------- batching


@dataclass(frozen=True)
class BatchInfo:
    """The forward batch that served a request: its persons and requests, and the estimator's seconds."""

    persons: int
    requests: int
    seconds: float


@dataclass
class _Job:
    image: np.ndarray
    boxes: np.ndarray | None
    scores: np.ndarray | None
    future: concurrent.futures.Future[tuple[list[PersonPose], BatchInfo]] = field(
        default_factory=concurrent.futures.Future
    )

    @property
    def persons(self) -> int:
        return 1 if self.boxes is None else len(self.boxes)


class PoseBatcher:
    """Runs ``estimator`` on one worker thread; jobs submitted together share one ``estimator.predict`` call.

    The worker takes the first waiting job, then more while they keep coming within ``window_s`` of each
    other's arrival and the persons fit in ``max_batch`` (a single job with more persons runs alone, split by
    the estimator into ``test.batch_size`` passes). A job that fails fails alone: the batch is retried one job at
    a time, so one bad image cannot fail its neighbours, and nothing stops the worker.
    """

    def __init__(self, estimator: PoseEstimator, max_batch: int, window_s: float):
        self.estimator = estimator
        self.max_batch = max_batch
        self.window_s = window_s
        self.batches = 0  # estimator calls
        self.requests = 0
        self.persons = 0
        self.busy_seconds = 0.0  # inside the estimator
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the pose batcher is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hrnet-pose-batcher", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, then stop the worker."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(
        self, image: np.ndarray, boxes: np.ndarray | None, scores: np.ndarray | None
    ) -> concurrent.futures.Future[tuple[list[PersonPose], BatchInfo]]:
        """Queue one (H, W, 3) uint8 BGR image with its (P, 4) boxes and (P,) scores (None: the
        whole image); the future gives its persons and the batch that served it."""
        self.start()
        job = _Job(image, boxes, scores)
        self._queue.put(job)
        return job.future

    def _run(self) -> None:
        carried: _Job | None = None
        while True:
            job = carried or self._queue.get()
            carried = None
            if job is None:
                return
            jobs, persons, stop = [job], job.persons, False
            deadline = time.monotonic() + self.window_s
            while persons < self.max_batch:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        waiting = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if waiting is None:
                    stop = True
                    break
                if persons + waiting.persons > self.max_batch:
                    carried = waiting
                    break
                jobs.append(waiting)
                persons += waiting.persons
                deadline = time.monotonic() + self.window_s
            self._serve(jobs)
            if stop:
                self._serve_rest()
                return

    def _serve_rest(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._serve([job])

    def _serve(self, jobs: list[_Job]) -> None:
        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        if not live:
            return
        start = time.perf_counter()
        try:
            results = self.estimator.predict(
                [j.image for j in live], [j.boxes for j in live], [j.scores for j in live], channel_order="bgr"
            )
        except Exception as err:
            if len(live) > 1:
                for j in live:
                    self._serve_alone(j)
                return
            log.exception("pose estimation failed")
            live[0].future.set_exception(err)
            return
        info = BatchInfo(sum(j.persons for j in live), len(live), time.perf_counter() - start)
        self.busy_seconds += info.seconds
        self.batches += 1
        self.requests += len(live)
        self.persons += sum(len(r) for r in results)
        for j, persons in zip(live, results, strict=True):
            j.future.set_result((persons, info))

    def _serve_alone(self, job: _Job) -> None:
        # The job's future is already running: run it again as a batch of one.
        start = time.perf_counter()
        try:
            persons = self.estimator.predict([job.image], [job.boxes], [job.scores], channel_order="bgr")[0]
        except Exception as err:
            log.exception("pose estimation failed")
            job.future.set_exception(err)
            return
        info = BatchInfo(job.persons, 1, time.perf_counter() - start)
        self.busy_seconds += info.seconds
        self.batches += 1
        self.requests += 1
        self.persons += len(persons)
        job.future.set_result((persons, info))


# ------------------------------------------------------------------------------------------------ request input


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """An uploaded image → (H, W, 3) uint8 BGR pixels (EXIF orientation ignored, as ``read_image``).

    The header is read first (Pillow, no pixels decoded): an unknown format, a zero-size image or one over
    ``max_pixels`` is refused before OpenCV decodes anything. Raises ``DataError`` with the reason.
    """
    if not data:
        raise DataError("the image is empty (0 bytes): send the bytes of a JPEG, PNG, BMP, TIFF or WebP file")
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            kind = header.format or "image"
    except UnidentifiedImageError:
        raise DataError(
            f"not an image: the {len(data)} bytes do not start with a known image header (send JPEG, PNG, BMP, "
            "TIFF or WebP)"
        ) from None
    except Image.DecompressionBombError as err:
        raise DataError(f"the image has too many pixels to decode safely ({err})") from None
    except Exception as err:  # Pillow raises assorted errors on damaged headers
        raise DataError(f"the image header is damaged ({type(err).__name__}: {err})") from None
    if width * height == 0:
        raise DataError(f"the {kind} has zero size ({width}×{height} pixels)")
    if width * height > max_pixels:
        raise DataError(
            f"the {kind} is {width}×{height} = {width * height:,} pixels, over this server's limit of "
            f"{max_pixels:,} (a guard against decompression bombs): send a smaller image"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None or image.shape[:2] != (height, width):
        raise DataError(
            f"the {kind} ({width}×{height}, {len(data)} bytes) does not decode: truncated or corrupt (or a format "
            "OpenCV does not read)"
        )
    return np.asarray(image)


def parse_boxes(value: Any, scores: Any, max_boxes: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Person boxes of a request: ``value`` a list of ``[x, y, w, h]`` (pixels), ``scores`` a list of numbers
    (or None) → ((P, 4), (P,)) float64 arrays; (None, None) when no boxes are given. Raises ``DataError``."""
    if value is None:
        if scores is not None:
            raise DataError("box_scores given without boxes: give one score per box in 'boxes'")
        return None, None
    if not isinstance(value, list) or not all(
        isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box) for box in value
    ):
        raise DataError("boxes: expected a list of person boxes [x, y, w, h] in pixels, e.g. [[10, 20, 100, 250]]")
    if len(value) > max_boxes:
        raise DataError(f"too many boxes: {len(value)}, this server's limit is {max_boxes} a request")
    boxes = np.array(value, dtype=np.float64).reshape(-1, 4)
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"boxes: box {first} holds NaN or infinity: {value[first]}")
    small = (boxes[:, 2:] <= 0).any(axis=1)
    if small.any():
        raise DataError(f"boxes: box {int(np.flatnonzero(small)[0])} has zero or negative width or height")
    if scores is None:
        return boxes, None
    if not isinstance(scores, list) or not all(_is_number(s) for s in scores) or len(scores) != len(boxes):
        raise DataError(f"box_scores: expected a list of {len(boxes)} numbers, one per box")
    score_array = np.array(scores, dtype=np.float64)
    if not np.isfinite(score_array).all():
        raise DataError("box_scores: a score is NaN or infinity")
    return boxes, score_array


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_field(text: str | None, name: str) -> Any:
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{name}: not valid JSON ({err.msg} at column {err.colno})") from None


def _base64_image(text: Any) -> bytes:
    if not isinstance(text, str):
        raise DataError("image: expected the image file's bytes as a base64 string")
    if text.startswith("data:") and "," in text:  # a data URL, as a browser's FileReader gives
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DataError("image: not valid base64 (standard alphabet, with padding)") from None


def _image_id(value: Any, from_form: bool = False) -> int | str:
    """The results' ``image_id``: a number or a name (a form field holds text: digits are a number); default 0."""
    if value is None or value == "":
        return 0
    if from_form and isinstance(value, str):
        return int(value) if value.isdigit() else value
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise DataError(f"image_id: expected a number or a string, got {json.dumps(value)[:40]}")


@dataclass
class _PoseRequest:
    data: bytes
    boxes: Any = None
    box_scores: Any = None
    image_id: int | str = 0


async def _read_request(request: Request) -> _PoseRequest:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise DataError("multipart: put the image file in a field named 'image'")
            data = await upload.read()
            fields = {k: form.get(k) for k in ("boxes", "box_scores", "image_id")}
        text = {k: v if isinstance(v, str) else None for k, v in fields.items()}
        return _PoseRequest(
            data,
            _json_field(text["boxes"], "boxes"),
            _json_field(text["box_scores"], "box_scores"),
            _image_id(text["image_id"], from_form=True),
        )
    if content_type == "application/json":
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"the JSON body does not parse ({err})") from None
        if not isinstance(body, dict) or "image" not in body:
            raise DataError('the JSON body must be an object with "image" (base64), e.g. {"image": "/9j/4AAQ..."}')
        unknown = set(body) - {"image", "boxes", "box_scores", "image_id"}
        if unknown:
            raise DataError(f"unknown JSON field(s) {sorted(unknown)}: allowed are image, boxes, box_scores, image_id")
        return _PoseRequest(
            _base64_image(body["image"]), body.get("boxes"), body.get("box_scores"), _image_id(body.get("image_id"))
        )
    raise HTTPException(
        415, f"content type {content_type or 'missing'!r}: send multipart/form-data (field 'image') or JSON"
    )


# ----------------------------------------------------------------------------------------------------- the app


class _BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413, whether it declares its length or not."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"the request body is over this server's limit of {self.max_bytes:,} bytes: send a smaller image"

    async def _too_large(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        response = JSONResponse({"detail": self._message()}, status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)


def model_info(estimator: PoseEstimator, name: str) -> dict[str, Any]:
    """What ``GET /v1/model`` answers: the network, its keypoints (names, skeleton, drawing colours) and inputs."""
    keypoint_set = estimator.keypoint_set
    model = estimator.model
    if isinstance(model, torch.nn.Module):
        parameter = next(iter(model.parameters()), None)
        precision = str(parameter.dtype).removeprefix("torch.") if parameter is not None else "float32"
        backend = "torch"
    else:
        precision, backend = "float32", "onnxruntime"
    return {
        "name": name,
        "backend": backend,
        "device": str(estimator.device),
        "precision": precision,
        "input_size": list(estimator.codec.crop.input_size),
        "flip_test": estimator.test.flip_test,
        "keypoint_set": keypoint_set.name,
        "num_keypoints": keypoint_set.num_keypoints,
        "keypoint_names": list(keypoint_set.names),
        "skeleton": [list(pair) for pair in keypoint_set.skeleton],
        "limb_colours": [list(c) for c in limb_colours(keypoint_set)],
        "keypoint_colours": [list(c) for c in keypoint_colours(keypoint_set)],
    }


def _jpeg(estimator: PoseEstimator, bgr: np.ndarray, persons: list[PersonPose], threshold: float) -> bytes:
    if persons:
        rgb = draw_poses(
            bgr[:, :, ::-1],
            np.stack([p.keypoints for p in persons]),
            np.stack([p.scores for p in persons]),
            estimator.keypoint_set,
            threshold=threshold,
            boxes=np.stack([p.box for p in persons]),
        )
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise DataError("the drawing could not be encoded as JPEG")
    return encoded.tobytes()


def _page() -> str:
    return resources.files("hrnet").joinpath("serve_page/index.html").read_text(encoding="utf-8")


_REQUEST_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "a JPEG, PNG, ... file"},
                        "boxes": {"type": "string", "description": "JSON: [[x, y, w, h], ...] person boxes, pixels"},
                        "box_scores": {"type": "string", "description": "JSON: one detector score per box"},
                        "image_id": {"type": "string", "description": "JSON: the results' image_id (default 0)"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "byte", "description": "the image file, base64"},
                        "boxes": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
                            "description": "person boxes [x, y, w, h] in pixels (default: detector or whole image)",
                        },
                        "box_scores": {"type": "array", "items": {"type": "number"}},
                        "image_id": {"description": "the results' image_id (default 0)"},
                    },
                }
            },
        },
    },
    "responses": {
        "200": {
            "description": "COCO keypoint results (JSON), or with draw=1 the drawn image",
            "content": {"image/jpeg": {}},
        },
        "400": {"description": "the image or a field cannot be used (the message says why)"},
        "413": {"description": "the request body is over the limit"},
        "415": {"description": "neither multipart/form-data nor JSON"},
        "503": {"description": "too many requests in progress: retry after the seconds of Retry-After"},
    },
}


def create_app(
    estimator: PoseEstimator,
    detector: Detector | None = None,
    *,
    limits: ServeLimits | None = None,
    model_name: str = "",
) -> FastAPI:
    """The FastAPI application serving ``estimator`` (and ``detector``, by default the estimator's own, for
    person boxes), see the module doc.

    ``model_name`` is what ``/v1/model`` calls the network (e.g. the config given to ``hrnet serve``). The
    worker thread starts with the app (or the first request) and stops when the app shuts down.
    """
    if FastAPI is None:
        raise ConfigError(_NEEDS_EXTRA)
    limits = limits or ServeLimits()
    if detector is None:
        detector = estimator.detector
    batcher = PoseBatcher(estimator, limits.max_batch or estimator.test.batch_size, limits.batch_window_s)
    detector_lock = threading.Lock()  # a detector need not be thread-safe
    info = model_info(estimator, model_name)
    info["detector"] = detector is not None
    info["limits"] = asdict(limits) | {"max_batch": batcher.max_batch}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await run_in_threadpool(batcher.close)

    app = FastAPI(
        title="hrnet pose service",
        version="1",
        summary="HRNet 2D human pose estimation: an image (and person boxes) in, COCO keypoint results out",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.add_middleware(_BodyLimit, max_bytes=limits.max_upload_bytes)

    @app.exception_handler(DataError)
    async def bad_input(request: Request, err: DataError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page(), headers=PAGE_HEADERS)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 while the pose worker runs (503 otherwise), with its counters."""
        body = {
            "status": "ok" if batcher.alive else "worker stopped",
            "requests": batcher.requests,
            "forward_batches": batcher.batches,
            "persons": batcher.persons,
            "busy_seconds": round(batcher.busy_seconds, 3),
            "waiting": batcher.waiting,
            "in_progress": pending,
        }
        return JSONResponse(body, status_code=200 if batcher.alive else 503)

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        """The network that answers: name, backend, precision, input size, keypoint set (names, skeleton)."""
        return info

    pending = 0  # pose requests in progress; only the event loop's thread changes it

    @app.post("/v1/pose", openapi_extra=_REQUEST_SCHEMA, response_model=None)
    async def pose(request: Request, draw: bool = False) -> Response:
        """Keypoints of the persons in one image: COCO keypoint results, or with ``draw=1`` a JPEG."""
        nonlocal pending
        if pending >= limits.max_pending:
            raise HTTPException(
                503,
                f"busy: {pending} requests in progress, the limit is {limits.max_pending}; retry shortly",
                headers={"Retry-After": "1"},
            )
        pending += 1
        try:
            return await _pose(request, draw)
        finally:
            pending -= 1

    async def _pose(request: Request, draw: bool) -> Response:
        start = time.perf_counter()
        body = await _read_request(request)
        boxes, box_scores = parse_boxes(body.boxes, body.box_scores, limits.max_boxes)
        bgr = await run_in_threadpool(decode_image, body.data, limits.max_pixels)
        decoded = time.perf_counter()
        if boxes is None and detector is not None:
            boxes, box_scores = await run_in_threadpool(_detect, detector, detector_lock, bgr, limits.max_boxes)
        elif boxes is None:  # explicit, so that an estimator's own detector never runs on the worker
            boxes = np.array([[0.0, 0.0, bgr.shape[1], bgr.shape[0]]])
        detected = time.perf_counter()
        persons, batch = await asyncio.wrap_future(batcher.submit(bgr, boxes, box_scores))
        posed = time.perf_counter()
        if draw:
            jpeg = await run_in_threadpool(_jpeg, estimator, bgr, persons, limits.draw_threshold)
            return Response(jpeg, media_type="image/jpeg")
        result = {
            "image": {"height": bgr.shape[0], "width": bgr.shape[1]},
            "persons": person_results(persons, body.image_id),
            "keypoint_names": info["keypoint_names"],
            "timing_ms": {
                "decode": round(1000 * (decoded - start), 2),
                "detect": round(1000 * (detected - decoded), 2),
                "pose": round(1000 * batch.seconds, 2),
                "queue": round(1000 * max(0.0, posed - detected - batch.seconds), 2),
                "total": round(1000 * (posed - start), 2),
            },
            "batch": {"persons": batch.persons, "requests": batch.requests},
        }
        return Response(json_text(result, "the pose results"), media_type="application/json")

    return app


def _detect(detector: Detector, lock: threading.Lock, bgr: np.ndarray, max_boxes: int) -> tuple[np.ndarray, np.ndarray]:
    with lock:
        found = detector(bgr)
    boxes = np.asarray(found.boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(found.scores, dtype=np.float64).reshape(-1)
    keep = np.isfinite(boxes).all(axis=1) & (boxes[:, 2:] > 0).all(axis=1) & np.isfinite(scores)
    boxes, scores = boxes[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[:max_boxes]
    return boxes[order], scores[order]


def serve(
    estimator: PoseEstimator,
    detector: Detector | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServeLimits | None = None,
    model_name: str = "",
) -> None:
    """Run the service with uvicorn until interrupted (``hrnet serve``)."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError(_NEEDS_EXTRA) from None
    app = create_app(estimator, detector, limits=limits, model_name=model_name)
    log.info("serving %s on http://%s:%d/ (API docs at /docs)", model_name, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
