"""`forecast`'s report, after the test pass: the validation calibration (naive residual quantiles,
conformal half-widths), the test metrics of the model and its baselines (seasonal naive, with
drift; CRPS, pinball and interval scores for a distribution or intervals), the counts they average
over, and the plots."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.windows import forecast_metrics
from pipeline.tasks import DataInfo
from pipeline.tasks.forecast_units import distribution_in_data_units, in_data_units, model_intervals

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def calibrate(out: dict[str, np.ndarray], info: DataInfo) -> DataInfo:
    """On the validation windows: seasonal naive's residual quantiles (the baseline of a model with
    intervals), and for `model.intervals: conformal` the model's conformal half-widths."""
    own = info.task_info
    if own.likelihood == "none" and own.intervals == "none":
        return info
    from pipeline.tasks.probabilistic import LEVELS, conformal_half_widths, residual_quantiles

    pred, y = in_data_units(out, info)
    levels = own.quantiles if own.likelihood == "quantile" else LEVELS
    changes = {"naive_quantiles": residual_quantiles(out["baseline"], y, levels)}
    if own.intervals == "conformal":
        changes["conformal"] = conformal_half_widths(pred, y)
    return info.with_task_info(**changes)


def test_metrics(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, float]:
    """MAE, RMSE, sMAPE, MASE of the (point) forecast; with a distribution or intervals also CRPS,
    pinball loss and interval coverage and width, beside the baseline's."""
    pred, y = in_data_units(out, info)  # (W, H) in data units
    model = forecast_metrics(pred, y, scale=out["scale"])
    naive = forecast_metrics(out["baseline"], y, scale=out["scale"])
    own = info.task_info
    q, levels = model_intervals(out, info, pred)
    if q is not None:
        from pipeline.tasks.probabilistic import LEVELS, interval_scores, scores

        naive_levels = own.quantiles if own.likelihood == "quantile" else LEVELS
        naive_q = out["baseline"][..., None] + np.asarray(own.naive_quantiles)[None]  # (W, H, L)
        if own.likelihood != "none":
            model |= scores(own.likelihood, distribution_in_data_units(out, info), y, levels=levels)
            naive |= scores("quantile", naive_q, y, levels=naive_levels)
        else:  # conformal intervals around a point forecast
            model |= interval_scores(q, y, levels)
            naive |= interval_scores(naive_q, y, naive_levels)
    metrics = {f"test_{k}": v for k, v in model.items()} | {f"baseline_test_{k}": v for k, v in naive.items()}
    if "drift" in out:  # seasonal naive with drift: the point metrics
        drift = forecast_metrics(out["drift"], y, scale=out["scale"])
        metrics |= {f"baseline_drift_test_{k}": v for k, v in drift.items()}
    if "ets" in out:  # exponential smoothing fitted per series (pipeline.data.ets): the point metrics
        ets = forecast_metrics(out["ets"], y, scale=out["scale"])
        metrics |= {f"baseline_ets_test_{k}": v for k, v in ets.items()}
    return metrics | windows_counted(out)


def windows_counted(out: dict[str, np.ndarray]) -> dict[str, float]:
    """How many test windows and series the metrics average over (overlapping windows are few
    independent errors)."""
    counts = {"test_windows": float(len(out["y"]))}
    if "series" in out:
        counts["test_series"] = float(len(set(np.asarray(out["series"]).tolist())))
    return counts


def forecast_vs_actual(pred: np.ndarray, y: np.ndarray, baseline: np.ndarray) -> Figure:
    """First-step forecasts of consecutive test windows against the actual values (data units)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), layout="tight")
    ax = fig.subplots()
    ax.plot(y[:, 0], label="actual", color="black")
    ax.plot(pred[:, 0], label="model", marker=".", ms=3)
    ax.plot(baseline[:, 0], label="seasonal naive", alpha=0.6)
    ax.set_xlabel("test window")
    ax.set_title("one-step-ahead forecasts on the test split")
    ax.legend()
    return fig


def plots(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, Figure]:
    pred, y = in_data_units(out, info)
    figures = {"forecast_vs_actual.png": forecast_vs_actual(pred, y, out["baseline"])}
    q, levels = model_intervals(out, info, pred)
    if q is None:
        return figures
    from pipeline.tasks.probabilistic import fan_chart, first_step_bands

    return figures | {"fan_chart.png": fan_chart(first_step_bands(q, levels), pred[:, 0], y[:, 0])}
