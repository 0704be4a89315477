"""``hrnet serve``: pose estimation as an HTTP service (FastAPI), and a page at ``/`` to try it on a photo. Its
routes, batching and limits are described in docs/serve.md.

Modules: ``request`` (the limits, reading and checking a request), ``batcher`` (the worker that batches requests
into forward passes), ``guards`` (deadlines, the body limit, disconnects), ``app`` (the routes, ``create_app``,
``serve``). The page is package data of ``hrnet``.
"""

from hrnet.apps.serve.app import create_app, run_beside, serve, uvicorn_config
from hrnet.apps.serve.batcher import PoseBatcher
from hrnet.apps.serve.request import ServeLimits

__all__ = ["PoseBatcher", "ServeLimits", "create_app", "run_beside", "serve", "uvicorn_config"]
