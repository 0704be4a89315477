"""hrnet: HRNet 2D keypoint estimation (Sun et al., CVPR 2019), exact to the official checkpoints.

The public API, loaded on first use so that ``import hrnet`` stays cheap::

    from hrnet import PoseEstimator, load_config, build_model, load_weights
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hrnet.config import load_config
    from hrnet.models.checkpoint import load_weights
    from hrnet.models.hrnet import build_model
    from hrnet.pose.estimator import PoseEstimator

_API = {
    "PoseEstimator": "hrnet.pose.estimator",
    "load_config": "hrnet.config",
    "build_model": "hrnet.models.hrnet",
    "load_weights": "hrnet.models.checkpoint",
}
__all__ = ["PoseEstimator", "__version__", "build_model", "load_config", "load_weights"]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read when asked: importlib.metadata is a slow import
        from importlib.metadata import version

        return version("hrnet")
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'hrnet' has no attribute {name!r}")
