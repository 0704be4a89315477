"""Epoch order: reproducible, disjoint across processes, resumable part-way."""

import pytest

from hrnet.data.sampler import EpochSampler


def test_same_seed_and_epoch_same_order_other_epoch_other_order():
    a = EpochSampler(50, seed=3, epoch=1).indices()
    assert a == EpochSampler(50, seed=3, epoch=1).indices()
    assert sorted(a) == list(range(50))
    assert a != EpochSampler(50, seed=3, epoch=2).indices()


def test_processes_split_the_epoch_evenly():
    shards = [EpochSampler(10, seed=0, rank=r, world_size=3).indices() for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded by wrapping around
    assert set().union(*map(set, shards)) == set(range(10))


def test_start_skips_what_a_resumed_run_has_seen():
    full = EpochSampler(20, seed=1, epoch=4).indices()
    resumed = EpochSampler(20, seed=1, epoch=4, start=8)
    assert resumed.indices() == full[8:] and len(resumed) == 12


def test_no_shuffle_and_empty():
    assert EpochSampler(4, shuffle=False).indices() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="empty"):
        EpochSampler(0)
