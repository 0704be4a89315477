"""ONNX export (``hrnet export``): the fp32 graph (``export_onnx``) and the int8 one (``export_int8``), each checked
against ONNX Runtime before the file appears. ``onnx`` and ``onnxruntime`` are the optional extra ``hrnet[onnx]``,
imported only when used. Every file written here says so in its ``metadata_props`` (``hrnet.exported_by``), so
``hrnet export`` replaces an existing file only when it is a previous export, or with ``--overwrite``.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrnet.codec import codec_from_config
from hrnet.config import ExperimentConfig, ModelConfig, dump_config
from hrnet.data.dataset import TopDownDataset
from hrnet.data.sources import load_split
from hrnet.errors import ConfigError, DataError, ExportError
from hrnet.io.files import atomic_path
from hrnet.io.outputs import check_output_file
from hrnet.keypoints import KeypointSet, metainfo_text
from hrnet.models.checkpoint import META_CONFIG, META_KEYPOINT_SET, ONNX_PREFIX, load_model, onnx_metadata
from hrnet.models.fuse import fold_batchnorm
from hrnet.models.hrnet import UpsampleConcat
from hrnet.runtime.backends import EXPORT_PRECISIONS
from hrnet.runtime.onnx import (
    MAX_OPSET,
    META_CALIBRATION,
    META_CALIBRATION_SIZE,
    META_EXPORTED_BY,
    META_PRECISION,
    META_QUANTIZER,
    MIN_OPSET,
    MIN_OPSET_BILINEAR,
    OPSET,
    OnnxRunner,
    optional_module,
)

log = logging.getLogger(__name__)

COMMAND = "hrnet export"
TOLERANCE = 1e-4  # of the largest |output|: fp32 reordering (folding, ORT's kernels) stays below 1e-5 of it
CHECK_BATCH = 2  # the check runs a batch other than 1, so a batch axis frozen to 1 fails it
CALIBRATION_CROPS = 320  # training crops whose activation ranges set the int8 scales
CALIBRATION_BATCH = 16
# The int8 network's heatmaps may differ from the fp32 graph's by at most this fraction of max |output| on the
# calibration crops: a trained network's differ by a few percent; broken scales (e.g. calibrated on the wrong
# normalisation) give errors of the order of the output itself.
INT8_TOLERANCE = 0.25


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: tuple[int, int],
    *,
    opset: int = OPSET,
    dynamic_batch: bool = True,
    fold_bn: bool = True,
    check: bool = True,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model`` (in eval mode, on the CPU) as ONNX to ``path`` and return the path: input ``image``, (N, 3,
    H, W) float32 crops normalised as ``hrnet.data.dataset``'s; output ``heatmaps``, (N, K, h, w).

    Args:
        model: the network, (N, 3, H, W) → (N, K, h, w); a copy is exported, ``model`` itself is not changed.
        input_size: (height, width) of the input, fixed in the graph.
        dynamic_batch: the batch axis ``N`` of ``image`` and ``heatmaps`` is symbolic (``batch``).
        fold_bn: fold BatchNorm into the convolutions first (``hrnet.models.fuse.fold_batchnorm``).
        check: run ONNX Runtime on a random batch of ``CHECK_BATCH`` and compare with the unfolded PyTorch network.
        metadata: written into ``metadata_props`` (with ``hrnet.exported_by``).

    The file appears only once complete and checked. Raises ``ExportError`` when ONNX Runtime's outputs differ
    from PyTorch's by more than ``TOLERANCE`` × max |output|, ``ConfigError`` when onnx / onnxruntime is missing.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"ONNX opset {opset}: the export writes opsets {MIN_OPSET} to {MAX_OPSET} (default {OPSET})")
    if opset < MIN_OPSET_BILINEAR and _interpolates_bilinearly(model):
        raise ConfigError(
            f"ONNX opset {opset} cannot express the network's bilinear upsampling as PyTorch computes it (HRNetV2's "
            f"fusions and head): use opset {MIN_OPSET_BILINEAR} or newer (default {OPSET})"
        )
    optional_module("onnx")
    if check:
        optional_module("onnxruntime")
    reference = copy.deepcopy(model).cpu().eval()
    net = fold_batchnorm(reference) if fold_bn else reference
    example = torch.randn(CHECK_BATCH, 3, *input_size, generator=torch.Generator().manual_seed(0))
    path = Path(path)
    # The graph's initializers are the weights in float32: the file's size, give or take its small graph.
    needed = sum(t.numel() * 4 for t in net.state_dict().values() if t.is_floating_point())
    with atomic_path(path, needed) as tmp:
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
        _set_metadata(tmp, metadata or {})
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


def _interpolates_bilinearly(model: nn.Module) -> bool:
    return any(
        isinstance(m, UpsampleConcat) or (isinstance(m, nn.Upsample) and m.mode == "bilinear") for m in model.modules()
    )


def recorded_metadata(config: ExperimentConfig | ModelConfig, keypoint_set: KeypointSet | None) -> dict[str, str]:
    """The ``metadata_props`` with which an exported network runs alone (``hrnet.models.checkpoint.read_metadata``
    reads them back): the experiment config and the keypoint set, as our ``.safetensors`` files record them."""
    recorded = {}
    if isinstance(config, ExperimentConfig):
        recorded[ONNX_PREFIX + META_CONFIG] = dump_config(config)
    if keypoint_set is not None:
        recorded[ONNX_PREFIX + META_KEYPOINT_SET] = metainfo_text(keypoint_set)
    return recorded


def _set_metadata(path: Path, props: Mapping[str, str]) -> None:
    """Replace the ``metadata_props`` of the ONNX file at ``path`` with ``props`` and ``META_EXPORTED_BY``."""
    import onnx

    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    for key, value in {**props, META_EXPORTED_BY: f"{COMMAND} {version('hrnet')}"}.items():
        graph.metadata_props.add(key=key, value=str(value))
    onnx.save(graph, str(path))


def exported_by_hrnet(path: Path) -> bool:
    """Whether ``path`` is an ONNX file that ``hrnet export`` wrote (its ``hrnet.exported_by`` metadata). Only an
    ``.onnx`` name is read: a checkpoint or any other file is never taken for an export."""
    if path.suffix.lower() != ".onnx":
        return False
    try:
        return onnx_metadata(path).get(META_EXPORTED_BY, "").startswith(COMMAND)
    except ConfigError:  # not ONNX, or the onnx package is missing
        return False


def calibration_batches(
    config: ExperimentConfig,
    count: int = CALIBRATION_CROPS,
    *,
    batch: int = CALIBRATION_BATCH,
    seed: int = 0,
) -> list[np.ndarray]:
    """``count`` person crops of ``config``'s training split (drawn at random with ``seed``, without replacement),
    as the network sees them at test time (the evaluation crop, no augmentation): a list of (B, 3, H, W) float32
    normalised batches of at most ``batch`` crops."""
    if count < 1 or batch < 1:
        raise ConfigError(f"the calibration needs ≥ 1 crops and a batch ≥ 1, got {count} and {batch}")
    split = load_split(config.data, "train", config.model.num_keypoints)
    if not split.records:
        raise DataError(f"{split.annotations}: the training split has no person records to calibrate on")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(split.records), size=min(count, len(split.records)), replace=False)
    dataset = TopDownDataset([split.records[i] for i in np.sort(chosen)], split.keypoint_set,
                             codec_from_config(config.model, config.data))  # fmt: skip
    crops = [dataset[i].image.numpy() for i in range(len(dataset))]  # type: ignore[union-attr]
    return [np.stack(crops[i : i + batch]) for i in range(0, len(crops), batch)]


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drops ONNX Runtime's quantizer's INFO and DEBUG lines, which it logs on the root logger and so onto every
    command's console; its warnings pass."""

    def chatter(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "onnxruntime" not in Path(record.pathname).parts

    logging.getLogger().addFilter(chatter)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(chatter)


def export_int8(
    model: nn.Module,
    path: str | Path,
    input_size: tuple[int, int],
    calibration: Sequence[np.ndarray],
    *,
    metadata: Mapping[str, str] | None = None,
    opset: int = OPSET,
    reduce_range: bool = True,
    check_crops: np.ndarray | None = None,
) -> Path:
    """Write ``model`` as a statically quantized int8 ONNX file.

    The fp32 graph (``export_onnx``, BatchNorm folded, checked) goes through ONNX Runtime's pre-processing and
    ``quantize_static``: QDQ format, int8 weights per output channel (symmetric), uint8 activations per tensor
    (asymmetric), ranges the min/max over the calibration crops. The file appears only once complete and checked
    against the fp32 graph (``INT8_TOLERANCE``).

    Args:
        model, input_size, opset: as for ``export_onnx``.
        calibration: (B, 3, H, W) float32 normalised crops.
        metadata: written into ``metadata_props`` with ``hrnet.runtime.precision = int8`` and the quantizer's name.
        reduce_range: weights in 7 bits, as on x86 CPUs without VNNI ONNX Runtime's uint8 × int8 products (AVX2's
            ``vpmaddubsw``) saturate their 16-bit pair sums with full-range weights (docs/speed.md).
        check_crops: the crops of the check (default: the first calibration batch).

    Returns:
        ``path``.
    """
    optional_module("onnx")
    ort = optional_module("onnxruntime")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ConfigError("int8 export needs calibration crops (none given)")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"image": np.ascontiguousarray(batch, dtype=np.float32)}

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", input_size, opset=opset, metadata=metadata)
        prepared = Path(tmp) / "prepared.onnx"
        # Symbolic shape inference stops at the exchange units' Resize; ONNX's own shape inference is enough here.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantized = Path(tmp) / "int8.onnx"
        with _quiet_quantizer():
            quantize_static(
                str(prepared),
                str(quantized),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                reduce_range=reduce_range,
                # Ranges are reduced every 8 batches, so the calibration's memory does not grow with its size.
                extra_options={"CalibMaxIntermediateOutputs": 8},
            )
        quantizer = (
            f"onnxruntime {ort.__version__} quantize_static: QDQ, {'7-bit (reduce_range) ' if reduce_range else ''}"
            "int8 weights per channel, uint8 activations per tensor, MinMax ranges"
        )
        _set_metadata(quantized, {**(metadata or {}), META_PRECISION: "int8", META_QUANTIZER: quantizer})
        sample = np.ascontiguousarray(calibration[0] if check_crops is None else check_crops, dtype=np.float32)
        expected = OnnxRunner(fp32)(sample)
        got = OnnxRunner(quantized)(sample)
        error, scale = float(np.abs(got - expected).max()), float(np.abs(expected).max())
        if not error <= INT8_TOLERANCE * scale:  # also catches NaN
            raise ExportError(
                f"{path}: the int8 network's heatmaps differ from fp32's by {error:.3g} on {len(sample)} crops (max "
                f"|output| {scale:.3g}, allowed {INT8_TOLERANCE:g} of it); the file was not written. Check that "
                "the calibration config's data matches the network's (input size, normalisation)"
            )
        log.info("%s: int8 heatmaps within %.2g of max |output| of fp32 on %d crops", path, error / scale, len(sample))
        with atomic_path(path, quantized.stat().st_size) as tmp_out:
            Path(tmp_out).write_bytes(quantized.read_bytes())
    return path


def export_from_config(
    config: ExperimentConfig | ModelConfig,
    weights: str | Path | None,
    out: str | Path,
    *,
    precision: str = "fp32",
    calibration: ExperimentConfig | None = None,
    calibration_name: str = "",
    calibration_crops: int = CALIBRATION_CROPS,
    inputs: Sequence[str | Path | None] = (),
    overwrite: bool = False,
    keypoint_set: KeypointSet | None = None,
    **kwargs: Any,
) -> Path:
    """Build the config's network, load ``weights`` (any format ``load_weights`` reads; None keeps the random
    initialisation) and export it at the config's input size. ``kwargs`` go to ``export_onnx``. The file records
    the experiment config and ``keypoint_set`` (``recorded_metadata``), so that it runs with nothing else.

    ``out`` is checked first (``hrnet.io.outputs.check_output_file``): never ``weights`` or one of ``inputs`` (the
    config files), a device or other special file, or an existing file that is not a previous export unless
    ``overwrite``.

    ``precision="int8"``: quantized by ``export_int8`` with ``calibration_crops`` crops of ``calibration``'s
    training split (default: ``config`` itself); ``calibration_name`` (e.g. the config's path) is recorded in the
    file with the annotation file and the number of crops. bf16 is a PyTorch path, not an ONNX file.
    """
    model_config = config.model if isinstance(config, ExperimentConfig) else config
    check_output_file(out, command=COMMAND, inputs=[weights, *inputs], overwrite=overwrite, is_ours=exported_by_hrnet)
    if precision not in EXPORT_PRECISIONS:
        hint = " (bf16 runs on PyTorch: --precision bf16 in predict, eval, serve, bench)" if precision == "bf16" else ""
        raise ConfigError(f"hrnet export writes {' or '.join(EXPORT_PRECISIONS)} ONNX files, not {precision!r}{hint}")
    model = load_model(model_config, weights)
    recorded = recorded_metadata(config, keypoint_set)
    if precision == "fp32":
        return export_onnx(model, out, model_config.input_size, metadata=recorded, **kwargs)
    source = calibration if calibration is not None else config
    if not isinstance(source, ExperimentConfig):
        raise ConfigError("int8 export needs a calibration experiment config (--calibration CONFIG)")
    if source.model.input_size != model_config.input_size:
        raise ConfigError(
            f"the calibration config crops {source.model.input_size} but the network takes {model_config.input_size}"
        )
    batches = calibration_batches(source, calibration_crops)
    check = calibration_batches(source, CALIBRATION_BATCH, seed=1)[0]  # other crops than the calibration's
    metadata = {
        **recorded,
        META_CALIBRATION: f"{calibration_name or 'config'}: training split "
        f"{Path(source.data.root, source.data.train_annotations)}, random crops (seed 0), evaluation crop",
        META_CALIBRATION_SIZE: str(sum(len(b) for b in batches)),
    }
    return export_int8(model, out, model_config.input_size, batches, metadata=metadata, check_crops=check, **kwargs)
