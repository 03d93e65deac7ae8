"""`anomaly`: score every time step by how badly the model forecast it; flag the worst.

The model forecasts the next `horizon` steps from a window of the series (the forecast task's
time split, scaler and Ray Data windowing). A step is covered by the forecasts of up to `horizon`
windows, made 1..horizon steps before it; its score is their mean absolute error, in units of the
training period's standard deviation, or with `data.anomaly_score: nll` (a model with
`model.likelihood` gaussian or student_t) the mean negative log-likelihood of the value under their
predicted distributions (standardized units), so a step is judged against the spread the model
expected there. With horizon 1 a level shift or drift is only scored at its
start (the next windows contain it and the forecaster follows it); forecasts made from before an
anomaly keep scoring it throughout, and the mean over many forecasts is less noisy.

The threshold is chosen on the validation period: the best F1 when the data carry anomaly labels
(`data.columns.label`), else a quantile of the validation scores (`data.anomaly_quantile`). The
baseline is the z-score of the value itself, its threshold chosen the same way. Metrics: AUROC,
precision, recall and F1 on the test period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.tasks import DataInfo, Prepared, Task, TaskInfo
from pipeline.tasks.forecast import loss_options, loss_terms, output_units, target_scaler
from pipeline.tasks.forecast_windows import cut, windows_with
from pipeline.tasks.rules import check_layout

if TYPE_CHECKING:
    import ray.data
    from matplotlib.figure import Figure

    from pipeline.config import Config, DataConfig, ModelConfig

DEFAULT_QUANTILE = 0.99


@dataclass
class AnomalyInfo(TaskInfo):
    scaler: dict[str, list[float]]  # the target's training-period mean and std, per horizon step
    flag_quantile: float  # without labels: flag validation scores above this quantile
    threshold: float | None = None  # score above which a step is flagged (chosen on val)
    baseline_threshold: float | None = None  # the z-score baseline's threshold (chosen on val)
    likelihood: str = "none"  # model.likelihood: outputs are a distribution's parameters per horizon step
    score: str = "error"  # data.anomaly_score: a step's score is its forecasts' mean |error| or mean NLL
    quantiles: list[float] = field(default_factory=list)  # (no quantile head for anomaly; forecast's units read it)

    @property
    def per_step(self) -> int:
        from pipeline.model.likelihood import param_names

        return len(param_names(self.likelihood, self.quantiles))


def _columns(cfg: DataConfig) -> tuple[str, ...]:
    return ("x", "y", "series", "time", "pos", *(("label",) if cfg.columns.label else ()))


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str, model_cfg: ModelConfig) -> Prepared:
    win = cut(ds, cfg, path=path, keep=_columns(cfg), at="all")
    h = cfg.window.horizon
    likelihood = model_cfg.likelihood or "none"
    info = DataInfo(
        task="anomaly",
        target="float",
        input_size=1 + len(cfg.columns.features),
        output_size=h,
        max_len=cfg.window.lookback,
        num_rows=win.counts,
        input_mean=win.mean.tolist(),
        input_std=win.std.tolist(),
        task_info=AnomalyInfo(
            scaler=target_scaler(win.mean, win.std, horizon=h),
            flag_quantile=cfg.anomaly_quantile or DEFAULT_QUANTILE,
            likelihood=likelihood,
            score=cfg.anomaly_score or "error",
        ),
    )
    info.output_size = h * info.task_info.per_step
    return Prepared(train=win.parts[0], val=win.parts[1], test=win.parts[2], info=info)


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    return windows_with(ds, cfg, info, path=path, keep=_columns(cfg), at="all")


def step_errors(out: dict[str, np.ndarray], info: DataInfo) -> tuple[np.ndarray, np.ndarray]:
    """Windows -> (W, H) point forecasts and each step's error (standardized): |forecast - value|,
    or the value's negative log-likelihood under the forecast distribution (data.anomaly_score: nll)."""
    own: AnomalyInfo = info.task_info
    if own.likelihood == "none":
        return out["pred"], np.abs(out["pred"] - out["y"])
    import torch

    from pipeline.model.likelihood import nll, point

    params, y = torch.from_numpy(np.ascontiguousarray(out["pred"])), torch.from_numpy(out["y"])
    with torch.no_grad():
        mid = point(own.likelihood, params, horizon=y.shape[1], quantiles=[]).numpy()  # (W, H)
        error = nll(own.likelihood, params, y, quantiles=[]).numpy() if own.score == "nll" else np.abs(mid - out["y"])
    return mid, error


def window_steps(out: dict[str, np.ndarray], info: DataInfo) -> pd.DataFrame:
    """Windows (W, H) -> one row per (window, target step): series, pos, time, y, pred, error."""
    w, h = out["y"].shape
    pred, error = step_errors(out, info)
    steps = {
        "series": np.repeat(out["series"], h),
        "pos": out["pos"].reshape(-1),
        "time": out["time"].reshape(-1),
        "y": out["y"].reshape(-1),
        "pred": pred.reshape(-1),
        "error": error.reshape(-1),
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


def scored(out: dict[str, np.ndarray], info: DataInfo) -> pd.DataFrame:
    return step_scores(window_steps(out, info))


def best_f1_threshold(score: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold (flag if score > t) with the highest F1 on these labels."""
    order = np.argsort(-score)
    hits = np.cumsum(labels[order])  # true positives when flagging the top k
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
    steps = scored(val, info)
    labels = steps["label"].to_numpy() if "label" in steps else None
    quantile = info.task_info.flag_quantile
    return info.with_task_info(
        threshold=choose_threshold(steps["score"].to_numpy(), labels, quantile=quantile),
        baseline_threshold=choose_threshold(steps["baseline_score"].to_numpy(), labels, quantile=quantile),
    )


def detection_metrics(score: np.ndarray, labels: np.ndarray, *, threshold: float) -> dict[str, float]:
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    flags = score > threshold
    p, r, f1, _ = precision_recall_fscore_support(labels, flags, average="binary", zero_division=0)
    auroc = roc_auc_score(labels, score) if 0 < labels.sum() < len(labels) else float("nan")
    return {"auroc": float(auroc), "precision": float(p), "recall": float(r), "f1": float(f1)}


def test_metrics(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, float]:
    own: AnomalyInfo = info.task_info
    steps = scored(out, info)
    model, naive = steps["score"].to_numpy(), steps["baseline_score"].to_numpy()
    if "label" not in steps:
        return {
            "test_flagged_fraction": float(np.mean(model > own.threshold)),
            "baseline_test_flagged_fraction": float(np.mean(naive > own.baseline_threshold)),
        }
    labels = steps["label"].to_numpy()
    m = detection_metrics(model, labels, threshold=own.threshold)
    b = detection_metrics(naive, labels, threshold=own.baseline_threshold)
    return {f"test_{k}": v for k, v in m.items()} | {f"baseline_test_{k}": v for k, v in b.items()}


def flags_frame(steps: pd.DataFrame, info: DataInfo) -> pd.DataFrame:
    """Scored steps -> series, time, value and mean forecast (data units), score, flag (, label)."""
    own: AnomalyInfo = info.task_info
    mu, sd = own.scaler["mean"][0], own.scaler["std"][0]
    cols = [
        "series",
        "time",
        "value",
        "forecast",
        "forecasts",
        "score",
        "flag",
        *(["label"] if "label" in steps else []),
    ]
    return steps.assign(
        value=steps["y"] * sd + mu, forecast=steps["pred"] * sd + mu, flag=steps["score"] > own.threshold
    )[cols]


def flags_table(out: dict[str, np.ndarray], info: DataInfo) -> pa.Table:
    return pa.Table.from_pandas(flags_frame(scored(out, info), info), preserve_index=False)


def outputs(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, np.ndarray]:
    """Per (window, target step); `combine` averages them into one row per step."""
    steps = window_steps(out, info)
    return {name: steps[name].to_numpy() for name in steps.columns}


def combine(ds: ray.data.Dataset, info: DataInfo) -> ray.data.Dataset:
    """predict: a step's forecasts may sit in different batches; group them per (series, step)."""

    def one_step_group(group: pd.DataFrame) -> pd.DataFrame:
        return flags_frame(step_scores(group), info)

    return ds.groupby(["series", "pos"]).map_groups(one_step_group, batch_format="pandas").sort(["series", "time"])


def anomaly_flags(table: pa.Table, *, threshold: float, score: str = "error") -> Figure:
    """One series of the test period: values with flagged steps (and labelled ones), and the scores."""
    from matplotlib.figure import Figure

    data = table.to_pandas()
    first = data[data["series"] == data["series"].iloc[0]].sort_values("time")
    fig = Figure(figsize=(9, 5), layout="tight")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(first["time"], first["value"], color="black", lw=0.8, label="value")
    if "label" in first:
        labelled = first["label"] == 1
        top.scatter(
            first["time"][labelled],
            first["value"][labelled],
            s=30,
            facecolors="none",
            edgecolors="tab:orange",
            label="labelled anomaly",
        )
    top.scatter(
        first["time"][first["flag"]], first["value"][first["flag"]], marker="x", color="tab:red", s=18, label="flagged"
    )
    top.legend(fontsize=7)
    top.set_title(f"test period of series {first['series'].iloc[0]}")
    bottom.plot(first["time"], first["score"], lw=0.8)
    bottom.axhline(threshold, color="tab:red", ls="--", label="threshold (chosen on val)")
    bottom.set_ylabel("score (|error| / std)" if score == "error" else "score (negative log-likelihood)")
    bottom.legend(fontsize=7)
    return fig


def plots(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, Figure]:
    own = info.task_info
    return {"anomaly_flags.png": anomaly_flags(flags_table(out, info), threshold=own.threshold, score=own.score)}


def check(cfg: Config) -> None:
    check_layout(cfg, task="anomaly", layout="series")
    if cfg.data.window.normalize != "none":
        raise ValueError("data.window.normalize is for task: forecast; anomaly scores values in the data's units")
    if cfg.model.likelihood in ("quantile", "negative_binomial"):
        raise ValueError(
            f"model.likelihood {cfg.model.likelihood} is for task: forecast; anomaly takes gaussian or student_t"
        )
    if cfg.data.anomaly_score == "nll" and cfg.model.likelihood is None:
        raise ValueError(
            "data.anomaly_score nll needs a predictive distribution: set model.likelihood to gaussian or student_t"
        )
    if cfg.data.window.season != 1:
        raise ValueError(
            "data.window.season is for task: forecast (its seasonal-naive baseline); anomaly's baseline is the z-score "
            "of the value: remove it"
        )
    if cfg.data.anomaly_quantile is not None and cfg.data.columns.label is not None:
        raise ValueError(
            "data.anomaly_quantile is not read when data.columns.label is set (the threshold is then the best F1 on "
            "validation); remove one of them"
        )


TASK = Task(
    name="anomaly",
    layout="series",
    info_type=AnomalyInfo,
    prepare=prepare,
    loss_terms=loss_terms,
    test_metrics=test_metrics,
    val_metric="mae",
    calibrate=calibrate,
    export=flags_table,
    inference_rows=inference_rows,
    outputs=outputs,
    combine=combine,
    check=check,
    plots=plots,
    output_units=output_units,
    higher_is_better=("auroc", "f1", "precision", "recall"),
    prepare_reads=("model.likelihood",),
    loss_options=loss_options,
)
