"""Resumable training checkpoints: one safetensors file that appears whole or not at all.

Tensors: the model's state_dict (``model.*``), the optimizer's per-parameter state (``optimizer.<index>.<name>``)
and the RNG states (``rng.*``). JSON in the file's metadata (key ``state``): epoch, step, best metric, the
optimizer's hyper-parameters and scalar state, the LR scheduler, the AMP grad scaler and the resolved config.
One file instead of a weights file plus a JSON file, so that a kill between two renames cannot pair the weights
of one step with the optimizer of another. ``hrnet.models.checkpoint.read_state_dict`` reads the ``model.*``
part, so a training checkpoint is also a weights file for eval / predict / export.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from hrnet.errors import CheckpointError
from hrnet.io.files import atomic_write
from hrnet.models.checkpoint import check_finite, check_state_dict

FORMAT = "hrnet-training-checkpoint/1"


@dataclass
class TrainingState:
    """Where a run stands: ``epoch`` is the epoch in progress, ``step`` the optimizer steps done in it."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per finished epoch (the CSV log)
    # The epoch in progress so far, over all processes: a run resumed mid-epoch logs the loss of the whole epoch.
    epoch_loss_sum: float = 0.0  # sum of the per-sample losses
    epoch_loss_count: int = 0  # samples trained on
    epoch_skipped: int = 0  # samples whose image could not be read


def rng_states() -> dict[str, torch.Tensor]:
    """The random number generators' states as checkpoint tensors (``rng.torch``, ``rng.cuda.<i>``)."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = rng
    return tensors


def save_training_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    state: TrainingState,
    config: dict[str, Any],
    model_state: Mapping[str, torch.Tensor] | None = None,
    rng: Mapping[str, torch.Tensor] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write everything needed to continue the run bit for bit (on the same device and thread count).

    ``model_state`` and ``rng`` (from ``rng_states``) replace the model's current state_dict and the current RNG
    states: the training loop saves a state it snapshotted a step earlier. ``metadata`` is recorded beside the
    state (what the weights need to run alone: the recorded config and keypoint set)."""
    model_state = model.state_dict() if model_state is None else model_state
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in opt["state"].items():
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    tensors.update(rng_states() if rng is None else rng)
    sched = scheduler.state_dict()
    if isinstance(sched.get("milestones"), Counter):  # JSON would turn its int keys into strings
        sched["milestones"] = sorted(sched["milestones"].items())
    meta = {
        **dataclasses.asdict(state),
        "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
        "scheduler": sched,
        "scaler": scaler.state_dict(),
        "config": config,
    }
    recorded = {**(metadata or {}), "format": FORMAT, "state": json.dumps(meta)}
    needed = sum(t.numel() * t.element_size() for t in tensors.values())
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=recorded), needed)


def load_training_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    num_keypoints: int | None = None,
) -> tuple[TrainingState, dict[str, Any]]:
    """Restore model, optimizer, scheduler, scaler and RNG states; returns the run state and the saved config.

    Everything is checked before anything is restored, so a refused file leaves the objects as they were: the state
    JSON and each of its sections, the tensors' presence, shapes and finiteness, and (``num_keypoints``, the
    model's) the keypoint count of the run that saved it. Each fault is a ``CheckpointError`` naming the file and
    the key.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (SafetensorError, OSError) as err:
        raise CheckpointError(
            f"{path}: not a readable training checkpoint ({err}); delete it to start afresh"
        ) from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a training checkpoint of this version (format {metadata.get('format')!r})")
    meta = _checked_state(metadata, path)
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    saved_model = meta["config"].get("model")
    saved_k = saved_model.get("num_keypoints") if isinstance(saved_model, dict) else None
    if num_keypoints is not None and isinstance(saved_k, int) and saved_k != num_keypoints:
        raise CheckpointError(
            f"{path}: saved by a run whose model predicts {saved_k} keypoints; this model predicts {num_keypoints}: "
            "resume with the run's own config, or start a new run (another train.name)"
        )
    if "rng.torch" not in tensors:
        raise CheckpointError(f"{path}: the training checkpoint lacks the tensor 'rng.torch'; delete it to start over")
    check_finite({k: v for k, v in tensors.items() if not k.startswith("rng.")}, str(path))
    check_state_dict(model, model_state, source=str(path))
    model.load_state_dict(model_state)
    device = next(model.parameters()).device
    param_states: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            param_states.setdefault(int(index), {})[name] = value
    for index, values in meta["optimizer"]["scalars"].items():
        param_states.setdefault(int(index), {}).update(values)
    try:
        optimizer.load_state_dict({"state": param_states, "param_groups": meta["optimizer"]["param_groups"]})
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"{path}: the optimizer state does not fit this run's optimizer ({err}); resume with the run's own config"
        ) from None
    for group_state in optimizer.state.values():  # load_state_dict casts floats to the params' device already;
        for name, value in group_state.items():  # 'step' counters stay on the CPU as PyTorch keeps them
            if isinstance(value, torch.Tensor) and name != "step":
                group_state[name] = value.to(device)
    sched = meta["scheduler"]
    if "milestones" in sched:
        sched["milestones"] = Counter({int(k): v for k, v in sched["milestones"]})
    scheduler.load_state_dict(sched)
    if meta["scaler"]:
        scaler.load_state_dict(meta["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    # The epoch totals are absent from checkpoints of earlier versions: they keep their defaults.
    state = TrainingState(**{f.name: meta[f.name] for f in dataclasses.fields(TrainingState) if f.name in meta})
    return state, meta["config"]


# What each key of the state JSON holds: (types allowed, what to call them in a message).
_STATE_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "epoch": ((int,), "an integer ≥ 0"),
    "step": ((int,), "an integer ≥ 0"),
    "global_step": ((int,), "an integer ≥ 0"),
    "best_metric": ((int, float, type(None)), "a number or null"),
    "best_epoch": ((int, type(None)), "an integer or null"),
    "history": ((list,), "a list of epoch rows"),
    "optimizer": ((dict,), "an object"),
    "scheduler": ((dict,), "an object"),
    "scaler": ((dict,), "an object"),
    "config": ((dict,), "an object"),
}


def _checked_state(metadata: dict[str, str], path: Path) -> dict[str, Any]:
    """The state JSON of a training checkpoint, every section present and of the right type."""
    text = metadata.get("state")
    if text is None:
        raise CheckpointError(f"{path}: the training checkpoint lacks its state JSON; delete it to start afresh")
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(
            f"{path}: the training state (metadata 'state') is not valid JSON ({err}); delete the file to start afresh"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the training state (metadata 'state') is not a JSON object")
    for key, (types, wanted) in _STATE_KEYS.items():
        if key not in meta:
            raise CheckpointError(f"{path}: the training state lacks {key!r}; delete the file to start afresh")
        value = meta[key]
        negative = isinstance(value, int) and "≥ 0" in wanted and value < 0
        if isinstance(value, bool) or not isinstance(value, types) or negative:
            raise CheckpointError(f"{path}: the training state's {key!r} must be {wanted}, got {value!r}")
    for key, kind in (("param_groups", list), ("scalars", dict)):
        if not isinstance(meta["optimizer"].get(key), kind):
            raise CheckpointError(f"{path}: the training state lacks 'optimizer.{key}' (a {kind.__name__})")
    return meta
