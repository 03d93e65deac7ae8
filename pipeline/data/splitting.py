"""Random row splits and the canonical (x, y) columns, shared by the row-per-sequence tasks."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import DataConfig
from pipeline.data.tokenize import texts_of
from pipeline.data.transforms import float_targets, label_strings, sequence_values
from pipeline.errors import DataError
from pipeline.ray_compat import remote_exception_message

if TYPE_CHECKING:
    import ray.data

CANONICAL = ("x", "y")


SPLITS = ("train", "val", "test")


def _canonical(
    batch: pa.Table, *, sequence: str, target: str | None, kind: str, split: str | None, text: bool = False
) -> pa.Table:
    """Select and rename the user's columns to (x[, y][, split]), checking every value on the way."""
    texts_of(batch, column=sequence) if text else sequence_values(batch, column=sequence)
    columns = {"x": batch.column(sequence)}
    if target is not None:
        float_targets(batch, column=target) if kind == "float" else label_strings(batch, column=target)
        columns["y"] = batch.column(target)
    if split is not None:
        columns["split"] = split_labels(batch, column=split)
    return pa.table(columns)


def split_labels(batch: pa.Table, *, column: str) -> pa.Array:
    if column not in batch.column_names:
        raise DataError(f"split column '{column}' is missing (columns: {batch.column_names}); fix data.split_column")
    labels = batch.column(column).cast(pa.string())
    bad = pc.invert(pc.is_in(labels, value_set=pa.array(SPLITS)))
    count = pc.sum(pc.fill_null(bad, True)).as_py() or 0
    if count:
        raise DataError(f"split column '{column}' has {count} value(s) other than train/val/test")
    return labels


def rows_in_split(batch: pa.Table, *, name: str, keep: tuple[str, ...] | list[str] = CANONICAL) -> pa.Table:
    return batch.filter(pc.equal(batch.column("split"), name)).select(list(keep))


def canonical_rows(
    ds: ray.data.Dataset, cfg: DataConfig, *, kind: str, mode: Literal["train", "infer"] = "train", text: bool = False
) -> ray.data.Dataset:
    """The user's rows -> (x, y[, split]). For inference (predict, evaluate) the split column is
    ignored and the target is optional: rows without it get predictions but no metrics. `text`: x
    holds strings (tokenized later), not steps."""
    has_target = mode == "train" or cfg.columns.target in ds.schema().names
    fn = functools.partial(
        _canonical,
        sequence=cfg.columns.sequence,
        target=cfg.columns.target if has_target else None,
        kind=kind,
        split=cfg.split_column if mode == "train" else None,
        text=text,
    )
    return ds.map_batches(fn, batch_format="pyarrow", zero_copy_batch=True)


def split_rows(
    ds: ray.data.Dataset, cfg: DataConfig, *, path: str, keep: tuple[str, ...] = CANONICAL
) -> tuple[ray.data.Dataset, ...]:
    """train/val/test (materialized): by data.split_column if set (rows carry it as `split`), else a
    seeded random split; `keep` are the task's columns."""
    with data_errors(path):
        ds = ds.materialize()
        if ds.count() == 0:
            raise DataError("no rows; nothing to train on")
        if cfg.split_column is None:
            train_frac = 1.0 - cfg.val_fraction - cfg.test_fraction
            parts = ds.random_shuffle(seed=cfg.split_seed).split_proportionately([train_frac, cfg.val_fraction])
        else:
            parts = _predefined(ds.materialize(), cfg, keep=keep)
        counts = dict(zip(SPLITS, (p.count() for p in parts)))
    if min(counts.values()) == 0:
        raise DataError(f"{path} has too few rows to split ({counts}); provide more sequences")
    return tuple(parts)


def _predefined(ds: ray.data.Dataset, cfg: DataConfig, *, keep: tuple[str, ...]) -> list[ray.data.Dataset]:
    """Rows as labelled; with no 'val' rows, val_fraction of the training rows become validation."""
    part = {
        name: ds.map_batches(
            functools.partial(rows_in_split, name=name, keep=keep), batch_format="pyarrow"
        ).materialize()
        for name in SPLITS
    }
    if part["val"].count() == 0:
        val_share = cfg.val_fraction / (1.0 - cfg.test_fraction)
        train, val = part["train"].random_shuffle(seed=cfg.split_seed).split_proportionately([1.0 - val_share])
        part["train"], part["val"] = train, val
    return [part[name] for name in SPLITS]


@contextmanager
def data_errors(path: str) -> Iterator[None]:
    """A DataError raised inside a Ray Data task (which reaches the driver as Ray's own exception)
    re-raised as one DataError sentence naming the source; the original is kept as its cause."""
    try:
        yield
    except DataError as err:
        if str(err).startswith(f"{path}: "):
            raise
        raise DataError(f"{path}: {err}") from err
    except Exception as err:
        message = remote_exception_message(err, DataError)
        if message is None:
            raise
        raise DataError(f"{path}: {message}") from err
