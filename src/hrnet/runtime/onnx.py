"""The ONNX Runtime runner: an exported network (``hrnet export``) run on the CPU (the ``onnxruntime`` backends
of ``hrnet.runtime.backends``), and the metadata ``hrnet export`` records in the file.

``onnx`` and ``onnxruntime`` are the optional extra ``hrnet[onnx]``; they are imported only when used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hrnet.errors import ConfigError
from hrnet.system import cpu_threads, optional_module

OPSET = 17  # what hrnet export writes by default
# The opsets the export takes: 9 is the first whose Upsample the exchange units' nearest upsampling exports to (7
# fails); 20 is the newest PyTorch's TorchScript-based exporter writes (torch.onnx._constants).
MIN_OPSET, MAX_OPSET = 9, 20
# Resize's half-pixel coordinates, which PyTorch's bilinear interpolation (align_corners False) uses, came with opset
# 11; the Upsample of earlier opsets samples elsewhere (HRNetV2's fusions and head interpolate so).
MIN_OPSET_BILINEAR = 11
# ONNX metadata keys written by hrnet export.
META_PRECISION = "hrnet.runtime.precision"
META_CALIBRATION = "hrnet.calibration"
META_CALIBRATION_SIZE = "hrnet.calibration_size"
META_QUANTIZER = "hrnet.quantizer"
META_EXPORTED_BY = "hrnet.exported_by"  # in every file hrnet export writes: "hrnet export <version>"


def cpu_session_options(threads: int | None) -> Any:
    """ONNX Runtime session options for a network run beside other work (the pose network, a person detector).

    Its thread pool stops spinning when a run returns: spinning on, waiting for the next run, it would take the
    cores from the threads that decode, detect, draw and encode meanwhile.

    Args:
        threads: intra-op threads; 0 or None: ``hrnet.system.cpu_threads``.

    Returns:
        An ``onnxruntime.SessionOptions``.
    """
    options = optional_module("onnxruntime").SessionOptions()
    options.intra_op_num_threads = threads or cpu_threads() or 0
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def onnx_precision(path: str | Path) -> str:
    """The precision an ONNX file was exported in: its ``hrnet.runtime.precision`` metadata, else "fp32"."""
    # Here, not at the top: the command line's parser reads this module's names and starts without PyTorch.
    from hrnet.models.checkpoint import onnx_metadata

    return onnx_metadata(path).get(META_PRECISION, "fp32")


def describe_nodes(nodes: Sequence[Any]) -> str:
    """A graph's inputs or outputs (ONNX Runtime's ``NodeArg``s) for a message: names, element types and shapes,
    cut at about 200 characters (a graph may have thousands)."""
    text = ", ".join(f"{n.name!r} {n.type} {list(n.shape)}" for n in nodes) or "none"
    return text if len(text) <= 200 else f"{text[:200]}... ({len(nodes)} in all)"


class OnnxRunner:
    """An ONNX Runtime session on the CPU: ``runner(images) -> heatmaps``.

    The graph must be a pose network as ``hrnet export`` writes one: one float32 input (N, 3, H, W) and float32
    heatmaps (N, K, h, w) as its first output; any other graph is a ``ConfigError`` when the file is opened.

    ``threads``: ONNX Runtime's intra-op threads (None: ``hrnet.system.cpu_threads``). ``input_size`` ``(height,
    width)`` and ``num_keypoints``, when given (a config's ``model.input_size`` and ``model.num_keypoints``), are
    checked against the graph's fixed input and output sizes: a graph exported for another config is a
    ``ConfigError`` here rather than a shape error later.
    """

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        *,
        input_size: tuple[int, int] | None = None,
        num_keypoints: int | None = None,
    ):
        ort = optional_module("onnxruntime")
        options = cpu_session_options(threads)
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types, not importable without it
            raise ConfigError(f"{path}: ONNX Runtime cannot load the model ({err})") from None
        self._check_contract()
        image = self.session.get_inputs()[0]
        self.input_name: str = image.name
        # Symbolic axes (the batch) are strings; fixed ones are ints.
        self.input_shape: tuple[int | str, ...] = tuple(image.shape)
        self._check_against_config(input_size, num_keypoints)

    def _check_contract(self) -> None:
        # Ranks and element types only: the input's channels are not checked, as hrnet.runtime.bench runs a
        # 2048-channel convolution through this runner to measure the CPU's peak.
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        nodes = [inputs[0], outputs[0]] if len(inputs) == 1 and outputs else []
        if not nodes or any(len(n.shape) != 4 or n.type != "tensor(float)" for n in nodes):
            raise ConfigError(
                f"{self.path}: not a pose network hrnet can run: it needs one float32 input (N, 3, H, W) and "
                f"float32 heatmaps (N, K, h, w) as its first output, as hrnet export writes them; this model takes "
                f"{describe_nodes(inputs)} and gives {describe_nodes(outputs)}"
            )

    def _check_against_config(self, input_size: tuple[int, int] | None, num_keypoints: int | None) -> None:
        if input_size is not None:
            graph = self.input_shape[2:]
            fixed = len(graph) == 2 and all(isinstance(v, int) for v in graph)
            if fixed and tuple(graph) != tuple(input_size):
                raise ConfigError(
                    f"{self.path}: the ONNX model takes {graph[0]} × {graph[1]} crops (height × width) but the "
                    f"config's model.input_size is {input_size[0]} × {input_size[1]}: use the config it was exported "
                    "with, or export it again from this config (hrnet export)"
                )
        if num_keypoints is not None:
            output = tuple(self.session.get_outputs()[0].shape)
            if len(output) == 4 and isinstance(output[1], int) and output[1] != num_keypoints:
                raise ConfigError(
                    f"{self.path}: the ONNX model predicts {output[1]} keypoints but the config's "
                    f"model.num_keypoints is {num_keypoints}: use the config it was exported with"
                )

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 normalised images → (N, K, h, w) float32 heatmaps."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        expected = self.input_shape
        if images.ndim != len(expected) or any(
            isinstance(e, int) and e != n for e, n in zip(expected, images.shape, strict=True)
        ):
            raise ValueError(f"{self.path}: the model takes inputs of shape {expected}, got {images.shape}")
        return self.session.run(None, {self.input_name: images})[0]
