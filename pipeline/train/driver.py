"""One training run on the driver: data -> TorchTrainer on N workers -> test -> MLflow model.

`build_trainer` is shared with Tune: a sweep trial builds the same trainer with a Tune callback.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass

import numpy as np
import ray.train
import ray.train.torch

from pipeline.train import checkpoint
from pipeline.cluster import connect as cluster
from pipeline.track import reconcile
from pipeline.train import run_state as runs
from pipeline import track as tracking
from pipeline.config import Config
from pipeline.errors import ConfigError, TrainingFailed
from pipeline.track import plots
from pipeline.train.holdout import input_example, load_model, predict_split
from pipeline.model.sequence_model import SequenceModel, ServingModel
from pipeline.data.ingest import load_splits
from pipeline.train.progress import EpochProgress
from pipeline.redaction import redact, redact_tree
from pipeline.track.summary import RunSummary
from pipeline.tasks import DataInfo, Prepared, get_task
from pipeline.train.worker import WorkerSpec, train_loop_per_worker


@dataclass(frozen=True)
class FinalModel:
    metrics: dict[str, float]
    logged: tracking.LoggedModel


@dataclass(frozen=True)
class Tested:
    model: SequenceModel
    info: DataInfo                   # calibrated on validation (e.g. the anomaly threshold)
    predictions: dict[str, np.ndarray]
    metrics: dict[str, float]        # test_* and baseline_test_*


@dataclass(frozen=True)
class FitOutcome:
    best_checkpoint: str       # path of the best checkpoint by val_loss
    best_metrics: dict[str, float]
    run_path: str
    history: list[dict[str, float]]  # every epoch's metrics, from the latest checkpoint


def worker_spec(cfg: Config, splits: Prepared, *, run_id: str | None, tracking_uri: str) -> WorkerSpec:
    return WorkerSpec(
        task=cfg.task,
        model=cfg.model.model_dump(),
        train=cfg.train.model_dump(),
        info=splits.info.as_dict(),
        config=redact_tree(cfg.model_dump(mode="json")),  # saved in every checkpoint: no secrets
        config_hash=cfg.hash(),
        run_id=run_id,
        tracking_uri=tracking_uri,
        telemetry_epochs=tuple(cfg.telemetry_epochs()),
        probe_size=cfg.telemetry.probe_size,
    )


def check_resources(cfg: Config) -> None:
    """The connected cluster can run this config: enough CPUs/GPUs, and storage every node sees."""
    cluster.check_storage(runs.resolve_storage(cfg.train.storage_path))
    kind, need = ("GPU", cfg.train.workers) if cfg.train.use_gpu else ("CPU", cfg.train.workers)
    have = cluster.available(kind)
    if have < need:
        raise ConfigError(
            f"train.workers={cfg.train.workers} needs {need} {kind}s but the Ray cluster has {have:g}; "
            f"lower train.workers{' or set train.use_gpu=false' if kind == 'GPU' else ''}"
        )


def build_trainer(
    cfg: Config, splits: Prepared, *, spec: WorkerSpec, name: str, storage: str, callbacks: list | None = None
) -> ray.train.torch.TorchTrainer:
    return ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        train_loop_config=spec.as_loop_config(),
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.train.workers, use_gpu=cfg.train.use_gpu),
        datasets={"train": splits.train, "val": splits.val},
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=cfg.train.checkpoints_to_keep,
                checkpoint_score_attribute="val_loss",
                checkpoint_score_order="min",
            ),
            callbacks=[EpochProgress(name=name, epochs=cfg.train.epochs), *(callbacks or [])],
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),  # per-report INFO lines are noise
        ),
    )


def fit(trainer: ray.train.torch.TorchTrainer, *, max_failures: int) -> FitOutcome:
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as err:
        hint = "" if max_failures else "; set train.max_failures=1 (or more) to restart failed workers from the last checkpoint"
        raise TrainingFailed(f"training failed: {describe_failure(err)}{hint}") from err
    return outcome_of(result)


def describe_failure(err: ray.train.TrainingFailedError) -> str:
    """Which worker failed and how, in one line: rank, pid and node of a dead worker process."""
    failures = getattr(err, "worker_failures", None) or {}
    if not failures:
        return _first_line(err)
    def died(exc: BaseException) -> bool:
        return "worker process has died" in str(exc) or "actor died" in str(exc).lower()

    # A dead worker's peers then fail in their collectives: name the dead one.
    rank, exc = min(failures.items(), key=lambda item: (not died(item[1]), item[0]))
    text = str(exc)
    if died(exc):
        found = {k: re.search(rf"^\s*{k}: (\S+)", text, re.MULTILINE) for k in ("pid", "ip")}
        where = " ".join(f"{k} {m.group(1)}" for k, m in found.items() if m)
        return f"worker rank {rank} ({where}) died: its process exited unexpectedly (killed, out of memory or crashed)"
    return f"worker rank {rank} raised {type(exc).__name__}: {_first_line(exc)}"


def outcome_of(result: ray.train.Result) -> FitOutcome:
    best = result.get_best_checkpoint(metric="val_loss", mode="min")
    metrics = next(m for c, m in result.best_checkpoints if c.path == best.path)
    with result.checkpoint.as_directory() as latest:
        history = checkpoint.load_meta(latest).history
    return FitOutcome(best_checkpoint=best.path, best_metrics=metrics, run_path=result.path, history=history)


def sync_history(cfg: Config, outcome: FitOutcome, *, uri: str, run_id: str, resume_hint: str) -> None:
    """Every epoch in MLflow before the model is logged: what rank 0 could not log during an outage."""
    if not tracking.sync_epochs(uri, run_id, outcome.history, wait_s=cfg.tracking.outage_wait_s):
        raise TrainingFailed(
            f"MLflow server {redact(uri)} stayed unreachable for tracking.outage_wait_s={cfg.tracking.outage_wait_s:g} s after "
            f"training; the checkpoints are safe in {outcome.run_path}: once the server is back, {resume_hint} logs the rest"
        )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[-1] if text else type(err).__name__


def finish_model(
    cfg: Config, splits: Prepared, outcome: FitOutcome, *, uri: str, run_id: str, register_as: str | None, alias: str | None,
    history_run_id: str | None = None,
) -> FinalModel:
    """Test the best checkpoint; log final metrics, plots and the model to `run_id` (learning curves
    from `history_run_id`'s epochs, e.g. the best trial's run for a sweep)."""
    task = get_task(splits.info.task)
    tested = test_checkpoint(cfg, splits, outcome.best_checkpoint)
    model, info, predictions, test = tested.model, tested.info, tested.predictions, tested.metrics
    history = tracking.metric_history(uri, history_run_id or run_id, ["train_loss", "val_loss"])
    tracking.log_figures(uri, run_id, {"learning_curves.png": plots.learning_curves(history)} | plots.test_view(predictions, info))
    if task.export is not None:
        tracking.log_table(uri, run_id, task.export(predictions, info), f"test_{task.name}.parquet")
    best = {k: v for k, v in outcome.best_metrics.items() if k.startswith(("train_", "val_"))}
    metrics = best | {"best_epoch": outcome.best_metrics["epoch"]} | test
    tracking.log_metrics(uri, run_id, test, step=int(metrics["best_epoch"]))
    tracking.log_dict(uri, run_id, info.as_dict(), "data_info.json")
    log_checkpoint(uri, run_id, model, cfg=cfg, info=info, metrics=outcome.best_metrics)
    logged = tracking.log_model(
        uri, run_id, serving_model(model, info), input_example=input_example(splits.test, info=info),
        metadata={"data_info": info.as_dict()}, register_as=register_as, alias=alias,
    )
    return FinalModel(metrics=metrics, logged=logged)


def test_checkpoint(cfg: Config, splits: Prepared, path: str) -> Tested:
    """The checkpoint at `path` on the test split, next to the task's naive baseline."""
    task = get_task(splits.info.task)
    model = load_model(path, cfg.model, info=splits.info)
    info = task.calibrate(predict_split(model, splits.val, info=splits.info), splits.info) if task.calibrate else splits.info
    predictions = predict_split(model, splits.test, info=info)
    return Tested(model=model, info=info, predictions=predictions, metrics=task.test_metrics(predictions, info))


def log_checkpoint(uri: str, run_id: str, model, *, cfg: Config, info: DataInfo, metrics: dict[str, float]) -> None:
    """The tested model's weights with its config and (calibrated) data info, loadable by URI."""
    meta = checkpoint.CheckpointMeta(
        epoch=int(metrics["epoch"]), config_hash=cfg.hash(), run_id=run_id, metrics=metrics,
        config=redact_tree(cfg.model_dump(mode="json")), info=info.as_dict(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint.save(tmp, model=model, optimizer=None, meta=meta)
        tracking.log_checkpoint(uri, run_id, tmp)


def serving_model(model, info: DataInfo) -> ServingModel:
    """The model users load: forecasts come back in the data's units (the scaler is part of it)."""
    if info.scaler is None:
        return ServingModel(model)
    return ServingModel(
        model, out_scale=info.scaler["std"], out_shift=info.scaler["mean"], reference=info.window_normalize or "none"
    )


def run_training(cfg: Config, *, name: str | None = None, resume: bool = False, splits: Prepared | None = None) -> RunSummary:
    uri = tracking.resolve_uri(cfg.tracking)
    tracking.check_reachable(uri)
    name = name or runs.unique_name("train")
    storage = runs.resolve_storage(cfg.train.storage_path)
    previous = runs.check_start(storage, name, kind="train", resume=resume, config_hash=cfg.hash())
    reconcile.reconcile_and_report(uri, cfg.tracking.experiment)

    cluster.connect()
    check_resources(cfg)
    splits = splits or load_splits(cfg)
    if previous is None:
        run_id = tracking.start_run(uri, experiment=cfg.tracking.experiment, run_name=name, params=cfg.flat(),
                                    tags={tracking.KIND_TAG: "train", reconcile.OWNER_TAG: reconcile.owner()})
        tracking.log_config(uri, run_id, cfg.model_dump(mode="json"))
        runs.write_state(storage, name, runs.RunState(run_id=run_id, config_hash=cfg.hash(), kind="train"))
    else:
        run_id = previous.run_id
        tracking.reopen_run(uri, run_id, tags={"lstmpipe.resumed_to_epochs": str(cfg.train.epochs), reconcile.OWNER_TAG: reconcile.owner()})

    spec = worker_spec(cfg, splits, run_id=run_id, tracking_uri=uri)
    with tracking.closes_run(uri, run_id):
        outcome = fit(build_trainer(cfg, splits, spec=spec, name=name, storage=storage), max_failures=cfg.train.max_failures)
        sync_history(cfg, outcome, uri=uri, run_id=run_id, resume_hint=f"`lstmpipe train --name {name} --resume`")
        final = finish_model(cfg, splits, outcome, uri=uri, run_id=run_id, register_as=cfg.tracking.register_as, alias=None)
    return RunSummary(
        status="FINISHED",
        tracking_uri=uri,
        experiment=cfg.tracking.experiment,
        run_id=run_id,
        name=name,
        metrics=final.metrics,
        model_uri=final.logged.model_uri,
        registered_model=final.logged.registered_label,
        checkpoint=outcome.best_checkpoint,
    )
