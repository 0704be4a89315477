"""What a ``POST /v1/pose`` request may carry and how it is read: the limits (``ServeLimits``), the image (header
first, then pixels), the person boxes and the other fields, from a multipart upload or a JSON body.

Every refusal is a ``DataError`` (answered 400) with one line that names the field and says what to send; a body
that is neither multipart nor JSON is a ``MediaTypeError`` (415). A value quoted in a message is cut to 200
characters.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hrnet.errors import ConfigError, DataError
from hrnet.io.inputs import decimal_id

if TYPE_CHECKING:
    from starlette.requests import Request

MAX_TEXT = 200  # characters of an image_id, and of any user value quoted in a message


class MediaTypeError(DataError):
    """The request body is neither multipart/form-data nor JSON (answered 415, not 400)."""


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask, how long a client may take to send it, and how requests are batched.

    Attributes:
        max_upload_bytes: request body limit (the base64 of a JSON request counts 4/3 of the image); 413 above.
        max_pixels: image width × height limit, read from the header before decoding; 400 above. 40 M pixels is
            a 7,300 × 5,500 photo, 120 MB of decoded BGR.
        max_boxes: person boxes a request may give (or the detector may find: the best-scoring are kept).
        max_batch: persons a forward pass; None: the config's ``test.batch_size``.
        batch_window_s: how long the worker waits for one more request to join a batch when requests arrive
            back to back (``PoseBatcher``); the most a lone client's request waits.
        max_batch_wait_s: the most the worker waits for the clients it has just answered to come back and fill
            the batch (it waits a quarter of a forward pass, at most this; ``PoseBatcher``).
        draw_threshold: keypoints scoring below this are not drawn (``?draw=1``); they are still in the JSON.
        max_pending: pose requests in progress at once, counted from when the body has arrived (each holds its
            decoded image); more are answered 503 with ``Retry-After`` instead of queueing without bound.
        header_timeout_s: a connection that has not sent a whole request head (request line and headers) within
            this many seconds of opening, or of its previous response, is closed (``hrnet serve`` only).
        body_timeout_s: a request whose body has not arrived whole within this many seconds of its head is
            answered 408 and its connection closed: a stalled client holds no slot and no connection for longer.
            60 s carries the 20 MiB limit over a link of about 3 Mbit/s.
        answer_timeout_s: a client that takes no byte of the rest of an answer for this many seconds has its
            connection dropped (``hrnet serve`` only): an answer nobody reads would hold it, and the answer's memory,
            for ever.
    """

    max_upload_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    max_boxes: int = 100
    max_batch: int | None = None
    batch_window_s: float = 0.005
    max_batch_wait_s: float = 0.2
    draw_threshold: float = 0.3
    max_pending: int = 64
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    answer_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_boxes", "max_pending"):
            _check_count(name, getattr(self, name))
        if self.max_batch is not None:
            _check_count("max_batch", self.max_batch)
        _check_seconds("batch_window_s", self.batch_window_s, 0, 1)
        _check_seconds("max_batch_wait_s", self.max_batch_wait_s, 0, 10)
        _check_seconds("header_timeout_s", self.header_timeout_s, 0.01, 3600)
        _check_seconds("body_timeout_s", self.body_timeout_s, 0.01, 3600)
        _check_seconds("answer_timeout_s", self.answer_timeout_s, 0.01, 3600)
        if _number(self.draw_threshold) is None or not math.isfinite(self.draw_threshold):
            raise ConfigError(f"serve limits: draw_threshold must be a finite number, got {self.draw_threshold!r}")


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"serve limits: {name} must be a whole number ≥ 1, got {value!r}")


def _check_seconds(name: str, value: Any, least: float, most: float) -> None:
    number = _number(value)
    if number is None or not least <= number <= most:  # NaN fails both comparisons
        raise ConfigError(f"serve limits: {name} must be within {least:g}-{most:g} s, got {value!r}")


def parse_boxes(value: Any, scores: Any, max_boxes: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Person boxes of a request as given: ``value`` a list of ``[x, y, w, h]`` (pixels), ``scores`` a list of
    numbers (or None) → ((P, 4), (P,)) float64 arrays; (None, None) when no boxes are given. The boxes' values are
    checked against the image by ``check_boxes``. Raises ``DataError``."""
    if value is None:
        if scores is not None:
            raise DataError("box_scores given without boxes: give one score per box in 'boxes'")
        return None, None
    if not isinstance(value, list) or not all(
        isinstance(box, list) and len(box) == 4 and all(_number(v) is not None for v in box) for box in value
    ):
        raise DataError("boxes: expected a list of person boxes [x, y, w, h] in pixels, e.g. [[10, 20, 100, 250]]")
    if len(value) > max_boxes:
        raise DataError(f"too many boxes: {len(value)}, this server's limit is {max_boxes} a request")
    boxes = np.array([[_number(v) for v in box] for box in value], dtype=np.float64).reshape(-1, 4)
    if scores is None:
        return boxes, None
    if not isinstance(scores, list) or not all(_number(s) is not None for s in scores) or len(scores) != len(boxes):
        raise DataError(f"box_scores: expected a list of {len(boxes)} numbers, one per box")
    score_array = np.array([_number(s) for s in scores], dtype=np.float64)
    if not np.isfinite(score_array).all():
        raise DataError("box_scores: a score is NaN or infinity")
    return boxes, score_array


def _number(value: Any) -> float | None:
    """A JSON number as a float (an integer too large for a float is infinity); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON text (or UTF-8/16/32 bytes) → its value; a ``DataError`` naming ``what`` when it is not JSON, or is
    nested too deeply for the parser (a ``RecursionError`` there, never a 500)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise DataError(
            f"{what}: JSON nested too deeply to read (arrays or objects hundreds of levels inside each other); "
            "boxes are [[x, y, w, h], ...], two levels"
        ) from None
    except json.JSONDecodeError as err:
        raise DataError(f"{what}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except ValueError as err:  # bytes that are not UTF-8; an integer of more than 4,300 digits
        raise DataError(f"{what}: not valid JSON ({_short(str(err))})") from None


def _json_field(text: str | None, name: str) -> Any:
    return None if text is None or text == "" else parse_json(text, name)


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
    """The results' ``image_id``: a number or a name of at most ``MAX_TEXT`` characters (a form field holds
    text: ASCII decimal digits are a number); default 0."""
    if value is None or value == "":
        return 0
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise DataError(f"image_id: {len(value):,} characters, the limit is {MAX_TEXT}: send a shorter name")
        number = decimal_id(value) if from_form else None
        return value if number is None else number
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise DataError(f"image_id: expected a number or a string, got {type(value).__name__}")


@dataclass
class PoseRequest:
    """The fields of one request, read but not yet checked against the image."""

    data: bytes
    boxes: Any = None
    box_scores: Any = None
    image_id: int | str = 0


async def read_request(request: Request) -> PoseRequest:
    """The body of a ``POST /v1/pose`` (multipart or JSON, docs/serve.md), read whole."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise DataError("multipart: put the image file in a field named 'image'")
            data = await upload.read()
            text = {k: v if isinstance(v := form.get(k), str) else None for k in ("boxes", "box_scores", "image_id")}
        return PoseRequest(
            data,
            _json_field(text["boxes"], "boxes"),
            _json_field(text["box_scores"], "box_scores"),
            _image_id(text["image_id"], from_form=True),
        )
    if content_type == "application/json":
        body = parse_json(await request.body(), "the JSON body does not parse")
        if not isinstance(body, dict) or "image" not in body:
            raise DataError('the JSON body must be an object with "image" (base64), e.g. {"image": "/9j/4AAQ..."}')
        unknown = set(body) - {"image", "boxes", "box_scores", "image_id"}
        if unknown:
            raise DataError(
                f"unknown JSON field(s) {_short(str(sorted(unknown)))}: allowed are image, boxes, box_scores, image_id"
            )
        return PoseRequest(
            _base64_image(body["image"]), body.get("boxes"), body.get("box_scores"), _image_id(body.get("image_id"))
        )
    raise MediaTypeError(
        f"content type {_short(content_type) or 'missing'!r}: send multipart/form-data (field 'image') or JSON"
    )
