"""The on-disk sequence format: one row per sequence.

  x: list<list<float32>>   time steps x features  (the feature column)
  y: float32               the target             (the target column)

Any Parquet with this shape (column names configurable) is read by the pipeline the same way.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def sequence_table(x: np.ndarray, y: np.ndarray, *, x_name: str = "x", y_name: str = "y") -> pa.Table:
    """(N, T, C) float array + (N,) targets -> Arrow table with a nested list column, no Python loop."""
    n, t, c = x.shape
    flat = pa.array(np.ascontiguousarray(x, dtype=np.float32).reshape(-1))  # (N*T*C,)
    steps = pa.ListArray.from_arrays(np.arange(0, n * t * c + 1, c, dtype=np.int32), flat)  # (N*T,) lists of C
    seqs = pa.ListArray.from_arrays(np.arange(0, n * t + 1, t, dtype=np.int32), steps)  # (N,) lists of T
    return pa.table({x_name: seqs, y_name: pa.array(np.asarray(y))})


def ragged_sequence_table(
    seqs: list[np.ndarray], y: np.ndarray, *, extra: dict[str, np.ndarray] | None = None
) -> pa.Table:
    """Sequences of different lengths, each (T_i, C) -> the same row format, built from offsets."""
    c = seqs[0].shape[1]
    lengths = np.array([len(s) for s in seqs], dtype=np.int32)
    flat = pa.array(np.concatenate(seqs).astype(np.float32).reshape(-1))  # (sum T_i * C,)
    steps = pa.ListArray.from_arrays(np.arange(0, len(flat) + 1, c, dtype=np.int32), flat)  # (sum T_i,)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    columns = {"x": pa.ListArray.from_arrays(offsets, steps), "y": pa.array(y)}
    for name, values in (extra or {}).items():
        columns[name] = pa.array(values)
    return pa.table(columns)
