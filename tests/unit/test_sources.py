"""The built-in adding problem and its Parquet materialization."""

import numpy as np
import pyarrow.parquet as pq

from pipeline.sources import adding, cache_path, materialize
from pipeline.transforms import float_targets, sequences_to_arrays


def _tensors(table):
    return {"x": sequences_to_arrays(table, sequence_column="x")["x"], "y": float_targets(table, column="y")}


def test_adding_problem_definition():
    opts = adding.AddingOptions(seq_len=50, num_sequences=500, seed=1)
    batch = _tensors(adding.generate(opts))
    x, y = batch["x"], batch["y"][:, 0]
    assert x.shape == (500, 50, 2) and x.dtype == np.float32
    markers = x[:, :, 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :25].sum(axis=1) == 1) and np.all(markers[:, 25:].sum(axis=1) == 1)
    np.testing.assert_allclose(y, (x[:, :, 0] * markers).sum(axis=1), rtol=1e-6)
    assert np.all((x[:, :, 0] >= 0) & (x[:, :, 0] < 1))


def test_predicting_one_scores_about_0_167():
    batch = _tensors(adding.generate(adding.AddingOptions(seq_len=10, num_sequences=20_000)))
    assert abs(float(np.mean((batch["y"] - 1.0) ** 2)) - 1 / 6) < 0.01


def test_generation_is_seeded():
    a = adding.generate(adding.AddingOptions(seq_len=10, num_sequences=20, seed=3))
    b = adding.generate(adding.AddingOptions(seq_len=10, num_sequences=20, seed=3))
    c = adding.generate(adding.AddingOptions(seq_len=10, num_sequences=20, seed=4))
    assert a.equals(b) and not a.equals(c)


def test_materialize_writes_parquet_once(tmp_path):
    opts = {"seq_len": 8, "num_sequences": 40, "seed": 0}
    path = materialize("adding", opts, cache_dir=tmp_path)
    assert path == cache_path("adding", opts, cache_dir=tmp_path)
    table = pq.read_table(path)
    assert table.num_rows == 40 and table.column_names == ["x", "y"]
    mtime = path.stat().st_mtime_ns
    assert materialize("adding", opts, cache_dir=tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # cached, not rewritten
    assert materialize("adding", {**opts, "seed": 1}, cache_dir=tmp_path) != path
    assert not list(tmp_path.rglob("*.tmp"))
