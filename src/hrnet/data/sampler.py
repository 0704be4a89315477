"""The order in which one epoch visits the data set: shuffled by (seed, epoch), split between processes,
and able to start part-way through (resuming a run killed mid-epoch)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass

import torch
from torch.utils.data import Sampler


@dataclass
class EpochSampler(Sampler[int]):
    """Indices of one epoch for one process.

    The permutation depends on (seed, epoch) only, as ``DistributedSampler``'s; the list is padded by wrapping
    around to a multiple of ``world_size`` so that every process runs the same number of steps, and process
    ``rank`` takes every ``world_size``-th index. ``start`` skips that many of this process's indices (the
    samples a resumed run already trained on).
    """

    length: int
    _: KW_ONLY
    seed: int = 0
    epoch: int = 0
    shuffle: bool = True
    rank: int = 0
    world_size: int = 1
    start: int = 0

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError("cannot sample from an empty data set")

    @property
    def per_rank(self) -> int:
        """Indices a process gets in the whole epoch."""
        return math.ceil(self.length / self.world_size)

    def indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        total = self.per_rank * self.world_size
        order = (order * math.ceil(total / self.length))[:total]
        return order[self.rank : total : self.world_size][self.start :]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)
