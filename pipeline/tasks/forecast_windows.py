"""Forecast windows in Ray Data: long rows -> a global time split -> the training period's scaler ->
per series (`groupby(series).map_groups`), windows of `lookback` inputs and `horizon` targets with
the baselines beside them (seasonal naive, with drift, ETS) and each window's reference (last, revin, or
the series' training mean and std for `normalize: series`).
Shared with the anomaly task (`cut`, `windows_with`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from pipeline.data.sources.table import sequence_table
from pipeline.data.splitting import SPLITS, data_errors, rows_in_split
from pipeline.data.transforms import _column, _numeric
from pipeline.data.windows import (
    cut_windows,
    fill_missing,
    mase_scale,
    seasonal_naive,
    seasonal_naive_drift,
    split_labels,
    time_cuts,
    window_reference,
)
from pipeline.errors import DataError
from pipeline.tasks import DataInfo, forecast_scaling
from pipeline.tasks.forecast_covariates import calendar_numbers, check_static, lead, one_hot, with_one_hot

if TYPE_CHECKING:
    import pandas as pd
    import ray.data

    from pipeline.config import DataConfig


def _long_rows(batch: pa.Table, *, cfg: DataConfig) -> pa.Table:
    """The user's long rows -> (series, time, target, *features, *static, *future, *calendar), every
    value checked."""
    c = cfg.columns
    out = {
        "series": _column(batch, c.series).cast(pa.string()) if c.series else pa.array(["0"] * batch.num_rows),
        "time": _column(batch, c.time),
    }
    if out["time"].null_count:
        raise DataError(f"time column '{c.time}' has {out['time'].null_count} missing value(s)")
    if c.label is not None:
        out["label"] = pa.array(_binary_labels(_column(batch, c.label), name=c.label))
    for name in (c.target, *c.features, *c.static_features, *c.future_features):
        if cfg.missing == "error":
            try:
                out[name] = pa.array(_numeric(_column(batch, name), name=name))
            except DataError as err:
                raise DataError(f"{err} (or set data.missing: drop, ffill or zero)") from err
        else:  # gaps become nulls: Ray Data's mean/std skip them, _windows fills them per series
            values = _column(batch, name)
            if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
                raise DataError(f"column '{name}' holds {values.type} values; expected numbers")
            as_float = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
            out[name] = pa.array(np.where(np.isfinite(as_float), as_float, np.nan), from_pandas=True)
    for name in c.static_categories:
        out[name] = _column(batch, name).cast(pa.string())
    for name in cfg.calendar:
        out[f"calendar_{name}"] = calendar_numbers(out["time"], name, column=c.time)
    return pa.table(out)


def _binary_labels(values: pa.Array, *, name: str) -> np.ndarray:
    labels = _numeric(values, name=name)
    other = int(((labels != 0) & (labels != 1)).sum())
    if other:
        raise DataError(f"label column '{name}' has {other} value(s) other than 0 and 1 (1 = anomalous step)")
    return labels.astype(np.int8)


def _label(batch: pa.Table, *, val_start, test_start) -> pa.Table:
    times = batch.column("time").to_numpy(zero_copy_only=False)
    return batch.append_column(
        "split", pa.array(split_labels(times, val_start=val_start, test_start=test_start), pa.string())
    )


def before_origin(times: np.ndarray, *, shift: int, path: str) -> np.ndarray:
    """The sorted distinct timestamps without the last `shift` (data.window.origin_shift)."""
    if shift >= len(times):
        raise DataError(
            f"{path}: data.window.origin_shift {shift} leaves out all {len(times)} time steps; lower it "
            "(lstmpipe backtest: fewer --folds or a smaller --step)"
        )
    return times[: len(times) - shift]


def _before(batch: pa.Table, *, end) -> pa.Table:
    """The rows up to and including time `end` (the last step before the shifted origin's cut)."""
    times = batch.column("time").to_numpy(zero_copy_only=False)
    return batch.filter(pa.array(times <= end))


Step = Literal["first", "all"]  # time, pos (and label) of a window's first target step, or lists over all of them


def _windows(
    group: pd.DataFrame,
    *,
    cfg: DataConfig,
    mean: np.ndarray,
    std: np.ndarray,
    at: Step,
    counts: bool = False,
    ets: bool = False,
    categories: dict[str, list[str]] | None = None,
    series_scales: dict[str, list[float]] | None = None,
) -> pa.Table:
    """One series (any order) -> its windows with targets standardized, baselines in data units;
    `counts`: the target must hold counts (model.likelihood negative_binomial); `ets`: add the
    exponential smoothing baseline fitted on the series' training part (forecast, first step);
    `categories`: the training categories of each static_categories column, one-hot before the led channels;
    `series_scales`: normalize series: each series' training [mean, std] of the target, by id."""
    w, c = cfg.window, cfg.columns
    group = group.sort_values("time")
    check_static(group, names=[*c.static_features, *c.static_categories])
    values = group[cfg.input_columns].to_numpy(np.float32)  # (T, C): target first, NaN = gap
    led = len(cfg.led_columns)
    hot = one_hot(group, categories or {})  # (T, K)
    values = np.concatenate([values[:, : values.shape[1] - led], hot, values[:, values.shape[1] - led :]], axis=1)
    if counts:
        _check_counts(values[:, 0], name=c.target)
    values, kept = fill_missing(values, policy=cfg.missing)
    values = lead(values[kept], steps=w.horizon, columns=led)
    target = values[:, 0]  # (T,)
    splits = group["split"].to_numpy(object)[kept]
    steps = {"time": group["time"].to_numpy()[kept], "pos": np.arange(len(target))}  # pos: step index in the series
    if "label" in group:
        steps["label"] = group["label"].to_numpy()[kept]
    win = cut_windows(values, target, splits, lookback=w.lookback, horizon=w.horizon, at_target=steps, at=at)
    baseline = seasonal_naive(win["history"], horizon=w.horizon, season=w.season)  # (W, H)
    if w.normalize == "series":  # the series' own training moments, the same for each of its windows
        mean_s, std_s = forecast_scaling.series_moments(series_scales or {}, str(group["series"].iloc[0]))
        ref, ref_scale = np.full(len(baseline), mean_s), np.full(len(baseline), std_s)  # (W,), (W,)
    else:
        ref, ref_scale = window_reference(win["history"], normalize=w.normalize)  # (W,), (W,)
    x, y = win["x"], win["y"]
    if w.normalize != "none":  # relative to the window (or series): (v - ref) / ref_scale
        x = x.copy()
        x[..., 0] = (x[..., 0] - ref[:, None]) / ref_scale[:, None]
        y = (y - ref[:, None]) / ref_scale[:, None]
    table = sequence_table(x, np.zeros(len(x), np.float32))  # x: (W, L, C)
    return pa.table(
        {
            "x": table.column("x"),
            "y": pa.array(list((y - mean[0]) / std[0])),  # (W, H) standardized
            "ref": pa.array(ref.astype(np.float64)),
            "ref_scale": pa.array(ref_scale.astype(np.float64)),
            "baseline": pa.array(list(baseline)),
            "drift": pa.array(list(seasonal_naive_drift(win["history"], horizon=w.horizon, season=w.season))),
            **({"ets": pa.array(list(_ets(target, splits, win, horizon=w.horizon, season=w.season)))} if ets else {}),
            "scale": pa.array(np.full(len(baseline), mase_scale(target, splits, season=w.season), np.float64)),
            "split": pa.array(win["split"], pa.string()),
            "series": pa.array([str(group["series"].iloc[0])] * len(baseline), pa.string()),
            **{name: pa.array(list(v) if v.ndim == 2 else v) for name, v in win["at_target"].items()},
        }
    )


def _ets(target: np.ndarray, splits: np.ndarray, win: dict, *, horizon: int, season: int) -> np.ndarray:
    """(W, H) ETS forecasts from each window's origin, fitted on every step before the test period
    (train and val: what the LSTM's training and checkpoint selection saw), so only the test
    windows' forecasts, the ones scored, are out of sample. New data for predict/evaluate is all
    test: then ETS is fitted on the steps up to its first window's origin."""
    from pipeline.data.ets import ets_forecasts, fit_ets

    origins = np.asarray(win["at_target"]["pos"], dtype=np.int64) - 1  # (W,) each window's last observed step
    seen = target[splits != "test"]
    if len(seen) == 0 and len(origins):
        seen = target[: origins.min() + 1]
    return ets_forecasts(target, origins, fit=fit_ets(seen, season=season), horizon=horizon)


def _check_counts(target: np.ndarray, *, name: str) -> None:
    seen = target[np.isfinite(target)]
    bad = int(((seen < 0) | (seen != np.round(seen))).sum())
    if bad:
        raise DataError(
            f"target column '{name}' has {bad} value(s) that are not counts (non-negative integers) and "
            "model.likelihood is negative_binomial; use gaussian or student_t"
        )


@dataclass(frozen=True)
class Windows:
    parts: tuple[ray.data.Dataset, ray.data.Dataset, ray.data.Dataset]
    counts: dict[str, int]
    mean: np.ndarray  # (C,) training-period mean of every channel (0 and 1 for one-hot channels)
    std: np.ndarray
    categories: dict[str, list[str]]  # static_categories column -> its training categories
    series_scales: dict[str, list[float]]  # normalize series: series id -> [mean, std] of its training target


def cut(
    ds: ray.data.Dataset,
    cfg: DataConfig,
    *,
    path: str,
    keep: tuple[str, ...],
    at: Step = "first",
    counts: bool = False,
    fitted: DataInfo | None = None,
) -> Windows:
    """Long rows -> time-split, scaled windows (shared with the anomaly task); `keep`: output columns.
    `counts`: the target holds counts, scaled by its training mean only (not centred). `fitted`: a
    model's data info, whose scaler and categories replace this training period's (a backtest
    origin without refit)."""
    w = cfg.window
    columns = cfg.input_columns
    with data_errors(path):
        rows = ds.map_batches(functools.partial(_long_rows, cfg=cfg), batch_format="pyarrow").materialize()
        times = np.sort(np.asarray(rows.unique("time")))
        if w.origin_shift:
            times = before_origin(times, shift=w.origin_shift, path=path)
            rows = rows.map_batches(functools.partial(_before, end=times[-1]), batch_format="pyarrow").materialize()
        val_start, test_start = time_cuts(times, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)
        labelled = rows.map_batches(
            functools.partial(_label, val_start=val_start, test_start=test_start), batch_format="pyarrow"
        ).materialize()
        train_rows = labelled.map_batches(
            functools.partial(rows_in_split, name="train", keep=columns), batch_format="pyarrow"
        )
        if fitted is None:
            categories = _categories(labelled, names=cfg.columns.static_categories)
            mean, std = forecast_scaling.training_moments(
                train_rows, columns=columns, normalize=w.normalize, counts=counts
            )
            mean, std = with_one_hot(mean, std, categories=categories, led=len(cfg.led_columns))
            scales = {}
            if w.normalize == "series":
                scales = forecast_scaling.series_scales(labelled, target=cfg.columns.target)
        else:
            categories, scales = fitted.task_info.categories, getattr(fitted.task_info, "series_scales", {})
            mean, std = np.asarray(fitted.input_mean, np.float64), np.asarray(fitted.input_std, np.float64)
        windows = (
            labelled.groupby("series")
            .map_groups(
                functools.partial(
                    _windows,
                    cfg=cfg,
                    mean=mean,
                    std=std,
                    at=at,
                    counts=counts,
                    ets="ets" in keep,
                    categories=categories,
                    series_scales=scales,
                ),
                batch_format="pandas",
            )
            .materialize()
        )
        tested = keep if "series" in keep else (*keep, "series")  # the test split says which series it scores
        parts = tuple(
            windows.map_batches(
                functools.partial(rows_in_split, name=name, keep=tested if name == "test" else keep),
                batch_format="pyarrow",
            ).materialize()
            for name in SPLITS
        )
        counts = dict(zip(SPLITS, (p.count() for p in parts)))
    if min(counts.values()) == 0:
        raise DataError(
            f"{path}: too few time steps for lookback {w.lookback} + horizon {w.horizon} in every split ({counts} "
            "windows); "
            "lower data.window.lookback or provide a longer series"
        )
    return Windows(parts=parts, counts=counts, mean=mean, std=std, categories=categories, series_scales=scales)


def _categories(labelled: ray.data.Dataset, *, names: list[str]) -> dict[str, list[str]]:
    """Each static_categories column's categories in the training period, sorted."""
    if not names:
        return {}
    train = labelled.map_batches(functools.partial(rows_in_split, name="train", keep=names), batch_format="pyarrow")
    return {name: sorted(v for v in train.unique(name) if v is not None) for name in names}


def _all_test(batch: pa.Table) -> pa.Table:
    return batch.append_column("split", pa.array(["test"] * batch.num_rows, pa.string()))


def windows_with(
    ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str, keep: tuple[str, ...], at: Step = "first"
) -> ray.data.Dataset:
    """Every window of new data, scaled with the trained model's scaler (predict, evaluate). The MASE
    scale is the whole series' in-sample seasonal-naive error. Targets and labels are optional."""
    names = ds.schema().names
    if cfg.columns.label is not None and cfg.columns.label not in names:
        cfg = cfg.model_copy(update={"columns": cfg.columns.model_copy(update={"label": None})})
    keep = tuple(k for k in keep if k != "label" or cfg.columns.label is not None)
    mean, std = np.asarray(info.input_mean), np.asarray(info.input_std)
    with data_errors(path):
        rows = ds.map_batches(functools.partial(_long_rows, cfg=cfg), batch_format="pyarrow").map_batches(
            _all_test, batch_format="pyarrow"
        )
        own = info.task_info
        windows = rows.groupby("series").map_groups(
            functools.partial(
                _windows,
                cfg=cfg,
                mean=mean,
                std=std,
                at=at,
                ets="ets" in keep,
                categories=getattr(own, "categories", {}),
                series_scales=getattr(own, "series_scales", {}),
            ),
            batch_format="pandas",
        )
        return windows.map_batches(
            functools.partial(rows_in_split, name="test", keep=keep), batch_format="pyarrow"
        ).materialize()
