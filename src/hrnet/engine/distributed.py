"""Distributed training through PyTorch's own engine: ``torchrun`` sets the environment, we read it.

One process per GPU (or several on a CPU with the gloo backend). Only rank 0 writes files; evaluation gathers
every rank's predictions on rank 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from hrnet.system import local_rank

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group that ``torchrun`` describes in the environment; a single process otherwise.

    NCCL on CUDA, gloo on the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank())


def gather_objects(obj: T, info: Distributed) -> list[T]:
    """Every rank's ``obj``, in rank order (the object itself on a single process)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, info: Distributed) -> T:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: Distributed) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: Distributed) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
