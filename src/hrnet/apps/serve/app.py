"""The HTTP application of ``hrnet serve`` (docs/serve.md): its routes, ``create_app``, and ``serve``, which
runs it with uvicorn beside the network (``run_beside``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import resources
from types import FrameType
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from hrnet.apps.serve.batcher import PoseBatcher
from hrnet.apps.serve.guards import ASGIApp, RequestCounters, RequestGuard, connection_protocol
from hrnet.apps.serve.request import MediaTypeError, PoseRequest, ServeLimits, parse_boxes, read_request
from hrnet.drawing.skeletons import draw_persons, keypoint_colours, limb_colours
from hrnet.errors import ConfigError, DataError
from hrnet.io.files import json_text
from hrnet.io.images import decode_image_bytes
from hrnet.pose.estimator import PersonPose, PoseEstimator
from hrnet.pose.persons import Boxes, PersonBoxes, instance_noun, person_results

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse, Response
except ImportError:  # the optional `serve` extra; `create_app` says how to install it
    FastAPI = None  # type: ignore[assignment,misc]

_NEEDS_EXTRA = "hrnet serve needs the 'serve' extra: pip install 'hrnet[serve]' (FastAPI, uvicorn, python-multipart)"
# An idle kept-alive connection is closed after this many seconds (uvicorn's default, stated where it is chosen).
KEEP_ALIVE_S = 5
PAGE_HEADERS = {
    # The page may load nothing from elsewhere: the browser itself refuses any script, style, font or image
    # that is not ours (blob: and data: are the photo the user chose and the drawn canvas).
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; connect-src 'self'; font-src 'none'; object-src 'none'",
}


def model_info(estimator: PoseEstimator, name: str) -> dict[str, Any]:
    """What ``GET /v1/model`` answers: the network (its backend's own name, precision and device), its keypoints
    (names, skeleton, drawing colours), what a box holds ("instance" and "instances": "person" and "persons",
    "hand" and "hands", ...) and inputs."""
    keypoint_set = estimator.keypoint_set
    backend = estimator.backend
    running = backend.describe() if backend is not None else {"backend": "custom", "precision": "unknown"}
    return {
        "name": name,
        "backend": running["backend"],
        "engine": running.get("engine"),
        "device": str(estimator.device),
        "precision": running["precision"],
        "input_size": list(estimator.codec.crop.input_size),
        "flip_test": estimator.test.flip_test,
        "keypoint_set": keypoint_set.name,
        "instance": instance_noun(keypoint_set.task),
        "instances": instance_noun(keypoint_set.task, 2),
        "num_keypoints": keypoint_set.num_keypoints,
        "keypoint_names": list(keypoint_set.names),
        "skeleton": [list(pair) for pair in keypoint_set.skeleton],
        "limb_colours": [list(c) for c in limb_colours(keypoint_set)],
        "keypoint_colours": [list(c) for c in keypoint_colours(keypoint_set)],
    }


def _jpeg(estimator: PoseEstimator, bgr: np.ndarray, persons: list[PersonPose], threshold: float) -> bytes:
    """The drawing of a request's persons on its image (drawn on the decoded image itself, which nothing reads
    after), as JPEG."""
    drawn = draw_persons(bgr, persons, estimator.keypoint_set, threshold, channel_order="bgr", in_place=True)
    ok, encoded = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise DataError("the drawing could not be encoded as JPEG")
    return encoded.tobytes()


# The optional fields of a request as JSON values; a multipart form holds their JSON text.
_FIELDS: dict[str, Any] = {
    "boxes": {
        "type": "array",
        "items": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
        "description": "person boxes [x, y, w, h] in pixels (default: the detector's, else the whole image)",
    },
    "box_scores": {"type": "array", "items": {"type": "number"}, "description": "one detector score per box"},
    "image_id": {"description": "the results' image_id (default 0)"},
}


def _body_schema(image: dict[str, str], fields: dict[str, Any]) -> dict[str, Any]:
    return {"schema": {"type": "object", "required": ["image"], "properties": {"image": image, **fields}}}


_REQUEST_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": _body_schema(
                {"type": "string", "format": "binary", "description": "a JPEG, PNG, ... file"},
                {k: {"type": "string", "description": f"JSON: {v['description']}"} for k, v in _FIELDS.items()},
            ),
            "application/json": _body_schema(
                {"type": "string", "format": "byte", "description": "the image file, base64"}, _FIELDS
            ),
        },
    },
    "responses": {
        "200": {"description": "COCO keypoint results, or with draw=1 the drawn image", "content": {"image/jpeg": {}}},
        "400": {"description": "the image or a field cannot be used (the message says why)"},
        "408": {"description": "the request body did not arrive in time (the connection is closed)"},
        "413": {"description": "the request body is over the limit"},
        "415": {"description": "neither multipart/form-data nor JSON"},
        "503": {"description": "too many requests in progress: retry after the seconds of Retry-After"},
    },
}


def create_app(estimator: PoseEstimator, *, limits: ServeLimits | None = None, model_name: str = "") -> FastAPI:
    """The FastAPI application of docs/serve.md; its pose worker starts with the app (or the first request) and
    stops when the app shuts down.

    Args:
        estimator: what answers; its detector finds the persons of a request without boxes.
        limits: what a request may ask (default ``ServeLimits()``).
        model_name: what ``/v1/model`` calls the network (e.g. the config given to ``hrnet serve``).

    Returns:
        The app; ``app.state.batcher`` is its pose worker.
    """
    if FastAPI is None:
        raise ConfigError(_NEEDS_EXTRA)
    limits = limits or ServeLimits()
    person_boxes = PersonBoxes(estimator.detector, max_boxes=limits.max_boxes)
    batcher = PoseBatcher(
        estimator, limits.max_batch or estimator.test.batch_size, limits.batch_window_s, limits.max_batch_wait_s
    )
    counters = RequestCounters()
    info = model_info(estimator, model_name)
    info["detector"] = estimator.detector is not None
    info["limits"] = asdict(limits) | {"max_batch": batcher.max_batch}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        except asyncio.CancelledError:
            return  # a forced stop (a second Ctrl-C, said by ``run_beside``): nothing waits for the worker
        await run_in_threadpool(batcher.close)

    app = FastAPI(
        title="hrnet pose service",
        version="1",
        summary="HRNet 2D human pose estimation: an image (and person boxes) in, COCO keypoint results out",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.add_middleware(
        RequestGuard, max_bytes=limits.max_upload_bytes, body_timeout_s=limits.body_timeout_s, counters=counters
    )

    @app.exception_handler(DataError)
    async def bad_input(request: Request, err: DataError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=415 if isinstance(err, MediaTypeError) else 400)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = resources.files("hrnet").joinpath("apps/serve/page/index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 while the pose worker runs (503 otherwise), with its counters. The status is "saturated" while
        every pose slot is taken (new requests are answered 503 until one finishes): still 200, because the
        server is well, only busy, and a health check that fails under load gets busy servers restarted."""
        status = "saturated" if pending >= limits.max_pending else "ok"
        body = {
            "status": status if batcher.alive else "worker stopped",
            "in_progress": pending,
            "max_pending": limits.max_pending,
            "receiving": counters.receiving,
            "waiting": batcher.waiting,
            "requests": batcher.requests,
            "forward_batches": batcher.batches,
            "persons": batcher.persons,
            "busy_seconds": round(batcher.busy_seconds, 3),
            "forward_seconds": None if batcher.forward_seconds is None else round(batcher.forward_seconds, 4),
            "batch_wait_ms": round(1000 * batcher.wait_s, 2),
            "body_timeouts": counters.timed_out,
            "client_disconnects": counters.disconnected,
        }
        return JSONResponse(body, status_code=200 if batcher.alive else 503)

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        """The network that answers: name, backend, precision, input size, keypoint set (names, skeleton)."""
        return info

    pending = 0  # pose requests in progress, counted once their body has arrived; only the event loop changes it

    @app.post("/v1/pose", openapi_extra=_REQUEST_SCHEMA, response_model=None)
    async def pose(request: Request, draw: bool = False) -> Response:
        """Keypoints of the persons in one image: COCO keypoint results, or with ``draw=1`` a JPEG."""
        nonlocal pending
        start = time.perf_counter()
        body = await read_request(request)  # a client still sending holds no slot (RequestGuard's deadline)
        if pending >= limits.max_pending:
            raise HTTPException(
                503,
                f"busy: {pending} requests in progress, the limit is {limits.max_pending}; retry shortly",
                headers={"Retry-After": "1"},
            )
        pending += 1
        try:
            image, found, decoded, detected = await run_in_threadpool(_prepare, body)
            persons, batch = await asyncio.wrap_future(batcher.submit(image, found.boxes, found.scores))
            posed = time.perf_counter()
            if draw:
                jpeg = await run_in_threadpool(_jpeg, estimator, image, persons, limits.draw_threshold)
                return Response(jpeg, media_type="image/jpeg")
            result = {
                "image": {"height": image.shape[0], "width": image.shape[1]},
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
        finally:
            pending -= 1

    def _prepare(body: PoseRequest) -> tuple[np.ndarray, Boxes, float, float]:
        """Decode the image and find its persons in one trip to a worker thread, as each trip costs the event loop
        time that delays the next batch: the image, its boxes, and when each step ended."""
        boxes, box_scores = parse_boxes(body.boxes, body.box_scores, limits.max_boxes)
        image = decode_image_bytes(body.data, source="upload", max_pixels=limits.max_pixels, channel_order="bgr")
        decoded = time.perf_counter()
        # Given boxes are checked against the image; else the detector's or the whole image.
        found = person_boxes(image, boxes, box_scores, "boxes", channel_order="bgr")
        return image, found, decoded, time.perf_counter()

    return app


def uvicorn_config(app: ASGIApp, *, host: str, port: int, limits: ServeLimits) -> uvicorn.Config:
    """How ``serve`` runs ``app`` with uvicorn.

    Args:
        app: the application (``create_app``).
        host, port: where it listens.
        limits: its ``header_timeout_s`` and ``answer_timeout_s`` (``guards.connection_protocol``).

    Returns:
        The config: idle connections closed after ``KEEP_ALIVE_S``, warnings and errors logged, no access log.
    """
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=connection_protocol(limits.header_timeout_s, limits.answer_timeout_s),
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level="warning",
        access_log=False,
    )


EVERY_INTERFACE = ("", "0.0.0.0", "::", "[::]")  # what uvicorn binds to all interfaces


def serve(
    estimator: PoseEstimator,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServeLimits | None = None,
    model_name: str = "",
) -> None:
    """Run the service with uvicorn until interrupted (``hrnet serve``): the network in this thread, the HTTP
    server in a thread beside it (``run_beside``). Exits with status 1 when the server cannot start (uvicorn
    logs why: the port is in use, ...)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"port {port!r}: a TCP port is a whole number from 1 to 65535 (default 8000)")
    try:
        import uvicorn
    except ImportError:
        raise ConfigError(_NEEDS_EXTRA) from None
    limits = limits or ServeLimits()
    app = create_app(estimator, limits=limits, model_name=model_name)
    if host.strip() in EVERY_INTERFACE:
        log.warning(
            "--host %r listens on every network interface: anyone who can reach this machine can use the service "
            "(the default, 127.0.0.1, is this machine only)", host,
        )  # fmt: skip
    log.info("serving %s on http://%s:%d/ (API docs at /docs)", model_name, host, port)
    if not run_beside(uvicorn.Server(uvicorn_config(app, host=host, port=port, limits=limits)), app.state.batcher):
        sys.exit(1)  # as uvicorn itself exits when it cannot start


def run_beside(server: uvicorn.Server, batcher: PoseBatcher, sockets: list[socket.socket] | None = None) -> bool:
    """Run ``server`` in a thread and the app's pose worker in the calling thread, until the server stops.

    The network runs in the thread that loaded it (the main thread of ``hrnet serve``), as there the process's
    first memory arena keeps the freed buffers (``hrnet.system.keep_freed_memory``) and PyTorch's OpenMP team is
    the only one (docs/speed.md). In the main thread, SIGINT and SIGTERM stop the server as uvicorn does when it
    runs there (the requests in progress are answered first; a second SIGINT does not wait: those still in progress
    are answered 503, said in one line), and are raised again once it has stopped.

    Args:
        server: uvicorn, serving an app of ``create_app``.
        batcher: that app's ``app.state.batcher``.
        sockets: listening sockets for uvicorn; None: it binds its config's host and port.

    Returns:
        Whether the server started.
    """

    def run_server() -> None:
        with contextlib.suppress(SystemExit):  # uvicorn's way out when it cannot start, after logging why
            server.run(sockets=sockets)

    thread = threading.Thread(target=run_server, name="hrnet-serve-http", daemon=True)
    caught: list[int] = []

    def stop(number: int, frame: FrameType | None) -> None:
        if server.should_exit and number == signal.SIGINT:  # uvicorn stops at once (``handle_exit``)
            log.warning("interrupted again: stopping now; requests still in progress are answered 503")
        caught.append(number)
        server.handle_exit(number, frame)

    in_main = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS} if in_main else {}
    try:
        batcher.work_here(until=lambda: not thread.is_alive(), ready=thread.start)
        thread.join()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    for number in reversed(caught):  # as uvicorn does: the signal's own effect, now that the server has stopped
        signal.raise_signal(number)
    return bool(server.started)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
