"""``hrnet serve``: pose estimation as an HTTP service (FastAPI), and a page at ``/`` to try it on a photo.

Routes (``create_app``):

- ``POST /v1/pose``: one image, as a multipart upload (field ``image``; optional fields ``boxes``, ``box_scores``
  and ``image_id`` holding JSON) or as JSON ``{"image": "<base64>", "boxes": [[x, y, w, h], ...],
  "box_scores": [...], "image_id": ...}``. Answers COCO keypoint results (one per person: ``keypoints`` as
  ``[x, y, score] × K`` in image pixels, ``score``, ``bbox``), the keypoint names and the timing; with
  ``?draw=1`` the image with the skeletons drawn, as a JPEG. Person boxes come from the request, else from the
  detector, else the whole image is one person (as ``hrnet predict``).
- ``GET /healthz`` (the worker is alive; counters), ``GET /v1/model`` (what runs), ``/docs`` (OpenAPI).
- ``GET /``: the page (``page/index.html``; everything it needs is served from here, no external script
  or font).

- ``GET /healthz``'s status is "ok", "saturated" (every pose slot taken: new requests get 503; still 200) or
  "worker stopped" (503); with the slots in use, the bodies still arriving, the queue and the worker's counters.

Requests that arrive together share one forward pass: a worker takes the first waiting request, lets
more join while the persons fit in ``max_batch``, waits a little for the clients it has just answered to come
back (a fraction of the measured forward time, bounded), and runs the estimator once on all their persons
(``batcher.PoseBatcher``). ``hrnet serve`` runs that worker in its main thread, the one that loaded the network,
and uvicorn in a thread beside it (``app.run_beside``: why).

Bad input never reaches the network: the request body is capped (413), the image header is read before any
pixel is decoded and its pixel count capped (the decompression-bomb guard), and undecodable images, malformed or
too deeply nested JSON, boxes that are not finite or not on the image, too many boxes are answered 400 with one
line that says what to fix (``request``). Slow clients hold nothing for long: a request head must arrive within
``header_timeout_s``, its body within ``body_timeout_s`` (else 408), and a request takes one of the
``max_pending`` slots only once its body has arrived; a client that goes away mid-request is one INFO line in the
log (``guards``).

Modules: ``request`` (limits, reading and checking a request), ``batcher`` (the worker), ``guards`` (deadlines,
body limit, disconnects), ``app`` (routes, ``create_app``, ``serve``). The page is package data of ``hrnet``.
"""

from hrnet.apps.serve.app import create_app, model_info, run_beside, serve, uvicorn_config
from hrnet.apps.serve.batcher import BatchInfo, PoseBatcher
from hrnet.apps.serve.request import ServeLimits, parse_boxes

__all__ = [
    "BatchInfo",
    "PoseBatcher",
    "ServeLimits",
    "create_app",
    "model_info",
    "parse_boxes",
    "run_beside",
    "serve",
    "uvicorn_config",
]
