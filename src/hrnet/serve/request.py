"""What a ``POST /v1/pose`` request may carry and how it is read: the limits (``ServeLimits``), the image
(header first, then pixels), the person boxes and the other fields, from a multipart upload or a JSON body."""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from hrnet.errors import ConfigError, DataError

if TYPE_CHECKING:
    from starlette.requests import Request


class MediaTypeError(DataError):
    """The request body is neither multipart/form-data nor JSON (answered 415, not 400)."""


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
class PoseRequest:
    """The fields of one request, read but not yet checked against the image."""

    data: bytes
    boxes: Any = None
    box_scores: Any = None
    image_id: int | str = 0


async def read_request(request: Request) -> PoseRequest:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise DataError("multipart: put the image file in a field named 'image'")
            data = await upload.read()
            fields = {k: form.get(k) for k in ("boxes", "box_scores", "image_id")}
        text = {k: v if isinstance(v, str) else None for k, v in fields.items()}
        return PoseRequest(
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
        return PoseRequest(
            _base64_image(body["image"]), body.get("boxes"), body.get("box_scores"), _image_id(body.get("image_id"))
        )
    raise MediaTypeError(
        f"content type {content_type or 'missing'!r}: send multipart/form-data (field 'image') or JSON"
    )
