"""A synthetic chain of stores' daily sales with all three kinds of covariates, in the long format.

Each store's sales are its size (static: floor area, one value per store) times a yearly cycle
whose depth depends on its region (static and categorical: coast stores swing most with the summer)
and a weekly profile (weekends busier), lifted on promotion days (planned weeks ahead: a future feature)
and cut on public holidays (known in advance: a future feature), with multiplicative noise.
Promotions come in runs of 3-7 days at random per store, so no lookback window can predict them
from the sales alone: a forecaster sees them only through `data.columns.future_features`.
Columns: store, date, sales, size, region, promo (0/1), holiday (0/1).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from pipeline.data.sources.options import SEED_MAX, STRICT

START = np.datetime64("2023-01-02")  # a Monday
HOLIDAYS = ("01-01", "05-01", "07-14", "08-15", "11-01", "12-25", "12-26")  # month-day, every year
WEEKDAY = np.array([0.9, 0.85, 0.9, 1.0, 1.15, 1.45, 1.25])  # Monday .. Sunday
PROMO_LIFT, HOLIDAY_CUT = 1.6, 0.35
SUMMER = {"coast": 0.5, "north": 0.1, "south": 0.25}  # region -> depth of the yearly cycle


class StoreSalesOptions(BaseModel):
    model_config = STRICT

    stores: int = Field(8, ge=1, le=10_000, description="stores (series)")
    days: int = Field(730, ge=60, le=100_000, description="days per store, from Monday 2023-01-02")
    promo_share: float = Field(0.12, ge=0, le=0.9, description="share of days on promotion")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="generator seed")


def holidays(dates: np.ndarray) -> np.ndarray:
    """(T,) 1.0 on the fixed-date public holidays, else 0.0."""
    month_day = np.array([str(d)[5:10] for d in dates])
    return np.isin(month_day, HOLIDAYS).astype(np.float64)


def promotions(rng: np.random.Generator, *, days: int, share: float) -> np.ndarray:
    """(T,) 0/1: runs of 3-7 promotion days at random until about `share` of the days are covered."""
    promo = np.zeros(days)
    while promo.mean() < share:
        start, width = int(rng.integers(0, days)), int(rng.integers(3, 8))
        promo[start : start + width] = 1.0
    return promo


def generate(opts: StoreSalesOptions) -> pa.Table:
    rng = np.random.default_rng(opts.seed)
    dates = START + np.arange(opts.days)  # (T,) datetime64[D]
    t = np.arange(opts.days)
    holiday = holidays(dates)
    summer = np.sin(2 * np.pi * (t - 80) / 365.25)  # peaks in June
    weekly = WEEKDAY[t % 7]
    columns: dict[str, list] = {k: [] for k in ("store", "date", "sales", "size", "region", "promo", "holiday")}
    for k in range(opts.stores):
        size = float(np.round(rng.lognormal(np.log(120.0), 0.5)))  # floor area, m2 / 10
        region = str(rng.choice(list(SUMMER)))
        yearly = 1.0 + SUMMER[region] * summer
        promo = promotions(rng, days=opts.days, share=opts.promo_share)
        lift = np.where(promo > 0, PROMO_LIFT, 1.0) * np.where(holiday > 0, HOLIDAY_CUT, 1.0)
        sales = size * yearly * weekly * lift * rng.lognormal(0.0, 0.08, opts.days)
        columns["store"] += [f"store_{k:03d}"] * opts.days
        columns["date"].append(dates.astype("datetime64[ns]"))
        columns["sales"].append(np.round(sales, 2))
        columns["size"] += [size] * opts.days
        columns["region"] += [region] * opts.days
        columns["promo"].append(promo)
        columns["holiday"].append(holiday)
    return pa.table(
        {
            "store": pa.array(columns["store"], pa.string()),
            "date": pa.array(np.concatenate(columns["date"])),
            "sales": pa.array(np.concatenate(columns["sales"])),
            "size": pa.array(columns["size"], pa.float64()),
            "region": pa.array(columns["region"], pa.string()),
            "promo": pa.array(np.concatenate(columns["promo"])),
            "holiday": pa.array(np.concatenate(columns["holiday"])),
        }
    )
