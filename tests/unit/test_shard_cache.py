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
