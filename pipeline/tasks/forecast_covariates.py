"""Forecast covariates as window channels: static features on every step, static categories one-hot
over the training categories, future features and calendar numbers read `horizon` steps ahead
(`lead`), so a window's last `horizon` steps carry the forecast period's values. Pure numpy/Arrow,
used by `pipeline.tasks.forecast_windows` inside Ray Data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

CALENDAR = {
    "month": pc.month,
    "quarter": pc.quarter,
    "dayofweek": pc.day_of_week,  # Monday 0
    "dayofmonth": pc.day,
    "dayofyear": pc.day_of_year,
    "hour": pc.hour,
    "minute": pc.minute,
}


def calendar_numbers(times: pa.Array, name: str, *, column: str) -> pa.Array:
    """The calendar number `name` (data.calendar) of each timestamp, as float64."""
    if pa.types.is_date(times.type):
        times = times.cast(pa.timestamp("s"))
    if not pa.types.is_timestamp(times.type):
        raise DataError(
            f"data.calendar needs timestamps in the time column '{column}', which holds {times.type}; "
            "store dates there or remove data.calendar"
        )
    return CALENDAR[name](times).cast(pa.float64())


def one_hot(group: pd.DataFrame, categories: dict[str, list[str]]) -> np.ndarray:
    """(T, K) 0/1: per static_categories column, one channel per training category in order (an
    unseen or missing category is all zeros)."""
    parts = [
        (group[name].astype(object).to_numpy()[:, None] == np.asarray(known, dtype=object)[None, :]).astype(np.float32)
        for name, known in categories.items()
    ]
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(group), 0), np.float32)


def lead(values: np.ndarray, *, steps: int, columns: int) -> np.ndarray:
    """values (T, C) -> the last `columns` channels (future features) read `steps` ahead: row t holds
    their value at t + steps (NaN in the last `steps` rows, which no window's inputs reach)."""
    if not columns:
        return values
    out = values.copy()
    out[:, -columns:] = np.concatenate([values[steps:, -columns:], np.full((min(steps, len(values)), columns), np.nan)])
    return out


def check_static(group: pd.DataFrame, *, names: list[str]) -> None:
    for name in names:
        if group[name].nunique(dropna=False) > 1:
            raise DataError(
                f"static feature '{name}' takes {group[name].nunique(dropna=False)} values in series "
                f"'{group['series'].iloc[0]}'; a static feature is one value per series: move it to "
                "data.columns.features or data.columns.future_features"
            )


def with_one_hot(
    mean: np.ndarray, std: np.ndarray, *, categories: dict[str, list[str]], led: int
) -> tuple[np.ndarray, np.ndarray]:
    """The numeric channels' (C,) moments with the one-hot channels' (0, 1: left as they are) put
    before the last `led` channels, as `_windows` orders them."""
    k = sum(len(v) for v in categories.values())
    split = len(mean) - led
    return (
        np.concatenate([mean[:split], np.zeros(k), mean[split:]]),
        np.concatenate([std[:split], np.ones(k), std[split:]]),
    )
