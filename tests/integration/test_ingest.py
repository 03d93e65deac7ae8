"""Parquet -> Ray Data splits."""

import pyarrow.parquet as pq
import pytest

from pipeline import config
from pipeline.errors import DataError
from pipeline.ingest import load_splits, resolve_source


def test_splits_cover_the_data_disjointly(splits):
    info = splits.info
    assert info.num_rows == {"train": 240, "val": 30, "test": 30}
    assert (info.input_size, info.output_size, info.max_len) == (2, 1, 8)
    assert 0.8 < info.target_mean[0] < 1.2  # E[U + U'] = 1
    keys = {}
    for name in ("train", "val", "test"):
        batch = getattr(splits, name).take_batch(1000, batch_format="pyarrow")
        keys[name] = {str(row) for row in batch.column("x").to_pylist()}
    assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])


def test_user_parquet_is_read_like_builtin(ray_session, splits, tmp_path, tiny_raw):
    # A user's own file with their own column names.
    table = pq.read_table(resolve_source(config.validate(tiny_raw).data)).rename_columns(["seq", "target"])
    pq.write_table(table, tmp_path / "mine.parquet")
    raw = {**tiny_raw, "data": {"source": str(tmp_path / "mine.parquet"), "columns": {"sequence": "seq", "target": "target"}}}
    mine = load_splits(config.validate(raw))
    assert mine.info.num_rows == splits.info.num_rows and mine.info.input_size == 2


def test_missing_path_is_a_data_error(ray_session, tmp_path):
    cfg = config.validate({"data": {"source": str(tmp_path / "nope.parquet")}})
    with pytest.raises(DataError, match="neither a built-in dataset nor an existing path"):
        load_splits(cfg)


def _bad_inputs(root):
    import os

    import numpy as np
    import pandas as pd
    import pyarrow as pa

    os.makedirs(root / "empty")
    pq.write_table(pa.table({"x": pa.array([], pa.list_(pa.list_(pa.float32()))), "y": pa.array([], pa.float32())}), root / "zero.parquet")
    os.makedirs(root / "mixed")
    pq.write_table(pa.table({"x": [[[1.0]] * 5] * 20, "y": [1.0] * 20}), root / "mixed" / "a.parquet")
    pq.write_table(pa.table({"x": [[[1.0]] * 5] * 20, "y": ["a"] * 20}), root / "mixed" / "b.parquet")
    pq.write_table(pa.table({"x": [[[1.0], [float("nan")]]] * 30, "y": [1.0] * 30}), root / "nan.parquet")
    pd.DataFrame({"time": range(10), "y": range(10)}).to_csv(root / "short.csv", index=False)
    pd.DataFrame({"time": range(50), "y": ["a"] * 50}).to_csv(root / "text.csv", index=False)
    (root / "fake.parquet").write_text("not parquet")
    pq.write_table(pa.table({"f": [[[0.0, 2.0], [1.0, 0.0]]] * 20}), root / "frames.parquet")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"data": {"source": "empty"}}, r"empty: expected Parquet \(.parquet\) or CSV \(.csv\) files, found none"),
        ({"data": {"source": "zero.parquet"}}, r"zero.parquet: no rows; nothing to train on"),
        ({"data": {"source": "mixed"}}, r"mixed: Unable to merge: Field y has incompatible types"),
        ({"data": {"source": "nan.parquet"}}, r"nan.parquet: column 'x' has 30 NaN/inf value\(s\)"),
        ({"task": "forecast", "data": {"source": "short.csv", "window": {"lookback": 24}}}, r"short.csv: too few time steps for lookback 24"),
        ({"task": "forecast", "data": {"source": "text.csv", "window": {"lookback": 4}}}, r"text.csv: column 'y' holds string values"),
        ({"data": {"source": "fake.parquet"}}, r"fake.parquet: Parquet magic bytes not found"),
        ({"task": "generate", "data": {"source": "frames.parquet", "columns": {"sequence": "f"}}}, r"frames.parquet: column 'f' has 20 frame value\(s\) other than 0 and 1"),
    ],
    ids=["empty-dir", "zero-rows", "schema-mismatch", "nan", "shorter-than-window", "non-numeric", "not-parquet", "frames-not-0-1"],
)
def test_bad_data_fails_before_training_naming_file_and_column(ray_session, tmp_path_factory, raw, message):
    root = tmp_path_factory.getbasetemp() / "bad"
    if not root.exists():
        root.mkdir()
        _bad_inputs(root)
    raw = {**raw, "data": {**raw["data"], "source": str(root / raw["data"]["source"])}}
    with pytest.raises(DataError, match=message):
        load_splits(config.validate(raw))
