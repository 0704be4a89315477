"""ONNX export, checked against ONNX Runtime, and the ONNX Runtime backend of ``hrnet predict``.

The exported graph takes ``image`` (N, 3, H, W) float32 (RGB normalised with the ImageNet mean and std, as the
crops of ``hrnet.data.dataset``) and returns ``heatmaps`` (N, K, h, w); the batch axis is dynamic. BatchNorm is
folded first (one conv instead of conv + BN: a smaller, faster graph with the same outputs).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrnet.config import ExperimentConfig, ModelConfig
from hrnet.errors import ConfigError, HrnetError
from hrnet.fileio import atomic_path
from hrnet.models.fuse import fold_batchnorm

OPSET = 17
TOLERANCE = 1e-4  # of the largest |output|: fp32 reordering stays near 2e-5 of it (parity fixtures)


class ExportError(HrnetError):
    """The exported graph does not reproduce the PyTorch network."""


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX support needs the optional extra: pip install 'hrnet[onnx]'") from None
    return onnxruntime


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: tuple[int, int],
    *,
    opset: int = OPSET,
    dynamic_batch: bool = True,
    fold_bn: bool = True,
    check: bool = True,
) -> Path:
    """Write ``model`` as ONNX (atomically) and, with ``check``, verify that ONNX Runtime gives PyTorch's outputs
    within ``TOLERANCE`` of their range on a random batch of 2."""
    _onnxruntime()
    net = fold_batchnorm(model) if fold_bn else model
    net = net.eval().cpu()
    example = torch.randn(2, 3, *input_size, generator=torch.Generator().manual_seed(0))
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of torch.export's, which needs onnxscript; it
        # is exact for this plain convolutional graph and needs nothing more.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["image"],
            output_names=["heatmaps"],
            dynamic_axes={"image": {0: "batch"}, "heatmaps": {0: "batch"}} if dynamic_batch else None,
            opset_version=opset,
        )
        if check:
            with torch.no_grad():
                expected = model.eval().cpu()(example).numpy()
            got = OnnxRunner(tmp)(example.numpy())
            error = float(np.abs(got - expected).max())
            if error > TOLERANCE * float(np.abs(expected).max()):
                raise ExportError(
                    f"{path}: ONNX Runtime differs from PyTorch by {error:.3g} (max |output| "
                    f"{np.abs(expected).max():.3g}); the file was not written"
                )
    return path


def export_from_config(
    config: ExperimentConfig | ModelConfig, weights: str | Path | None, out: str | Path, **kwargs: Any
) -> Path:
    """Build the config's network, load ``weights`` (any format ``load_weights`` reads) and export it."""
    from hrnet.models.checkpoint import load_weights
    from hrnet.models.hrnet import build_model

    model_config = config.model if isinstance(config, ExperimentConfig) else config
    model = build_model(model_config)
    if weights is not None:
        load_weights(model, weights)
    return export_onnx(model, out, model_config.input_size, **kwargs)


class OnnxRunner:
    """An ONNX Runtime session on the CPU: ``runner(images (N, 3, H, W) float32) -> heatmaps (N, K, h, w)``."""

    def __init__(self, path: str | Path, threads: int | None = None):
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0")) or 0
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own unrelated exception types
            raise ConfigError(f"{path}: ONNX Runtime cannot load the model ({err})") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(images, dtype=np.float32)})[0]
