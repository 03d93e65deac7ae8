"""Batch inference and evaluation of a trained model on any data source.

`predict` runs through Ray Data: the rows are prepared with the trained model's own scaler,
classes or vocabulary (`Task.inference_rows`), then `map_batches` runs a callable class, so each
actor builds the model once from the weights the driver puts in the object store, and the
outputs (in the data's units) are written as Parquet. `evaluate` computes the task's test metrics
and naive baselines over all of the source's rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data
import torch

from pipeline.cluster import connect as cluster
from pipeline import track as tracking
from pipeline.serve import loading as trained_mod
from pipeline.data.batches import collate_for
from pipeline.config import Config, apply_overrides, read_yaml, validate
from pipeline.errors import DataError
from pipeline.train.holdout import key_columns, predict_split
from pipeline.data.ingest import read, resolve_source
from pipeline.model.sequence_model import model_for
from pipeline.tasks import DataInfo, get_task
from pipeline.data.splitting import data_errors


class BatchPredictor:
    """Ray Data callable class: the model is built once per actor, then applied to each batch."""

    def __init__(self, *, state: dict[str, torch.Tensor], config: dict[str, Any], info: dict[str, Any]):
        torch.set_num_threads(1)
        self.info = DataInfo.from_dict(info)
        self.model = model_for(Config.model_validate(config).model, self.info)
        self.model.load_state_dict(state)
        self.model.eval()
        self.collate = collate_for(self.info)
        self.task = get_task(self.info.task)

    def __call__(self, rows: pa.Table) -> pa.Table:
        batch = self.collate(rows)
        with torch.no_grad():
            out = {"pred": self.model(batch["x"], batch["lengths"]).numpy()}
        out |= {k: v.numpy() for k, v in batch.items() if k not in ("x", "lengths")}
        out |= key_columns(rows)
        return pa.table({name: pa.array(list(values) if isinstance(values, list) else values)
                         for name, values in self.task.outputs(out, self.info).items()})


@dataclass(frozen=True)
class Inputs:
    trained: trained_mod.Trained
    rows: ray.data.Dataset
    source: str


@dataclass(frozen=True)
class DataChoice:
    """Which data to score: a source, optionally the data section of a config file, and --set overrides."""

    source: str
    config: Path | None = None
    overrides: tuple[str, ...] = ()


def prepared_inputs(model_uri: str, data: DataChoice, *, tracking_uri: str) -> Inputs:
    """The model and the source's rows prepared for it: the model's data config (or CONF's data
    section), with data.source replaced."""
    trained = trained_mod.load(model_uri, tracking_uri=tracking_uri)
    raw = trained.config.model_dump(mode="json")
    if data.config is not None:
        raw["data"] = read_yaml(data.config).get("data", {})
    raw = apply_overrides(raw, {"data.source": data.source, "data.options": raw["data"].get("options", {}) if data.source == raw["data"].get("source") else {}})
    cfg = validate(apply_overrides(raw, list(data.overrides)), origin=f"the model's config with --data {data.source}")
    cluster.connect()
    path = resolve_source(cfg.data)
    rows = get_task(trained.info.task).inference_rows(read(path), cfg.data, trained.info, path=path)
    if rows.count() == 0:
        raise DataError(f"{path}: no rows to score (after preparing them for the model)")
    return Inputs(trained=trained, rows=rows, source=path)


def predict(model_uri: str, data: DataChoice, *, out: Path, tracking_uri: str) -> int:
    """Write the model's outputs for every row of `data` as Parquet files under `out`; return the row count."""
    inputs = prepared_inputs(model_uri, data, tracking_uri=tracking_uri)
    t = inputs.trained
    kwargs = {"state": t.model.state_dict(), "config": t.config.model_dump(mode="json"), "info": t.info.as_dict()}
    actors = max(1, min(int(cluster.available("CPU")), os.cpu_count() or 1))
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True                     # outputs in the rows' order
    result = inputs.rows.map_batches(
        BatchPredictor, fn_constructor_kwargs=kwargs, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
        batch_size=1024, batch_format="pyarrow",
    )
    combine = get_task(t.info.task).combine
    if combine is not None:
        result = combine(result, t.info)
    with data_errors(inputs.source):
        result.write_parquet(str(out.resolve()))
    return sum(pq.read_metadata(f).num_rows for f in out.resolve().glob("*.parquet"))


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    run_id: str | None   # the MLflow run the metrics were logged to


def evaluate(model_uri: str, data: DataChoice, *, tracking_uri: str, log: Literal["none", "mlflow"] = "none") -> Evaluation:
    """The task's test metrics and baselines over all rows of `data`; optionally logged as a new
    MLflow run (tagged with the model and the data) in the model's experiment."""
    inputs = prepared_inputs(model_uri, data, tracking_uri=tracking_uri)
    t = inputs.trained
    with data_errors(inputs.source):
        out = predict_split(t.model, inputs.rows, info=t.info)
    if "y" not in out and t.info.task in ("regression", "classify"):
        raise DataError(f"{inputs.source}: evaluate needs the target column '{t.config.data.columns.target}'; predict needs none")
    metrics = get_task(t.info.task).test_metrics(out, t.info)
    if log == "none":
        return Evaluation(metrics=metrics, run_id=None)
    tags = {tracking.KIND_TAG: "evaluate", "lstmpipe.model_uri": model_uri, "lstmpipe.eval_data": inputs.source}
    run_id = tracking.start_run(tracking_uri, experiment=t.config.tracking.experiment, run_name=f"evaluate-{t.info.task}",
                                params={"model_uri": model_uri, "data": inputs.source}, tags=tags)
    with tracking.closes_run(tracking_uri, run_id):
        tracking.log_metrics(tracking_uri, run_id, {k: v for k, v in metrics.items() if np.isfinite(v)}, step=0)
    return Evaluation(metrics=metrics, run_id=run_id)
