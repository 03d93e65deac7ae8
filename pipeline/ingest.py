"""Parquet -> Ray Data: read, convert to tensors, split train/val/test.

This is the edge where the pure transforms in `pipeline.transforms` meet Ray Data. The splits are
materialized once on the driver (object store) and handed to every Train run and Tune trial, so a
sweep reads and shuffles the data once, and each worker streams its own shard.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
import ray.data

from pipeline.config import DataConfig
from pipeline.errors import DataError
from pipeline.sources import materialize
from pipeline.transforms import sequences_to_tensors


@dataclass(frozen=True)
class Splits:
    train: ray.data.Dataset
    val: ray.data.Dataset
    test: ray.data.Dataset
    input_size: int    # features per time step
    output_size: int   # targets per sequence
    seq_len: int
    target_mean: float  # over the training split: the predict-the-mean baseline
    num_rows: dict[str, int]
    path: str

    def datasets(self) -> dict[str, ray.data.Dataset]:
        return {"train": self.train, "val": self.val, "test": self.test}


def resolve_source(cfg: DataConfig) -> str:
    """Built-in name -> cached Parquet path; anything else is the user's Parquet path or URI."""
    if cfg.is_builtin:
        return str(materialize(cfg.source, cfg.options, cache_dir=cfg.cache_dir))
    if "://" not in cfg.source:
        path = Path(cfg.source).expanduser().resolve()
        if not path.exists():
            raise DataError(f"data.source '{cfg.source}' is neither a built-in dataset nor an existing path")
        return str(path)
    return cfg.source


def load_splits(cfg: DataConfig) -> Splits:
    path = resolve_source(cfg)
    try:
        ds = ray.data.read_parquet(path, columns=[cfg.feature_column, cfg.target_column])
    except Exception as err:  # pyarrow/Ray raise many types for unreadable input
        raise DataError(f"cannot read Parquet from {path}: {str(err).splitlines()[0]}") from None
    to_tensors = functools.partial(
        sequences_to_tensors, feature_column=cfg.feature_column, target_column=cfg.target_column
    )
    ds = ds.map_batches(to_tensors, batch_format="pyarrow", zero_copy_batch=True)
    train_frac = 1.0 - cfg.val_fraction - cfg.test_fraction
    try:
        shuffled = ds.random_shuffle(seed=cfg.split_seed)
        train, val, test = shuffled.split_proportionately([train_frac, cfg.val_fraction])
    except ray.exceptions.RayTaskError as err:
        cause = err.cause if isinstance(getattr(err, "cause", None), DataError) else None
        if cause is not None:
            raise DataError(f"{path}: {cause}") from None
        raise
    counts = {"train": train.count(), "val": val.count(), "test": test.count()}
    if min(counts.values()) == 0:
        raise DataError(f"{path} has too few rows to split ({counts}); provide more sequences")
    first = train.take_batch(1, batch_format="numpy")
    return Splits(
        train=train,
        val=val,
        test=test,
        input_size=int(first["x"].shape[2]),
        output_size=int(first["y"].shape[1]),
        seq_len=int(first["x"].shape[1]),
        target_mean=target_mean(train),
        num_rows=counts,
        path=path,
    )


def target_mean(ds: ray.data.Dataset) -> float:
    total, count = 0.0, 0
    for batch in ds.select_columns(["y"]).iter_batches(batch_format="numpy", batch_size=4096):
        total += float(np.sum(batch["y"], dtype=np.float64))
        count += int(batch["y"].size)
    return total / max(count, 1)
