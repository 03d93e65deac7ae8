"""B3: ingest. Ray Data from Parquet to batches (read, split, scale, window, batch) vs what training eats.

Two datasets: the adding problem (one sequence per row: read, split, scale) and a long-format
series file (20 series x 5,000 steps: read, split by time, scale, cut 100-step windows per series).
For each: the preparation rate (`load_splits`: Parquet -> materialized windows), the batch rate of
a pass over the prepared training split on the driver (shard -> collate), and the time to the
first batch, both cold (from the Parquet file) and warm (from the prepared split).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import config
from pipeline.data.batches import iter_batches
from pipeline.data.ingest import load_splits


@dataclass(frozen=True)
class IngestRate:
    name: str
    sequences: int  # training sequences (windows) prepared
    prepare_s: float  # Parquet -> materialized train/val/test splits
    batches_per_s: float  # sequences/s of a pass over the prepared training split
    first_batch_cold_s: float  # load_splits + the first batch
    first_batch_warm_s: float  # from the prepared split


def series_file(path: Path, *, series: int = 20, steps: int = 5000) -> Path:
    """Random walks in long format (series, time, y), written once."""
    if not path.exists():
        rng = np.random.default_rng(0)
        ids = np.repeat(np.arange(series), steps)
        t = np.tile(np.arange(steps), series)
        y = np.cumsum(rng.normal(size=(series, steps)), axis=1).ravel()
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"series": ids, "time": t, "y": y}), path)
    return path


def configs(workdir: str) -> dict[str, config.Config]:
    series = series_file(Path(workdir) / "series.parquet")
    return {
        "adding (read, split, scale)": config.validate(
            {
                "data": {
                    "source": "adding",
                    "options": {"seq_len": 100, "num_sequences": 20000},
                    "cache_dir": f"{workdir}/data",
                },
            }
        ),
        "series (read, split, scale, window)": config.validate(
            {
                "task": "forecast",
                "data": {
                    "source": str(series),
                    "columns": {"series": "series"},
                    "window": {"lookback": 100, "horizon": 1},
                },
            }
        ),
    }


def measure(name: str, cfg: config.Config, *, batch_size: int = 64) -> IngestRate:
    start = time.perf_counter()
    splits = load_splits(cfg)
    prepared = time.perf_counter() - start
    first_cold = _first_batch(splits, batch_size=batch_size) + prepared
    first_warm = _first_batch(splits, batch_size=batch_size)
    start, n = time.perf_counter(), 0
    for batch in iter_batches(splits.train, info=splits.info, batch_size=batch_size):
        n += len(batch["x"])
    rate = n / (time.perf_counter() - start)
    return IngestRate(
        name=name,
        sequences=n,
        prepare_s=prepared,
        batches_per_s=rate,
        first_batch_cold_s=first_cold,
        first_batch_warm_s=first_warm,
    )


def _first_batch(splits, *, batch_size: int) -> float:
    start = time.perf_counter()
    next(iter(iter_batches(splits.train, info=splits.info, batch_size=batch_size)))
    return time.perf_counter() - start
