"""Which data a trained model scores, prepared for it: the model's own data config (or another
config's data section) with `data.source` replaced, read with Ray Data and prepared by the task with
the model's scaler, classes or vocabulary (`Task.inference_rows`). Shared by predict, evaluate, explain."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ray.data

from pipeline.cluster.connect import connect
from pipeline.config import apply_overrides, read_yaml, validate
from pipeline.data.ingest import read, resolve_source
from pipeline.errors import DataError
from pipeline.serve.loading import Trained, load
from pipeline.tasks import get_task


@dataclass(frozen=True)
class DataChoice:
    """Which data to score: a source, optionally the data section of a config file, and --set overrides."""

    source: str
    config: Path | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inputs:
    trained: Trained
    rows: ray.data.Dataset
    source: str


def prepared_inputs(model_uri: str, data: DataChoice, *, tracking_uri: str) -> Inputs:
    """The model and the source's rows prepared for it."""
    trained = load(model_uri, tracking_uri=tracking_uri)
    raw = trained.config.model_dump(mode="json")
    if data.config is not None:
        raw["data"] = read_yaml(data.config).get("data", {})
    same_source = data.source == raw["data"].get("source")
    raw = apply_overrides(
        raw, {"data.source": data.source, "data.options": raw["data"].get("options", {}) if same_source else {}}
    )
    cfg = validate(apply_overrides(raw, list(data.overrides)), origin=f"the model's config with --data {data.source}")
    connect()
    path = resolve_source(cfg.data)
    rows = get_task(trained.info.task).inference_rows(read(path), cfg.data, trained.info, path=path)
    if rows.count() == 0:
        raise DataError(f"{path}: no rows to score (after preparing them for the model)")
    return Inputs(trained=trained, rows=rows, source=path)
