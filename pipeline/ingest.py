"""Parquet/CSV -> Ray Data -> the task's prepared train/val/test splits.

This is the edge where the data meets Ray: the file is read with Ray Data, and the task
(`pipeline.tasks`) wraps its pure transforms into Ray Data to check, split and convert it. The
splits are materialized once on the driver and handed to every Train run and Tune trial, so a
sweep reads and splits the data once, and each worker streams its own shard.
"""

from __future__ import annotations

from pathlib import Path

import ray.data

from pipeline.config import Config, DataConfig
from pipeline.errors import DataError
from pipeline.sources import materialize
from pipeline.tasks import Prepared, get_task

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def resolve_source(cfg: DataConfig) -> str:
    """Built-in name -> cached Parquet path; anything else is the user's file, directory or URI."""
    if cfg.is_builtin:
        return str(materialize(cfg.source, cfg.options, cache_dir=cfg.cache_dir))
    if "://" not in cfg.source:
        path = Path(cfg.source).expanduser().resolve()
        if not path.exists():
            raise DataError(f"data.source '{cfg.source}' is neither a built-in dataset nor an existing path")
        return str(path)
    return cfg.source


def file_format(path: str) -> str:
    p = Path(path)
    suffixes = {f.suffix.lower() for f in p.iterdir() if f.is_file() and not f.name.startswith(".")} if p.is_dir() else {p.suffix.lower()}
    formats = {FORMATS[s] for s in suffixes if s in FORMATS}
    if len(formats) != 1:
        raise DataError(f"{path}: expected Parquet (.parquet) or CSV (.csv) files, found {sorted(suffixes) or 'none'}")
    return formats.pop()


def read(path: str) -> ray.data.Dataset:
    fmt = "parquet" if "://" in path and not path.endswith(".csv") else file_format(path)
    try:
        return ray.data.read_parquet(path) if fmt == "parquet" else ray.data.read_csv(path)
    except Exception as err:  # pyarrow/Ray raise many types for unreadable input
        raise DataError(f"cannot read {fmt} data from {path}: {str(err).splitlines()[0]}") from None


def load_splits(cfg: Config) -> Prepared:
    path = resolve_source(cfg.data)
    return get_task(cfg.task).prepare(read(path), cfg.data, path=path)
