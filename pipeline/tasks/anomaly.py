"""`anomaly`: score every time step by how badly the model forecast it; flag the worst.

The model is a one-step forecaster trained on windows of the series (the forecast task's time
split, scaler and Ray Data windowing). A step's score is its absolute one-step forecast error in
units of the training period's standard deviation. The threshold is chosen on the validation
period: the best F1 when the data carry anomaly labels (`data.columns.label`), else a quantile of
the validation scores (`anomaly.quantile`). The baseline is the z-score of the value itself, its
threshold chosen the same way. Metrics: AUROC, precision, recall and F1 on the test period.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import ray.data
import torch
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from pipeline.config import DataConfig
from pipeline.tasks import DataInfo, Prepared, Task
from pipeline.tasks.forecast import cut, windows_with

DEFAULT_QUANTILE = 0.99


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str) -> Prepared:
    win = cut(ds, cfg, path=path, keep=_columns(cfg))
    info = DataInfo(
        task="anomaly",
        target="float",
        input_size=1 + len(cfg.columns.features),
        output_size=1,
        max_len=cfg.window.lookback,
        num_rows=win.counts,
        input_mean=win.mean.tolist(),
        input_std=win.std.tolist(),
        scaler={"mean": [float(win.mean[0])], "std": [float(win.std[0])]},
        flag_quantile=cfg.anomaly_quantile or DEFAULT_QUANTILE,
    )
    return Prepared(train=win.parts[0], val=win.parts[1], test=win.parts[2], info=info)


def _columns(cfg: DataConfig) -> tuple[str, ...]:
    return ("x", "y", "series", "time", *(("label",) if cfg.columns.label else ()))


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    return windows_with(ds, cfg, info, path=path, keep=_columns(cfg))


def outputs(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, np.ndarray]:
    table = flags_table(out, info)
    return {name: table.column(name).to_numpy() for name in table.column_names}


def scores(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Model score (absolute one-step error) and baseline score (|z| of the value), per step, in std units."""
    return {"model": np.abs(out["pred"][:, 0] - out["y"][:, 0]), "baseline": np.abs(out["y"][:, 0])}


def best_f1_threshold(score: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold (flag if score > t) with the highest F1 on these labels."""
    order = np.argsort(-score)
    hits = np.cumsum(labels[order])                              # true positives when flagging the top k
    k = np.arange(1, len(score) + 1)
    f1 = 2 * hits / (k + labels.sum())
    best = int(np.argmax(f1))
    nxt = score[order[best + 1]] if best + 1 < len(score) else score[order[best]] - 1.0
    return float((score[order[best]] + nxt) / 2)


def choose_threshold(score: np.ndarray, labels: np.ndarray | None, *, quantile: float) -> float:
    if labels is not None and labels.sum() > 0:
        return best_f1_threshold(score, labels)
    return float(np.quantile(score, quantile))


def calibrate(val: dict[str, np.ndarray], info: DataInfo) -> DataInfo:
    labels = val["label"][:, 0].astype(np.int64) if "label" in val else None
    s = scores(val)
    return dataclasses.replace(
        info,
        threshold=choose_threshold(s["model"], labels, quantile=info.flag_quantile),
        baseline_threshold=choose_threshold(s["baseline"], labels, quantile=info.flag_quantile),
    )


def detection_metrics(score: np.ndarray, labels: np.ndarray, *, threshold: float) -> dict[str, float]:
    flags = score > threshold
    p, r, f1, _ = precision_recall_fscore_support(labels, flags, average="binary", zero_division=0)
    auroc = roc_auc_score(labels, score) if 0 < labels.sum() < len(labels) else float("nan")
    return {"auroc": float(auroc), "precision": float(p), "recall": float(r), "f1": float(f1)}


def test_metrics(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, float]:
    s = scores(out)
    if "label" not in out:
        return {"test_flagged_fraction": float(np.mean(s["model"] > info.threshold)),
                "baseline_test_flagged_fraction": float(np.mean(s["baseline"] > info.baseline_threshold))}
    labels = out["label"][:, 0].astype(np.int64)
    model = detection_metrics(s["model"], labels, threshold=info.threshold)
    naive = detection_metrics(s["baseline"], labels, threshold=info.baseline_threshold)
    return {f"test_{k}": v for k, v in model.items()} | {f"baseline_test_{k}": v for k, v in naive.items()}


def flags_table(out: dict[str, np.ndarray], info: DataInfo) -> pa.Table:
    """Per step: series, time, value (data units), score, flag (and label when known)."""
    mu, sd = info.scaler["mean"][0], info.scaler["std"][0]
    s = scores(out)["model"]
    columns = {
        "series": out["series"], "time": out["time"], "value": out["y"][:, 0] * sd + mu,
        "forecast": out["pred"][:, 0] * sd + mu, "score": s, "flag": s > info.threshold,
    }
    if "label" in out:
        columns["label"] = out["label"][:, 0].astype(np.int8)
    return pa.table(columns)


def loss_terms(pred: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, int]]:
    se = ((pred - y) ** 2).sum()                                 # (B, 1) standardized
    return {"loss": (se, y.numel()), "mae": ((pred - y).abs().sum().detach(), y.numel())}


TASK = Task(
    name="anomaly", prepare=prepare, loss_terms=loss_terms, test_metrics=test_metrics, val_metric="mae",
    calibrate=calibrate, export=flags_table, inference_rows=inference_rows, outputs=outputs,
)
