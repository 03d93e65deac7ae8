"""What the prepared data was made from, to notice a resume whose data changed under it.

A file source's fingerprint is each file's size and modification time (local or any pyarrow
filesystem: S3, GCS, HDFS), read without opening them; a built-in's is its name and parameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.fs

from pipeline.config import DataConfig

if TYPE_CHECKING:
    from pipeline.tasks import Prepared

MAX_FILES = 10_000  # a listing beyond this is cut: the first MAX_FILES files by name still count


def source_fingerprint(cfg: DataConfig) -> dict[str, str]:
    """{file or built-in: "size:mtime_ns" or its parameters}; {} when the source cannot be listed
    (ingest then fails with its own sentence)."""
    if cfg.is_builtin:
        return {f"built-in {cfg.source}": json.dumps(cfg.options, sort_keys=True)}
    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(cfg.source) if "://" in cfg.source else _local(cfg.source)
        info = fs.get_file_info(path)
        if info.type == pyarrow.fs.FileType.Directory:
            infos = fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=True))
        else:
            infos = [info]
    except (OSError, pyarrow.ArrowException):
        return {}
    files = sorted((i for i in infos if i.type == pyarrow.fs.FileType.File), key=lambda i: i.path)[:MAX_FILES]
    root = path.rstrip("/")
    return {_relative(i.path, root): f"{i.size}:{i.mtime_ns}" for i in files}


@dataclass(frozen=True)
class DataLineage:
    """What a run read: logged as the run's MLflow dataset input (`pipeline.track.lineage`)."""

    name: str  # data.source as the user wrote it (a built-in's name, or a path or URI)
    uri: str | None  # a file source's URI; None for a built-in
    fingerprint: dict[str, str]  # file -> "size:mtime_ns", or built-in -> its parameters
    columns: dict[str, str]  # prepared column -> Arrow type
    split_sizes: dict[str, int]  # train/val/test -> rows (or windows)


def lineage_of(cfg: DataConfig, splits: Prepared) -> DataLineage:
    schema = splits.train.schema()
    return DataLineage(
        name=cfg.source,
        uri=None if cfg.is_builtin else cfg.source,
        fingerprint=source_fingerprint(cfg),
        columns={name: str(kind) for name, kind in zip(schema.names, schema.types)},
        split_sizes={k: int(v) for k, v in splits.info.num_rows.items()},
    )


def changes(before: dict[str, str], after: dict[str, str], *, most: int = 3) -> list[str]:
    """What differs, in words: 'x.parquet changed (size 10 -> 12)', 'y.parquet added', 'z removed'."""
    out = [f"{k} removed" for k in sorted(before.keys() - after.keys())]
    out += [f"{k} added" for k in sorted(after.keys() - before.keys())]
    for key in sorted(before.keys() & after.keys()):
        if before[key] != after[key]:
            old, new = before[key].split(":")[0], after[key].split(":")[0]
            out.append(f"{key} changed" + (f" (size {old} -> {new})" if old != new else " (modified since)"))
    return out[:most] + ([f"{len(out) - most} more"] if len(out) > most else [])


def _local(source: str) -> tuple[pyarrow.fs.FileSystem, str]:
    return pyarrow.fs.LocalFileSystem(), str(Path(source).expanduser().resolve())


def _relative(path: str, root: str) -> str:
    return path[len(root) + 1 :] if path.startswith(root + "/") else path.rsplit("/", 1)[-1]
