"""One Tune trial: a function trainable that builds and fits the same TorchTrainer as `lstmpipe train`
(with a `TuneReportCallback`), tracked as a child run nested under the sweep's parent run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import ray.train
import ray.tune
from ray.tune.integration.ray_train import TuneReportCallback

from pipeline.config import Config, apply_overrides, validate
from pipeline.data.fingerprint import lineage_of
from pipeline.tasks import Prepared, get_task
from pipeline.track import KIND_TAG, TRIAL_TAG, SweepRun, TrackedRun
from pipeline.track.lineage import log_lineage
from pipeline.track.reconcile import OWNER_TAG
from pipeline.train import snapshot
from pipeline.train.checkpoint import load_meta
from pipeline.train.driver import build_trainer, checkpoint_outcome, fit, stopped_early, sync_history, worker_spec
from pipeline.train.finish import test_checkpoint
from pipeline.train.lifecycle import RESUMED_TAG
from pipeline.train.run_state import run_fs
from pipeline.train.spec import EpochLogger
from pipeline.tune import pbt

# The trial function only drives its TorchTrainer. Tune rejects an empty request ({"cpu": 0}), and
# {"cpu": 0.01} would leave 1.99 CPUs on a 2-CPU machine, too few for 2 one-CPU workers: the worker
# group would never start. A small memory reservation is a non-empty request that takes no CPU.
TRIAL_RESOURCES = {"memory": 64 * 1024**2}


@dataclass(frozen=True)
class SweepContext:
    """What every trial receives besides its sampled parameters (plain values: it travels to the trial)."""

    base: dict[str, Any]
    data: dict[str, Prepared]  # prepared splits per data variant (data_key)
    parent_run_id: str
    tracking_uri: str
    experiment: str
    storage: str
    sweep_name: str
    owner: str  # the sweep driver (OWNER_TAG of every trial run)
    resume_hint: str  # what continues the sweep after an outage (`Lifecycle.resume_hint`)
    # who logs a trial's epochs: the sweep driver as Tune receives them (`pipeline.tune.epochs`), or rank 0
    # (in a restored sweep, whose callback Tune unpickles without its run, and under PBT)
    epochs_logged_by: EpochLogger = "sweep"


def data_key(cfg: Config) -> str:
    """Which prepared data a config trains on: its data section and the model keys its task's
    preparation reads (transcribe's subsample, forecast's likelihood)."""
    read = {k: getattr(cfg.model, k.removeprefix("model.")) for k in get_task(cfg.task).prepare_reads}
    blob = {"data": cfg.data.model_dump(mode="json"), "model": read}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]


def trial_name(sweep_name: str, trial_id: str) -> str:
    return f"{sweep_name}-{trial_id}"


def trial_storage(storage: str, sweep_name: str) -> str:
    """Each trial's Ray Train run lives inside the sweep's directory: <storage>/<sweep>/trials/<trial>."""
    return f"{storage}/{sweep_name}/trials"


def trial_tags(ctx: SweepContext, trial_id: str) -> dict[str, str]:
    """A trial's workers' tags (world size, nodes) from its last complete checkpoint, for a run the sweep
    driver closes: a trial sets them itself when it finishes, and one the scheduler stops (at its last
    epoch too) is gone before that. {} when the trial kept no checkpoint."""
    fs, run_dir = run_fs(trial_storage(ctx.storage, ctx.sweep_name), trial_name(ctx.sweep_name, trial_id))
    latest = snapshot.latest_complete(fs, run_dir)
    return checkpoint_outcome(ray.train.Checkpoint(latest, filesystem=fs)).tags if latest is not None else {}


def _trial_run(cfg: Config, ctx: SweepContext, *, trial_id: str) -> TrackedRun | None:
    """This trial's child run: new, or the one a restored sweep's trial ran in before; None when that
    run had finished (its epochs are replayed to Tune instead of training again)."""
    parent = SweepRun(ctx.tracking_uri, ctx.parent_run_id)
    previous = parent.trial(trial_id)
    if previous is not None and previous.finished:
        # Tune saves its experiment state every ~10 s, so a driver killed just after a trial finished
        # restores it as unfinished. MLflow knows better: replay its epochs to Tune, train nothing.
        for metrics in previous.run.epoch_history():
            ray.tune.report(metrics)
        return None
    if previous is not None:  # a restored, unfinished trial continues its run
        previous.run.reopen(tags={RESUMED_TAG: "true", OWNER_TAG: ctx.owner})
        return previous.run
    return TrackedRun.start(
        ctx.tracking_uri,
        experiment=ctx.experiment,
        run_name=trial_name(ctx.sweep_name, trial_id),
        params=cfg.flat(),
        tags={TRIAL_TAG: trial_id, KIND_TAG: "trial", OWNER_TAG: ctx.owner},
        parent=parent,
    )


def trial_driver(params: dict[str, Any], ctx: SweepContext) -> None:
    """One Tune trial = one TorchTrainer run, tracked as a nested MLflow run. Under PBT, one run per
    checkpoint the trial's weights start from (`pbt.generation_name`), reporting checkpoints to Tune."""
    cfg = validate(apply_overrides(ctx.base, params), origin="tune trial")
    trial_id = ray.tune.get_context().get_trial_id()
    run = _trial_run(cfg, ctx, trial_id=trial_id)
    if run is None:
        return
    splits = ctx.data[data_key(cfg)]
    log_lineage(run, lineage_of(cfg.data, splits))  # the trial's dataset input (its own data variant)
    population = cfg.tune.scheduler == "pbt"
    start = ray.tune.get_checkpoint() if population else None  # a clone's (or a restored trial's) weights
    if population:
        _log_generation(run, cfg, start)
    spec = worker_spec(
        cfg,
        splits,
        run_id=run.run_id,
        tracking_uri=ctx.tracking_uri,
        warm_start=start,
        epochs_logged_by=ctx.epochs_logged_by,
    )

    def build(callbacks: list):
        return build_trainer(
            cfg,
            spec=spec,
            name=pbt.generation_name(trial_name(ctx.sweep_name, trial_id), start),
            storage=trial_storage(ctx.storage, ctx.sweep_name),
            callbacks=callbacks,
        )

    try:
        outcome = pbt.fit_generation(cfg, start, build=build) if population else fit(build([TuneReportCallback()]), cfg)
    except BaseException as err:
        # Not necessarily a failure: when the scheduler stops a trial, Tune removes its placement
        # group and the TrainController dies under us. The sweep driver closes this run once Tune
        # has said which it was (`SweepRun.close_trials`).
        run.set_tags({"lstmpipe.error": f"{type(err).__name__}: {err}"[:5000]})
        raise
    if ctx.epochs_logged_by == "rank0":
        sync_history(cfg, outcome, run=run, resume_hint=ctx.resume_hint)
    elif outcome.tags:  # the sweep driver logs the epochs; the workers' tags come from the last checkpoint
        run.set_tags(outcome.tags)
    tested = test_checkpoint(cfg, splits, outcome.best_checkpoint)  # for the report; selection stays on validation
    run.log_metrics(tested.metrics, step=int(outcome.best_metrics["epoch"]))
    stopped_early(cfg, outcome, run=run)  # tagged: where train.early_stopping ended the trial
    run.end("FINISHED")


def _log_generation(run: TrackedRun, cfg: Config, start: ray.tune.Checkpoint | None) -> None:
    """PBT: the hyperparameters a trial trains with (`hp/<key>`, at the first epoch they apply to) when
    it starts and each time it clones another trial's checkpoint, tagged with the epoch and run it
    cloned. A trial PBT paused to free its slot resumes from its own checkpoint: nothing changed."""
    if start is None:
        run.log_metrics(pbt.generation_params(cfg), step=0)
        return
    with start.as_directory() as directory:
        meta = load_meta(directory)
    if meta.run_id != run.run_id:
        run.set_tags({pbt.GENERATION_TAG: f"epoch {meta.epoch} of run {meta.run_id}"})
        run.log_metrics(pbt.generation_params(cfg), step=meta.epoch + 1)
