"""After training, on the driver: the best checkpoint on the test split against the task's naive
baseline, and everything logged with the model (metrics, plots, data info, checkpoint, served model)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import Config
from pipeline.model.ensemble import Ensemble, EnsembleServing
from pipeline.model.sequence_model import SequenceModel, ServingModel
from pipeline.redaction import redact_tree
from pipeline.tasks import DataInfo, Prepared, get_task
from pipeline.track import LoggedModel, TrackedRun, log_checkpoint, log_model, log_text_model
from pipeline.track.plots import learning_curves
from pipeline.train import checkpoint
from pipeline.train.holdout import input_example, load_model, split_outputs


@dataclass(frozen=True)
class Tested:
    model: SequenceModel
    info: DataInfo  # calibrated on validation (e.g. the anomaly threshold)
    predictions: dict[str, np.ndarray]
    metrics: dict[str, float]  # test_* and baseline_test_*


@dataclass(frozen=True)
class FinalModel:
    metrics: dict[str, float]
    logged: LoggedModel
    promotion: str | None = None  # the promotion gate's decision, in words (tracking.promote)


def test_checkpoint(cfg: Config, splits: Prepared, path: str) -> Tested:
    """The checkpoint at `path` on the test split, next to the task's naive baseline."""
    task = get_task(splits.info.task)
    model = load_model(path, cfg.model, info=splits.info)
    info = (
        task.calibrate(split_outputs(model, splits.val, info=splits.info, model_cfg=cfg.model), splits.info)
        if task.calibrate
        else splits.info
    )
    predictions = split_outputs(model, splits.test, info=info, model_cfg=cfg.model)
    return Tested(model=model, info=info, predictions=predictions, metrics=task.test_metrics(predictions, info))


def finish_model(
    cfg: Config,
    splits: Prepared,
    best_checkpoint: str,
    best_metrics: dict[str, float],
    *,
    run: TrackedRun,
    register_as: str | None,
    alias: str | None,
    history_run: TrackedRun | None = None,
) -> FinalModel:
    """Test the best checkpoint; log final metrics, plots and the model to `run` (learning curves
    from `history_run`'s epochs, e.g. the best trial's run for a sweep)."""
    task = get_task(splits.info.task)
    gated = register_as is not None and cfg.tracking.promote is not None
    alias = None if gated else alias  # the gate sets the alias, or not
    tested = test_checkpoint(cfg, splits, best_checkpoint)
    model, info, predictions, test = tested.model, tested.info, tested.predictions, tested.metrics
    history = (history_run or run).metric_history(["train_loss", "val_loss"])
    run.log_figures({"learning_curves.png": learning_curves(history)} | task.plots(predictions, info))
    if task.export is not None:
        run.log_table(task.export(predictions, info), f"test_{task.name}.parquet")
    best = {k: v for k, v in best_metrics.items() if k.startswith(("train_", "val_"))}
    metrics = best | {"best_epoch": best_metrics["epoch"]} | test
    run.log_dict(info.as_dict(), "data_info.json")
    with tempfile.TemporaryDirectory() as tmp:
        _log_tested_checkpoint(run, model, cfg=cfg, info=info, metrics=best_metrics, directory=tmp)
        if info.tokens_in or info.target == "labels":  # text (or frames) in, text or a class out: a pyfunc
            texts = example_texts(splits.test, info)
            logged = _log_text_model(run, tmp, texts, tested=tested, cfg=cfg, register_as=register_as, alias=alias)
        else:
            logged = log_model(
                run,
                serving_model(model, info),
                input_example=input_example(splits.test, info=info),
                metadata={"data_info": info.as_dict()},
                register_as=register_as,
                alias=alias,
            )
    # the test metrics, on the run and on the logged model (MLflow 3's model-centric view: checkpoints
    # ranked across runs by `search_logged_models`)
    run.log_metrics(test, step=int(metrics["best_epoch"]), model_id=logged.model_id)
    promotion = promote(cfg, splits, run=run, logged=logged, metrics=metrics) if gated else None
    return FinalModel(metrics=metrics, logged=logged, promotion=promotion)


def promote(cfg: Config, splits: Prepared, *, run: TrackedRun, logged: LoggedModel, metrics: dict[str, float]) -> str:
    """tracking.promote: the registered version gets @champion only if it passes the gate; the decision in words."""
    from pipeline.data.fingerprint import lineage_of
    from pipeline.track.lineage import digest, log_lineage
    from pipeline.track.promotion import gate

    rule, task = cfg.tracking.promote, get_task(splits.info.task)
    metric = rule.metric or f"test_{task.val_metric}"
    lineage = lineage_of(cfg.data, splits)
    log_lineage(run, lineage)  # a sweep's parent run too: the champion's data, told apart in the UI
    decision = gate(
        run,
        name=logged.registered_name,
        version=logged.version,
        metric=metric,
        metrics=metrics,
        must_beat=list(rule.must_beat),
        mode=task.metric_mode(metric),
        min_delta=rule.min_delta,
        digest=digest(lineage),
    )
    return decision.reason


def _log_text_model(
    run: TrackedRun, directory: str, texts: list[str], *, tested: Tested, cfg: Config, register_as, alias
) -> LoggedModel:
    from pipeline.serve.loading import Trained
    from pipeline.serve.text import answer
    from pipeline.track.text_model import input_column

    trained = Trained(model=tested.model, info=tested.info, config=cfg, directory=Path(directory))
    return log_text_model(
        run,
        directory,
        input_example=texts,
        output_example=answer(trained, texts),
        input_column=input_column(tested.info),
        optional_input=("audio", "binary")
        if tested.info.task == "transcribe" and tested.info.task_info.audio
        else None,
        metadata={"data_info": tested.info.as_dict()},
        register_as=register_as,
        alias=alias,
    )


def example_texts(test, info: DataInfo, *, rows: int = 3) -> list:
    """A few test inputs for the served model's example: translate keeps its texts (`src`); a text
    classifier's rows hold ids, decoded back to (normalized) text; a transcriber's are frames."""
    from pipeline.data.tokenize import decode

    batch = next(iter(test.iter_batches(batch_size=rows, batch_format="pyarrow")))
    if info.target == "labels":  # a transcriber's example is frames
        return batch.column("x").to_pylist()
    if "src" in batch.column_names:
        return batch.column("src").to_pylist()
    return [decode(ids, info.text) for ids in batch.column("x").to_pylist()]


def _log_tested_checkpoint(
    run: TrackedRun, model, *, cfg: Config, info: DataInfo, metrics: dict[str, float], directory: str
) -> None:
    """The tested model's weights with its config and (calibrated) data info, loadable by URI."""
    meta = checkpoint.CheckpointMeta(
        epoch=int(metrics["epoch"]),
        config_hash=cfg.hash(),
        run_id=run.run_id,
        metrics=metrics,
        config=redact_tree(cfg.model_dump(mode="json")),
        info=info.as_dict(),
    )
    checkpoint.save(directory, model=model, optimizer=None, meta=meta)
    log_checkpoint(run, directory)


def serving_model(model: SequenceModel | Ensemble, info: DataInfo) -> ServingModel | EnsembleServing:
    """The model users load: forecasts come back in the data's units (the scaler is part of it); an
    ensemble's members each as one, averaged."""
    if isinstance(model, Ensemble):
        return EnsembleServing([serving_model(member, info) for member in model.members])
    output_units = get_task(info.task).output_units
    if output_units is None:
        return ServingModel(model)
    units = output_units(info)
    return ServingModel(
        model,
        out_scale=units.scale,
        out_shift=units.shift,
        reference=units.reference,
        located=units.located,
        scaled=units.scaled,
    )
