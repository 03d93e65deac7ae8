"""`regression`: sequence -> value(s), MSE, against predicting the training mean."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.scaling import fit_input_stats
from pipeline.data.splitting import canonical_rows, split_rows
from pipeline.data.transforms import float_targets
from pipeline.tasks import DataInfo, Prepared, Task, TaskInfo
from pipeline.tasks.rules import check_layout

if TYPE_CHECKING:
    import ray.data
    import torch

    from pipeline.config import Config, DataConfig


@dataclass
class RegressionInfo(TaskInfo):
    target_mean: list[float]  # per output, over the training split: the predict-the-mean baseline


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str) -> Prepared:
    train, val, test = split_rows(canonical_rows(ds, cfg, kind="float"), cfg, path=path)
    stats = fit_input_stats(train, standardize=cfg.input_scaling == "standard")
    y = np.concatenate([b["y"] for b in _targets(train)])  # (N_train, O)
    info = DataInfo(
        task="regression",
        target="float",
        input_size=stats.channels,
        output_size=int(y.shape[1]),
        max_len=stats.max_len,
        input_mean=stats.mean,
        input_std=stats.std,
        num_rows={"train": train.count(), "val": val.count(), "test": test.count()},
        task_info=RegressionInfo(target_mean=y.mean(axis=0).astype(float).tolist()),
    )
    return Prepared(train=train, val=val, test=test, info=info)


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    return canonical_rows(ds, cfg, kind="float", mode="infer")


def outputs(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, np.ndarray]:
    pred = out["pred"]  # (B, O)
    cols = {"prediction": pred[:, 0] if pred.shape[1] == 1 else list(pred)}
    if "y" in out:
        cols["actual"] = out["y"][:, 0] if out["y"].shape[1] == 1 else list(out["y"])
    return cols


def _targets(ds: ray.data.Dataset):
    for batch in ds.select_columns(["y"]).iter_batches(batch_format="pyarrow", batch_size=4096):
        yield {"y": float_targets(batch, column="y")}


def loss_terms(pred: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, int]]:
    se = ((pred - y) ** 2).sum()  # pred, y: (B, O)
    return {"loss": (se, y.numel()), "mse": (se.detach(), y.numel())}


def test_metrics(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, float]:
    pred, y = out["pred"], out["y"]  # (N, O)
    baseline = np.asarray(info.task_info.target_mean, dtype=np.float64)  # (O,)
    return {
        "test_mse": float(np.mean((pred - y) ** 2)),
        "baseline_test_mse": float(np.mean((y - baseline) ** 2)),
    }


def check(cfg: Config) -> None:
    check_layout(cfg, task="regression", layout="rows")


TASK = Task(
    name="regression",
    layout="rows",
    info_type=RegressionInfo,
    prepare=prepare,
    loss_terms=loss_terms,
    test_metrics=test_metrics,
    val_metric="mse",
    inference_rows=inference_rows,
    outputs=outputs,
    check=check,
)
