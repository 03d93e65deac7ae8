"""Arrow rows -> arrays, without Ray."""

import numpy as np
import pyarrow as pa
import pytest

from pipeline.data.sources.table import sequence_table
from pipeline.data.transforms import (
    encode_labels,
    float_targets,
    label_strings,
    pad_sequences,
    sequence_values,
    sequences_to_arrays,
)
from pipeline.errors import DataError


def test_round_trip_shapes_and_values():
    x = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    table = sequence_table(x, np.array([1, 2, 3]))
    out = sequences_to_arrays(table, sequence_column="x")
    np.testing.assert_array_equal(out["x"], x)
    np.testing.assert_array_equal(out["lengths"], [4, 4, 4])
    y = float_targets(table, column="y")
    assert y.shape == (3, 1) and y.dtype == np.float32


def test_ragged_sequences_are_zero_padded_per_batch():
    table = pa.table({"x": [[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]], "y": [0, 1]})
    out = sequences_to_arrays(table, sequence_column="x")
    assert out["x"].shape == (2, 3, 2)
    np.testing.assert_array_equal(out["lengths"], [1, 3])
    np.testing.assert_array_equal(out["x"][0], [[1, 2], [0, 0], [0, 0]])
    np.testing.assert_array_equal(out["x"][1], [[3, 4], [5, 6], [7, 8]])


def test_pad_sequences_matches_a_loop():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, size=20)
    seqs = [rng.random((n, 3), dtype=np.float32) for n in lengths]
    padded = pad_sequences(np.concatenate(seqs).ravel(), lengths, 3)
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(padded[i, : len(s)], s)
        assert not padded[i, len(s) :].any()


def test_python_lists_doubles_and_univariate():
    assert (
        sequences_to_arrays(pa.table({"x": [[[0.5, 1.0], [2.0, 3.0]]]}), sequence_column="x")["x"].dtype == np.float32
    )
    assert sequences_to_arrays(pa.table({"x": [[1.0, 2.0, 3.0]]}), sequence_column="x")["x"].shape == (1, 3, 1)


def test_list_targets_for_multi_output():
    assert float_targets(pa.table({"y": [[1.0, 2.0], [3.0, 4.0]]}), column="y").shape == (2, 2)


def test_labels_ints_and_strings_map_by_training_classes():
    assert list(label_strings(pa.table({"y": [3, 1]}), column="y")) == ["3", "1"]
    ids = encode_labels(np.array(["b", "a", "b"], dtype=object), classes=["a", "b"], column="y")
    np.testing.assert_array_equal(ids, [1, 0, 1])
    with pytest.raises(DataError, match=r"label\(s\) \['c'\] not seen in the training split"):
        encode_labels(np.array(["a", "c"], dtype=object), classes=["a", "b"], column="y")


@pytest.mark.parametrize(
    ("table", "column", "match"),
    [
        (pa.table({"x": [[[1.0]]]}), "y", "column 'y' is missing"),
        (pa.table({"x": [[[1.0], [1.0, 2.0]]]}), "x", "1..2 features"),
        (pa.table({"x": [[[float("nan")]]]}), "x", "1 NaN/inf"),
        (pa.table({"x": [[["a"]]]}), "x", "expected numbers"),
        (pa.table({"x": [1.0]}), "x", "expected a list of time steps"),
        (pa.table({"x": pa.array([None, [[1.0]]], pa.list_(pa.list_(pa.float64())))}), "x", "null sequence"),
        (pa.table({"x": pa.array([[], [[1.0]]], pa.list_(pa.list_(pa.float64())))}), "x", "1 empty sequence"),
    ],
)
def test_bad_sequences_raise_data_errors(table, column, match):
    with pytest.raises(DataError, match=match):
        sequence_values(table, column=column)


def test_bad_targets_and_labels():
    with pytest.raises(DataError, match="column 'y' has 1 NaN/inf"):
        float_targets(pa.table({"y": [float("inf")]}), column="y")
    with pytest.raises(DataError, match="1 missing label"):
        label_strings(pa.table({"y": ["a", None]}), column="y")
    with pytest.raises(DataError, match="expected integer or string class labels"):
        label_strings(pa.table({"y": [1.5]}), column="y")
