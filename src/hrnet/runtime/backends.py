"""The ways to run the network for inference, in one registry (``BACKENDS``: the plain network, the fast path,
bf16, ONNX Runtime fp32 and int8), and the one function that opens a network: ``open_backend``. Predict, eval,
serve, bench and ``PoseEstimator`` all come through here.

Every backend maps float32 crops to float32 heatmaps (``Backend``), so the codec decodes every precision in fp32.

The rule that picks a backend (``preferred_backend``) is the same everywhere: an ``.onnx`` file runs on ONNX
Runtime in the precision its metadata records (``hrnet export`` writes it); any other weights file runs on PyTorch,
fp32 on the fast path unless asked otherwise. A precision or backend name that contradicts the file is an error that
says what the file holds. Adding a backend is one entry in ``BACKENDS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrnet.config import ModelConfig
from hrnet.errors import ConfigError
from hrnet.runtime.onnx import onnx_precision

if TYPE_CHECKING:  # the registry's names are read by the command line's parser, which starts without PyTorch
    import torch
    from torch import nn

    from hrnet.runtime.precision import HeatmapFn

log = logging.getLogger(__name__)

RUNS = ("checkpoint", "onnx")  # what a backend runs: a PyTorch weights file, or an .onnx file


@dataclass(frozen=True)
class _Opening:
    """What a backend's builder gets: the network loaded (PyTorch) or the ONNX file, and the options."""

    config: ModelConfig
    module: nn.Module | None
    onnx_file: Path | None
    compile: bool
    # The module was loaded by open_backend and nothing else holds it: the fast paths fold it instead of a copy.
    owned: bool = False


@dataclass(frozen=True)
class BackendEntry:
    """One way to run the network.

    Attributes:
        name: what ``--backend`` and ``PoseEstimator.from_config(backend=...)`` call it.
        engine: "PyTorch" or "ONNX Runtime".
        precision: "fp32", "bf16" or "int8": the arithmetic of the network's layers.
        runs: "checkpoint" (a PyTorch weights file, or none for a random initialisation) or "onnx" (an .onnx file).
        devices: the device types it runs on.
        about: one line for help texts.
        build: makes the heatmap function from an ``_Opening``.
        channels_last: its PyTorch network runs with channels-last weights, so they are read into that layout.
    """

    name: str
    engine: str
    precision: str
    runs: str
    devices: tuple[str, ...]
    about: str
    build: Callable[[_Opening], HeatmapFn]
    channels_last: bool = False


def _plain(opening: _Opening) -> HeatmapFn:
    assert opening.module is not None
    if opening.compile:
        raise ConfigError("--compile applies to the fast path (backend pytorch-fast or pytorch-bf16), not pytorch")
    return opening.module


def _fast(opening: _Opening) -> HeatmapFn:
    from hrnet.models.fuse import prepare_for_inference

    assert opening.module is not None
    return prepare_for_inference(opening.module, channels_last=True, compile=opening.compile, inplace=opening.owned)


def _bf16(opening: _Opening) -> HeatmapFn:
    from hrnet.runtime.precision import prepare_bf16

    assert opening.module is not None
    return prepare_bf16(opening.module, compile=opening.compile, inplace=opening.owned)


def _onnxruntime(opening: _Opening) -> HeatmapFn:
    import numpy as np
    import torch

    from hrnet.runtime.onnx import OnnxRunner

    assert opening.onnx_file is not None
    if opening.compile:
        raise ConfigError("--compile applies to the PyTorch fast path, not to ONNX Runtime")
    runner = OnnxRunner(
        opening.onnx_file, input_size=opening.config.input_size, num_keypoints=opening.config.num_keypoints
    )

    def run(images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(runner(np.asarray(images.float().cpu().numpy())))

    return run


BACKENDS: dict[str, BackendEntry] = {
    e.name: e
    for e in (
        BackendEntry("pytorch", "PyTorch", "fp32", "checkpoint", ("cpu", "cuda", "mps"),
                     "the network as trained (BatchNorm unfolded): the reference", _plain),
        BackendEntry("pytorch-fast", "PyTorch", "fp32", "checkpoint", ("cpu", "cuda", "mps"),
                     "BatchNorm folded, channels-last (default for weights files)", _fast, channels_last=True),
        BackendEntry("pytorch-bf16", "PyTorch", "bf16", "checkpoint", ("cpu", "cuda"),
                     "the fast path in bfloat16 (fast on CPUs with AVX-512 BF16 or AMX, and on GPUs)", _bf16,
                     channels_last=True),
        BackendEntry("onnxruntime", "ONNX Runtime", "fp32", "onnx", ("cpu",),
                     "an .onnx file from hrnet export", _onnxruntime),
        BackendEntry("onnxruntime-int8", "ONNX Runtime", "int8", "onnx", ("cpu",),
                     "an .onnx file from hrnet export --precision int8 (fast with VNNI)", _onnxruntime),
    )
}  # fmt: skip
PRECISIONS: tuple[str, ...] = tuple(dict.fromkeys(e.precision for e in BACKENDS.values()))
# What hrnet export writes: the precisions an ONNX Runtime backend runs.
EXPORT_PRECISIONS: tuple[str, ...] = tuple(dict.fromkeys(e.precision for e in BACKENDS.values() if e.runs == "onnx"))


def check_precision(precision: str) -> str:
    """``precision`` if some backend runs it, else a ``ConfigError`` naming the precisions."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def parse_precisions(text: str) -> list[str]:
    """``"fp32,bf16,int8"`` → ``["fp32", "bf16", "int8"]`` (each checked, duplicates dropped, order kept)."""
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not names:
        raise ConfigError(f"--precision {text!r}: give one or more of {', '.join(PRECISIONS)}, comma-separated")
    return list(dict.fromkeys(check_precision(p) for p in names))


def is_onnx_file(weights: str | Path | None) -> bool:
    """Whether ``weights`` names an ONNX file (by its suffix, in any case)."""
    return weights is not None and Path(weights).suffix.lower() == ".onnx"


def select_backend(
    weights: str | Path | None,
    precision: str | None = None,
    backend: str | None = None,
    *,
    reference: bool = False,
) -> BackendEntry:
    """The backend that runs ``weights``: ``backend`` if given, else the ``preferred_backend`` for the file.

    Args:
        weights: a weights file (``.onnx`` in any case: an ONNX file), or None for a random initialisation.
        precision: "fp32", "bf16" or "int8"; None: the file's own (an ONNX file's metadata), else fp32.
        backend: a name of ``BACKENDS``; None: chosen from the file and ``precision``.
        reference: fp32 on PyTorch runs the network as trained (``pytorch``, as the official test does) rather
            than the fast path.

    Returns:
        The registry entry. ``precision``, ``backend`` and the file must agree: else a ``ConfigError`` saying what
        the file holds and what to pass instead.
    """
    if precision is not None:
        check_precision(precision)
    onnx = is_onnx_file(weights)
    found = onnx_precision(weights) if onnx else None  # type: ignore[arg-type]
    if backend is None:
        if found is not None and precision not in (None, found):
            raise ConfigError(f"{weights} holds a {found} network; pass --precision {found} (or leave it out)")
        entry = preferred_backend("onnx" if onnx else "checkpoint", found or precision, reference=reference)
        if entry is None and onnx:
            raise ConfigError(f"{weights}: no backend runs {found} .onnx files")
        if entry is None:
            raise ConfigError(
                f"{weights or 'no weights'}: int8 runs an .onnx file quantized by hrnet export; make one with: "
                "hrnet export CONFIG --weights W --precision int8 --calibration CONFIG --out F.onnx"
            )
    else:
        entry = BACKENDS.get(backend)
        if entry is None:
            raise ConfigError(f"backend {backend!r}: not one of {', '.join(BACKENDS)}")
        if precision is not None and precision != entry.precision:
            raise ConfigError(f"backend {backend} runs {entry.precision}, not {precision}: give one of them")
    if entry.runs == "onnx" and not onnx:
        int8 = " --precision int8 --calibration CONFIG" if entry.precision == "int8" else ""
        raise ConfigError(
            f"{weights or 'no weights'}: backend {entry.name} runs an .onnx file; make one with "
            f"hrnet export CONFIG --weights W{int8} --out F.onnx"
        )
    if entry.runs == "checkpoint" and onnx:
        raise ConfigError(f"{weights}: an .onnx file runs on ONNX Runtime, not on backend {entry.name}")
    if found is not None and found != entry.precision:
        raise ConfigError(
            f"{weights} holds a {found} network (its hrnet.runtime.precision metadata), not {entry.precision}: "
            f"leave --precision/--backend out, or export it again"
        )
    return entry


def preferred_backend(
    runs: str, precision: str | None = None, *, fastest: bool = False, reference: bool = False
) -> BackendEntry | None:
    """Which backend runs a network on this CPU: the one rule behind ``select_backend``, ``hrnet predict
    --realtime`` and ``hrnet bench --precision``.

    Args:
        runs: what the network comes as: "checkpoint" (PyTorch weights) or "onnx" (an ``.onnx`` file).
        precision: "fp32", "bf16" or "int8"; None: fp32, or with ``fastest`` bf16 where this CPU computes it
            natively (AVX-512 BF16 or AMX; ``precision.cpu_support``), as it is then the fastest a checkpoint runs.
        fastest: see ``precision``.
        reference: fp32 from a checkpoint runs the network as trained (``pytorch``) rather than the fast path.

    Returns:
        The registry entry, or None where no backend runs ``precision`` from ``runs`` (int8 needs an export).
    """
    if precision is None:
        from hrnet.runtime.precision import cpu_support

        precision = "bf16" if fastest and runs == "checkpoint" and cpu_support().bf16 else "fp32"
    if (runs, precision) == ("checkpoint", "fp32"):
        return BACKENDS["pytorch" if reference else "pytorch-fast"]
    return next((e for e in BACKENDS.values() if e.runs == runs and e.precision == precision), None)


@dataclass(frozen=True)
class Backend:
    """An opened network: ``backend(images)`` maps (N, 3, H, W) float32 normalised crops on ``device`` to
    (N, K, h, w) float32 heatmaps.

    Attributes:
        entry: the registry entry it runs.
        device: where its inputs go.
        weights: the file it loaded (None: a random initialisation).
        run: the heatmap function (an ``nn.Module`` for the PyTorch backends).
        compiled: whether ``torch.compile`` was applied.
    """

    entry: BackendEntry
    device: torch.device
    weights: Path | None
    run: HeatmapFn
    compiled: bool = False

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.run(images)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def precision(self) -> str:
        return self.entry.precision

    def describe(self) -> dict[str, Any]:
        """What runs, for ``/v1/model`` and logs: backend name, engine, precision, device, weights file."""
        return {
            "backend": self.entry.name,
            "engine": self.entry.engine,
            "precision": self.entry.precision,
            "device": str(self.device),
            "compiled": self.compiled,
            "weights": str(self.weights) if self.weights is not None else None,
        }


def open_backend(
    config: ModelConfig,
    weights: str | Path | None,
    *,
    precision: str | None = None,
    backend: str | None = None,
    device: str = "auto",
    compile: bool = False,
    batch_size: int | None = None,
    reference: bool = False,
    module: nn.Module | None = None,
) -> Backend:
    """Open ``config``'s network for inference: the only place that resolves weights and picks a backend.

    Args:
        weights: a weights file (ours, official or MMPose ``.pth``, an ``.onnx``), a registered name (``hrnet
            weights list``; downloaded into the cache when missing), or None for a random initialisation.
        precision, backend: see ``select_backend``; None chooses from the file.
        device: "auto" (a GPU when there is one, for PyTorch backends; ONNX Runtime runs on the CPU), "cpu",
            "cuda", "cuda:1", ...
        compile: ``torch.compile`` the PyTorch fast path.
        batch_size: check that a forward pass of that many crops fits in memory (``check_memory``).
        reference: fp32 PyTorch runs the network as trained (see ``select_backend``).
        module: an already built network to run instead of loading ``weights`` (PyTorch backends only).
    """
    from hrnet.hub.registry import resolve_weights
    from hrnet.runtime.precision import precision_notice

    path = None if weights is None else resolve_weights(weights)
    entry = select_backend(path, precision, backend, reference=reference)
    torch_device = _device(entry, device)
    if notice := precision_notice(entry.precision, torch_device):
        log.warning("%s", notice)
    if entry.runs == "onnx":
        return Backend(entry, torch_device, path, entry.build(_Opening(config, None, path, compile)))
    owned = module is None
    if module is None:
        import torch

        from hrnet.models.checkpoint import load_model

        layout = torch.channels_last if entry.channels_last else torch.contiguous_format
        module = load_model(config, path, torch_device, memory_format=layout)
    else:
        module = module.eval().to(torch_device)
    if batch_size is not None:
        from hrnet.models.complexity import check_memory

        check_memory(module, config, batch_size, torch_device, training=False, what="test.batch_size")
    return Backend(entry, torch_device, path, entry.build(_Opening(config, module, None, compile, owned)), compile)


def _device(entry: BackendEntry, device: str) -> torch.device:
    import torch

    from hrnet.system import resolve_device

    if entry.devices == ("cpu",):
        if device not in ("auto", "cpu"):
            raise ConfigError(f"backend {entry.name} ({entry.engine}) runs on the CPU; leave --device out or give cpu")
        return torch.device("cpu")
    torch_device = resolve_device(device)
    if torch_device.type not in entry.devices:
        raise ConfigError(f"backend {entry.name} does not run on {torch_device}; it runs on {', '.join(entry.devices)}")
    return torch_device
