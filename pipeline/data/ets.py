"""A statistical baseline for forecasts: exponential smoothing (ETS), fitted per series by statsmodels.

For each series, statsmodels' `ETSModel` (additive errors; a damped additive trend and an additive
season of `season` steps where the fitting part is long enough) is fitted by maximum likelihood on
the part of the series before its test period (the forecast task's choice). Its parameters are
then fixed and the same recursions run over the whole series (Hyndman et al. 2008, ETS(A,Ad,A)), so
every window's forecast comes from the state at its own origin, as the LSTM's does, without
refitting and without seeing the values it forecasts:

    mu_t = l_{t-1} + phi b_{t-1} + s_{t-m}        e_t = y_t - mu_t
    l_t = l_{t-1} + phi b_{t-1} + alpha e_t       b_t = phi b_{t-1} + beta e_t       s_t = s_{t-m} + gamma e_t
    y_{t+k | t} = l_t + (phi + ... + phi^k) b_t + s_{t+k-m(1 + (k-1) div m)}

Too short a fitting part drops the season (fewer than 2 seasons + 2 steps), then the trend (fewer
than 5 steps); with fewer than 2 steps, or when the fit fails, the forecast is the last value.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EtsFit:
    alpha: float
    beta: float  # 0 without a trend
    gamma: float  # 0 without a season
    phi: float  # 1 without damping
    level: float  # initial states
    trend: float
    season: np.ndarray  # (m,) s_{1-m} .. s_0, oldest first; empty without a season


def fit_ets(values: np.ndarray, *, season: int) -> EtsFit | None:
    """ETS fitted to `values` (T,), or None when it cannot be (too short, or the fit fails)."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    n = len(values)
    if n < 2:
        return None
    seasonal = season > 1 and n >= 2 * season + 2
    trend = n >= 5
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # convergence and frequency notes
            res = ETSModel(
                values.astype(np.float64),
                error="add",
                trend="add" if trend else None,
                damped_trend=trend,
                seasonal="add" if seasonal else None,
                seasonal_periods=season if seasonal else None,
            ).fit(disp=False)
    except (ValueError, np.linalg.LinAlgError):
        return None
    p = dict(zip(res.param_names, np.asarray(res.params, dtype=np.float64)))
    if not all(np.isfinite(list(p.values()))):
        return None
    # statsmodels' initial_seasonal.j is s_{-j}: the most recent first
    initial = np.array([p[f"initial_seasonal.{j}"] for j in range(season)])[::-1] if seasonal else np.zeros(0)
    return EtsFit(
        alpha=p["smoothing_level"],
        beta=p.get("smoothing_trend", 0.0),
        gamma=p.get("smoothing_seasonal", 0.0),
        phi=p.get("damping_trend", 1.0),
        level=p["initial_level"],
        trend=p.get("initial_trend", 0.0),
        season=initial,
    )


def ets_forecasts(values: np.ndarray, origins: np.ndarray, *, fit: EtsFit | None, horizon: int) -> np.ndarray:
    """(T,) series, (W,) origin positions (the last observed step of each window) -> (W, H) forecasts."""
    if fit is None:
        return np.repeat(values[origins][:, None], horizon, axis=1).astype(np.float32)
    level, trend, buf = fit.level, fit.trend, list(fit.season)
    m = len(buf)
    damp = np.cumsum(fit.phi ** np.arange(1, horizon + 1))  # (H,) phi + ... + phi^k
    wanted = {int(o): i for i, o in enumerate(origins)}
    out = np.zeros((len(origins), horizon), np.float64)
    for t, y in enumerate(values):
        s_old = buf[0] if m else 0.0
        err = y - (level + fit.phi * trend + s_old)
        level, trend = level + fit.phi * trend + fit.alpha * err, fit.phi * trend + fit.beta * err
        if m:
            buf = buf[1:] + [s_old + fit.gamma * err]
        if t in wanted:
            seasonal = np.array([buf[(k - 1) % m] for k in range(1, horizon + 1)]) if m else 0.0
            out[wanted[t]] = level + damp * trend + seasonal
    return out.astype(np.float32)


def one_step_fitted(values: np.ndarray, fit: EtsFit) -> np.ndarray:
    """(T,) one-step-ahead predictions mu_t of the recursion (what statsmodels calls fitted values)."""
    level, trend, buf, preds = fit.level, fit.trend, list(fit.season), []
    for y in values:
        s_old = buf[0] if len(buf) else 0.0
        mu = level + fit.phi * trend + s_old
        preds.append(mu)
        err = y - mu
        level, trend = level + fit.phi * trend + fit.alpha * err, fit.phi * trend + fit.beta * err
        if len(buf):
            buf = buf[1:] + [s_old + fit.gamma * err]
    return np.asarray(preds)
