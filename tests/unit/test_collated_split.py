"""The training split collated once (`CollatedSplit`): every batch cut out of it equals, key by key and
bit by bit, what the collate makes of the same rows taken from Arrow, for every kind of target; and
`TrainBatches` falls back to collating Arrow rows per batch when the padded split would not fit."""

import numpy as np
import pyarrow as pa
import pytest

from pipeline.data.batches import CollatedSplit, SequenceBatch, TrainBatches
from pipeline.tasks import DataInfo

N = 40
RNG = np.random.default_rng(0)
LENGTHS = 1 + (np.arange(N) * 7) % 23  # 1..23 steps, ragged


def _steps(i: int, channels: int) -> list[list[float]]:
    return [[float(i + 0.01 * t + c) for c in range(channels)] for t in range(LENGTHS[i])]


def table(target: str) -> pa.Table:
    if target in ("float", "class"):
        y = [float(i) for i in range(N)] if target == "float" else [i % 3 for i in range(N)]
        return pa.table({"x": [_steps(i, 2) for i in range(N)], "y": y, "baseline": [[0.5 * i, i] for i in range(N)]})
    if target == "tokens":
        return pa.table({"x": [[[float(2 + (i + t) % 9)] for t in range(LENGTHS[i] + 1)] for i in range(N)]})
    if target == "frames":
        return pa.table({"x": [_steps(i, 3) + [[1.0, 2.0, 3.0]] for i in range(N)]})
    if target == "labels":  # label ids are never 0 (CTC's blank); some rows have none
        return pa.table(
            {"x": [_steps(i, 2) for i in range(N)], "y": [[1 + t % 5 for t in range(i % 6)] for i in range(N)]}
        )
    # sequence: source and target token ids, never the padding id 0
    return pa.table(
        {
            "x": [[[float(4 + t)] for t in range(LENGTHS[i])] for i in range(N)],
            "y": [[4 + t for t in range(1 + i % 7)] for i in range(N)],
        }
    )


@pytest.mark.parametrize("target", ["float", "class", "tokens", "frames", "labels", "sequence"])
def test_a_batch_cut_from_the_whole_split_equals_the_collated_rows(target):
    rows = table(target)
    collate = SequenceBatch(target)
    whole = collate.whole(rows)
    assert whole.num_rows == N
    for size in (1, 3, 8, N):
        for _ in range(5):
            pick = RNG.permutation(N)[:size]
            expected, got = collate(rows.take(pick)), whole.batch(pick)
            assert sorted(got) == sorted(expected)
            for name, t in expected.items():
                assert got[name].dtype == t.dtype and got[name].shape == t.shape, (name, got[name].shape, t.shape)
                assert got[name].is_contiguous(), name
                np.testing.assert_array_equal(got[name].numpy(), t.numpy(), err_msg=name)  # NaN padding equal too


INFO = DataInfo(task="regression", input_size=2, output_size=1, target="float", max_len=23, num_rows={"train": N})


class Split:
    """The part of Ray's DataIterator that TrainBatches uses: the split's rows, in order, as Arrow."""

    def __init__(self, rows: pa.Table):
        self.table = rows

    def iter_batches(self, *, batch_size, batch_format, prefetch_batches):
        yield from (self.table.slice(start, 13) for start in range(0, self.table.num_rows, 13))


@pytest.mark.parametrize("batching", ["shuffled", "by_length"])
def test_train_batches_collate_once_when_the_padded_split_fits_and_give_the_same_batches_either_way(batching):
    rows = table("float")
    arrow_mb = rows.nbytes / 2**20
    kept = {}
    for budget_mb in (64.0, 1.5 * arrow_mb):  # the padded split fits; only the Arrow rows fit
        batches = TrainBatches(
            Split(rows), info=INFO, batch_size=6, seed=5, rank=1, world=2, budget_mb=budget_mb, batching=batching
        )
        kept[budget_mb] = [list(batches.epoch(e)) for e in range(2)]
        assert isinstance(batches.rows, CollatedSplit if budget_mb == 64.0 else pa.Table)
    fast, arrow = kept.values()
    assert [len(epoch) for epoch in fast] == [len(epoch) for epoch in arrow] == [4, 4]
    for a, b in zip(sum(fast, []), sum(arrow, []), strict=True):
        assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
