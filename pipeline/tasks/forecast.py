"""`forecast`: the next `horizon` values of a series from its last `lookback` steps.

Long-format input (one row per series and time step). The data are split by time with global cut
points (no look-ahead, within or across series), the scaler is fitted on the training period only,
and windows are cut per series inside Ray Data (`groupby(series).map_groups`). Inputs stay in the
data's units (the model standardizes them with the training scaler); targets are standardized for
the loss and the served model returns forecasts in the data's units. Metrics: MAE, RMSE, sMAPE and
MASE against the seasonal-naive forecast on the same test windows.

Probabilistic forecasts (`model.likelihood`: gaussian, student_t, negative_binomial for counts, or quantile with
`model.quantiles`): the head gives a distribution per horizon step (`pipeline.model.likelihood`),
trained by its negative log-likelihood (pinball loss for quantiles); the point metrics score its
mean (median), and CRPS, pinball loss and the 80%/95% intervals' coverage and width are scored
beside the seasonal-naive forecast made probabilistic by its validation residuals' quantiles
(`pipeline.tasks.probabilistic`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from pipeline.tasks import DataInfo, Prepared, Task, TaskInfo
from pipeline.tasks.forecast_report import calibrate, plots, test_metrics
from pipeline.tasks.forecast_units import distribution_in_data_units, in_data_units, output_units
from pipeline.tasks.forecast_windows import cut, windows_with
from pipeline.tasks.rules import check_layout

if TYPE_CHECKING:
    import ray.data
    import torch

    from pipeline.config import Config, DataConfig, ModelConfig


@dataclass
class ForecastInfo(TaskInfo):
    scaler: dict[str, list[float]]  # {"mean": [...], "std": [...]} of the target, per horizon step (training period)
    season: int  # seasonal-naive period
    # targets relative to each window, or series (ref, ref_scale)
    window_normalize: Literal["none", "last", "revin", "series"] = "none"
    likelihood: str = "none"  # model.likelihood: outputs are a distribution's parameters per horizon step
    quantiles: list[float] = field(default_factory=list)  # likelihood quantile: the levels, ascending
    naive_quantiles: list[list[float]] | None = None  # (H, L) seasonal naive's validation residual quantiles
    intervals: str = "none"  # model.intervals: conformal intervals around a point forecast
    conformal: dict[str, list[float]] | None = None  # coverage ("80", "95") -> half-width per step (data units)
    categories: dict[str, list[str]] = field(default_factory=dict)  # static_categories: training categories
    series_scales: dict[str, list[float]] = field(default_factory=dict)  # normalize series: id -> its [mean, std]

    @property
    def per_step(self) -> int:
        from pipeline.model.likelihood import param_names

        return len(param_names(self.likelihood, self.quantiles))


WINDOW_COLUMNS = ("x", "y", "baseline", "drift", "ets", "scale", "ref", "ref_scale")


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    return windows_with(ds, cfg, info, path=path, keep=(*WINDOW_COLUMNS, "series", "time"))


def target_scaler(mean: np.ndarray, std: np.ndarray, *, horizon: int) -> dict[str, list[float]]:
    """The target's training-period mean and std, repeated per horizon step (one per output)."""
    return {"mean": [float(mean[0])] * horizon, "std": [float(std[0])] * horizon}


def outputs(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, np.ndarray]:
    """Per window: where it starts, the forecast columns, the values and the seasonal naive forecast."""
    pred, y = in_data_units(out, info)
    cols = {"series": out["series"], "time": out["time"]}  # time: the first forecast step
    return cols | forecast_columns(out, info, pred=pred) | {"actual": list(y), "seasonal_naive": list(out["baseline"])}


def forecast_columns(out: dict[str, np.ndarray], info: DataInfo, *, pred: np.ndarray) -> dict[str, list]:
    """Per window: the point forecast `pred` (W, H) and, for a probabilistic model, each parameter
    (or quantile) per horizon step, or the conformal intervals, in the data's units (predict, serve)."""
    from pipeline.model.likelihood import param_names

    cols = {"forecast": list(pred)}
    own = info.task_info
    if own.likelihood != "none":
        params = distribution_in_data_units(out, info)
        names = param_names(own.likelihood, own.quantiles)
        cols |= {name: list(np.ascontiguousarray(params[..., k])) for k, name in enumerate(names)}  # (W, H) each
    if getattr(own, "conformal", None) is not None:
        for name, half in own.conformal.items():
            cols |= {f"lower_{name}": list(pred - np.asarray(half)), f"upper_{name}": list(pred + np.asarray(half))}
    return cols


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str, model_cfg: ModelConfig) -> Prepared:
    w = cfg.window
    win = cut(ds, cfg, path=path, keep=WINDOW_COLUMNS, counts=model_cfg.likelihood == "negative_binomial")
    mean, std, counts, parts = win.mean, win.std, win.counts, win.parts  # mean, std: (C,) every channel
    info = DataInfo(
        task="forecast",
        target="float",
        input_size=len(mean),
        output_size=w.horizon,
        max_len=w.lookback,
        num_rows=counts,
        input_mean=mean.tolist(),
        input_std=std.tolist(),
        task_info=ForecastInfo(
            scaler=target_scaler(mean, std, horizon=w.horizon),
            season=w.season,
            window_normalize=w.normalize,
            likelihood=model_cfg.likelihood or "none",
            intervals=model_cfg.intervals or "none",
            quantiles=list(model_cfg.quantile_levels),
            categories=win.categories,
            series_scales=win.series_scales,
        ),
    )
    info.output_size = w.horizon * info.task_info.per_step
    return Prepared(train=parts[0], val=parts[1], test=parts[2], info=info)


def loss_terms(
    pred: torch.Tensor,
    y: torch.Tensor,
    *,
    likelihood: str = "none",
    quantiles: tuple[float, ...] = (),
    count_scale: float = 1.0,
) -> dict[str, tuple[torch.Tensor, int]]:
    """pred (B, H) point forecasts, or (B, H * P) a distribution's parameters; y (B, H); standardized
    (counts: in units of the training mean, `count_scale`)."""
    if likelihood == "none":
        se = ((pred - y) ** 2).sum()  # (B, H) in standardized units
        return {"loss": (se, y.numel()), "mae": ((pred - y).abs().sum().detach(), y.numel())}
    from pipeline.model.likelihood import nll, point

    loss = nll(likelihood, pred, y, quantiles=list(quantiles), count_scale=count_scale).sum()  # (B, H) summed
    mid = point(likelihood, pred, horizon=y.shape[1], quantiles=list(quantiles))  # (B, H)
    return {"loss": (loss, y.numel()), "mae": ((mid - y).abs().sum().detach(), y.numel())}


def loss_options(info: DataInfo) -> dict:
    own = info.task_info
    if own.likelihood == "none":
        return {}
    counts = {"count_scale": own.scaler["std"][0]} if own.likelihood == "negative_binomial" else {}
    return {"likelihood": own.likelihood, "quantiles": tuple(own.quantiles)} | counts


def check(cfg: Config) -> None:
    check_layout(cfg, task="forecast", layout="series")
    window = cfg.data.window
    if cfg.model.readout == "steps" and window is not None and window.horizon > window.lookback:
        raise ValueError(
            f"model.readout steps reads step k at lookback position L-H+k and data.window.horizon {window.horizon} "
            f"exceeds data.window.lookback {window.lookback}; lengthen the lookback or use model.readout last"
        )
    if cfg.data.led_columns and window is not None and window.horizon > window.lookback:
        raise ValueError(
            f"data.window.horizon {window.horizon} exceeds data.window.lookback {window.lookback}, and future features "
            "ride on the last `horizon` lookback steps (data.columns.future_features, data.calendar); lengthen the "
            "lookback"
        )
    normalize = cfg.data.window.normalize if cfg.data.window is not None else "none"
    if cfg.model.likelihood == "negative_binomial" and normalize != "none":
        raise ValueError(
            f"model.likelihood negative_binomial models counts and data.window.normalize {normalize} makes the "
            "target relative to each window; set data.window.normalize: none"
        )


TASK = Task(
    name="forecast",
    layout="series",
    info_type=ForecastInfo,
    prepare=prepare,
    loss_terms=loss_terms,
    test_metrics=test_metrics,
    val_metric="mae",
    inference_rows=inference_rows,
    outputs=outputs,
    check=check,
    plots=plots,
    output_units=output_units,
    calibrate=calibrate,
    prepare_reads=("model.likelihood", "model.quantiles", "model.intervals"),
    loss_options=loss_options,
)
