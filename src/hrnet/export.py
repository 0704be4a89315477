"""ONNX export, checked against ONNX Runtime (``hrnet.models.onnx.OnnxRunner``, also ``hrnet predict``'s backend).

The exported graph takes ``image`` (N, 3, H, W) float32 (RGB normalised with the ImageNet mean and std, as the
crops of ``hrnet.data.dataset``) and returns ``heatmaps`` (N, K, h, w); the batch axis is dynamic. BatchNorm is
folded first (one conv instead of conv + BN: a smaller, faster graph with the same outputs).

``onnx`` (the exporter writes through it) and ``onnxruntime`` are the optional extra ``hrnet[onnx]``; they are
imported only when used.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrnet.config import ExperimentConfig, ModelConfig
from hrnet.errors import ConfigError, ExportError
from hrnet.fileio import atomic_path
from hrnet.models.checkpoint import load_model
from hrnet.models.fuse import fold_batchnorm
from hrnet.models.onnx import OnnxRunner, optional_module

log = logging.getLogger(__name__)

OPSET = 17
TOLERANCE = 1e-4  # of the largest |output|: fp32 reordering (folding, ORT's kernels) stays below 1e-5 of it
CHECK_BATCH = 2  # the check runs a batch other than 1, so a batch axis frozen to 1 fails it


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
    """Write ``model`` (in eval mode, on the CPU) as ONNX to ``path`` and return the path.

    Args:
        model: the network, (N, 3, H, W) → (N, K, h, w); a copy is exported, ``model`` itself is not changed.
        input_size: (height, width) of the input, fixed in the graph.
        dynamic_batch: the batch axis ``N`` of ``image`` and ``heatmaps`` is symbolic (``batch``).
        fold_bn: fold BatchNorm into the convolutions first (``hrnet.models.fuse.fold_batchnorm``).
        check: run ONNX Runtime on a random batch of ``CHECK_BATCH`` and compare with the unfolded PyTorch network.

    The file appears only once complete and checked. Raises ``ExportError`` when ONNX Runtime's outputs differ
    from PyTorch's by more than ``TOLERANCE`` × max |output|, ``ConfigError`` when onnx / onnxruntime is missing.
    """
    optional_module("onnx")
    if check:
        optional_module("onnxruntime")
    reference = copy.deepcopy(model).cpu().eval()
    net = fold_batchnorm(reference) if fold_bn else reference
    example = torch.randn(CHECK_BATCH, 3, *input_size, generator=torch.Generator().manual_seed(0))
    path = Path(path)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated in favour of torch.export's, which needs onnxscript; it
            # is exact for this plain convolutional graph and needs nothing more.
            warnings.simplefilter("ignore", DeprecationWarning)
            # The input size is fixed in the graph, so values worked out from it (the TF port's 'same' padding)
            # are meant to become constants.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
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
                expected = reference(example).numpy()
            got = OnnxRunner(tmp)(example.numpy())
            error, scale = float(np.abs(got - expected).max()), float(np.abs(expected).max())
            if not error <= TOLERANCE * scale:  # also catches NaN
                raise ExportError(
                    f"{path}: ONNX Runtime's outputs differ from PyTorch's by {error:.3g} (max |output| {scale:.3g}, "
                    f"allowed {TOLERANCE:g} of it); the file was not written. Try another opset or fold_bn=False"
                )
            log.info("%s: ONNX Runtime equals PyTorch within %.2g of max |output|", path, error / (scale or 1))
    return path


def export_from_config(
    config: ExperimentConfig | ModelConfig,
    weights: str | Path | None,
    out: str | Path,
    **kwargs: Any,
) -> Path:
    """Build the config's network, load ``weights`` (any format ``load_weights`` reads; None keeps the random
    initialisation) and export it at the config's input size. ``kwargs`` go to ``export_onnx``."""
    model_config = config.model if isinstance(config, ExperimentConfig) else config
    if weights is not None and Path(out).resolve() == Path(weights).resolve():
        raise ConfigError(f"--out {out} is the weights file being exported: write the ONNX file elsewhere")
    return export_onnx(load_model(model_config, weights), out, model_config.input_size, **kwargs)
