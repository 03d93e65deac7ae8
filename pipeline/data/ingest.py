"""Parquet/CSV -> Ray Data -> the task's prepared train/val/test splits.

This is the edge where the data meets Ray: the file is read with Ray Data, and the task
(`pipeline.tasks`) wraps its pure transforms into Ray Data to check, split and convert it. The
splits are materialized once on the driver and handed to every Train run and Tune trial, so a
sweep reads and splits the data once, and each worker streams its own shard.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray.data
from ray.data.context import ShuffleStrategy

from pipeline.config import Config, DataConfig
from pipeline.data.audio import AUDIO_COLUMN, PATH_COLUMN
from pipeline.data.sources import materialize
from pipeline.errors import DataError
from pipeline.tasks import Prepared, get_task

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".wav": "wav"}  # a WAV folder: one row per file


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
    names = (
        sorted(f.name for f in p.iterdir() if f.is_file() and not f.name.startswith(".")) if p.is_dir() else [p.name]
    )
    formats = {FORMATS[Path(n).suffix.lower()] for n in names if Path(n).suffix.lower() in FORMATS}
    if len(formats) > 1:
        raise DataError(f"{path}: holds {' and '.join(sorted(formats))} files; keep one format per directory")
    if not formats:
        held = f" (it holds {', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else ""
        raise DataError(f"{path}: expected Parquet (.parquet), CSV (.csv) or WAV (.wav) files, found none{held}")
    return formats.pop()


# What pyarrow and Ray Data raise for input that is not what it says (ArrowInvalid is a ValueError,
# a missing or unreadable file an OSError, pyarrow's own errors ArrowException).
UNREADABLE = (pa.ArrowException, OSError, ValueError)


def _unreadable(path: str, fmt: str, err: BaseException) -> DataError:
    """The reason pyarrow gives, without the wrappers it puts before it ("Error creating dataset.
    Could not read schema from '<path>'. ...: Could not open Parquet input source '<path>': <reason>")."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    reason = text.rsplit("': ", 1)[-1].split(". ")[0]
    return DataError(f"{path}: cannot be read as {fmt} ({reason}); check that the file is complete and really {fmt}")


def read(path: str) -> ray.data.Dataset:
    fmt = "parquet" if "://" in path and not path.endswith(".csv") else file_format(path)
    if fmt == "parquet" and "://" not in path and Path(path).is_dir():
        _check_schemas_agree(Path(path))
    try:
        if fmt == "parquet":
            with _parquet_reader_v1():
                ds = ray.data.read_parquet(path)
        elif fmt == "wav":  # raw files: their bytes (featurized by the task) and their paths
            ds = ray.data.read_binary_files(path, include_paths=True, file_extensions=["wav"])
            ds = ds.rename_columns({"bytes": AUDIO_COLUMN, "path": PATH_COLUMN})
        else:
            # Read once, whole: a CSV's schema is known only by reading it, and Ray Data finds it by
            # running the read with limit(1), then cancelling the read tasks still running. Cancelling
            # a finishing ReadCSV task has crashed Ray's core worker here (task_manager.cc "Tried to
            # complete task that was not pending"); every later step reads the materialized blocks.
            ds = ray.data.read_csv(path, parse_options=pacsv.ParseOptions(invalid_row_handler=refuse_row)).materialize()
    except UNREADABLE as err:  # a bug of ours (TypeError, KeyError, ...) is not an unreadable file
        raise _unreadable(path, fmt, _csv_reason(path, err) if fmt == "csv" else err) from err
    return with_task_shuffle(ds)


def refuse_row(row) -> str:
    """pyarrow's answer to a row with the wrong number of fields: fail with its own message ("CSV
    parse error: Expected 2 columns, got 3: 40,1,7"). Ray Data 2.60 sets pyarrow's handler to None
    when none is given, and pyarrow then calls None: a TypeError traceback printed by every read task."""
    return "error"


def _csv_reason(path: str, err: BaseException) -> BaseException:
    """pyarrow's reason ("CSV parse error: Expected 2 columns, got 3: ..."), found by streaming the
    file(s) here up to the bad block: Ray Data's read task raises only "Failed to read CSV file",
    without its cause."""
    if "://" in path:
        return err
    p = Path(path)
    for f in sorted(p.glob("*.csv")) if p.is_dir() else [p]:
        try:
            for _ in pacsv.open_csv(f, parse_options=pacsv.ParseOptions(invalid_row_handler=refuse_row)):
                pass
        except UNREADABLE as reason:
            return reason
    return err


# Set by a user who wants Ray Data's own choice of Parquet reader.
DATASOURCE_ENV = "RAY_DATA_USE_DATASOURCE_V2"


@contextmanager
def _parquet_reader_v1() -> Iterator[None]:
    """Ray Data 2.60's default Parquet reader (DataSource V2) starts FooterReader actors, two new
    Python processes, for every `read_parquet`: 2.1 s for the smoke data's second read on a warm Ray
    instance here, against 0.6 s for the V1 reader, which reads footers in its read tasks (measured
    side by side, 2 cores). V1 is Ray's documented alternative (`DataContext.use_datasource_v2`);
    the flag is read when the read is planned, so it is set for this call only. A user's
    RAY_DATA_USE_DATASOURCE_V2 is kept."""
    ctx = ray.data.DataContext.get_current()
    before = ctx.use_datasource_v2
    if DATASOURCE_ENV not in os.environ:
        ctx.use_datasource_v2 = False
    try:
        yield
    finally:
        ctx.use_datasource_v2 = before


# Set by a user who wants Ray Data's own choice (or another strategy) for every shuffle.
SHUFFLE_ENV = "RAY_DATA_DEFAULT_SHUFFLE_STRATEGY"


def with_task_shuffle(ds: ray.data.Dataset) -> ray.data.Dataset:
    """Aggregations and group-bys of this dataset (and of every dataset derived from it) shuffle with
    tasks, not actors. Ray Data 2.60's default (SHUFFLE_V2) starts aggregator actors, each a new
    Python process, for every `mean`, `unique` or `groupby`: 5-7 s each on 2 cores, where the
    sort-based shuffle reuses warm task workers and takes 0.2-1 s on the splits this product
    prepares (measured side by side on one Ray instance, 2 cores). Only this dataset's own
    context changes, not the process-wide one; a user's RAY_DATA_DEFAULT_SHUFFLE_STRATEGY is kept."""
    if SHUFFLE_ENV not in os.environ:
        ds.context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    return ds


def _check_schemas_agree(directory: Path) -> None:
    """Ray Data takes the schema of the first file and fails later, deep in a task, on the others."""
    files = sorted(f for f in directory.iterdir() if f.suffix.lower() == ".parquet" and not f.name.startswith("."))
    schemas = {}
    for f in files:
        try:
            schemas[f.name] = pq.read_schema(f)
        except UNREADABLE as err:
            raise _unreadable(str(f), "parquet", err) from err
    first = files[0].name if files else None
    for name, schema in schemas.items():
        for field in schema:
            ref = schemas[first].field(field.name) if field.name in schemas[first].names else None
            if ref is not None and ref.type != field.type:
                raise DataError(
                    f"{directory}: {first} and {name} disagree on column '{field.name}' ({ref.type} vs {field.type}); "
                    "write every file with the same schema"
                )


@contextmanager
def order_preserved() -> Iterator[None]:
    """Ray Data keeps the rows' order for the datasets created inside the block (DataContext's
    execution_options.preserve_order, copied into each dataset when it is read), and the caller's
    setting comes back afterwards."""
    options = ray.data.DataContext.get_current().execution_options
    before = options.preserve_order
    options.preserve_order = True
    try:
        yield
    finally:
        options.preserve_order = before


def load_splits(cfg: Config) -> Prepared:
    """Read the source and prepare the task's splits, materialized, every row in the order the
    source and the seeded split give it. By default Ray Data hands blocks on in the order their
    tasks finish, which varies from run to run: the stored order of the splits would too, and with
    it each epoch's batches (a permutation of the stored rows) and each worker's validation rows,
    so two runs with one `train.seed` trained different models. Measured (m1_yearly, 2 workers,
    seed 0, alternated): test MASE 4.780 and 4.904 before, 4.745422 in both runs kept in order."""
    with order_preserved():
        return _prepared(cfg)


def _prepared(cfg: Config) -> Prepared:
    path = resolve_source(cfg.data)
    task = get_task(cfg.task)
    if task.prepare_reads:
        return task.prepare(read(path), cfg.data, path=path, model_cfg=cfg.model)
    return task.prepare(read(path), cfg.data, path=path)
