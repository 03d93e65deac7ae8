"""`lstmpipe backtest`: rolling-origin evaluation of a forecaster, one model for every origin or,
with --refit, one model per origin.

Fold k of K moves the forecast origin (K-1-k) * step time steps back from the end of the data
(data.window.origin_shift) and tests on the period after it, with the seasonal-naive, drift and ETS
baselines on the same windows (ETS fitted on the fold's own steps before its test period).
- fits "each_fold" (--refit): each fold's model trains and validates on the steps before its test
  period. The folds are the trials of one Ray Tune run (a grid over the origin), so they run side by
  side as the cluster's CPUs allow, each a multi-worker TorchTrainer run with its own nested run.
- fits "once" (the default, as darts' `historical_forecasts(retrain=False)`): the first fold's model
  (one Tune trial) is tested at every origin, each later fold's test windows scaled with its
  training scaler and calibrated on its validation period, each fold a nested run of its own.
The parent run holds the table of folds and every test metric's mean and std over them. Nothing is
registered: a backtest measures a config, it does not ship a model (tracking.register_as and
tracking.promote are for `lstmpipe train` and `tune`, as the tune section is for `tune` only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from pipeline.config import Config, ConfigError, apply_overrides, validate
from pipeline.errors import TrainingFailed
from pipeline.track import KIND_TAG, TRIAL_TAG, SweepRun, TrackedRun
from pipeline.track.summary import RunSummary
from pipeline.train.lifecycle import run_lifecycle
from pipeline.tune import report
from pipeline.tune.space import objective
from pipeline.tune.sweep import Trials, best_trial_outcome, fit_trials, sweep_hash
from pipeline.tune.trial import data_key, trial_name, trial_storage

if TYPE_CHECKING:
    import ray.data

    from pipeline.config import DataConfig
    from pipeline.tasks import DataInfo

ORIGIN_KEY = "data.window.origin_shift"
FITS_TAG = "lstmpipe.backtest_fits"
MODEL_RUN_TAG = "lstmpipe.model_run_id"  # a fold run without refit: the run whose model it tests
Fits = Literal["each_fold", "once"]  # a model per origin (--refit), or the first origin's model at every origin


def fold_shifts(folds: int, step: int) -> list[int]:
    """Origin shifts of folds 0..K-1, the earliest origin first: (K-1-k) * step."""
    return [(folds - 1 - k) * step for k in range(folds)]


def backtest_config(cfg: Config, *, folds: int, step: int, fits: Fits = "each_fold") -> Config:
    """The Tune run of the fits: a grid over the origin shift (every fold's, or the first fold's
    only), FIFO, each fit on train.workers workers."""
    if cfg.task != "forecast":
        raise ConfigError(f"lstmpipe backtest evaluates forecasters; task is {cfg.task}: set task: forecast")
    if folds < 2 or step < 1:
        raise ConfigError(f"--folds {folds} --step {step}: a backtest needs at least 2 folds, 1 step apart")
    if cfg.data.window is not None and cfg.data.window.origin_shift:
        raise ConfigError(
            f"{ORIGIN_KEY} is {cfg.data.window.origin_shift}; lstmpipe backtest sets it per fold: remove it"
        )
    tune = {
        "num_samples": 1,
        "search": "grid",
        "scheduler": "fifo",
        "max_concurrent": cfg.tune.max_concurrent,
        "space": {ORIGIN_KEY: {"choice": fold_shifts(folds, step)[: None if fits == "each_fold" else 1]}},
    }
    return validate(apply_overrides(cfg.model_dump(mode="json"), {"tune": tune}), origin="lstmpipe backtest")


@dataclass(frozen=True)
class Fold:
    index: int
    origin_shift: int
    run_id: str
    metrics: dict[str, float]  # test_* and baseline_*test_* of this fold's best checkpoint


def run_backtest(cfg: Config, *, folds: int, step: int, fits: Fits = "once", name: str | None = None) -> RunSummary:
    cfg = backtest_config(cfg, folds=folds, step=step, fits=fits)
    goal, shifts = objective(cfg), fold_shifts(folds, step)
    with run_lifecycle(cfg, kind="backtest", name=name, resume=False, config_hash=sweep_hash(cfg)) as life:
        fitted = fit_trials(cfg, life, goal=goal)
        fitted.parent.set_tags({FITS_TAG: fits})
        done = fold_results(fitted, shifts=shifts) if fits == "each_fold" else fixed_model_folds(fitted, shifts=shifts)
        table = fold_table(done)
        fitted.parent.log_text(table.to_csv(index=False), "report/folds.csv")
        fitted.parent.log_text(report.markdown(table), "report/folds.md")
        metrics = over_folds(done)
        fitted.parent.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)}, step=0)
        return RunSummary(
            status="FINISHED",
            tracking_uri=life.uri,
            experiment=cfg.tracking.experiment,
            run_id=fitted.parent.run_id,
            name=life.name,
            metrics=metrics,
            child_run_ids=[f.run_id for f in done],
        )


def fold_results(fitted: Trials, *, shifts: list[int]) -> list[Fold]:
    """Each fold's child run and test metrics, earliest origin first; a fold that failed fails the backtest."""
    parent: SweepRun = fitted.parent
    runs = {r.data.tags.get(TRIAL_TAG): r for r in parent.children()}
    tested = {trial_id: _test_metrics(run.data.metrics) for trial_id, run in runs.items()}
    by_shift: dict[int, Fold] = {}
    for result in fitted.grid:
        shift = int(result.config[ORIGIN_KEY])
        trial_id = (result.metrics or {}).get("trial_id")
        if result.error is not None or trial_id not in runs or not tested.get(trial_id):
            reason = str(result.error).strip().splitlines()[-1] if result.error else "no test metrics"
            raise TrainingFailed(f"backtest fold with {ORIGIN_KEY}={shift} failed: {reason}")
        fold = shifts.index(shift)
        by_shift[shift] = Fold(fold, shift, runs[trial_id].info.run_id, tested[trial_id])
    return [by_shift[s] for s in shifts]


def fixed_model_folds(fitted: Trials, *, shifts: list[int]) -> list[Fold]:
    """Without refit: the first fold's trial (its own run and test metrics), then its best checkpoint
    tested at each later origin, every later fold logged as a nested run of the parent."""
    from pipeline.tasks import get_task
    from pipeline.train.finish import test_checkpoint
    from pipeline.train.holdout import split_outputs

    first = fold_results(fitted, shifts=shifts[:1])[0]
    ctx, result = fitted.ctx, next(r for r in fitted.grid if r.error is None)
    cfg = validate(apply_overrides(ctx.base, result.config), origin="lstmpipe backtest")
    splits = ctx.data[data_key(cfg)]
    storage, trial = trial_storage(ctx.storage, ctx.sweep_name), trial_name(ctx.sweep_name, result.metrics["trial_id"])
    tested = test_checkpoint(cfg, splits, best_trial_outcome(storage, trial, cfg).best_checkpoint)  # calibrated info
    done = [first]
    for index, shift in enumerate(shifts[1:], start=1):
        fold_cfg = validate(apply_overrides(ctx.base, {ORIGIN_KEY: shift}), origin="lstmpipe backtest")
        out = split_outputs(
            tested.model, origin_test(fold_cfg.data, info=tested.info), info=tested.info, model_cfg=cfg.model
        )
        metrics = _test_metrics(get_task("forecast").test_metrics(out, tested.info))
        done.append(Fold(index, shift, _log_fold(fitted, fold_cfg, model_run=first.run_id, metrics=metrics), metrics))
    return done


def origin_test(data: DataConfig, *, info: DataInfo) -> ray.data.Dataset:
    """The test windows of a fold (`data.window.origin_shift`), scaled with a fitted model's
    training scaler (`info`) instead of their own training period's."""
    from pipeline.data.ingest import read, resolve_source
    from pipeline.tasks.forecast import WINDOW_COLUMNS
    from pipeline.tasks.forecast_windows import cut

    path = resolve_source(data)
    counts = info.task_info.likelihood == "negative_binomial"
    return cut(read(path), data, path=path, keep=WINDOW_COLUMNS, counts=counts, fitted=info).parts[2]


def _log_fold(fitted: Trials, fold_cfg: Config, *, model_run: str, metrics: dict[str, float]) -> str:
    """A later fold without refit: a nested run with the fold's config and test metrics, tagged
    with the run whose model it tests."""
    run = TrackedRun.start(
        fitted.parent.uri,
        experiment=fold_cfg.tracking.experiment,
        run_name=f"{fitted.ctx.sweep_name}-origin-{fold_cfg.data.window.origin_shift}",
        params=fold_cfg.flat(),
        tags={KIND_TAG: "evaluate", MODEL_RUN_TAG: model_run},
        parent=fitted.parent,
    )
    with run.closes():
        run.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)}, step=0)
    return run.run_id


def _test_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """test_* and every baseline's (baseline_test_*, baseline_ets_test_*, baseline_drift_test_*)."""
    return {k: v for k, v in metrics.items() if k.startswith("test_") or (k.startswith("baseline_") and "test_" in k)}


def fold_table(done: list[Fold]) -> pd.DataFrame:
    rows = [{"fold": f.index, "origin_shift": f.origin_shift, **f.metrics, "run_id": f.run_id} for f in done]
    return pd.DataFrame(rows)


def over_folds(done: list[Fold]) -> dict[str, float]:
    """Each test metric's mean over the folds (named as the metric) and std (folds_<metric>_std),
    for the metrics every fold has, and the number of folds."""
    names = sorted(set.intersection(*(set(f.metrics) for f in done)))
    out: dict[str, float] = {"folds": float(len(done))}
    for name in names:
        values = np.array([f.metrics[name] for f in done], np.float64)  # (K,)
        out[name] = float(values.mean())
        out[f"folds_{name}_std"] = float(values.std(ddof=1))
    return out
