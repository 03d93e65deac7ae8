"""`lstmpipe evaluate`: the task's test metrics and naive baselines over all rows of any data source,
optionally logged as a new MLflow run (tagged with the model and the data) in the model's experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.data.splitting import data_errors
from pipeline.errors import DataError
from pipeline.serve.inputs import DataChoice, prepared_inputs
from pipeline.tasks import get_task
from pipeline.track import KIND_TAG, TrackedRun
from pipeline.train.holdout import split_outputs


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    run_id: str | None  # the MLflow run the metrics were logged to


def evaluate(
    model_uri: str, data: DataChoice, *, tracking_uri: str, log: Literal["none", "mlflow"] = "none"
) -> Evaluation:
    inputs = prepared_inputs(model_uri, data, tracking_uri=tracking_uri)
    t = inputs.trained
    with data_errors(inputs.source):
        out = split_outputs(t.model, inputs.rows, info=t.info, model_cfg=t.config.model)
    if (
        "y" not in out and "ref" not in out
    ):  # series and next-step tasks carry their targets in the sequences themselves
        raise DataError(
            f"{inputs.source}: evaluate needs the target column '{t.config.data.columns.target}'; predict needs none"
        )
    metrics = get_task(t.info.task).test_metrics(out, t.info)
    if log == "none":
        return Evaluation(metrics=metrics, run_id=None)
    run = TrackedRun.start(
        tracking_uri,
        experiment=t.config.tracking.experiment,
        run_name=f"evaluate-{t.info.task}",
        params={"model_uri": model_uri, "data": inputs.source},
        tags={KIND_TAG: "evaluate", "lstmpipe.model_uri": model_uri, "lstmpipe.eval_data": inputs.source},
    )
    with run.closes():
        run.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)}, step=0)
    return Evaluation(metrics=metrics, run_id=run.run_id)
