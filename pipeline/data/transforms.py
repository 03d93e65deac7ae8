"""Pure batch transforms on Arrow/numpy, wrapped into Ray Data by `pipeline.data.ingest` and the tasks.

No Ray here: every function takes a batch and returns a batch, so it is unit-tested directly.
The row format is one sequence per row: a list column (time steps, each a list of features or a
single number) and a target column (a number, a list of numbers, or a class label).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from pipeline.errors import DataError

PAD = -100  # token target past a sequence's end (cross_entropy's ignore_index)


def _is_list(t: pa.DataType) -> bool:
    return pat.is_list(t) or pat.is_large_list(t) or pat.is_fixed_size_list(t)


def _column(batch: pa.Table, name: str) -> pa.Array:
    if name not in batch.column_names:
        raise DataError(f"column '{name}' is missing (columns: {batch.column_names}); set data.columns")
    col = batch.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _numeric(values: pa.Array, *, name: str) -> np.ndarray:
    if not (pat.is_floating(values.type) or pat.is_integer(values.type)):
        raise DataError(f"column '{name}' holds {values.type} values; expected numbers")
    if values.null_count:
        raise DataError(f"column '{name}' has {values.null_count} null value(s); drop or fill them")
    out = np.array(values.to_numpy(zero_copy_only=False), dtype=np.float32)  # a writable copy (torch wants one)
    bad = int((~np.isfinite(out)).sum())
    if bad:
        raise DataError(f"column '{name}' has {bad} NaN/inf value(s); drop or fill them")
    return out


def sequence_values(batch: pa.Table, *, column: str) -> tuple[np.ndarray, np.ndarray, int]:
    """list<list<float>> or list<float> -> (flat values (sum(T_i) * C,), lengths (B,), channels C)."""
    arr = _column(batch, column)
    if not _is_list(arr.type):
        raise DataError(f"column '{column}' has type {arr.type}; expected a list of time steps per row")
    if arr.null_count:
        raise DataError(f"column '{column}' has {arr.null_count} null sequence(s); drop or fill them")
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    if len(lengths) and lengths.min() == 0:
        raise DataError(f"column '{column}' has {int((lengths == 0).sum())} empty sequence(s); drop them")
    steps = arr.flatten()
    if _is_list(steps.type):
        widths = pc.list_value_length(steps).to_numpy(zero_copy_only=False)
        if len(widths) and widths.min() != widths.max():
            raise DataError(
                f"column '{column}' has time steps with {widths.min()}..{widths.max()} features; all must match"
            )
        return _numeric(steps.flatten(), name=column), lengths, int(widths[0]) if len(widths) else 0
    return _numeric(steps, name=column), lengths, 1


def pad_sequences(values: np.ndarray, lengths: np.ndarray, channels: int) -> np.ndarray:
    """Flat values + lengths -> zero-padded (B, T_max, C) float32, without a Python loop over rows."""
    b, t_max = len(lengths), int(lengths.max()) if len(lengths) else 0
    out = np.zeros((b, t_max, channels), dtype=np.float32)  # (B, T_max, C)
    steps = values.reshape(-1, channels)  # (sum T_i, C)
    row = np.repeat(np.arange(b), lengths)  # (sum T_i,) which sequence
    pos = np.arange(len(row)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # step within it
    out[row, pos] = steps
    return out


def float_targets(batch: pa.Table, *, column: str) -> np.ndarray:
    """A number or a fixed-length list of numbers per row -> (B, O) float32."""
    arr = _column(batch, column)
    if _is_list(arr.type):
        values, lengths, _ = sequence_values(batch, column=column)
        if len(lengths) and lengths.min() != lengths.max():
            raise DataError(f"column '{column}' has targets of {lengths.min()}..{lengths.max()} values; all must match")
        return values.reshape(batch.num_rows, -1)
    return _numeric(arr, name=column).reshape(batch.num_rows, 1)


def label_strings(batch: pa.Table, *, column: str) -> np.ndarray:
    """Class labels (int or string) as strings, so ids can be mapped the same way for both."""
    arr = _column(batch, column)
    if arr.null_count:
        raise DataError(f"label column '{column}' has {arr.null_count} missing label(s); drop those rows")
    if not (pat.is_integer(arr.type) or pat.is_string(arr.type) or pat.is_large_string(arr.type)):
        raise DataError(f"label column '{column}' holds {arr.type}; expected integer or string class labels")
    return np.asarray(arr.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)


def encode_labels(labels: np.ndarray, *, classes: list[str], column: str) -> np.ndarray:
    """Labels -> class ids by the training split's classes; a label unseen in training is an error."""
    index = {c: i for i, c in enumerate(classes)}
    ids = np.fromiter((index.get(label, -1) for label in labels), dtype=np.int64, count=len(labels))
    unseen = sorted({str(label) for label, i in zip(labels, ids) if i < 0})
    if unseen:
        raise DataError(f"label column '{column}' has label(s) {unseen[:5]} not seen in the training split")
    return ids


def sequences_to_arrays(batch: pa.Table, *, sequence_column: str) -> dict[str, np.ndarray]:
    """Rows -> {"x": (B, T_max, C) zero-padded, "lengths": (B,)}: the model's inputs."""
    values, lengths, channels = sequence_values(batch, column=sequence_column)
    return {"x": pad_sequences(values, lengths, channels), "lengths": lengths}


def next_step(arrays: dict[str, np.ndarray], *, target: str) -> dict[str, np.ndarray]:
    """Generate: steps 0..T-2 are the inputs, steps 1..T-1 the targets.

    tokens: x (B, T) ids -> inputs (B, T-1, 1) ids (embedded by the model), y (B, T-1) ids with PAD past each end
    frames: x (B, T, K)  -> inputs (B, T-1, K),         y (B, T-1, K) with NaN past each end
    """
    x, lengths = arrays["x"], arrays["lengths"] - 1  # (B, T, C), (B,) target steps
    real = np.arange(x.shape[1] - 1)[None, :] < lengths[:, None]  # (B, T-1)
    if target == "tokens":
        ids = x[..., 0].astype(np.int64)  # (B, T)
        y = np.where(real, ids[:, 1:], PAD)  # (B, T-1)
        inputs = np.where(real, ids[:, :-1], 0).astype(np.float32)[..., None]  # (B, T-1, 1), 0 past each end
        return {"x": inputs, "lengths": lengths, "y": y}
    y = np.where(real[..., None], x[:, 1:], np.nan).astype(np.float32)  # (B, T-1, K)
    return {"x": np.ascontiguousarray(x[:, :-1]), "lengths": lengths, "y": y}


def teacher_forcing(batch: pa.Table, *, column: str) -> dict[str, np.ndarray]:
    """Target token ids per row -> the decoder's input <s> + ids and its target ids + </s>, both
    (B, T_max + 1) int64, padded with the padding id 0 (ignored by the loss)."""
    from pipeline.data.tokenize import BOS_ID, EOS_ID, PAD_ID

    arr = _column(batch, column)
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)  # (B,)
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    width = int(lengths.max()) + 1 if len(lengths) else 1
    y_in = np.full((len(lengths), width), PAD_ID, dtype=np.int64)
    y = np.full((len(lengths), width), PAD_ID, dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)  # (sum T_i,)
    steps = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # position within its row
    y_in[:, 0] = BOS_ID
    y_in[rows, steps + 1] = flat
    y[rows, steps] = flat
    y[np.arange(len(lengths)), lengths] = EOS_ID
    return {"y_in": y_in, "y": y}


def label_sequences(batch: pa.Table, *, column: str) -> np.ndarray:
    """Label ids per row (list<int64>) -> (B, L_max) int64, 0 past each end (CTC's blank is never a label)."""
    arr = _column(batch, column)
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)  # (B,)
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.zeros((len(lengths), int(lengths.max()) if len(lengths) else 0), dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)  # (sum L_i,)
    steps = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # position within its row
    out[rows, steps] = flat
    return out
