"""`lstmpipe backtest`: rolling-origin evaluation of a forecaster, every fold refitted.

Fold k of K moves the forecast origin (K-1-k) * step time steps back from the end of the data
(data.window.origin_shift): its model trains and validates on the steps before the origin's test
period and is tested on that period, with the seasonal-naive, drift and ETS baselines on the same
windows. The folds are the trials of one Ray Tune run (a grid over the origin), so they run side by
side as the cluster's CPUs allow, each a multi-worker TorchTrainer run with its own nested MLflow
run; the parent run holds the table of folds and every test metric's mean and std over them.
Nothing is registered: a backtest measures a config, it does not ship a model (tracking.register_as
and tracking.promote are for `lstmpipe train` and `tune`, as the tune section is for `tune` only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import Config, ConfigError, apply_overrides, validate
from pipeline.errors import TrainingFailed
from pipeline.track import TRIAL_TAG, SweepRun
from pipeline.track.summary import RunSummary
from pipeline.train.lifecycle import run_lifecycle
from pipeline.tune import report
from pipeline.tune.space import objective
from pipeline.tune.sweep import Trials, fit_trials, sweep_hash

ORIGIN_KEY = "data.window.origin_shift"


def fold_shifts(folds: int, step: int) -> list[int]:
    """Origin shifts of folds 0..K-1, the earliest origin first: (K-1-k) * step."""
    return [(folds - 1 - k) * step for k in range(folds)]


def backtest_config(cfg: Config, *, folds: int, step: int) -> Config:
    """The Tune run of the folds: a grid over the origin shift, FIFO, each fold on train.workers workers."""
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
        "space": {ORIGIN_KEY: {"choice": fold_shifts(folds, step)}},
    }
    return validate(apply_overrides(cfg.model_dump(mode="json"), {"tune": tune}), origin="lstmpipe backtest")


@dataclass(frozen=True)
class Fold:
    index: int
    origin_shift: int
    run_id: str
    metrics: dict[str, float]  # test_* and baseline_*test_* of this fold's best checkpoint


def run_backtest(cfg: Config, *, folds: int, step: int, name: str | None = None) -> RunSummary:
    cfg = backtest_config(cfg, folds=folds, step=step)
    goal = objective(cfg)
    with run_lifecycle(cfg, kind="backtest", name=name, resume=False, config_hash=sweep_hash(cfg)) as life:
        fitted = fit_trials(cfg, life, goal=goal)
        done = fold_results(fitted, shifts=fold_shifts(folds, step))
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
