"""Arrow rows -> tensors, without Ray."""

import numpy as np
import pyarrow as pa
import pytest

from pipeline.errors import DataError
from pipeline.sources.table import sequence_table
from pipeline.transforms import sequences_to_tensors


def convert(table, **kw):
    return sequences_to_tensors(table, feature_column=kw.get("x", "x"), target_column=kw.get("y", "y"))


def test_round_trip_shapes_and_values():
    x = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    out = convert(sequence_table(x, np.array([1, 2, 3])))
    np.testing.assert_array_equal(out["x"], x)
    assert out["y"].shape == (3, 1) and out["y"].dtype == np.float32


def test_python_lists_and_doubles_are_accepted():
    table = pa.table({"x": [[[0.5, 1.0], [2.0, 3.0]]], "y": [1.5]})
    out = convert(table)
    assert out["x"].shape == (1, 2, 2) and out["x"].dtype == np.float32


def test_univariate_list_of_floats():
    table = pa.table({"x": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "y": [0.0, 1.0]})
    assert convert(table)["x"].shape == (2, 3, 1)


def test_custom_column_names():
    table = pa.table({"seq": [[[1.0]]], "label": [2.0]})
    assert convert(table, x="seq", y="label")["y"][0, 0] == 2.0


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (pa.table({"x": [[[1.0]]]}), "column 'y' is missing"),
        (pa.table({"x": [[[1.0]], [[1.0], [2.0]]], "y": [1.0, 2.0]}), "mixes sequence lengths 1..2"),
        (pa.table({"x": [[[1.0], [1.0, 2.0]]], "y": [1.0]}), "1..2 features"),
        (pa.table({"x": [[[float("nan")]]], "y": [1.0]}), "1 NaN/inf"),
        (pa.table({"x": [[[1.0]]], "y": [float("inf")]}), "column 'y' has 1 NaN/inf"),
        (pa.table({"x": [[["a"]]], "y": [1.0]}), "expected numbers"),
        (pa.table({"x": [1.0], "y": [1.0]}), "expected a list of time steps"),
        (pa.table({"x": pa.array([None, [[1.0]]], pa.list_(pa.list_(pa.float64()))), "y": [1.0, 2.0]}), "null sequence"),
    ],
)
def test_bad_batches_raise_data_errors(table, match):
    with pytest.raises(DataError, match=match):
        convert(table)
