"""Parquet -> Ray Data splits."""

import pyarrow.parquet as pq
import pytest

from pipeline import config
from pipeline.data.ingest import load_splits, resolve_source
from pipeline.errors import DataError


def test_splits_cover_the_data_disjointly(splits):
    info = splits.info
    assert info.num_rows == {"train": 240, "val": 30, "test": 30}
    assert (info.input_size, info.output_size, info.max_len) == (2, 1, 8)
    assert 0.8 < info.task_info.target_mean[0] < 1.2  # E[U + U'] = 1
    keys = {}
    for name in ("train", "val", "test"):
        batch = getattr(splits, name).take_batch(1000, batch_format="pyarrow")
        keys[name] = {str(row) for row in batch.column("x").to_pylist()}
    assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])


def test_user_parquet_is_read_like_builtin(ray_session, splits, tmp_path, tiny_raw):
    # A user's own file with their own column names.
    table = pq.read_table(resolve_source(config.validate(tiny_raw).data)).rename_columns(["seq", "target"])
    pq.write_table(table, tmp_path / "mine.parquet")
    raw = {
        **tiny_raw,
        "data": {"source": str(tmp_path / "mine.parquet"), "columns": {"sequence": "seq", "target": "target"}},
    }
    mine = load_splits(config.validate(raw))
    assert mine.info.num_rows == splits.info.num_rows and mine.info.input_size == 2


def test_missing_path_is_a_data_error(ray_session, tmp_path):
    cfg = config.validate({"data": {"source": str(tmp_path / "nope.parquet")}})
    with pytest.raises(DataError, match="neither a built-in dataset nor an existing path"):
        load_splits(cfg)


# Malformed data of every kind: tests/reliability/test_bad_input.py runs the corpus in tests/data/bad.


def test_the_splits_shuffle_with_tasks_and_leave_the_global_context_alone(ray_session, splits, monkeypatch):
    # Ray Data's default shuffle starts aggregator actors (a new process each) for every mean/groupby
    from ray.data.context import DataContext, ShuffleStrategy

    from pipeline.data.ingest import SHUFFLE_ENV, with_task_shuffle

    for name in ("train", "val", "test"):
        assert getattr(splits, name).context.shuffle_strategy == ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    assert DataContext.get_current().shuffle_strategy != ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    monkeypatch.setenv(SHUFFLE_ENV, "shuffle_v2")  # the user's own choice wins
    ds = ray_session.data.range(3)
    assert with_task_shuffle(ds).context.shuffle_strategy == DataContext.get_current().shuffle_strategy


def _xs(ds):
    return ds.take_batch(1000, batch_format="pyarrow").column("x").to_pylist()


def test_one_seed_gives_the_same_splits_in_the_same_order(ray_session, tmp_path, tiny_raw):
    # The source in six files, so six read tasks whose blocks could come back in any order: every
    # epoch's batches are a seeded permutation of the stored rows, so a changed order is another model.
    from ray.data import DataContext

    table = pq.read_table(resolve_source(config.validate(tiny_raw).data))
    (tmp_path / "parts").mkdir()
    for i in range(6):
        pq.write_table(table.slice(i * 50, 50), tmp_path / "parts" / f"part-{i}.parquet")
    cfg = config.validate({**tiny_raw, "data": {"source": str(tmp_path / "parts")}})
    first, second = load_splits(cfg), load_splits(cfg)
    for name in ("train", "val", "test"):
        assert getattr(first, name).context.execution_options.preserve_order is True
        rows = _xs(getattr(first, name))
        assert rows == _xs(getattr(second, name)) and len(rows) == first.info.num_rows[name]
    assert DataContext.get_current().execution_options.preserve_order is False  # the caller's setting is back
