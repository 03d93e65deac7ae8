"""Forecast windows, time splits and metrics, by hand."""

import numpy as np
import pytest

from pipeline.data.windows import (
    cut_windows,
    forecast_metrics,
    mase_scale,
    seasonal_naive,
    seasonal_naive_drift,
    split_labels,
    time_cuts,
)
from pipeline.errors import DataError


def test_time_cuts_and_labels():
    val_start, test_start = time_cuts(np.arange(100)[::-1], val_fraction=0.1, test_fraction=0.2)
    assert (val_start, test_start) == (70, 80)
    labels = split_labels(np.array([69, 70, 79, 80]), val_start=70, test_start=80)
    assert list(labels) == ["train", "val", "val", "test"]
    with pytest.raises(DataError, match="too few"):
        time_cuts(np.arange(3), val_fraction=0.1, test_fraction=0.1)


def test_windows_never_straddle_splits():
    t = np.arange(20, dtype=np.float32)
    splits = np.array(["train"] * 12 + ["val"] * 4 + ["test"] * 4, dtype=object)
    win = cut_windows(np.stack([t, -t], axis=1), t, splits, lookback=3, horizon=2)
    assert win["x"].shape[1:] == (3, 2) and win["y"].shape[1] == 2
    for x, y, s in zip(win["x"], win["y"], win["split"]):
        np.testing.assert_array_equal(y, [x[-1, 0] + 1, x[-1, 0] + 2])  # targets follow the inputs
        assert set(splits[y.astype(int)]) == {s}  # all targets in its split
    # train targets 3..11 -> 8 windows; val 12..15 -> 3; test 16..19 -> 3
    assert list(win["split"]).count("train") == 8 and list(win["split"]).count("val") == 3
    assert list(win["split"]).count("test") == 3


def test_too_short_series_gives_no_windows():
    win = cut_windows(np.zeros((3, 1)), np.zeros(3), np.array(["train"] * 3, dtype=object), lookback=3, horizon=2)
    assert win["x"].shape == (0, 3, 1)


def test_seasonal_naive_with_drift_carries_the_trend_on():
    history = np.array([[1.0, 2, 3, 4, 5, 6]])  # +1 per step
    np.testing.assert_allclose(seasonal_naive_drift(history, horizon=5, season=3), [[7, 8, 9, 10, 11]])
    np.testing.assert_allclose(seasonal_naive_drift(history, horizon=2, season=1), [[7, 8]])  # random walk + drift
    flat = np.array([[2.0, 5, 2, 5]])  # no trend: seasonal naive itself
    np.testing.assert_allclose(seasonal_naive_drift(flat, horizon=3, season=2), [[2, 5, 2]])


def test_seasonal_naive_repeats_last_season():
    history = np.array([[1, 2, 3, 4, 5, 6]], dtype=float)
    np.testing.assert_array_equal(seasonal_naive(history, horizon=5, season=3), [[4, 5, 6, 4, 5]])
    np.testing.assert_array_equal(seasonal_naive(history, horizon=2, season=1), [[6, 6]])


def test_mase_scale_uses_training_part_only():
    y = np.array([0.0, 2.0, 4.0, 100.0])
    assert mase_scale(y, np.array(["train", "train", "train", "test"], dtype=object), season=1) == 2.0
    short = np.array(["train", "val", "val", "test"], dtype=object)  # one training step: no difference in it
    assert mase_scale(np.array([0.0, 2.0, 6.0, 100.0]), short, season=1) == 3.0  # before the test period


def test_forecast_metrics_by_hand():
    y = np.array([[10.0, 20.0]])
    pred = np.array([[12.0, 16.0]])
    m = forecast_metrics(pred, y, scale=np.array([2.0]))
    assert m["mae"] == 3.0 and m["rmse"] == pytest.approx(np.sqrt(10.0)) and m["mase"] == 1.5
    assert m["smape"] == pytest.approx(100 * (2 * 2 / 22 + 2 * 4 / 36) / 2)


def test_fill_missing_policies():
    from pipeline.data.windows import fill_missing

    nan = np.nan
    v = np.array([[nan, 1.0], [2.0, nan], [3.0, 3.0], [nan, 4.0]])
    kept_values, kept = fill_missing(v, policy="drop")
    assert list(kept) == [False, False, True, False]
    filled, kept = fill_missing(v, policy="ffill")
    assert list(kept) == [False, True, True, True]  # leading gap has nothing to carry
    np.testing.assert_array_equal(filled[1:], [[2.0, 1.0], [3.0, 3.0], [3.0, 4.0]])
    zeroed, kept = fill_missing(v, policy="zero")
    assert kept.all() and zeroed[0, 0] == 0.0 and zeroed[3, 1] == 4.0


def test_relative_windows_subtract_the_last_value():
    import pandas as pd

    from pipeline.config import DataConfig
    from pipeline.tasks.forecast_windows import _windows

    cfg = DataConfig(source="x.csv", window={"lookback": 3, "horizon": 2, "normalize": "last"})
    group = pd.DataFrame({"time": range(6), "y": [10.0, 11, 12, 13, 14, 15], "split": ["train"] * 6, "series": "a"})
    t = _windows(group, cfg=cfg, mean=np.array([0.0]), std=np.array([2.0]), at="first")
    assert t.column("ref").to_pylist() == [12.0, 13.0]
    assert t.column("x")[0].as_py() == [[-2.0], [-1.0], [0.0]]  # inputs relative to 12
    assert t.column("y").to_pylist() == [[0.5, 1.0], [0.5, 1.0]]  # (13-12)/2, (14-12)/2


def test_revin_windows_are_standardized_by_their_own_mean_and_std():
    import pandas as pd

    from pipeline.config import DataConfig
    from pipeline.tasks.forecast_windows import _windows

    cfg = DataConfig(source="x.csv", window={"lookback": 2, "horizon": 1, "normalize": "revin"})
    group = pd.DataFrame({"time": range(4), "y": [10.0, 14, 14, 20], "split": ["train"] * 4, "series": "a"})
    t = _windows(group, cfg=cfg, mean=np.array([0.0]), std=np.array([1.0]), at="first")
    assert t.column("ref").to_pylist() == [12.0, 14.0]  # window means
    assert t.column("ref_scale").to_pylist() == [2.0, 1.0]  # std of (10, 14); (14, 14) is constant: only centred
    assert t.column("x")[0].as_py() == [[-1.0], [1.0]] and t.column("x")[1].as_py() == [[0.0], [0.0]]
    assert t.column("y").to_pylist() == [[1.0], [6.0]]  # (14 - 12) / 2, (20 - 14) / 1


def test_revin_puts_series_of_any_scale_on_one_scale():
    """Two series 1000 times apart give the same windows under revin (what per-window
    normalization is for), and different ones without it."""
    import pandas as pd

    from pipeline.config import DataConfig
    from pipeline.tasks.forecast_windows import _windows

    values = 5 + np.sin(np.arange(12) / 2)
    cut = {}
    for normalize in ("none", "revin"):
        cfg = DataConfig(source="x.csv", window={"lookback": 4, "horizon": 2, "normalize": normalize})
        for name, k in (("small", 1.0), ("large", 1000.0)):
            group = pd.DataFrame({"time": range(12), "y": k * values, "split": ["train"] * 12, "series": name})
            t = _windows(group, cfg=cfg, mean=np.array([0.0]), std=np.array([1.0]), at="first")
            cut[normalize, name] = np.array(t.column("y").to_pylist())
    assert np.allclose(cut["revin", "small"], cut["revin", "large"], atol=1e-5)
    assert not np.allclose(cut["none", "small"], cut["none", "large"])


def test_series_windows_are_standardized_by_their_series_training_moments():
    """normalize series: every window of a series is standardized by that series' own training mean
    and std (given, as fitted on its training part), not by the window's; a series without them is a
    one-sentence data error."""
    import pandas as pd

    from pipeline.config import DataConfig
    from pipeline.tasks.forecast_windows import _windows

    cfg = DataConfig(source="x.csv", window={"lookback": 2, "horizon": 1, "normalize": "series"})
    group = pd.DataFrame({"time": range(4), "y": [10.0, 14, 14, 20], "split": ["train"] * 4, "series": "b"})
    scales = {"a": [0.0, 1.0], "b": [12.0, 2.0]}
    t = _windows(group, cfg=cfg, mean=np.array([0.0]), std=np.array([1.0]), at="first", series_scales=scales)
    assert t.column("ref").to_pylist() == [12.0, 12.0] and t.column("ref_scale").to_pylist() == [2.0, 2.0]
    assert t.column("x")[1].as_py() == [[1.0], [1.0]]  # (14 - 12) / 2: the series' moments, not the window's
    assert t.column("y").to_pylist() == [[1.0], [4.0]]  # (14 - 12) / 2, (20 - 12) / 2
    with pytest.raises(DataError, match="series 'b' has no values before the test period.*revin"):
        _windows(group, cfg=cfg, mean=np.array([0.0]), std=np.array([1.0]), at="first", series_scales={"a": [0, 1]})


def test_series_normalization_puts_series_of_any_scale_on_one_scale():
    """Two series 1000 times apart, each scaled by its own training moments, give the same windows."""
    import pandas as pd

    from pipeline.config import DataConfig
    from pipeline.tasks.forecast_windows import _windows

    values = 5 + np.sin(np.arange(12) / 2)
    cfg = DataConfig(source="x.csv", window={"lookback": 4, "horizon": 2, "normalize": "series"})
    cut = {}
    for name, k in (("small", 1.0), ("large", 1000.0)):
        group = pd.DataFrame({"time": range(12), "y": k * values, "split": ["train"] * 12, "series": name})
        scales = {name: [k * values.mean(), k * values.std()]}
        t = _windows(group, cfg=cfg, mean=np.array([0.0]), std=np.array([1.0]), at="first", series_scales=scales)
        cut[name] = np.array(t.column("y").to_pylist())
    assert np.allclose(cut["small"], cut["large"], atol=1e-5) and abs(cut["small"].mean()) < 0.5


@pytest.mark.parametrize("normalize", ["none", "last", "revin", "series"])
def test_target_scaler_round_trip(normalize):
    """Windows standardize targets with the training scaler; in_data_units brings them back exactly."""
    import pandas as pd

    from pipeline.config import DataConfig
    from pipeline.tasks import DataInfo
    from pipeline.tasks.forecast import ForecastInfo, in_data_units
    from pipeline.tasks.forecast_windows import _windows

    cfg = DataConfig(source="x.csv", window={"lookback": 4, "horizon": 3, "normalize": normalize})
    values = 50 + 10 * np.sin(np.arange(40) / 3)
    group = pd.DataFrame({"time": range(40), "y": values, "split": ["train"] * 40, "series": "a"})
    mean = np.array([values.mean() if normalize == "none" else 0.0])
    std = np.array([1.0 if normalize in ("revin", "series") else values.std()])
    scales = {"a": [float(values[:30].mean()), float(values[:30].std())]}  # series: its training part's
    t = _windows(group, cfg=cfg, mean=mean, std=std, at="first", series_scales=scales)
    y = np.array(t.column("y").to_pylist())
    own = ForecastInfo(
        scaler={"mean": [float(mean[0])] * 3, "std": [float(std[0])] * 3}, season=1, window_normalize=normalize
    )
    info = DataInfo(task="forecast", input_size=1, output_size=3, target="float", max_len=4, task_info=own)
    out = {"pred": y, "y": y} | {k: np.array(t.column(k).to_pylist()) for k in ("ref", "ref_scale")}
    pred, actual = in_data_units(out, info)
    expected = np.stack([values[i + 4 : i + 7] for i in range(len(y))])
    assert np.allclose(pred, expected, atol=1e-4) and np.allclose(actual, expected, atol=1e-4)
    if normalize == "none":
        assert abs(y.mean()) < 0.2  # standardized around 0


def test_series_fit_uses_the_training_part_and_never_the_test_values():
    """A series' scale for normalize series: its training part's mean and std; a short series that
    starts after the training period falls back to its validation part; test rows never count (they
    are filtered out before, and a series with nothing else gets no scale)."""
    import pandas as pd
    import pyarrow as pa

    from pipeline.tasks.forecast_scaling import before_test, series_fit

    rows = pd.DataFrame(
        {
            "series": ["long"] * 5 + ["short"] * 3,
            "split": ["train", "train", "train", "val", "test", "val", "val", "test"],
            "y": [1.0, 3.0, np.nan, 100.0, 1e6, 10.0, 10.0, 1e6],
        }
    )
    seen = before_test(pa.Table.from_pandas(rows, preserve_index=False), keep=["series", "split", "y"]).to_pandas()
    assert "test" not in set(seen["split"])
    fits = pd.concat([series_fit(g, target="y") for _, g in seen.groupby("series")]).set_index("series")
    assert fits.loc["long"].tolist() == [2.0, 1.0]  # train only: 1 and 3 (the gap skipped, val's 100 not used)
    assert fits.loc["short"].tolist() == [10.0, 1.0]  # no training part: validation; constant: only centred
    assert series_fit(rows[rows["split"] == "test"].iloc[:0], target="y").empty
