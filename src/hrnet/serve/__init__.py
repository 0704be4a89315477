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

from hrnet.serve.app import create_app, model_info, serve
from hrnet.serve.batcher import BatchInfo, PoseBatcher
from hrnet.serve.request import ServeLimits, decode_image, parse_boxes

__all__ = [
    "BatchInfo",
    "PoseBatcher",
    "ServeLimits",
    "create_app",
    "decode_image",
    "model_info",
    "parse_boxes",
    "serve",
]
