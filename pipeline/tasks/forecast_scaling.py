"""How a forecast's values are scaled, fitted in Ray Data on the training period: every channel's
mean and std over it (`training_moments`), and, for `data.window.normalize: series`, each series'
own mean and std of the target (`series_scales`, by series id; saved with the model so predict and
serve scale a series as training did)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from pipeline.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import ray.data


def training_moments(train_rows: ray.data.Dataset, *, columns: list[str], normalize: str, counts: bool):
    """(C,) mean and std of target and features over the training period, in one pass."""
    from ray.data.aggregate import Mean, Std

    moments = train_rows.aggregate(*(Mean(col) for col in columns), *(Std(col, ddof=0) for col in columns))
    mean = np.array([moments[f"mean({col})"] for col in columns], np.float64)  # (C,)
    std = np.array([moments[f"std({col})"] for col in columns], np.float64)
    std = np.where(std < 1e-8, 1.0, std)
    if normalize == "last":
        mean[0] = 0.0  # the target is relative to each window's last value: scaled, not centred
    if normalize in ("revin", "series"):
        mean[0], std[0] = 0.0, 1.0  # the target is standardized per window (series) already
    if counts:  # a count stays a non-negative multiple of the training mean
        mean[0], std[0] = 0.0, (mean[0] if mean[0] > 1e-8 else 1.0)
    return mean, std


def series_moments(scales: dict[str, list[float]], series: str) -> tuple[float, float]:
    """normalize series: the [mean, std] of `series`' target over its training part."""
    if series not in scales:
        raise DataError(
            f"series '{series}' has no values before the test period, and data.window.normalize series scales "
            "each series by its own training values; train on data that includes it, or use data.window.normalize "
            "revin (each window by itself)"
        )
    mean, std = scales[series]
    return float(mean), float(std)


def series_fit(group: pd.DataFrame, *, target: str) -> pd.DataFrame:
    """One series' rows before the test period -> its [mean, std] of the target (normalize series):
    over its training part, or, for a series that starts after the training period (a short one),
    over its validation part; never over test values. Gaps are skipped; a constant series is only
    centred."""
    import pandas as pd

    train = group.loc[group["split"] == "train", target].dropna()
    values = (train if len(train) else group[target].dropna()).to_numpy(np.float64)
    if len(values) == 0:
        return pd.DataFrame({"series": [], "mean": [], "std": []})
    std = float(values.std())
    return pd.DataFrame(
        {"series": [str(group["series"].iloc[0])], "mean": [float(values.mean())], "std": [std if std >= 1e-8 else 1.0]}
    )


def before_test(batch: pa.Table, *, keep: list[str]) -> pa.Table:
    import pyarrow.compute as pc

    return batch.filter(pc.not_equal(batch.column("split"), "test")).select(keep)


def series_scales(labelled: ray.data.Dataset, *, target: str) -> dict[str, list[float]]:
    """normalize series: each series' [mean, std] of the target (series_fit), by id, from Ray Data."""
    seen = labelled.map_batches(
        functools.partial(before_test, keep=["series", "split", target]), batch_format="pyarrow"
    )
    fitted = seen.groupby("series").map_groups(functools.partial(series_fit, target=target), batch_format="pandas")
    return {str(row["series"]): [float(row["mean"]), float(row["std"])] for row in fitted.take_all()}
