"""Parquet -> Ray Data splits."""

import pyarrow.parquet as pq
import pytest

from pipeline import config
from pipeline.errors import DataError
from pipeline.ingest import load_splits


def test_splits_cover_the_data_disjointly(splits):
    assert splits.num_rows == {"train": 240, "val": 30, "test": 30}
    assert (splits.input_size, splits.output_size, splits.seq_len) == (2, 1, 8)
    assert 0.8 < splits.target_mean < 1.2  # E[U + U'] = 1
    keys = {}
    for name, ds in splits.datasets().items():
        batch = ds.take_batch(1000, batch_format="numpy")
        keys[name] = {tuple(row.ravel().round(6)) for row in batch["x"]}
    assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])


def test_user_parquet_is_read_like_builtin(ray_session, splits, tmp_path, tiny_raw):
    # A user's own file with their own column names.
    table = pq.read_table(splits.path).rename_columns(["seq", "target"])
    pq.write_table(table, tmp_path / "mine.parquet")
    raw = {**tiny_raw, "data": {"source": str(tmp_path / "mine.parquet"), "feature_column": "seq", "target_column": "target"}}
    mine = load_splits(config.validate(raw).data)
    assert mine.num_rows == splits.num_rows and mine.input_size == 2


def test_missing_path_is_a_data_error(ray_session, tmp_path):
    cfg = config.validate({"data": {"source": str(tmp_path / "nope.parquet")}})
    with pytest.raises(DataError, match="neither a built-in dataset nor an existing path"):
        load_splits(cfg.data)
