"""Reading and writing network weights, safely; the experiment that runs a weights file (``experiment_for``).

Reads:
- our own ``.safetensors`` files (no code can run while loading them);
- official HRNet ``.pth`` files: a plain state_dict, a dict holding ``state_dict`` (the official resume file),
  keys with DataParallel's ``module.`` prefix;
- MMPose checkpoints: ``backbone.*`` and ``keypoint_head.final_layer.*`` (MMPose 0.x) or ``head.final_layer.*``
  (MMPose 1.x) are mapped to our names; so are the HRNetV2 head's ``head.conv_layers.*`` (1.x) and 0.x's
  ``keypoint_head.final_layer.{0,1,3}.*`` (its one Sequential of conv, BN, ReLU and the final conv).

``.pth`` files are unpickled with ``torch.load(weights_only=True)`` (tensors and plain containers only), with
NumPy's array, dtype and scalar rebuilders allowed for that one load (MMPose 1.x stores its data-set metadata as
NumPy arrays). A file that would build any other object (and so could run code), NaN or infinite weights and
tensors that are not floating point are refused with a ``CheckpointError``.
"""

from __future__ import annotations

import functools
import importlib
import pickle
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from hrnet.config import ExperimentConfig, ModelConfig, config_from_text, load_config
from hrnet.errors import CheckpointError, ConfigError, DataError
from hrnet.hub.registry import config_for_weights
from hrnet.io.files import atomic_write, file_kind, zip_size_problem
from hrnet.keypoints import FROM_ANNOTATIONS, KeypointSet, keypoint_set_from_text, load_keypoint_set
from hrnet.models.hrnet import build_model
from hrnet.system import optional_module

# Prefixes other tools put in front of our names, mapped to ours (checked in this order).
_PREFIX_MAP = (
    ("module.", ""),  # torch.nn.DataParallel / DistributedDataParallel
    ("backbone.", ""),  # MMPose TopdownPoseEstimator.backbone
    # MMPose 0.x TopdownHeatmapSimpleHead with one extra conv (num_conv_layers=1, the HRNetV2 head) keeps it in
    # final_layer (conv, BN, ReLU, final conv); 1.x renames them so (HeatmapHead._load_state_dict_pre_hook).
    ("keypoint_head.final_layer.0.", "conv_layers.0."),
    ("keypoint_head.final_layer.1.", "conv_layers.1."),
    ("keypoint_head.final_layer.3.", "final_layer."),
    ("keypoint_head.final_layer.", "final_layer."),  # MMPose 0.x TopdownHeatmapSimpleHead
    ("head.conv_layers.", "conv_layers."),  # MMPose 1.x HeatmapHead, its conv_out_channels (HRNetV2)
    ("head.final_layer.", "final_layer."),  # MMPose 1.x HeatmapHead
)
_SHOWN = 5  # how many offending keys an error message lists
TRAINING_FORMAT_PREFIX = "hrnet-training-checkpoint/"  # hrnet.engine.state.FORMAT
# What our weights record about themselves (safetensors metadata; ONNX metadata_props with ONNX_PREFIX).
META_CONFIG, META_KEYPOINT_SET, ONNX_PREFIX = "config", "keypoint_set", "hrnet."
# The dtypes a weight may have: converted to the model's own on loading. Anything else (an int8 copy of float
# weights with no scales, say) would load as wrong numbers without a word.
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_COUNTER = "num_batches_tracked"  # BatchNorm's step counter: an integer, as PyTorch saves it


def _existing(path: str | Path) -> Path:
    path = Path(path)
    kind = file_kind(path)
    if kind is None:
        raise CheckpointError(
            f"{path}: no such weights file; give the path of a weights file or a name from `hrnet weights list`"
        )
    if kind != "file":
        raise CheckpointError(f"{path}: {'a folder' if kind == 'folder' else kind}, not a weights file")
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a weights file, with names mapped to ours (see the module docstring). CPU tensors."""
    path = _existing(path)
    if path.suffix.lower() == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                training = (f.metadata() or {}).get("format", "").startswith(TRAINING_FORMAT_PREFIX)
                # A resumable training checkpoint also holds optimizer and RNG tensors: take the model's only.
                names = [k for k in f.keys() if k.startswith("model.")] if training else list(f.keys())  # noqa: SIM118
                raw: Mapping[str, object] = {
                    k.removeprefix("model.") if training else k: f.get_tensor(k) for k in names
                }
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    else:
        raw = _read_pickle(path)
    state = convert_state_dict(raw, source=str(path))
    check_dtypes(state, str(path))
    check_finite(state, str(path))
    return state


def check_dtypes(state: Mapping[str, torch.Tensor], source: str) -> None:
    """``CheckpointError`` naming ``source`` and the first tensor whose dtype is not a float type of
    ``FLOAT_DTYPES`` (BatchNorm's integer ``num_batches_tracked`` excepted): integer, boolean, complex or 8-bit float
    values would be copied into the float weights as they are, e.g. quantized values without their scales."""
    for name, tensor in state.items():
        if tensor.dtype in FLOAT_DTYPES:
            continue
        if name.endswith(_COUNTER) and not tensor.is_floating_point() and tensor.dtype != torch.bool:
            continue
        raise CheckpointError(
            f"{source}: tensor {name!r} is {str(tensor.dtype).removeprefix('torch.')}, not a float type the network "
            "uses (float16, bfloat16, float32, float64): the file holds converted (e.g. quantized) weights; give "
            "the float checkpoint they came from"
        )


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """``CheckpointError`` naming ``source`` and the first tensor holding NaN or infinity: such weights predict NaN
    everywhere, and a file that has them was saved after training diverged."""
    for name, tensor in state.items():
        # A sum is NaN or infinite when any value is (it may also overflow, then the count below finds none):
        # one pass without a mask as large as the tensor.
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor.sum())):
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise CheckpointError(
                    f"{source}: tensor {name!r} holds {bad} non-finite value{'s' if bad > 1 else ''} (NaN or "
                    "infinity): the weights were saved after training diverged; use an earlier checkpoint"
                )


# What a PyTorch checkpoint starts with: a zip archive (torch.save since 1.6) or a pickle (protocol 2+, the legacy
# format of the official HRNet files).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80
# The unpickler's words for an object it will not build: a global (function or class) outside its allowlist.
_REFUSAL_MARKS = ("GLOBAL", "Trying to call reduce", "Can only build", "Can only create new object")


def _numpy_globals() -> list[Any]:
    """The NumPy globals that rebuild arrays, dtypes and scalars, and nothing else.

    MMPose 1.x checkpoints store their data-set metadata (sigmas, flip indices, colours) as NumPy arrays. Rebuilding
    one calls ``_reconstruct`` (an empty array of a dtype) and ``ndarray.__setstate__`` (shape, dtype, raw bytes); a
    scalar calls ``scalar(dtype, bytes)``; a dtype calls ``dtype(str)`` and ``__setstate__``. None of them calls a
    function named by the file, and object arrays get their items from the same restricted unpickler. Files saved
    with NumPy 1.x name the functions under ``numpy.core``, NumPy 2 under ``numpy._core``: both names are allowed.
    """
    import numpy as np

    multiarray = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray")
    rebuild = [multiarray._reconstruct, multiarray.scalar]
    dtype_classes = [t for t in vars(np.dtypes).values() if isinstance(t, type) and issubclass(t, np.dtype)]
    return [
        np.ndarray,
        np.dtype,
        *dtype_classes,
        *rebuild,
        *((f, f"numpy.core.multiarray.{f.__name__}") for f in rebuild),
        *((f, f"numpy._core.multiarray.{f.__name__}") for f in rebuild),
    ]


@contextmanager
def _numpy_allowed() -> Iterator[None]:
    """Allow ``_numpy_globals`` for the loads inside the block only; a caller's own allowances stay as they were."""
    present = torch.serialization.get_safe_globals()
    added = [g for g in _numpy_globals() if g not in present]
    with torch.serialization.safe_globals(added):
        yield


def _read_pickle(path: Path) -> Mapping[str, object]:
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read the weights file ({err.strerror or err})") from None
    if not head:
        raise CheckpointError(f"{path}: the weights file is empty; download or save it again")
    if head != _ZIP_MAGIC and head[0] != _PICKLE_PROTO:
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle; it starts with "
            f"{head!r}); give a .pth/.pt file written by torch.save, or a .safetensors file"
        )
    if head == _ZIP_MAGIC:
        _check_zip(path)
    try:
        with _numpy_allowed():
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickler_detail(err)
        if not any(mark in str(err) for mark in _REFUSAL_MARKS):  # damaged bytes, not a forbidden object
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None
        raise CheckpointError(
            f"{path}: refused to load: the file holds Python objects other than tensors, plain containers and NumPy "
            f"arrays, and unpickling them could run code ({detail}). If you trust the file, re-save only its "
            "state_dict: torch.save(model.state_dict(), 'weights.pth')."
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
        # A damaged archive or pickle surfaces as any of these from inside torch.load.
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_unpickler_detail(err)})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: expected a state_dict (a mapping of names to tensors), got {type(obj).__name__}"
        )
    return obj


def _check_zip(path: Path) -> None:
    """Refuse a zip checkpoint whose members would inflate far beyond the file (a zip bomb), before torch.load
    inflates any of them; a zip that is not whole is left to torch.load's own error."""
    try:
        with zipfile.ZipFile(path) as archive:
            problem = zip_size_problem(archive, path.stat().st_size)
    except (zipfile.BadZipFile, OSError):
        return
    if problem:
        raise CheckpointError(f"{path}: refused before unpacking anything: {problem}; give the file torch.save wrote")


def _unpickler_detail(err: BaseException) -> str:
    """The informative part of a PyTorch load error, without its advice to load with ``weights_only=False`` (which
    would run whatever the file holds): the global the file asks for when there is one, else the first line that
    gives no advice."""
    text = str(err)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it asks for {found.group(1)}"
    advice = ("weights_only", "safe_globals", "PyTorch 2.6", "documentation", "trust", "options")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kept = [line for line in lines if not any(a in line for a in advice)]
    kept = [line.removeprefix("WeightsUnpickler error:").strip() for line in kept]
    return kept[0] if kept else type(err).__name__


def convert_state_dict(raw: Mapping[str, object], source: str = "<state_dict>") -> dict[str, torch.Tensor]:
    """Unwrap ``{"state_dict": ...}`` and map DataParallel / MMPose names to ours.

    MMPose entries outside the backbone and the head (e.g. a data preprocessor) are dropped; a non-tensor value
    is an error naming the key.
    """
    if "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    out: dict[str, torch.Tensor] = {}
    # Not any "head.": the TF port's own head is named so.
    mmpose = any(k.startswith(("backbone.", "keypoint_head.", "head.final_layer.")) for k in raw)
    for key, value in raw.items():
        name = key
        for prefix, replacement in _PREFIX_MAP:
            if name.startswith(prefix):
                name = replacement + name[len(prefix) :]
        if mmpose and name == key and not key.startswith("module."):
            continue  # an MMPose entry that is neither backbone nor head (e.g. data_preprocessor.mean)
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
        out[name] = value
    if not out:
        raise CheckpointError(f"{source}: no tensors found")
    return out


def load_model(
    config: ModelConfig,
    weights: str | Path | None = None,
    device: torch.device | str = "cpu",
    *,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> nn.Module:
    """The network ``config`` describes, with ``weights`` loaded (any file ``read_state_dict`` reads, checked
    with ``strict=True``; None keeps the random initialisation), in eval mode on ``device``.

    ``memory_format``: the layout of the 4-D weights read from ``weights`` (``torch.channels_last`` for the fast
    path, which would otherwise copy every conv weight once more to get it)."""
    if weights is None:
        return build_model(config).eval().to(device)
    # Built without values (the meta device) and given the file's tensors: drawing random weights only to
    # overwrite them would cost more than reading the file.
    with torch.device("meta"):
        model = build_model(config)
    state = read_state_dict(weights)
    load_state_dict_checked(model, state, source=str(weights), assign=True, memory_format=memory_format)
    return model.eval().to(device)


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> None:
    """Load a weights file into ``model``; see ``load_state_dict_checked`` for what is checked."""
    load_state_dict_checked(model, read_state_dict(path), source=str(path), strict=strict)


def load_state_dict_checked(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str = "<state_dict>",
    strict: bool = True,
    *,
    assign: bool = False,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> None:
    """``model.load_state_dict`` with errors a person can act on (see ``check_state_dict``).
    ``num_batches_tracked`` counters absent from a file (older checkpoints) keep the model's (0 on the meta device).

    ``assign``: the model's tensors are replaced by new ones holding ``state_dict``'s values (in the model's
    dtypes, the 4-D ones in ``memory_format``), for a model built on the meta device, which has none to copy into
    (``load_model``); needs ``strict``.
    """
    own = model.state_dict()
    state = dict(state_dict)
    for name, value in own.items():
        if name.endswith(_COUNTER) and name not in state:
            state[name] = torch.zeros(value.shape, dtype=value.dtype) if value.is_meta else value
    check_state_dict(model, state, source, strict)
    if not assign:
        model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=strict)
        return
    assert strict, "a tensor left out would stay on the meta device"

    # Fresh memory as a built network's (aligned as kernels expect; one tensor a storage), filled as load_state_dict
    # fills it: the network computes bit for bit what a copy into a randomly initialised one computes.
    def fresh(name: str, value: torch.Tensor) -> torch.Tensor:
        layout = memory_format if value.dim() == 4 else torch.contiguous_format
        return torch.empty(value.shape, dtype=own[name].dtype, memory_format=layout).copy_(value)

    model.load_state_dict({k: fresh(k, v) for k, v in state.items()}, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    assert not left, f"not in a state_dict, so left without values: {left[:_SHOWN]}"


def check_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "<state_dict>", strict: bool = True
) -> None:
    """``CheckpointError`` unless ``state`` loads into ``model``, checked before anything is loaded: a shape
    mismatch names the first few differing keys with both shapes; with ``strict`` missing and unexpected keys are
    listed."""
    own = model.state_dict()
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if mismatched:
        raise CheckpointError(
            f"{source}: {len(mismatched)} tensors do not fit the model (is it the right preset and number of "
            f"keypoints?): " + "; ".join(mismatched[:_SHOWN]) + (" ..." if len(mismatched) > _SHOWN else "")
        )
    differing = (("missing", [k for k in own if k not in state]), ("unexpected", [k for k in state if k not in own]))
    parts = [f"{len(names)} {what} (e.g. {', '.join(names[:_SHOWN])})" for what, names in differing if names]
    if strict and parts:
        raise CheckpointError(f"{source}: names do not match the model: " + "; ".join(parts))


def read_metadata(path: str | Path) -> dict[str, str]:
    """What a weights file records about itself: our ``.safetensors`` files the experiment config they were
    trained with (``config``, YAML), their keypoint set (``keypoint_set``, YAML) and what they were trained on
    (``trained_on``); an ``.onnx`` file from ``hrnet export`` the same under ``hrnet.``-prefixed keys, returned
    without the prefix. Empty for other formats and unreadable files (reading the weights reports those)."""
    path = Path(path)
    if not path.is_file():
        return {}
    if path.suffix.lower() == ".onnx":
        try:  # without the optional onnx package, or unparsable: opening it as a network says so
            return {k.removeprefix(ONNX_PREFIX): v for k, v in onnx_metadata(path).items()}
        except ConfigError:
            return {}
    if path.suffix.lower() != ".safetensors":
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError):
        return {}


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (what ``hrnet export`` recorded). Parsed once per file version: a
    command reads them for its config, its keypoint set and its precision."""
    onnx = optional_module("onnx")
    try:
        stat = Path(path).stat()
        return dict(_onnx_props(onnx, str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns))
    except Exception as err:  # onnx raises DecodeError and others, not importable without it
        raise ConfigError(f"{path}: not a readable ONNX file ({err})") from None


@functools.lru_cache(maxsize=8)
def _onnx_props(onnx: Any, path: str, size: int, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    model = onnx.load(path, load_external_data=False)
    return tuple((p.key, p.value) for p in model.metadata_props)


def save_weights(model: nn.Module, path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
    """Write the model's state_dict as safetensors, atomically (a temporary file renamed into place).

    Raises:
        OutputError: the disk is full (naming ``path`` and the bytes needed; an earlier file there is kept).
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    needed = sum(t.numel() * t.element_size() for t in tensors.values())
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=dict(metadata or {})), needed)


def load_pretrained(model: nn.Module, path: str | Path, skip: tuple[str, ...] = ("final_layer.",)) -> list[str]:
    """Start training from another network's weights (the official runs start from ImageNet HRNet weights).

    Every tensor whose name and shape match the model is loaded, except names starting with ``skip`` (the
    heatmap head, whose keypoint count may differ); the rest of the file (e.g. an ImageNet classifier) is
    ignored. Returns the names of the model's tensors that stayed as initialised. Loading nothing is an error.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape and not k.startswith(skip)}
    if not usable:
        raise CheckpointError(f"{path}: no tensor matches the model by name and shape; is it an HRNet checkpoint?")
    model.load_state_dict(usable, strict=False)
    return [k for k in own if k not in usable]


def experiment_for(
    weights: str | Path, config: ExperimentConfig | str | Path | None = None, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """The experiment that runs ``weights``, with ``--set`` ``overrides``: ``config`` when given (an
    ``ExperimentConfig``, or a name ``hrnet.config.load_config`` reads), else a registered pose name's shipped
    config (``hrnet weights list``), else the config the weights record (our ``.safetensors`` and ``.onnx``
    files); a ``ConfigError`` when the weights say nothing (an official or MMPose ``.pth``)."""
    if isinstance(config, ExperimentConfig):
        return load_config(None, overrides, base=config)
    if config is not None:
        return load_config(config, overrides)
    if (name := config_for_weights(weights)) is not None:
        return load_config(name, overrides)
    if (text := read_metadata(_existing(weights)).get(META_CONFIG)) is not None:
        return config_from_text(text, f"{weights} (the config recorded in it)", overrides)
    if Path(weights).suffix.lower() == ".safetensors":  # a damaged or misnamed file is said so, not taken for one
        try:  # that says nothing: the header is enough to tell
            with safe_open(str(weights), framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{weights}: not a readable safetensors file ({err})") from None
    raise ConfigError(
        f"{weights}: these weights do not say which network they are (official and MMPose .pth files do not): give "
        "the experiment config they were trained with first, e.g. hrnet predict coco/w32_256x192 photo.jpg "
        f"--weights {weights} (`hrnet weights list` names the config of each registered checkpoint)"
    )


def keypoint_set_for(weights: str | Path | None, config: ExperimentConfig) -> KeypointSet:
    """The keypoint set that ``weights`` predict: the one they record (our ``.safetensors`` and ``.onnx``), else the
    one ``config`` names (``data.keypoint_set``).

    A recorded set that disagrees with the one ``config`` names (other keypoints, or another count than the
    network's) is a ``ConfigError``: the heatmaps would be read as the wrong keypoints.
    """
    recorded_text = read_metadata(weights).get(META_KEYPOINT_SET) if weights is not None else None
    named = config.data.keypoint_set
    try:
        recorded = keypoint_set_from_text(recorded_text, f"{weights} (its keypoint set)") if recorded_text else None
        given = None if named == FROM_ANNOTATIONS else load_keypoint_set(named)
    except DataError as err:
        raise ConfigError(str(err)) from None
    if recorded is not None and given is not None and recorded.names != given.names:
        raise ConfigError(
            f"{weights} were trained on the keypoint set {recorded.name!r} ({recorded.num_keypoints} keypoints: "
            f"{', '.join(recorded.names[:3])}, ...) but the config names {given.name!r} ({given.num_keypoints}: "
            f"{', '.join(given.names[:3])}, ...): leave the config out to use the weights' own, or give theirs"
        )
    kset = recorded or given
    if kset is None:
        raise ConfigError(
            f"{weights or 'the network'}: the config's keypoint set comes from annotation files "
            "(data.keypoint_set: from_annotations) and the weights record none: give the set (a shipped name or a "
            ".yaml file) in data.keypoint_set"
        )
    if config.model.num_keypoints not in (0, kset.num_keypoints):
        raise ConfigError(
            f"keypoint set {kset.name!r} has {kset.num_keypoints} keypoints but the model predicts "
            f"{config.model.num_keypoints} (model.num_keypoints)"
        )
    return kset
