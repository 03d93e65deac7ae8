"""Batch inference of a trained model on any data source, through Ray Data.

The rows are prepared for the model (`pipeline.serve.inputs`), then `map_batches` runs Ray Data
tasks that each build the model from the weights the driver put in the object store once (by
reference, not copied into every task) and apply it to a batch of 1,024 rows; the outputs (in the
data's units, in the rows' order) are written as Parquet.

Tasks, not an actor pool: an actor whose constructor receives an object-store reference makes Ray
print an error line (core_worker.cc: its arguments could be lost if Ray restarts it) on every
`predict` of a model past Ray's 100 KB inline limit, and tasks are retried by Ray Data all the same.
Building the model per batch costs milliseconds against the batch's own inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data
import torch

from pipeline.config import Config
from pipeline.data.batches import collate_for
from pipeline.data.ingest import order_preserved
from pipeline.data.splitting import data_errors
from pipeline.model.sequence_model import model_for
from pipeline.serve.inputs import DataChoice, prepared_inputs
from pipeline.tasks import DataInfo, get_task
from pipeline.train.holdout import key_columns


class BatchPredictor:
    """The model built from its weights, config and data info, applied to one Arrow batch at a time."""

    def __init__(self, *, state: dict[str, torch.Tensor], config: dict[str, Any], info: dict[str, Any]):
        torch.set_num_threads(1)
        self.info = DataInfo.from_dict(info)
        self.model_cfg = Config.model_validate(config).model
        self.model = model_for(self.model_cfg, self.info)
        self.model.load_state_dict(state)
        self.model.eval()
        self.collate = collate_for(self.info)
        self.task = get_task(self.info.task)

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


def predict_batch(rows: pa.Table, *, state: ray.ObjectRef, config: dict[str, Any], info: dict[str, Any]) -> pa.Table:
    """One Ray Data task: the model from the weights in the object store, on one batch of rows."""
    return BatchPredictor(state=ray.get(state), config=config, info=info)(rows)


def predict(model_uri: str, data: DataChoice, *, out: Path, tracking_uri: str) -> int:
    """Write the model's outputs for every row of `data` as Parquet files under `out`; return the row count."""
    inputs = prepared_inputs(model_uri, data, tracking_uri=tracking_uri)
    t = inputs.trained
    state = ray.put(t.model.state_dict())  # once; each task reads it by reference
    kwargs = {"state": state, "config": t.config.model_dump(mode="json"), "info": t.info.as_dict()}
    with order_preserved():
        result = inputs.rows.map_batches(predict_batch, fn_kwargs=kwargs, batch_size=1024, batch_format="pyarrow")
        combine = get_task(t.info.task).combine
        if combine is not None:
            result = combine(result, t.info)
        with data_errors(inputs.source):
            result.write_parquet(str(out.resolve()))
    return sum(pq.read_metadata(f).num_rows for f in out.resolve().glob("*.parquet"))
