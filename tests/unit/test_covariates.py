"""Forecast covariates without Ray: static features on every step, future features and calendar
numbers read `horizon` steps ahead so the window's last steps carry the forecast period's values,
the target never leaking into the inputs, and the config rules."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline import config
from pipeline.errors import DataError
from pipeline.tasks.forecast_covariates import calendar_numbers, lead, one_hot, with_one_hot
from pipeline.tasks.forecast_windows import _long_rows, _windows

L, H = 6, 3


def _cfg(**data):
    columns = {"time": "t", "target": "y", "series": "store", "static_features": ["size"]}
    raw = {
        "task": "forecast",
        "data": {
            "source": "sales.csv",
            "columns": columns | {"future_features": ["promo"]},
            "window": {"lookback": L, "horizon": H, "season": 3},
            **data,
        },
    }
    return config.validate(raw)


def _series(n: int = 30) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {"series": "a", "time": t, "y": t.astype(float), "size": 5.0, "promo": 1000.0 + t, "split": ["test"] * n}
    ).sample(frac=1.0, random_state=0)  # long rows as _long_rows gives them, in any order


def _x(table: pa.Table) -> np.ndarray:
    return np.array(table.column("x").to_pylist(), np.float64)  # (W, L, C)


def test_a_future_feature_at_horizon_step_k_is_the_value_at_step_k_and_the_target_does_not_leak():
    cfg = _cfg()
    assert cfg.data.input_columns == ["y", "size", "promo"]
    out = _windows(_series(), cfg=cfg.data, mean=np.zeros(3), std=np.ones(3), at="first")
    x, first = _x(out), np.asarray(out.column("time").to_pylist())  # first: each window's first target step
    assert len(x) == 30 - L - H + 1 and x.shape[1:] == (L, 3)
    for w in range(len(x)):
        for k in range(H):  # lookback position L-H+k holds the promo of horizon step k
            assert x[w, L - H + k, 2] == 1000.0 + first[w] + k
        assert x[w, :, 0].tolist() == list(range(first[w] - L, first[w]))  # the target channel: history only
        assert (x[w, :, 1] == 5.0).all()  # the static feature at every step
    y = np.array(out.column("y").to_pylist())  # standardized with mean 0, std 1: the values themselves
    assert (y[:, 0] == first).all()


def test_a_static_category_is_one_hot_before_the_future_channels_and_an_unseen_one_is_all_zeros():
    cfg = _cfg(columns={"time": "t", "target": "y", "series": "store", "static_categories": ["region"]})
    assert cfg.data.input_columns == ["y"]  # numeric channels; the one-hot ones come from the data
    group = _series()
    group["region"] = "south"
    categories = {"region": ["coast", "north", "south"]}
    out = _windows(group, cfg=cfg.data, mean=np.zeros(4), std=np.ones(4), at="first", categories=categories)
    x = _x(out)
    assert x.shape[2] == 4 and (x[:, :, 1:] == [0.0, 0.0, 1.0]).all()
    group["region"] = "mountain"  # not seen in training
    assert (one_hot(group, categories) == 0).all() and one_hot(group, {}).shape == (30, 0)
    mean, std = with_one_hot(np.array([5.0, 6.0, 7.0]), np.array([2.0, 3.0, 4.0]), categories=categories, led=1)
    assert mean.tolist() == [5.0, 6.0, 0.0, 0.0, 0.0, 7.0] and std.tolist() == [2.0, 3.0, 1.0, 1.0, 1.0, 4.0]


def test_lead_reads_the_last_channels_ahead():
    values = np.arange(10, dtype=np.float32).reshape(5, 2)  # (T, C)
    led = lead(values, steps=2, columns=1)
    assert led[:, 0].tolist() == values[:, 0].tolist()
    assert led[:3, 1].tolist() == [5.0, 7.0, 9.0] and np.isnan(led[3:, 1]).all()
    assert lead(values, steps=2, columns=0) is values


def test_calendar_numbers_come_from_timestamps_and_ride_ahead_as_future_features():
    times = pa.array(pd.date_range("2024-01-29", periods=5, freq="D").to_numpy())
    assert calendar_numbers(times, "dayofweek", column="t").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # Monday 0
    assert calendar_numbers(times, "month", column="t").to_pylist() == [1.0, 1.0, 1.0, 2.0, 2.0]
    with pytest.raises(DataError, match="data.calendar needs timestamps in the time column 't', which holds int64"):
        calendar_numbers(pa.array([1, 2]), "month", column="t")
    cfg = _cfg(calendar=["month", "dayofweek"])
    assert cfg.data.led_columns == ["promo", "calendar_month", "calendar_dayofweek"]
    rows = _long_rows(
        pa.table({"store": ["a"] * 5, "t": times, "y": [1.0] * 5, "size": [2.0] * 5, "promo": [0.0] * 5}), cfg=cfg.data
    )
    assert rows.column("calendar_dayofweek").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_static_feature_that_changes_within_a_series_is_refused():
    group = _series()
    group["size"] = np.arange(len(group), dtype=float)
    with pytest.raises(DataError, match="static feature 'size' takes 30 values in series 'a'"):
        _windows(group, cfg=_cfg().data, mean=np.zeros(3), std=np.ones(3), at="first")


@pytest.mark.parametrize(
    ("raw", "refusal"),
    [
        (
            {"data": {"source": "sales.csv", "window": {"lookback": 2, "horizon": 3}, "calendar": ["month"]}},
            "horizon 3 exceeds data.window.lookback 2, and future features ride on the last",
        ),
        (
            {"task": "anomaly", "data": {"source": "s.csv", "columns": {"static_features": ["size"]}}},
            "data.columns.static_features is for task: forecast",
        ),
        (
            {"task": "classify", "data": {"source": "s.csv", "calendar": ["month"]}},
            "data.calendar is for task: forecast",
        ),
        (
            {"data": {"source": "s.csv", "columns": {"features": ["promo"], "future_features": ["promo"]}}},
            "column 'promo' is named by data.columns.features and data.columns.future_features",
        ),
    ],
)
def test_covariates_a_forecast_would_not_honour_are_refused(raw, refusal):
    with pytest.raises(config.ConfigError, match=refusal):
        config.validate({"task": "forecast", **raw})
