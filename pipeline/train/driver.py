"""One training run on the driver: data -> TorchTrainer on N workers -> test -> MLflow model.

`build_trainer` and `fit` are shared with Tune: a sweep trial builds the same trainer with a Tune callback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import ray.data
import ray.train
import ray.train.torch

from pipeline import ray_compat
from pipeline.config import Config
from pipeline.data.fingerprint import lineage_of
from pipeline.data.ingest import load_splits
from pipeline.errors import ConfigError, TrainingFailed
from pipeline.ray_compat import actors as ray_actors
from pipeline.ray_compat.torch_backend import WorkerTorchConfig
from pipeline.redaction import redact, redact_tree
from pipeline.tasks import Prepared, get_task
from pipeline.track import TrackedRun, sync_epochs
from pipeline.track.lineage import log_lineage
from pipeline.track.models import warm_export
from pipeline.track.summary import PhaseClock, RunSummary
from pipeline.train import checkpoint, snapshot
from pipeline.train.finish import finish_model
from pipeline.train.lifecycle import run_lifecycle
from pipeline.train.live import DriverEpochs
from pipeline.train.progress import EpochProgress
from pipeline.train.spec import EpochLogger, WorkerSpec
from pipeline.train.worker import train_loop_per_worker

STOPPED_TAG = "lstmpipe.stopped_early_after_epoch"  # train.early_stopping ended the run after this many epochs


@dataclass(frozen=True)
class FitOutcome:
    best_checkpoint: str  # path of the best checkpoint by train.checkpoint_metric
    best_metrics: dict[str, float]
    run_path: str
    history: list[dict[str, float]]  # every epoch's metrics, from the latest checkpoint
    tags: dict[str, str] = field(default_factory=dict)  # the run's tags from its workers, from the same checkpoint


def worker_spec(
    cfg: Config,
    splits: Prepared,
    *,
    run_id: str | None,
    tracking_uri: str,
    warm_start: ray.train.Checkpoint | None = None,
    epochs_logged_by: EpochLogger = "rank0",
) -> WorkerSpec:
    return WorkerSpec(
        task=cfg.task,
        model=cfg.model.model_dump(),
        train=cfg.train.model_dump(),
        info=splits.info.as_dict(),
        config=redact_tree(cfg.model_dump(mode="json")),  # saved in every checkpoint: no secrets
        config_hash=cfg.hash(),
        run_id=run_id,
        tracking_uri=tracking_uri,
        train_split=splits.train,
        val_split=splits.val,
        telemetry_epochs=tuple(cfg.telemetry_epochs()),
        probe_size=cfg.telemetry.probe_size,
        system_metrics_s=cfg.tracking.system_metrics_s,
        warm_start=warm_start,
        epochs_logged_by=epochs_logged_by,
    )


def build_trainer(
    cfg: Config,
    *,
    spec: WorkerSpec,
    name: str,
    storage: str,
    callbacks: list | None = None,
    on_reports: Callable[[list[dict]], None] | None = None,
) -> ray.train.torch.TorchTrainer:
    """The run's TorchTrainer; `on_reports` gets rank 0's reports in this process as the run goes on."""
    trainer = ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        train_loop_config=spec.as_loop_config(),
        torch_config=WorkerTorchConfig(),  # TorchConfig without torch in the controller (ray_compat.torch_backend)
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.train.workers, use_gpu=cfg.train.use_gpu),
        # no `datasets=`: the splits travel in the spec (whole_split), without a DatasetManager actor
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=cfg.train.checkpoints_to_keep,
                checkpoint_score_attribute=cfg.train.checkpoint_metric,
                checkpoint_score_order=get_task(cfg.task).metric_mode(cfg.train.checkpoint_metric),
            ),
            callbacks=[EpochProgress(name=name, epochs=cfg.train.epochs), *(callbacks or [])],
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),  # per-report INFO lines are noise
        ),
    )
    # No PlacementGroupCleaner actor: a driver's run's placement group goes with the driver's job, and a
    # Tune trial's, whose controller dies with the trial actor, is freed by the sweep driver
    # (ray_compat.placement): one process fewer per run, and no State API (dashboard) to poll.
    ray_actors.without_default_callbacks(trainer, leave_out=("datasets", "placement_group_cleaner"))
    ray_actors.use_our_controller(
        trainer, env="inherited" if ray_actors.on_own_ray() else "ray_train", on_reports=on_reports
    )
    return trainer


def fit(trainer: ray.train.torch.TorchTrainer, cfg: Config) -> FitOutcome:
    max_failures = cfg.train.max_failures
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as err:
        refused = [e for e in (getattr(err, "worker_failures", None) or {}).values() if isinstance(e, ConfigError)]
        if refused:  # the config cannot run on the workers' hardware (e.g. bf16 on a CPU without it)
            raise ConfigError(str(refused[0])) from err
        hint = (
            ""
            if max_failures
            else "; set train.max_failures=1 (or more) to restart failed workers from the last checkpoint"
        )
        raise TrainingFailed(f"training failed: {describe_failure(err)}{hint}") from err
    return outcome_of(result, cfg)


def describe_failure(err: ray.train.TrainingFailedError) -> str:
    """Which worker failed and how, in one line: rank, pid and node of a dead worker process."""
    failures = getattr(err, "worker_failures", None) or {}
    if not failures:
        return _last_line(err)
    dead = {rank: ray_compat.dead_worker(exc) for rank, exc in failures.items()}
    # A dead worker's peers then fail in their collectives: name the dead one.
    rank = min(failures, key=lambda r: (dead[r] is None, r))
    if dead[rank] is not None:
        where = " ".join(f"{k} {v}" for k, v in (("pid", dead[rank].pid), ("ip", dead[rank].ip)) if v)
        return f"worker rank {rank} ({where}) died: its process exited unexpectedly (killed, out of memory or crashed)"
    return f"worker rank {rank} raised {type(failures[rank]).__name__}: {_last_line(failures[rank])}"


def _last_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[-1] if text else type(err).__name__


def outcome_of(result: ray.train.Result, cfg: Config) -> FitOutcome:
    """The run's best checkpoint by train.checkpoint_metric, its metrics and the epochs' history."""
    metric = cfg.train.checkpoint_metric
    best = result.get_best_checkpoint(metric=metric, mode=get_task(cfg.task).metric_mode(metric))
    metrics = next(m for c, m in result.best_checkpoints if c.path == best.path)
    with result.checkpoint.as_directory() as latest:
        meta = checkpoint.load_meta(latest)
    return FitOutcome(
        best_checkpoint=best.path, best_metrics=metrics, run_path=result.path, history=meta.history, tags=meta.tags
    )


def checkpoint_outcome(ckpt: ray.train.Checkpoint) -> FitOutcome:
    """One checkpoint as an outcome: its own metrics and the history it carries."""
    with ckpt.as_directory() as directory:
        meta = checkpoint.load_meta(directory)
    return FitOutcome(
        best_checkpoint=ckpt.path, best_metrics=meta.metrics, run_path=ckpt.path, history=meta.history, tags=meta.tags
    )


def with_best_of(cfg: Config, outcome: FitOutcome, other: FitOutcome) -> FitOutcome:
    """`outcome`, with `other`'s best checkpoint instead of its own where that is better by
    train.checkpoint_metric (e.g. the checkpoint a run restarted from, which Ray Train did not list)."""
    metric = cfg.train.checkpoint_metric
    sign = 1.0 if get_task(cfg.task).metric_mode(metric) == "min" else -1.0
    if sign * other.best_metrics[metric] < sign * outcome.best_metrics[metric]:
        return replace(outcome, best_checkpoint=other.best_checkpoint, best_metrics=other.best_metrics)
    return outcome


def stopped_early(cfg: Config, outcome: FitOutcome, *, run: TrackedRun) -> dict[str, float]:
    """Where early stopping ended the run (`stopped_epoch`, 1-based, of `max_epochs`), tagged on `run`;
    {} when it trained every epoch."""
    trained = len(outcome.history)
    if cfg.train.early_stopping is None or trained >= cfg.train.epochs:
        return {}
    run.set_tags({STOPPED_TAG: str(trained)})
    return {"stopped_epoch": float(trained), "max_epochs": float(cfg.train.epochs)}


def sync_history(cfg: Config, outcome: FitOutcome, *, run: TrackedRun, resume_hint: str) -> None:
    """Every epoch in MLflow before the model is logged: what rank 0 could not log during an outage;
    and the workers' tags (world size, nodes), which rank 0 logs itself only where it logs epochs."""
    if not sync_epochs(run, outcome.history, tags=outcome.tags, wait_s=cfg.tracking.outage_wait_s):
        raise TrainingFailed(
            f"MLflow server {redact(run.uri)} stayed unreachable for "
            f"tracking.outage_wait_s={cfg.tracking.outage_wait_s:g} s "
            f"after training; the checkpoints are safe in {outcome.run_path}: once the server is back, {resume_hint} "
            "logs the rest"
        )


def run_training(
    cfg: Config, *, name: str | None = None, resume: bool = False, splits: Prepared | None = None
) -> RunSummary:
    clock = PhaseClock()
    with run_lifecycle(cfg, kind="train", name=name, resume=resume, config_hash=cfg.hash()) as life:
        clock.lap("start")  # name claimed, MLflow reachable and reconciled, Ray started or joined
        splits = splits or load_splits(cfg)
        clock.lap("data")  # read, split, scale, window, materialize (0 when the caller passed splits)
        run = life.open()
        log_lineage(run, lineage_of(cfg.data, splits))  # the run's dataset input: source, digest, schema, sizes
        restart = _recovered_checkpoint(life.storage, life.name) if life.previous else None
        spec = worker_spec(
            cfg, splits, run_id=run.run_id, tracking_uri=run.uri, warm_start=restart, epochs_logged_by="driver"
        )
        trainer = build_trainer(cfg, spec=spec, name=life.name, storage=life.storage, on_reports=DriverEpochs(run))
        warm_export()  # the model's export imports load while the workers train
        outcome = fit(trainer, cfg)
        if restart is not None:
            outcome = with_best_of(cfg, outcome, checkpoint_outcome(restart))
        clock.lap("fit")  # Ray Train: controller, worker group, shards, every epoch, checkpoints
        sync_history(cfg, outcome, run=run, resume_hint=life.resume_hint())
        final = finish_model(
            cfg,
            splits,
            outcome.best_checkpoint,
            outcome.best_metrics,
            run=run,
            register_as=cfg.tracking.register_as or (cfg.tracking.experiment if cfg.tracking.promote else None),
            alias=None,
        )
        stopped = stopped_early(cfg, outcome, run=run)
    return RunSummary(
        status="FINISHED",
        tracking_uri=run.uri,
        experiment=cfg.tracking.experiment,
        run_id=run.run_id,
        name=life.name,
        metrics=final.metrics | stopped,
        model_uri=final.logged.model_uri,
        registered_model=final.logged.registered_label,
        checkpoint=outcome.best_checkpoint,
        phase_s=clock.lap("finish"),  # test split, plots, the MLflow model and its registration
        promotion=final.promotion,
    )


def _recovered_checkpoint(storage: str, name: str) -> ray.train.Checkpoint | None:
    """On --resume: where Ray Train's checkpoint list was left damaged by a killed process, the latest
    complete checkpoint to start the workers from (`pipeline.train.snapshot`), said on stderr."""
    recovered = snapshot.recover(storage, name)
    if recovered is None:
        return None
    start = recovered.checkpoint or "epoch 0 (no complete checkpoint)"
    print(
        f"run '{name}': Ray Train's checkpoint list was damaged (a process was killed while writing it); moved it to "
        f"{recovered.moved_to} and resuming from {start}",
        file=sys.stderr,
    )
    if recovered.checkpoint is None:
        return None
    return ray.train.Checkpoint(recovered.checkpoint, filesystem=recovered.filesystem)
