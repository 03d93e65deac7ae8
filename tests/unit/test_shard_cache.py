"""ShardCache: a shard that fits is streamed once and replayed; one over budget streams every epoch."""

import torch

from pipeline.data.batches import ShardCache, to_device


def _counting_stream(n_batches: int, rows: int = 4):
    passes = []

    def stream():
        passes.append(1)
        for i in range(n_batches):
            yield {"x": torch.full((rows, 3), float(i)), "y": torch.zeros(rows)}

    return stream, passes


def test_fits_streams_once_and_replays_in_order():
    stream, passes = _counting_stream(5)
    cache = ShardCache(stream, budget_mb=1)
    epochs = [[float(b["x"][0, 0]) for b in cache] for _ in range(3)]
    assert epochs == [[0.0, 1.0, 2.0, 3.0, 4.0]] * 3
    assert len(passes) == 1


def test_over_budget_streams_every_epoch_and_keeps_nothing():
    stream, passes = _counting_stream(5, rows=1000)  # 1000 x 4 floats x 4 bytes = 16 kB per batch
    cache = ShardCache(stream, budget_mb=40_000 / 2**20)  # fits two batches, not five
    for _ in range(3):
        assert len(list(cache)) == 5
    assert len(passes) == 3 and cache.batches is None


def test_zero_budget_disables_and_a_partial_pass_is_not_kept():
    stream, passes = _counting_stream(3)
    off = ShardCache(stream, budget_mb=0)
    list(off), list(off)
    assert len(passes) == 2
    stream, passes = _counting_stream(3)
    cache = ShardCache(stream, budget_mb=1)
    next(iter(cache))  # a consumer that stops early
    assert cache.batches is None
    assert len(list(cache)) == 3 and len(list(cache)) == 3 and len(passes) == 2


def test_to_device_is_a_no_op_on_cpu():
    batch = {"x": torch.ones(2)}
    assert to_device(batch, torch.device("cpu")) is batch


class _Split:
    """A DataIterator stand-in: the split's rows in parts of uneven sizes, like Ray Data's blocks."""

    def __init__(self, n: int, parts: list[int]):
        import pyarrow as pa

        assert sum(parts) == n
        ids = list(range(n))
        self.parts, start = [], 0
        for size in parts:
            chunk = ids[start : start + size]
            self.parts.append(pa.table({"x": [[[float(i)]] for i in chunk], "y": [[float(i)] for i in chunk]}))
            start += size

    def iter_batches(self, **_):
        yield from self.parts


def test_strided_batches_give_every_validation_row_to_exactly_one_worker():
    from pipeline.data.batches import strided_batches
    from pipeline.tasks import DataInfo

    info = DataInfo(task="regression", input_size=1, output_size=1, target="float", max_len=1, task_info={})
    split = _Split(23, parts=[5, 1, 9, 8])
    for world in (1, 2, 3, 5):
        seen = []
        for rank in range(world):
            batches = list(strided_batches(split, info=info, batch_size=4, rank=rank, world=world))
            assert all(len(b["y"]) == 4 for b in batches[:-1])  # full batches but the last
            mine = [int(v) for b in batches for v in b["y"][:, 0]]
            assert mine == list(range(rank, 23, world))  # every world-th row, in stored order
            seen += mine
        assert sorted(seen) == list(range(23))
