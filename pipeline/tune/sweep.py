"""A Ray Tune sweep where every trial is a distributed TorchTrainer run (Ray 2.60 Train V2 interop).

The sweep is one MLflow parent run; each trial is a function trainable that opens a nested child
run, builds the same trainer as `lstmpipe train` with a `TuneReportCallback`, and fits it. At the
end the best trial's best checkpoint is tested, logged on the parent and registered as `champion`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

import ray.train
import ray.tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from pipeline.cluster import connect as cluster
from pipeline.track import reconcile
from pipeline.tune import report
from pipeline.train import run_state as runs
from pipeline import track as tracking
from pipeline.config import Config, SpaceSpec, TuneConfig, apply_overrides, validate
from pipeline.errors import ConfigError, TrainingFailed
from pipeline.data.ingest import load_splits
from pipeline.track.summary import RunSummary
from pipeline.tasks import Prepared, get_task
from pipeline.train.driver import (
    FitOutcome, build_trainer, check_resources, finish_model, fit, outcome_of, sync_history, test_checkpoint, worker_spec,
)

CHAMPION_ALIAS = "champion"
# The trial function only drives its TorchTrainer. Tune rejects an empty request ({"cpu": 0}), and
# {"cpu": 0.01} would leave 1.99 CPUs on a 2-CPU machine, too few for 2 one-CPU workers: the worker
# group would never start. A small memory reservation is a non-empty request that takes no CPU.
TRIAL_RESOURCES = {"memory": 64 * 1024**2}


@dataclass(frozen=True)
class SweepContext:
    """What every trial receives besides its sampled parameters."""

    base: dict[str, Any]
    data: dict[str, Prepared]        # prepared splits per data variant (data_key)
    parent_run_id: str
    tracking_uri: str
    experiment: str
    storage: str
    sweep_name: str
    owner: str                       # the sweep driver (reconcile.OWNER_TAG of every trial run)


def data_key(cfg: Config) -> str:
    return hashlib.sha256(json.dumps(cfg.data.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]


def data_variants(cfg: Config, *, splits: Prepared | None = None) -> dict[str, Prepared]:
    """Every data section the sweep can sample (choices of data.* keys), each prepared once, here on
    the driver, before any trial starts: trials then only stream their shards."""
    keys = [k for k in cfg.tune.space if k.startswith("data.")]
    if not keys:
        return {data_key(cfg): splits or load_splits(cfg)}
    base = cfg.model_dump(mode="json")
    out: dict[str, Prepared] = {}
    for combo in itertools.product(*(cfg.tune.space[k].choice for k in keys)):
        variant = validate(apply_overrides(base, dict(zip(keys, combo))), origin="tune.space")
        if data_key(variant) not in out:
            out[data_key(variant)] = load_splits(variant)
    return out


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


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str


def objective(cfg: Config) -> Objective:
    """tune.metric/mode, defaulting to the task's validation metric (accuracy up, losses down)."""
    task = get_task(cfg.task)
    metric = cfg.tune.metric or f"val_{task.val_metric}"
    if metric not in task.reported_metrics:
        raise ConfigError(
            f"tune.metric '{metric}' is not reported by task {task.name}; use one of {', '.join(task.reported_metrics)}"
        )
    mode = cfg.tune.mode or ("max" if metric.endswith(("accuracy", "auroc", "f1", "seq_per_s")) else "min")
    return Objective(metric=metric, mode=mode)


def search_space(cfg: TuneConfig) -> dict[str, Any]:
    space = to_tune_space(cfg.space)
    if cfg.search == "grid":   # every combination of the choices, num_samples times; ranges sampled per trial
        space |= {key: ray.tune.grid_search(list(spec.choice)) for key, spec in cfg.space.items() if spec.choice is not None}
    return space


def searcher(cfg: TuneConfig, goal: Objective):
    if cfg.search != "optuna":
        return None
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(metric=goal.metric, mode=goal.mode, seed=cfg.seed)   # TPE


def scheduler(cfg: TuneConfig, *, max_epochs: int):
    if cfg.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(max_t=max_epochs, grace_period=min(cfg.grace_period, max_epochs), reduction_factor=cfg.reduction_factor)


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
    return max(1, int(cluster.available(kind) // cfg.train.workers))


def trial_name(sweep_name: str, trial_id: str) -> str:
    return f"{sweep_name}-{trial_id}"


def trial_storage(storage: str, sweep_name: str) -> str:
    """Each trial's Ray Train run lives inside the sweep's directory: <storage>/<sweep>/trials/<trial>."""
    return f"{storage}/{sweep_name}/trials"


def trial_driver(params: dict[str, Any], ctx: SweepContext) -> None:
    """One Tune trial = one TorchTrainer run, tracked as a nested MLflow run."""
    cfg = validate(apply_overrides(ctx.base, params), origin="tune trial")
    trial_id = ray.tune.get_context().get_trial_id()
    name = trial_name(ctx.sweep_name, trial_id)
    previous = tracking.trial_run(ctx.tracking_uri, ctx.parent_run_id, trial_id)
    if previous is not None and previous.finished:
        # Tune saves its experiment state every ~10 s, so a driver killed just after a trial finished
        # restores it as unfinished. MLflow knows better: replay its epochs to Tune, train nothing.
        for metrics in tracking.epoch_history(ctx.tracking_uri, previous.run_id):
            ray.tune.report(metrics)
        return
    if previous is None:
        run_id = tracking.start_run(
            ctx.tracking_uri,
            experiment=ctx.experiment,
            run_name=name,
            params=cfg.flat(),
            tags={tracking.TRIAL_TAG: trial_id, tracking.KIND_TAG: "trial", reconcile.OWNER_TAG: ctx.owner},
            parent_run_id=ctx.parent_run_id,
        )
    else:                                                  # a restored, unfinished trial continues its run
        run_id = previous.run_id
        tracking.reopen_run(ctx.tracking_uri, run_id, tags={"lstmpipe.resumed": "true", reconcile.OWNER_TAG: ctx.owner})
    splits = ctx.data[data_key(cfg)]
    spec = worker_spec(cfg, splits, run_id=run_id, tracking_uri=ctx.tracking_uri)
    trainer = build_trainer(
        cfg, splits, spec=spec, name=name, storage=trial_storage(ctx.storage, ctx.sweep_name), callbacks=[TuneReportCallback()]
    )
    try:
        outcome = fit(trainer, max_failures=cfg.train.max_failures)
    except BaseException as err:
        # Not necessarily a failure: when the scheduler stops a trial, Tune removes its placement
        # group and the TrainController dies under us. The sweep driver closes this run once Tune
        # has said which it was (`close_trial_runs`).
        tracking.set_tags(ctx.tracking_uri, run_id, {"lstmpipe.error": f"{type(err).__name__}: {err}"[:5000]})
        raise
    sync_history(cfg, outcome, uri=ctx.tracking_uri, run_id=run_id, resume_hint=f"`lstmpipe tune --name {ctx.sweep_name} --resume`")
    tested = test_checkpoint(cfg, splits, outcome.best_checkpoint)       # for the report; selection stays on validation
    tracking.log_metrics(ctx.tracking_uri, run_id, tested.metrics, step=int(outcome.best_metrics["epoch"]))
    tracking.end_run(ctx.tracking_uri, run_id, "FINISHED")


def trial_outcomes(grid: ray.tune.ResultGrid, *, max_epochs: int) -> dict[str, tracking.TrialOutcome]:
    """Tune's verdict per trial id: failed, finished, or stopped early by the scheduler."""
    out: dict[str, tracking.TrialOutcome] = {}
    for result in grid:
        trial_id = (result.metrics or {}).get("trial_id")
        if trial_id is None:
            continue
        if result.error is not None:
            out[trial_id] = "FAILED"
        elif result.metrics.get("training_iteration", 0) < max_epochs:
            out[trial_id] = "STOPPED"
        else:
            out[trial_id] = "FINISHED"
    return out


def best_trial_outcome(storage: str, name: str) -> FitOutcome:
    """The best checkpoint of one finished trial, read back from its Ray Train run directory."""
    return outcome_of(ray.train.Result.from_path(f"{storage}/{name}"))


def log_report(cfg: Config, results: list, *, goal: Objective, ctx: SweepContext) -> None:
    """The odyssey report on the parent run: trials table, metric per cell, fANOVA importance."""
    table = report.trial_table(results, space=cfg.tune.space, metric=goal.metric, mode=goal.mode)
    table = report.with_test_metrics(table, tracking.trial_test_metrics(ctx.tracking_uri, ctx.parent_run_id))
    tracking.log_text(ctx.tracking_uri, ctx.parent_run_id, table.to_csv(index=False), "report/trials.csv")
    tracking.log_text(ctx.tracking_uri, ctx.parent_run_id, report.markdown(table), "report/trials.md")
    scores = report.importance(table, space=cfg.tune.space, metric=goal.metric, mode=goal.mode)
    if scores:
        tracking.log_dict(ctx.tracking_uri, ctx.parent_run_id, scores, "report/importance.json")
    figures = {"metric_by_cell.png": report.metric_by_cell(table, metric=goal.metric), "importance.png": report.importance_chart(scores)}
    test_metric = "test_" + goal.metric.removeprefix("val_")
    pivot = report.cells_by_data(table, space=cfg.tune.space, metric=test_metric)
    if pivot is not None:
        tracking.log_text(ctx.tracking_uri, ctx.parent_run_id, report.cells_by_data_markdown(pivot, solved_below=cfg.tune.solved_below), "report/cells_by_data.md")
        figures["cells_by_data.png"] = report.cells_by_data_chart(pivot, metric=test_metric, solved_below=cfg.tune.solved_below)
    if cfg.telemetry.enabled and "model.cell" in cfg.tune.space:
        figures["telemetry_by_cell.png"] = _telemetry_by_cell(cfg, ctx=ctx)
    tracking.log_figures(ctx.tracking_uri, ctx.parent_run_id, {k: v for k, v in figures.items() if v is not None})


def _telemetry_by_cell(cfg: Config, *, ctx: SweepContext):
    """Each trial's last telemetry (its child run's), side by side per cell and data variant."""
    from pipeline.telemetry.plots import cells_compared

    data_keys = [k for k in cfg.tune.space if k.startswith("data.")]
    tables = {}
    for child in tracking.child_runs(ctx.tracking_uri, ctx.parent_run_id):
        table = tracking.latest_table(ctx.tracking_uri, child.info.run_id, "telemetry")
        if table is not None:
            params = child.data.params
            variant = ", ".join(f"{k.rsplit('.', 1)[-1]}={params.get(k)}" for k in data_keys)
            tables[(variant, params.get("model.cell", ""))] = table
    return cells_compared(tables, title="gradient flow through time and the keep gate, by cell (each trial's last recorded epoch)") if tables else None


def sweep_hash(cfg: Config) -> str:
    """The config hash plus the tune section: a restored sweep keeps its saved search space."""
    blob = cfg.hash() + json.dumps(cfg.tune.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_sweep(cfg: Config, *, name: str | None = None, splits: Prepared | None = None, resume: bool = False) -> RunSummary:
    """A new sweep, or with `resume` the interrupted sweep `name`, restored with Tuner.restore:
    finished trials are kept, unfinished ones continue from their checkpoints in their MLflow runs."""
    cfg = trial_base(cfg)
    goal = objective(cfg)
    uri = tracking.resolve_uri(cfg.tracking)
    tracking.check_reachable(uri)
    name = name or runs.unique_name("tune")
    storage = runs.resolve_storage(cfg.train.storage_path)
    previous = runs.check_start(storage, name, kind="tune", resume=resume, config_hash=sweep_hash(cfg))
    reconcile.reconcile_and_report(uri, cfg.tracking.experiment)

    cluster.connect()
    check_resources(cfg)
    data = data_variants(cfg, splits=splits)
    if previous is None:
        parent = tracking.start_run(uri, experiment=cfg.tracking.experiment, run_name=name, params=cfg.flat(),
                                    tags={tracking.KIND_TAG: "sweep", reconcile.OWNER_TAG: reconcile.owner()})
        tracking.log_config(uri, parent, cfg.model_dump(mode="json"))
        runs.write_state(storage, name, runs.RunState(run_id=parent, config_hash=sweep_hash(cfg), kind="tune"))
    else:
        parent = previous.run_id
        tracking.reopen_run(uri, parent, tags={"lstmpipe.resumed": "true", reconcile.OWNER_TAG: reconcile.owner()})
    ctx = SweepContext(
        base=cfg.model_dump(mode="json"), data=data, parent_run_id=parent, tracking_uri=uri,
        experiment=cfg.tracking.experiment, storage=storage, sweep_name=name, owner=reconcile.owner(),
    )
    trainable = ray.tune.with_resources(ray.tune.with_parameters(trial_driver, ctx=ctx), TRIAL_RESOURCES)
    if previous is not None:
        tuner = ray.tune.Tuner.restore(f"{storage}/{name}", trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = ray.tune.Tuner(
            trainable,
            param_space=search_space(cfg.tune),
            tune_config=ray.tune.TuneConfig(
                metric=goal.metric,
                mode=goal.mode,
                search_alg=searcher(cfg.tune, goal),
                scheduler=scheduler(cfg.tune, max_epochs=cfg.train.epochs),
                num_samples=cfg.tune.num_samples,
                max_concurrent_trials=concurrency(cfg),
            ),
            run_config=ray.tune.RunConfig(name=name, storage_path=storage),
        )
    try:
        with tracking.closes_run(uri, parent):
            grid = tuner.fit()
            tracking.close_trial_runs(uri, parent, trial_outcomes(grid, max_epochs=cfg.train.epochs))
            summary = _finish_sweep(cfg, grid, ctx=ctx)
    except KeyboardInterrupt:
        tracking.end_running_children(uri, parent, "KILLED")
        raise
    return summary


def _finish_sweep(cfg: Config, grid: ray.tune.ResultGrid, *, ctx: SweepContext) -> RunSummary:
    ok = [r for r in grid if r.error is None and r.metrics]
    if not ok:
        first = next((r.error for r in grid if r.error is not None), None)
        raise TrainingFailed(f"every trial of sweep '{ctx.sweep_name}' failed; first error: {str(first).strip().splitlines()[-1] if first else 'no metrics reported'}")
    goal = objective(cfg)
    best = grid.get_best_result(metric=goal.metric, mode=goal.mode, scope="all", filter_nan_and_inf=True)
    best_cfg = validate(apply_overrides(ctx.base, best.config), origin="best trial")
    outcome = best_trial_outcome(trial_storage(ctx.storage, ctx.sweep_name), trial_name(ctx.sweep_name, best.metrics["trial_id"]))
    register_as = cfg.tracking.register_as or cfg.tracking.experiment
    children = tracking.child_runs(ctx.tracking_uri, ctx.parent_run_id)
    best_child = next((r.info.run_id for r in children if r.data.tags.get(tracking.TRIAL_TAG) == best.metrics["trial_id"]), None)
    final = finish_model(
        best_cfg, ctx.data[data_key(best_cfg)], outcome, uri=ctx.tracking_uri, run_id=ctx.parent_run_id,
        register_as=register_as, alias=CHAMPION_ALIAS, history_run_id=best_child,
    )
    log_report(cfg, list(grid), goal=goal, ctx=ctx)
    return RunSummary(
        status="FINISHED",
        tracking_uri=ctx.tracking_uri,
        experiment=cfg.tracking.experiment,
        run_id=ctx.parent_run_id,
        name=ctx.sweep_name,
        metrics=final.metrics,
        model_uri=final.logged.model_uri,
        registered_model=final.logged.registered_label,
        checkpoint=outcome.best_checkpoint,
        best_config=dict(best.config),
        child_run_ids=[r.info.run_id for r in children],
    )
