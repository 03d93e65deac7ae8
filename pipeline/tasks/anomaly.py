"""`anomaly`: score every time step by how badly the model forecast it; flag the worst.

The model forecasts the next `horizon` steps from a window of the series (the forecast task's
time split, scaler and Ray Data windowing). A step is covered by the forecasts of up to `horizon`
windows, made 1..horizon steps before it; its score is their mean absolute error, in units of the
training period's standard deviation. With horizon 1 a level shift or drift is only scored at its
start (the next windows contain it and the forecaster follows it); forecasts made from before an
anomaly keep scoring it throughout, and the mean over many forecasts is less noisy.

The threshold is chosen on the validation period: the best F1 when the data carry anomaly labels
(`data.columns.label`), else a quantile of the validation scores (`data.anomaly_quantile`). The
baseline is the z-score of the value itself, its threshold chosen the same way. Metrics: AUROC,
precision, recall and F1 on the test period.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa
import ray.data
import torch
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from pipeline.config import DataConfig
from pipeline.tasks import DataInfo, Prepared, Task
from pipeline.tasks.forecast import cut, windows_with

DEFAULT_QUANTILE = 0.99


def _columns(cfg: DataConfig) -> tuple[str, ...]:
    return ("x", "y", "series", "time", "pos", *(("label",) if cfg.columns.label else ()))


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str) -> Prepared:
    win = cut(ds, cfg, path=path, keep=_columns(cfg), at="all")
    h = cfg.window.horizon
    info = DataInfo(
        task="anomaly",
        target="float",
        input_size=1 + len(cfg.columns.features),
        output_size=h,
        max_len=cfg.window.lookback,
        num_rows=win.counts,
        input_mean=win.mean.tolist(),
        input_std=win.std.tolist(),
        scaler={"mean": [float(win.mean[0])] * h, "std": [float(win.std[0])] * h},
        flag_quantile=cfg.anomaly_quantile or DEFAULT_QUANTILE,
    )
    return Prepared(train=win.parts[0], val=win.parts[1], test=win.parts[2], info=info)


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    return windows_with(ds, cfg, info, path=path, keep=_columns(cfg), at="all")


def window_steps(out: dict[str, np.ndarray]) -> pd.DataFrame:
    """Windows (W, H) -> one row per (window, target step): series, pos, time, y, pred, error."""
    w, h = out["y"].shape
    steps = {
        "series": np.repeat(out["series"], h), "pos": out["pos"].reshape(-1), "time": out["time"].reshape(-1),
        "y": out["y"].reshape(-1), "pred": out["pred"].reshape(-1), "error": np.abs(out["pred"] - out["y"]).reshape(-1),
    }
    if "label" in out:
        steps["label"] = out["label"].reshape(-1).astype(np.int8)
    return pd.DataFrame(steps)


def step_scores(steps: pd.DataFrame) -> pd.DataFrame:
    """Per (series, step): the mean error of all forecasts covering it (model score), |z| (baseline)."""
    agg = {"time": "first", "y": "first", "pred": "mean", "error": "mean", "forecasts": ("error", "size")}
    if "label" in steps:
        agg["label"] = "first"
    named = {k: v if isinstance(v, tuple) else (k, v) for k, v in agg.items()}
    out = steps.groupby(["series", "pos"], sort=True).agg(**named).reset_index()
    return out.rename(columns={"error": "score"}).assign(baseline_score=lambda d: d["y"].abs())


def scored(out: dict[str, np.ndarray]) -> pd.DataFrame:
    return step_scores(window_steps(out))


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
    steps = scored(val)
    labels = steps["label"].to_numpy() if "label" in steps else None
    return dataclasses.replace(
        info,
        threshold=choose_threshold(steps["score"].to_numpy(), labels, quantile=info.flag_quantile),
        baseline_threshold=choose_threshold(steps["baseline_score"].to_numpy(), labels, quantile=info.flag_quantile),
    )


def detection_metrics(score: np.ndarray, labels: np.ndarray, *, threshold: float) -> dict[str, float]:
    flags = score > threshold
    p, r, f1, _ = precision_recall_fscore_support(labels, flags, average="binary", zero_division=0)
    auroc = roc_auc_score(labels, score) if 0 < labels.sum() < len(labels) else float("nan")
    return {"auroc": float(auroc), "precision": float(p), "recall": float(r), "f1": float(f1)}


def test_metrics(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, float]:
    steps = scored(out)
    model, naive = steps["score"].to_numpy(), steps["baseline_score"].to_numpy()
    if "label" not in steps:
        return {"test_flagged_fraction": float(np.mean(model > info.threshold)),
                "baseline_test_flagged_fraction": float(np.mean(naive > info.baseline_threshold))}
    labels = steps["label"].to_numpy()
    m = detection_metrics(model, labels, threshold=info.threshold)
    b = detection_metrics(naive, labels, threshold=info.baseline_threshold)
    return {f"test_{k}": v for k, v in m.items()} | {f"baseline_test_{k}": v for k, v in b.items()}


def flags_frame(steps: pd.DataFrame, info: DataInfo) -> pd.DataFrame:
    """Scored steps -> series, time, value and mean forecast (data units), score, flag (, label)."""
    mu, sd = info.scaler["mean"][0], info.scaler["std"][0]
    cols = ["series", "time", "value", "forecast", "forecasts", "score", "flag", *(["label"] if "label" in steps else [])]
    return steps.assign(value=steps["y"] * sd + mu, forecast=steps["pred"] * sd + mu, flag=steps["score"] > info.threshold)[cols]


def flags_table(out: dict[str, np.ndarray], info: DataInfo) -> pa.Table:
    return pa.Table.from_pandas(flags_frame(scored(out), info), preserve_index=False)


def outputs(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, np.ndarray]:
    """Per (window, target step); `combine` averages them into one row per step."""
    steps = window_steps(out)
    return {name: steps[name].to_numpy() for name in steps.columns}


def combine(ds: ray.data.Dataset, info: DataInfo) -> ray.data.Dataset:
    """predict: a step's forecasts may sit in different batches; group them per (series, step)."""
    def one_step_group(group: pd.DataFrame) -> pd.DataFrame:
        return flags_frame(step_scores(group), info)

    return ds.groupby(["series", "pos"]).map_groups(one_step_group, batch_format="pandas").sort(["series", "time"])


def loss_terms(pred: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, int]]:
    se = ((pred - y) ** 2).sum()                                 # (B, H) standardized
    return {"loss": (se, y.numel()), "mae": ((pred - y).abs().sum().detach(), y.numel())}


TASK = Task(
    name="anomaly", prepare=prepare, loss_terms=loss_terms, test_metrics=test_metrics, val_metric="mae",
    calibrate=calibrate, export=flags_table, inference_rows=inference_rows, outputs=outputs, combine=combine,
)
