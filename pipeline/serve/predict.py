"""Batch inference of a trained model on any data source, through Ray Data.

The rows are prepared for the model (`pipeline.serve.inputs`), then `map_batches` runs a callable
class, so each actor builds the model once from the weights the driver puts in the object store,
and the outputs (in the data's units, in the rows' order) are written as Parquet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray.data
import torch

from pipeline.cluster.connect import available
from pipeline.config import Config
from pipeline.data.batches import collate_for
from pipeline.data.ingest import order_preserved
from pipeline.data.splitting import data_errors
from pipeline.model.sequence_model import model_for
from pipeline.serve.inputs import DataChoice, prepared_inputs
from pipeline.tasks import DataInfo, get_task
from pipeline.train.holdout import key_columns


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
        self.model_cfg = Config.model_validate(config).model

    def __call__(self, rows: pa.Table) -> pa.Table:
        if self.task.decode is not None:  # translate: beam search per batch
            out = self.task.decode(self.model, rows, info=self.info, model_cfg=self.model_cfg)
            return pa.table({name: pa.array(list(v)) for name, v in self.task.outputs(out, self.info).items()})
        batch = self.collate(rows)
        with torch.no_grad():
            out = {"pred": self.model(batch["x"], batch["lengths"]).numpy()}
        out |= {k: v.numpy() for k, v in batch.items() if k not in ("x", "lengths")}
        out |= key_columns(rows)
        return pa.table(
            {
                name: pa.array(list(values) if isinstance(values, list) else values)
                for name, values in self.task.outputs(out, self.info).items()
            }
        )


def predict(model_uri: str, data: DataChoice, *, out: Path, tracking_uri: str) -> int:
    """Write the model's outputs for every row of `data` as Parquet files under `out`; return the row count."""
    inputs = prepared_inputs(model_uri, data, tracking_uri=tracking_uri)
    t = inputs.trained
    kwargs = {"state": t.model.state_dict(), "config": t.config.model_dump(mode="json"), "info": t.info.as_dict()}
    actors = max(1, min(int(available("CPU")), os.cpu_count() or 1))
    with order_preserved():
        result = inputs.rows.map_batches(
            BatchPredictor,
            fn_constructor_kwargs=kwargs,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
            batch_size=1024,
            batch_format="pyarrow",
        )
        combine = get_task(t.info.task).combine
        if combine is not None:
            result = combine(result, t.info)
        with data_errors(inputs.source):
            result.write_parquet(str(out.resolve()))
    return sum(pq.read_metadata(f).num_rows for f in out.resolve().glob("*.parquet"))
