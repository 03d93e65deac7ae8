"""The ETS baseline (pipeline.data.ets): statsmodels' fit, our recursion from every window's origin."""

import numpy as np
import pandas as pd
import pytest

from pipeline.data.ets import ets_forecasts, fit_ets, one_step_fitted


def _seasonal(n: int = 72, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return 10 + 0.3 * t + 3 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(seed).normal(0, 0.3, n)


def test_the_recursion_reproduces_statsmodels_fit_and_forecast():
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = _seasonal()
    fit = fit_ets(y, season=12)
    assert len(fit.season) == 12 and 0 < fit.phi <= 1
    res = ETSModel(y, error="add", trend="add", damped_trend=True, seasonal="add", seasonal_periods=12).fit(disp=False)
    assert np.allclose(one_step_fitted(y, fit), res.fittedvalues, atol=1e-8)
    assert np.allclose(ets_forecasts(y, np.array([len(y) - 1]), fit=fit, horizon=5)[0], res.forecast(5), atol=1e-4)


def test_a_windows_forecast_uses_nothing_after_its_origin():
    y = _seasonal()
    fit = fit_ets(y[:48], season=12)
    changed = y.copy()
    changed[50:] += 100.0  # the future of origin 49
    a = ets_forecasts(y, np.array([49, 30]), fit=fit, horizon=3)
    b = ets_forecasts(changed, np.array([49, 30]), fit=fit, horizon=3)
    assert np.allclose(a, b) and a.shape == (2, 3)
    assert np.abs(a[0] - y[50:53]).max() < 2.0  # and it forecasts the seasonal series well


@pytest.mark.parametrize(("n", "season", "has_season", "has_trend"), [(30, 12, True, True), (20, 12, False, True)])
def test_short_series_drop_the_season_then_the_trend(n, season, has_season, has_trend):
    fit = fit_ets(_seasonal(n), season=season)
    assert (len(fit.season) > 0) == has_season and (fit.phi != 1.0 or fit.beta != 0.0) == has_trend


def test_too_short_to_fit_forecasts_the_last_value():
    assert fit_ets(np.array([5.0]), season=1) is None
    out = ets_forecasts(np.array([1.0, 2.0, 7.0]), np.array([2, 1]), fit=None, horizon=2)
    assert out.tolist() == [[7.0, 7.0], [2.0, 2.0]]


def test_forecast_windows_carry_the_ets_baseline_fitted_before_the_test_period():
    from pipeline.config import validate
    from pipeline.tasks.forecast_windows import _windows

    cfg = validate(
        {"task": "forecast", "data": {"source": "airline", "window": {"lookback": 12, "horizon": 3, "season": 12}}}
    ).data
    cfg = cfg.model_copy(update={"columns": cfg.columns.model_copy(update={"target": "y"})})
    y = _seasonal(96)
    split = np.where(np.arange(96) < 72, "train", np.where(np.arange(96) < 84, "val", "test"))
    group = pd.DataFrame({"series": "0", "time": np.arange(96), "y": y, "split": split}).sample(
        frac=1.0, random_state=0
    )
    table = _windows(group, cfg=cfg, mean=np.zeros(1), std=np.ones(1), at="first", ets=True)
    ets = np.stack(table.column("ets").to_numpy(zero_copy_only=False))  # (W, H)
    first = table.column("pos").to_numpy()  # each window's first forecast step
    expected = ets_forecasts(y, first - 1, fit=fit_ets(y[:84], season=12), horizon=3)  # train and val
    assert np.allclose(ets, expected, atol=1e-5)
    assert "ets" not in _windows(group, cfg=cfg, mean=np.zeros(1), std=np.ones(1), at="first").column_names
