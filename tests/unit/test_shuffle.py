"""A new order of the training sequences every epoch: deterministic in the seed and the epoch, mixed
across the whole split, each sequence once per epoch on exactly one worker, on the cached and the
streamed path alike (no Ray: a stand-in for the worker's DataIterator)."""

import numpy as np
import pyarrow as pa
import pytest

from pipeline.data.batches import TrainBatches
from pipeline.data.shuffle import epoch_permutation, worker_positions, worker_rows
from pipeline.tasks import DataInfo

N = 300


def test_epochs_differ_and_the_same_seed_and_epoch_give_the_same_order():
    orders = [epoch_permutation(N, seed=0, epoch=e) for e in range(3)]
    assert sorted(orders[0].tolist()) == list(range(N))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    assert np.array_equal(orders[1], epoch_permutation(N, seed=0, epoch=1))
    assert not np.array_equal(orders[1], epoch_permutation(N, seed=1, epoch=1))


def test_workers_split_each_epoch_exactly_and_positions_invert_the_rows():
    mine = [worker_rows(N, seed=3, epoch=2, rank=r, world=3) for r in range(3)]
    assert sorted(np.concatenate(mine).tolist()) == list(range(N))
    places = worker_positions(N, seed=3, epoch=2, rank=1, world=3)
    assert np.array_equal(np.flatnonzero(places >= 0)[np.argsort(places[places >= 0])], mine[1])


def test_every_worker_gets_the_same_number_of_rows_and_the_leftovers_change():
    """DDP steps all ranks together: one extra batch on one rank would hang the all-reduce."""
    n = 129  # with batch 32: 65 rows = 3 batches, 64 = 2
    mine = [worker_rows(n, seed=0, epoch=e, rank=r, world=2) for e in range(3) for r in range(2)]
    assert {len(m) for m in mine} == {64}
    left = [set(range(n)) - set(mine[2 * e]) - set(mine[2 * e + 1]) for e in range(3)]
    assert all(len(x) == 1 for x in left) and len(set.union(*left)) > 1


def test_windows_are_mixed_across_series_and_time():
    """Forecast windows arrive series by series, in time order: an epoch's first batch must draw
    from all of them, not from the first series' first stretch."""
    series = np.repeat(np.arange(4), N // 4)  # rows 0..74 series 0, 75..149 series 1, ...
    first_batch = worker_rows(N, seed=0, epoch=0, rank=0, world=1)[:32]
    assert len(set(series[first_batch])) == 4 and np.ptp(first_batch) > N // 2


class Split:
    """The part of Ray's DataIterator that TrainBatches uses: the split's rows, in order, as Arrow."""

    def __init__(self, rows: int):
        self.table = pa.table({"x": [[[float(i)]] for i in range(rows)], "y": [float(i) for i in range(rows)]})
        self.passes = 0

    def iter_batches(self, *, batch_size, batch_format, prefetch_batches):
        assert batch_format == "pyarrow"
        self.passes += 1
        for start in range(0, self.table.num_rows, 37):  # blocks of another size than the batches
            yield self.table.slice(start, 37)


def _epoch_rows(batches: TrainBatches, epoch: int) -> list[int]:
    return [int(v) for batch in batches.epoch(epoch) for v in batch["y"][:, 0].tolist()]


INFO = DataInfo(task="regression", input_size=1, output_size=1, target="float", max_len=1, num_rows={"train": N})


@pytest.mark.parametrize("budget_mb", [64, 0], ids=["cached", "streamed"])
def test_train_batches_follow_the_epoch_order_on_both_paths(budget_mb):
    per_worker = []
    for rank in range(2):
        split = Split(N)
        batches = TrainBatches(
            split, info=INFO, batch_size=16, seed=7, rank=rank, world=2, budget_mb=budget_mb, window_batches=4
        )
        epochs = [_epoch_rows(batches, e) for e in range(3)]
        assert split.passes == (1 if budget_mb else 3)  # cached: Ray Data is read once
        assert epochs[0] != epochs[1] != epochs[2]  # a new order every epoch
        per_worker.append(epochs)
    for e in range(3):  # each row once per epoch, on one worker
        assert sorted(per_worker[0][e] + per_worker[1][e]) == list(range(N))
        assert set(per_worker[0][e]) == set(worker_rows(N, seed=7, epoch=e, rank=0, world=2).tolist())
    resumed = TrainBatches(
        Split(N), info=INFO, batch_size=16, seed=7, rank=0, world=2, budget_mb=budget_mb, window_batches=4
    )
    assert _epoch_rows(resumed, 2) == per_worker[0][2]  # a resumed run starts at epoch 2: the same order
    if budget_mb:
        assert (
            per_worker[0][1] == worker_rows(N, seed=7, epoch=1, rank=0, world=2).tolist()
        )  # exactly the epoch's order


def test_a_split_over_budget_falls_back_to_streaming():
    split = Split(N)
    batches = TrainBatches(split, info=INFO, batch_size=16, seed=0, rank=0, world=1, budget_mb=1e-4)
    assert sorted(_epoch_rows(batches, 0)) == list(range(N)) and batches.rows is None and batches.streaming


@pytest.mark.parametrize("budget_mb", [64, 0], ids=["cached", "streamed"])
def test_every_worker_makes_the_same_number_of_batches(budget_mb):
    """Rows 129 on 2 workers (64 each), batch 7, windows of 2 batches: the same count on both ranks."""
    info = DataInfo(task="regression", input_size=1, output_size=1, target="float", max_len=1, num_rows={"train": 129})
    counts = set()
    for rank in range(2):
        batches = TrainBatches(
            Split(129), info=info, batch_size=7, seed=1, rank=rank, world=2, budget_mb=budget_mb, window_batches=2
        )
        sizes = [len(b["y"]) for b in batches.epoch(0)]
        assert sum(sizes) == 64 and all(s == 7 for s in sizes[:-1])
        counts.add(len(sizes))
    assert counts == {10}


class RaggedSplit(Split):
    """Row i has 1 + (i * 7) % 23 steps, its value i in every step."""

    def __init__(self, rows: int):
        self.table = pa.table(
            {"x": [[[float(i)]] * (1 + (i * 7) % 23) for i in range(rows)], "y": [float(i) for i in range(rows)]}
        )
        self.passes = 0


def test_length_batches_group_similar_lengths_keep_the_count_and_change_every_epoch():
    from pipeline.data.shuffle import POOL_BATCHES, length_batches

    lengths = np.random.default_rng(0).integers(1, 200, size=2000)
    runs = [length_batches(lengths, batch_size=8, rng=np.random.default_rng(s)) for s in (0, 0, 1)]
    assert [b.tolist() for b in runs[0]] == [b.tolist() for b in runs[1]]  # seeded
    assert [b.tolist() for b in runs[0]] != [b.tolist() for b in runs[2]]
    assert len(runs[0]) == 250 and sorted(np.concatenate(runs[0]).tolist()) == list(range(2000))
    spread = np.mean([np.ptp(lengths[b]) for b in runs[0]])  # within a batch
    assert spread < 0.1 * np.ptp(lengths)
    pool = 8 * POOL_BATCHES
    assert all(b.min() // pool == b.max() // pool for b in runs[0])  # a batch never mixes pools (rows far apart)


@pytest.mark.parametrize("budget_mb", [64, 0], ids=["cached", "streamed"])
def test_by_length_batches_pad_less_and_still_take_each_row_once(budget_mb):
    def padding(batching):
        batches = TrainBatches(
            RaggedSplit(N),
            info=INFO,
            batch_size=10,
            seed=3,
            rank=0,
            world=1,
            budget_mb=budget_mb,
            window_batches=10,
            batching=batching,
        )
        rows, padded = [], 0
        for batch in batches.epoch(1):
            rows += [int(v) for v in batch["y"][:, 0].tolist()]
            padded += int((batch["lengths"].max() - batch["lengths"]).sum())
        assert sorted(rows) == list(range(N))
        return padded

    assert padding("by_length") < 0.3 * padding("shuffled")
