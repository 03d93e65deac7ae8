"""Forecasting windows and their naive baseline: pure functions on one series, no Ray.

A series is cut into (lookback -> horizon) windows. A window belongs to the split its targets fall
in, and windows whose targets straddle two splits are dropped, so no target is seen by two
splits. The seasonal-naive forecast repeats the last `season` observed values.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from pipeline.errors import DataError


def split_labels(times: np.ndarray, *, val_start, test_start) -> np.ndarray:
    """Each row's split by its time: train < val_start <= val < test_start <= test."""
    return np.where(times < val_start, "train", np.where(times < test_start, "val", "test")).astype(object)


def time_cuts(unique_times: np.ndarray, *, val_fraction: float, test_fraction: float) -> tuple:
    """Global cut points over the sorted distinct timestamps of all series: no look-ahead across series."""
    t = np.sort(unique_times)
    n = len(t)
    val_at, test_at = int(n * (1 - val_fraction - test_fraction)), int(n * (1 - test_fraction))
    if not 0 < val_at < test_at < n:
        raise DataError(f"{n} time steps are too few to split by time; provide a longer series")
    return t[val_at], t[test_at]


def seasonal_naive(history: np.ndarray, *, horizon: int, season: int) -> np.ndarray:
    """history (W, L) -> (W, H): y_hat[h] = the value one season before, from the lookback."""
    last = history[:, -season:]  # (W, m)
    return np.stack([last[:, h % season] for h in range(horizon)], axis=1)


def seasonal_naive_drift(history: np.ndarray, *, horizon: int, season: int) -> np.ndarray:
    """history (W, L) -> (W, H): seasonal naive plus the trend, one season of it per season ahead:
    y_hat[h] = seasonal_naive[h] + season * (h // season + 1) * c, where c is the mean change per step
    between values whole seasons apart (the longest such span in the lookback, so the season itself
    is not read as trend). With season 1 this is the random walk with drift."""
    span = season * ((history.shape[1] - 1) // season)  # the longest whole number of seasons in the lookback
    c = (history[:, -1] - history[:, -1 - span]) / span if span else np.zeros(len(history))  # (W,)
    ahead = season * (np.arange(horizon) // season + 1)  # (H,) steps between a forecast and the value it repeats
    return seasonal_naive(history, horizon=horizon, season=season) + c[:, None] * ahead[None, :]


def mase_scale(target: np.ndarray, splits: np.ndarray, *, season: int) -> float:
    """In-sample seasonal-naive MAE on the training part of one series (MASE's denominator); when that
    is shorter than a season and a step, on everything before the test period (a short series among
    long ones); on new data with no training part (predict, evaluate), over the whole series."""
    y = target[splits == "train"] if (splits == "train").any() else target
    if len(y) <= season:
        y = target[splits != "test"]
    if len(y) <= season:
        return float("nan")
    return float(np.mean(np.abs(y[season:] - y[:-season])))


def cut_windows(
    inputs: np.ndarray,
    target: np.ndarray,
    splits: np.ndarray,
    *,
    lookback: int,
    horizon: int,
    at_target: dict[str, np.ndarray] | None = None,
    at: Literal["first", "all"] = "first",
) -> dict[str, np.ndarray]:
    """inputs (T, C), target (T,), splits (T,) -> x (W, L, C), y (W, H), target history (W, L), split (W,),
    and at_target: each given per-step array (T,) read at the window's first target step (W,), or at
    all of its target steps (W, H)."""
    at_target = at_target or {}
    n = len(target) - lookback - horizon + 1
    if n <= 0:
        return {
            "x": np.zeros((0, lookback, inputs.shape[1]), np.float32),
            "y": np.zeros((0, horizon), np.float32),
            "history": np.zeros((0, lookback), np.float32),
            "split": np.zeros(0, dtype=object),
            "at_target": {
                name: values[:0] if at == "first" else values[:0].reshape(0, horizon)
                for name, values in at_target.items()
            },
        }
    starts = np.arange(n)
    x_idx = starts[:, None] + np.arange(lookback)[None, :]  # (W, L)
    y_idx = starts[:, None] + lookback + np.arange(horizon)[None, :]  # (W, H)
    y_split = splits[y_idx]  # (W, H)
    keep = (y_split == y_split[:, :1]).all(axis=1)  # targets all in one split
    return {
        "x": inputs[x_idx[keep]].astype(np.float32),
        "y": target[y_idx[keep]].astype(np.float32),
        "history": target[x_idx[keep]].astype(np.float32),
        "split": y_split[keep, 0],
        "at_target": {
            name: values[y_idx[keep, 0] if at == "first" else y_idx[keep]] for name, values in at_target.items()
        },
    }


def forecast_metrics(pred: np.ndarray, y: np.ndarray, *, scale: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, sMAPE (%), MASE over (W, H) forecasts; `scale` (W,) is each window's MASE scale."""
    err = pred - y
    denom = np.abs(pred) + np.abs(y)
    smape = np.where(denom > 0, 2 * np.abs(err) / np.where(denom > 0, denom, 1), 0.0)
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "smape": float(100 * np.mean(smape)),
        "mase": float(np.mean(np.abs(err).mean(axis=1) / scale)),
    }


def fill_missing(values: np.ndarray, *, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """One series' (T, C) values with NaN gaps -> (filled values, rows kept (T,) bool).

    drop: remove steps with any gap; ffill: carry the last value forward (leading gaps are dropped);
    zero: fill with 0. Windows are cut from the kept steps, in time order.
    """
    gaps = np.isnan(values)
    if policy == "zero":
        return np.where(gaps, 0.0, values).astype(values.dtype), np.ones(len(values), dtype=bool)
    if policy == "ffill":
        idx = np.where(gaps, 0, np.arange(len(values))[:, None])  # (T, C) last seen row per column
        np.maximum.accumulate(idx, axis=0, out=idx)
        filled = values[idx, np.arange(values.shape[1])[None, :]]
        return filled, ~np.isnan(filled).any(axis=1)
    return values, ~gaps.any(axis=1)  # drop


REVIN_EPS = 1e-8  # a window whose std is below this is only centred (the served model uses the same rule)


def window_reference(history: np.ndarray, *, normalize: str) -> tuple[np.ndarray, np.ndarray]:
    """history (W, L) of the target -> each window's (shift, scale) (W,), (W,): last: its last value
    and 1; revin: its mean and std (1 for a constant window, as the served model computes them);
    none: its last value (kept for predict's output) and 1."""
    if normalize != "revin":
        return history[:, -1].astype(np.float64), np.ones(len(history))
    h = history.astype(np.float64)
    std = h.std(axis=1)
    return h.mean(axis=1), np.where(std > REVIN_EPS, std, 1.0)
