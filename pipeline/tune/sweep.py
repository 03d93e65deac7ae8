"""A Ray Tune sweep where every trial is a distributed TorchTrainer run (Ray 2.60 Train V2 interop).

The sweep is one MLflow parent run; each trial (`pipeline.tune.trial`) opens a nested child run and
fits the same trainer as `lstmpipe train`. At the end the best trial's best checkpoint is tested,
logged on the parent and registered as `champion`, and the report compares the trials.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import warnings
from dataclasses import dataclass

import ray.train
import ray.tune

from pipeline.config import Config, apply_overrides, validate
from pipeline.data.fingerprint import lineage_of
from pipeline.data.ingest import load_splits
from pipeline.errors import TrainingFailed
from pipeline.owner import owner
from pipeline.ray_compat import actors as ray_actors
from pipeline.ray_compat.placement import freeing_dead_actors_groups
from pipeline.redaction import redact
from pipeline.tasks import Prepared, get_task
from pipeline.track import TRIAL_TAG, SweepRun, TrialOutcome
from pipeline.track.lineage import log_lineage
from pipeline.track.promotion import CHAMPION_ALIAS
from pipeline.track.summary import RunSummary
from pipeline.train.driver import FitOutcome, outcome_of, stopped_early
from pipeline.train.finish import finish_model
from pipeline.train.lifecycle import RUN_KIND, Lifecycle, run_lifecycle
from pipeline.tune import pbt, report
from pipeline.tune.epochs import TrialEpochs
from pipeline.tune.space import Objective, concurrency, objective, scheduler, search_space, searcher, trial_base
from pipeline.tune.trial import (
    TRIAL_RESOURCES,
    SweepContext,
    data_key,
    trial_driver,
    trial_name,
    trial_storage,
    trial_tags,
)


def data_variants(cfg: Config, *, splits: Prepared | None = None) -> dict[str, Prepared]:
    """Every data section the sweep can sample (choices of data.* keys, and of the model keys the
    task's preparation reads), each prepared once, here on the driver, before any trial starts:
    trials then only stream their shards."""
    reads = get_task(cfg.task).prepare_reads  # model keys the task's preparation reads
    keys = [k for k in cfg.tune.space if k.startswith("data.") or k in reads]
    if not keys:
        return {data_key(cfg): splits or load_splits(cfg)}
    base = cfg.model_dump(mode="json")
    out: dict[str, Prepared] = {}
    for combo in itertools.product(*(cfg.tune.space[k].choice for k in keys)):
        variant = validate(apply_overrides(base, dict(zip(keys, combo))), origin="tune.space")
        if data_key(variant) not in out:
            out[data_key(variant)] = load_splits(variant)
    return out


def sweep_hash(cfg: Config) -> str:
    """The config hash plus the tune section: a restored sweep keeps its saved search space."""
    blob = cfg.hash() + json.dumps(cfg.tune.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_sweep(
    cfg: Config, *, name: str | None = None, splits: Prepared | None = None, resume: bool = False
) -> RunSummary:
    """A new sweep, or with `resume` the interrupted sweep `name`, restored with Tuner.restore:
    finished trials are kept, unfinished ones continue from their checkpoints in their MLflow runs."""
    cfg = trial_base(cfg)
    goal = objective(cfg)
    with run_lifecycle(cfg, kind="tune", name=name, resume=resume, config_hash=sweep_hash(cfg)) as life:
        fitted = fit_trials(cfg, life, goal=goal, splits=splits)
        return _finish_sweep(cfg, fitted.grid, parent=fitted.parent, goal=goal, ctx=fitted.ctx)


@dataclass(frozen=True)
class Trials:
    grid: ray.tune.ResultGrid
    parent: SweepRun  # the sweep's MLflow run, its trials' runs nested in it (closed by Tune's verdict)
    ctx: SweepContext


def fit_trials(cfg: Config, life: Lifecycle, *, goal: Objective, splits: Prepared | None = None) -> Trials:
    """Every data variant prepared, the parent run opened, and the trials fitted by Ray Tune (also
    `lstmpipe backtest`'s folds). Raises TrainingFailed when no trial reported a result."""
    data = data_variants(cfg, splits=splits)
    parent = life.open()
    ctx = SweepContext(
        base=cfg.model_dump(mode="json"),
        data=data,
        parent_run_id=parent.run_id,
        tracking_uri=life.uri,
        experiment=cfg.tracking.experiment,
        storage=life.storage,
        sweep_name=life.name,
        owner=owner(),
        resume_hint=life.resume_hint(),
        # PBT's trials report to Tune themselves; a restored sweep's callback comes back from tuner.pkl without its run
        epochs_logged_by="rank0" if life.previous is not None or cfg.tune.scheduler == "pbt" else "sweep",
    )
    epochs = TrialEpochs(parent if ctx.epochs_logged_by == "sweep" else None)
    trainable = ray.tune.with_resources(ray.tune.with_parameters(trial_driver, ctx=ctx), TRIAL_RESOURCES)
    # a trial Tune stops takes its Train controller with it, not the workers' placement group: the
    # driver frees those (ray_compat.placement), as Ray's per-run PlacementGroupCleaner actor did
    with warnings.catch_warnings(), ray_actors.tune_trials_share_the_worker_pool(), freeing_dead_actors_groups():
        # Tune suggests reuse_actors for PBT; a trial's actor owns its TorchTrainer's controller and
        # workers, which must die with it when PBT replaces the trial's weights.
        warnings.filterwarnings("ignore", message="Consider boosting PBT performance")
        grid = _tuner(cfg, trainable, goal=goal, ctx=ctx, epochs=epochs, restore=life.previous is not None).fit()
    if not epochs.finish(wait_s=cfg.tracking.outage_wait_s):
        raise TrainingFailed(
            f"MLflow server {redact(life.uri)} stayed unreachable for tracking.outage_wait_s="
            f"{cfg.tracking.outage_wait_s:g} s after the trials; their checkpoints are safe in {ctx.storage}: once the "
            f"server is back, {ctx.resume_hint} logs the rest"
        )
    tags = functools.partial(trial_tags, ctx) if ctx.epochs_logged_by == "sweep" else None  # else rank 0 set them
    parent.close_trials(trial_outcomes(grid, max_epochs=cfg.train.epochs), tags_of=tags)
    if not [r for r in grid if r.error is None and r.metrics]:
        first = next((r.error for r in grid if r.error is not None), None)
        reason = str(first).strip().splitlines()[-1] if first else "no metrics reported"
        raise TrainingFailed(f"every trial of {RUN_KIND[life.kind]} '{life.name}' failed; first error: {reason}")
    return Trials(grid=grid, parent=parent, ctx=ctx)


def _tuner(
    cfg: Config, trainable, *, goal: Objective, ctx: SweepContext, epochs: TrialEpochs, restore: bool
) -> ray.tune.Tuner:
    if restore:
        path = f"{ctx.storage}/{ctx.sweep_name}"
        return ray.tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    return ray.tune.Tuner(
        trainable,
        param_space=search_space(cfg.tune),
        tune_config=ray.tune.TuneConfig(
            metric=goal.metric,
            mode=goal.mode,
            search_alg=searcher(cfg.tune, goal, max_concurrent=concurrency(cfg)),
            scheduler=scheduler(cfg.tune, max_epochs=cfg.train.epochs),
            num_samples=cfg.tune.num_samples,
        ),
        run_config=ray.tune.RunConfig(name=ctx.sweep_name, storage_path=ctx.storage, callbacks=[epochs]),
    )


def trial_outcomes(grid: ray.tune.ResultGrid, *, max_epochs: int) -> dict[str, TrialOutcome]:
    """Tune's verdict per trial id: failed, finished, or stopped early by the scheduler."""
    out: dict[str, TrialOutcome] = {}
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


def best_trial_outcome(storage: str, name: str, cfg: Config) -> FitOutcome:
    """The best checkpoint of one finished trial, read back from its Ray Train run directory."""
    return outcome_of(ray.train.Result.from_path(f"{storage}/{name}"), cfg)


def _finish_sweep(
    cfg: Config, grid: ray.tune.ResultGrid, *, parent: SweepRun, goal: Objective, ctx: SweepContext
) -> RunSummary:
    best = grid.get_best_result(metric=goal.metric, mode=goal.mode, scope="all", filter_nan_and_inf=True)
    best_id = best.metrics["trial_id"]
    if cfg.tune.scheduler == "pbt":  # the trial's weights passed through several runs: Tune kept each epoch
        mode = get_task(cfg.task).metric_mode(cfg.train.checkpoint_metric)
        outcome, best_cfg = pbt.best_outcome(best, ctx.base, cfg=cfg, mode=mode)
    else:
        best_cfg = validate(apply_overrides(ctx.base, best.config), origin="best trial")
        outcome = best_trial_outcome(
            trial_storage(ctx.storage, ctx.sweep_name), trial_name(ctx.sweep_name, best_id), best_cfg
        )
    children = parent.children()
    best_child = next((parent.child(r.info.run_id) for r in children if r.data.tags.get(TRIAL_TAG) == best_id), None)
    final = finish_model(
        best_cfg,
        ctx.data[data_key(best_cfg)],
        outcome.best_checkpoint,
        outcome.best_metrics,
        run=parent,
        register_as=cfg.tracking.register_as or cfg.tracking.experiment,
        alias=CHAMPION_ALIAS,
        history_run=best_child,
    )
    lineage = lineage_of(best_cfg.data, ctx.data[data_key(best_cfg)])
    log_lineage(parent, lineage)  # the champion's data: the parent run's "Dataset" in the UI
    over_seeds = log_report(cfg, list(grid), goal=goal, parent=parent)
    return RunSummary(
        status="FINISHED",
        tracking_uri=ctx.tracking_uri,
        experiment=cfg.tracking.experiment,
        run_id=parent.run_id,
        name=ctx.sweep_name,
        metrics=final.metrics | over_seeds | stopped_early(best_cfg, outcome, run=parent),
        model_uri=final.logged.model_uri,
        registered_model=final.logged.registered_label,
        checkpoint=outcome.best_checkpoint,
        best_config=searched_values(best_cfg, cfg.tune.space) if cfg.tune.scheduler == "pbt" else dict(best.config),
        child_run_ids=[r.info.run_id for r in children],
        promotion=final.promotion,
    )


def searched_values(cfg: Config, space: dict) -> dict:
    """The values of the searched keys in `cfg` (PBT: those of the best checkpoint's weights)."""
    flat = cfg.flat()
    return {key: flat[key] for key in space if key in flat}


def log_report(cfg: Config, results: list, *, goal: Objective, parent: SweepRun) -> dict[str, float]:
    """The odyssey report on the parent run: trials table, metric per cell, fANOVA importance; with
    `train.seed` in the space, every setting over its seeds (report/seeds.md), and the best setting's
    mean and std (returned, and logged on the parent run as seeds_<metric>_mean/_std)."""
    space, solved = cfg.tune.space, cfg.tune.solved_below
    table = report.trial_table(results, space=space, metric=goal.metric, mode=goal.mode)
    table = report.with_test_metrics(table, parent.trial_test_metrics())
    parent.log_text(table.to_csv(index=False), "report/trials.csv")
    parent.log_text(report.markdown(table), "report/trials.md")
    test_metric = "test_" + goal.metric.removeprefix("val_")
    spread, seeds = report.over_seeds(table, space=space), {}
    if spread is not None and f"{test_metric}_mean" in spread:
        parent.log_text(report.markdown(spread), "report/seeds.md")
        seeds = report.seed_lines(spread, metric=test_metric, mode=goal.mode)
        parent.log_metrics(seeds, step=0)
    scores = report.importance(table, space=space, metric=goal.metric, mode=goal.mode)
    if scores:
        parent.log_dict(scores, "report/importance.json")
    figures = {
        "metric_by_cell.png": report.metric_by_cell(table, metric=goal.metric),
        "importance.png": report.importance_chart(scores),
    }
    pivot = report.cells_by_data(table, space=space, metric=test_metric)
    if pivot is not None:
        parent.log_text(report.cells_by_data_markdown(pivot, solved_below=solved), "report/cells_by_data.md")
        figures["cells_by_data.png"] = report.cells_by_data_chart(pivot, metric=test_metric, solved_below=solved)
    if cfg.telemetry.enabled and "model.cell" in space:
        figures["telemetry_by_cell.png"] = _telemetry_by_cell(cfg, parent=parent)
    parent.log_figures({k: v for k, v in figures.items() if v is not None})
    return seeds


def _telemetry_by_cell(cfg: Config, *, parent: SweepRun):
    """Each trial's last telemetry (its child run's), side by side per cell and data variant."""
    from pipeline.telemetry.plots import cells_compared

    data_keys = [k for k in cfg.tune.space if k.startswith("data.")]
    tables = {}
    for child in parent.children():
        table = parent.child(child.info.run_id).latest_table("telemetry")
        if table is not None:
            params = child.data.params
            variant = ", ".join(f"{k.rsplit('.', 1)[-1]}={params.get(k)}" for k in data_keys)
            tables[(variant, params.get("model.cell", ""))] = table
    if not tables:
        return None
    return cells_compared(
        tables, title="gradient flow through time and the keep gate, by cell (each trial's last recorded epoch)"
    )
