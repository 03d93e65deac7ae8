"""Random row splits and the canonical (x, y) columns, shared by the row-per-sequence tasks."""

from __future__ import annotations

import functools

import pyarrow as pa
import ray
import ray.data

from pipeline.config import DataConfig
from pipeline.errors import DataError
from pipeline.transforms import float_targets, label_strings, sequence_values

CANONICAL = ("x", "y")


def _canonical(batch: pa.Table, *, sequence: str, target: str, kind: str) -> pa.Table:
    """Select and rename the user's columns to (x, y), checking every value on the way."""
    sequence_values(batch, column=sequence)
    if kind == "float":
        float_targets(batch, column=target)
    else:
        label_strings(batch, column=target)
    return pa.table({"x": batch.column(sequence), "y": batch.column(target)})


def canonical_rows(ds: ray.data.Dataset, cfg: DataConfig, *, kind: str) -> ray.data.Dataset:
    fn = functools.partial(_canonical, sequence=cfg.columns.sequence, target=cfg.columns.target, kind=kind)
    return ds.map_batches(fn, batch_format="pyarrow", zero_copy_batch=True)


def random_split(ds: ray.data.Dataset, cfg: DataConfig, *, path: str) -> tuple[ray.data.Dataset, ...]:
    """Seeded shuffle, then train/val/test by the configured fractions (materialized)."""
    train_frac = 1.0 - cfg.val_fraction - cfg.test_fraction
    with data_errors(path):
        train, val, test = ds.random_shuffle(seed=cfg.split_seed).split_proportionately([train_frac, cfg.val_fraction])
        counts = {"train": train.count(), "val": val.count(), "test": test.count()}
    if min(counts.values()) == 0:
        raise DataError(f"{path} has too few rows to split ({counts}); provide more sequences")
    return train, val, test


class data_errors:
    """Re-raise a DataError raised inside a Ray task as the plain DataError, naming the source."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
        if isinstance(cause, DataError):
            raise DataError(f"{self.path}: {cause}") from None
        if isinstance(exc, DataError):
            raise DataError(f"{self.path}: {exc}") from None
        return False
