"""Pure batch transforms on Arrow/numpy, wrapped into Ray Data by `pipeline.ingest`.

No Ray here: every function takes a batch and returns a batch, so it is unit-tested directly.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from pipeline.errors import DataError


def _flatten_lists(column: pa.ChunkedArray | pa.Array, *, name: str) -> tuple[np.ndarray, np.ndarray]:
    """list<...> -> (flat values, per-row lengths), without a Python loop over rows."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pat.is_list(arr.type) or pat.is_large_list(arr.type) or pat.is_fixed_size_list(arr.type)):
        raise DataError(f"column '{name}' has type {arr.type}; expected a list of time steps per row")
    if arr.null_count:
        raise DataError(f"column '{name}' has {arr.null_count} null sequence(s); drop or fill them")
    lengths = pa.compute.list_value_length(arr).to_numpy(zero_copy_only=False)
    return arr.flatten(), lengths


def sequences_to_tensors(batch: pa.Table, *, feature_column: str, target_column: str) -> dict[str, np.ndarray]:
    """Arrow rows of (x: list<list<float>>, y: float) -> {"x": (B, T, C) float32, "y": (B, 1) float32}."""
    for col in (feature_column, target_column):
        if col not in batch.column_names:
            raise DataError(f"column '{col}' is missing (columns: {batch.column_names}); set data.feature_column/target_column")
    steps, seq_lens = _flatten_lists(batch.column(feature_column), name=feature_column)
    b = batch.num_rows
    if b and seq_lens.min() != seq_lens.max():
        raise DataError(
            f"column '{feature_column}' mixes sequence lengths {seq_lens.min()}..{seq_lens.max()}; "
            "the regression task needs equal-length sequences"
        )
    if pat.is_list(steps.type) or pat.is_large_list(steps.type) or pat.is_fixed_size_list(steps.type):
        values, widths = _flatten_lists(steps, name=feature_column)
        if len(widths) and widths.min() != widths.max():
            raise DataError(f"column '{feature_column}' has time steps with {widths.min()}..{widths.max()} features; all must match")
        channels = int(widths[0]) if len(widths) else 0
    else:  # list<float>: one feature per step
        values, channels = steps, 1
    x = _numeric(values, name=feature_column).reshape(b, -1, channels)   # (B, T, C)
    y = _numeric(batch.column(target_column), name=target_column).reshape(b, -1)  # (B, 1)
    return {"x": x, "y": y}


def _numeric(values: pa.Array | pa.ChunkedArray, *, name: str) -> np.ndarray:
    if not (pat.is_floating(values.type) or pat.is_integer(values.type)):
        raise DataError(f"column '{name}' holds {values.type} values; expected numbers")
    if values.null_count:
        raise DataError(f"column '{name}' has {values.null_count} null value(s); drop or fill them")
    out = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    bad = int((~np.isfinite(out)).sum())
    if bad:
        raise DataError(f"column '{name}' has {bad} NaN/inf value(s); drop or fill them")
    return out
