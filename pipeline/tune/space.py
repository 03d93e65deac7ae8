"""What a sweep searches and how: `tune.space` as Tune distributions, the searcher, the scheduler,
the objective, and how many trials fit side by side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray.tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from pipeline.cluster.connect import available
from pipeline.config import Config, SpaceSpec, TuneConfig
from pipeline.errors import ConfigError
from pipeline.tasks import get_task
from pipeline.tune.pbt import pbt_scheduler


def to_tune_space(space: dict[str, SpaceSpec]) -> dict[str, Any]:
    out = {}
    for key, spec in space.items():
        if spec.choice is not None:
            out[key] = ray.tune.choice(spec.choice)
        elif spec.uniform is not None:
            out[key] = ray.tune.uniform(*spec.uniform)
        elif spec.loguniform is not None:
            out[key] = ray.tune.loguniform(*spec.loguniform)
        else:
            out[key] = ray.tune.randint(*spec.randint)
    return out


def search_space(cfg: TuneConfig) -> dict[str, Any]:
    space = to_tune_space(cfg.space)
    if cfg.search == "grid":  # every combination of the choices, num_samples times; ranges sampled per trial
        space |= {
            key: ray.tune.grid_search(list(spec.choice)) for key, spec in cfg.space.items() if spec.choice is not None
        }
    return space


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str


def objective(cfg: Config) -> Objective:
    """tune.metric/mode, defaulting to the task's validation metric and the task's direction for it."""
    task = get_task(cfg.task)
    metric = cfg.tune.metric or f"val_{task.val_metric}"
    if metric not in task.reported_metrics:
        raise ConfigError(
            f"tune.metric '{metric}' is not reported by task {task.name}; use one of {', '.join(task.reported_metrics)}"
        )
    return Objective(metric=metric, mode=cfg.tune.mode or task.metric_mode(metric))


def searcher(cfg: TuneConfig, goal: Objective, *, max_concurrent: int = 0):
    """random/grid: Tune's variant generator; optuna: TPE. All seeded by tune.seed, and each limited
    to `max_concurrent` trials at once (0: no limit) itself: Tune ignores TuneConfig's
    max_concurrent_trials for a variant generator (it warns and runs them all at once)."""
    if cfg.search != "optuna":
        return BasicVariantGenerator(random_state=cfg.seed, max_concurrent=max_concurrent)
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    optuna = OptunaSearch(metric=goal.metric, mode=goal.mode, seed=cfg.seed)
    return ConcurrencyLimiter(optuna, max_concurrent=max_concurrent) if max_concurrent else optuna


def scheduler(cfg: TuneConfig, *, max_epochs: int):
    if cfg.scheduler == "fifo":
        return FIFOScheduler()
    if cfg.scheduler == "pbt":
        return pbt_scheduler(cfg, domains=to_tune_space(cfg.space))
    # stop_last_trials=False: a trial that reaches max_t ends by itself. Ray's default stops it there,
    # i.e. Tune ends the trial's actor the moment its last epoch is reported, before the trial has
    # tested its best checkpoint and closed its MLflow run (every full-length trial lost its test
    # metrics, and its controller died mid-shutdown).
    return ASHAScheduler(
        max_t=max_epochs,
        grace_period=min(cfg.grace_period, max_epochs),
        reduction_factor=cfg.reduction_factor,
        stop_last_trials=False,
    )


def trial_base(cfg: Config) -> Config:
    """The config every trial starts from: train.workers replaced by tune.trial_workers if set."""
    if cfg.tune.trial_workers is None:
        return cfg
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"workers": cfg.tune.trial_workers})})


def concurrency(cfg: Config) -> int:
    """Trials that fit side by side: each needs train.workers CPUs (or GPUs), never more than asked."""
    if cfg.tune.max_concurrent:
        return cfg.tune.max_concurrent
    kind = "GPU" if cfg.train.use_gpu else "CPU"
    return max(1, int(available(kind) // cfg.train.workers))
