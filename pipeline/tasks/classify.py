"""`classify`: sequence -> class. Cross-entropy; accuracy and macro-F1 against the majority class.

Labels may be ints or strings; they are mapped to class ids by the training split's sorted
labels (the mapping is saved with the model), and a label seen only in val/test is an error.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from pipeline.data.scaling import fit_input_stats
from pipeline.data.splitting import canonical_rows, data_errors, split_rows
from pipeline.data.transforms import encode_labels, label_strings
from pipeline.errors import DataError
from pipeline.tasks import DataInfo, Prepared, Task, TaskInfo
from pipeline.tasks.rules import check_layout

if TYPE_CHECKING:
    import ray.data
    import torch
    from matplotlib.figure import Figure

    from pipeline.config import Config, DataConfig


@dataclass
class ClassifyInfo(TaskInfo):
    classes: list[str]  # class id -> original label (the training split's, sorted)
    majority_class: int  # the majority-class baseline


def _encode(batch: pa.Table, *, classes: list[str], column: str) -> pa.Table:
    ids = encode_labels(label_strings(batch, column="y"), classes=classes, column=column)
    return batch.set_column(1, "y", pa.array(ids, pa.int64()))


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str) -> Prepared:
    train, val, test = split_rows(canonical_rows(ds, cfg, kind="class"), cfg, path=path)
    labels = np.concatenate(
        [label_strings(b, column="y") for b in train.select_columns(["y"]).iter_batches(batch_format="pyarrow")]
    )
    classes = sorted(set(labels), key=_label_order)
    if len(classes) < 2:
        raise DataError(
            f"{path}: column '{cfg.columns.target}' has {len(classes)} class in the training split; need at least 2"
        )
    encode = functools.partial(_encode, classes=classes, column=cfg.columns.target)
    with data_errors(path):
        train, val, test = (d.map_batches(encode, batch_format="pyarrow").materialize() for d in (train, val, test))
    counts = np.bincount(encode_labels(labels, classes=classes, column="y"), minlength=len(classes))
    stats = fit_input_stats(train, standardize=cfg.input_scaling == "standard")
    info = DataInfo(
        task="classify",
        target="class",
        input_size=stats.channels,
        output_size=len(classes),
        max_len=stats.max_len,
        input_mean=stats.mean,
        input_std=stats.std,
        num_rows={"train": train.count(), "val": val.count(), "test": test.count()},
        task_info=ClassifyInfo(classes=classes, majority_class=int(counts.argmax())),
    )
    return Prepared(train=train, val=val, test=test, info=info)


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    rows = canonical_rows(ds, cfg, kind="class", mode="infer")
    if "y" not in rows.schema().names:
        return rows
    return rows.map_batches(
        functools.partial(_encode, classes=info.task_info.classes, column=cfg.columns.target), batch_format="pyarrow"
    )


def outputs(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, np.ndarray]:
    logits = out["pred"]  # (B, K)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    classes = np.asarray(info.task_info.classes, dtype=object)
    cols = {"predicted": classes[prob.argmax(axis=1)], "probability": prob.max(axis=1)}
    if "y" in out:
        cols["actual"] = classes[out["y"]]
    return cols


def _label_order(label: str) -> tuple[int, float | str]:
    """Numeric labels in numeric order ("2" before "10"), then strings."""
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def loss_terms(pred: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, int]]:
    import torch.nn.functional as F

    ce = F.cross_entropy(pred, y, reduction="sum")  # pred: (B, K) logits, y: (B,) ids
    correct = (pred.argmax(dim=1) == y).sum()
    return {"loss": (ce, len(y)), "accuracy": (correct.detach().double(), len(y))}


def test_metrics(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, float]:
    pred, y = out["pred"], out["y"]  # (N, K) logits, (N,) ids
    k = info.output_size
    y_hat = pred.argmax(axis=1)  # (N,)
    majority = np.full_like(y, info.task_info.majority_class)
    return {
        "test_accuracy": accuracy(y_hat, y),
        "test_macro_f1": macro_f1(y_hat, y, num_classes=k),
        "baseline_test_accuracy": accuracy(majority, y),
        "baseline_test_macro_f1": macro_f1(majority, y, num_classes=k),
    }


def accuracy(y_hat: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(y_hat == y)) if len(y) else float("nan")


def macro_f1(y_hat: np.ndarray, y: np.ndarray, *, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in y or predicted (as scikit-learn)."""
    scores = []
    for k in range(num_classes):
        tp = int(np.sum((y_hat == k) & (y == k)))
        fp = int(np.sum((y_hat == k) & (y != k)))
        fn = int(np.sum((y_hat != k) & (y == k)))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def confusion_matrix(y_hat: np.ndarray, y: np.ndarray, *, classes: list[str]) -> Figure:
    from matplotlib.figure import Figure

    k = len(classes)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y, y_hat), 1)  # rows: true, columns: predicted
    fig = Figure(figsize=(1 + 0.5 * k, 1 + 0.5 * k), layout="tight")
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=90)
    ax.set_yticks(range(k), classes)
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("test confusion matrix")
    return fig


def plots(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, Figure]:
    return {
        "confusion_matrix.png": confusion_matrix(out["pred"].argmax(axis=1), out["y"], classes=info.task_info.classes)
    }


def check(cfg: Config) -> None:
    check_layout(cfg, task="classify", layout="rows")


TASK = Task(
    name="classify",
    layout="rows",
    info_type=ClassifyInfo,
    prepare=prepare,
    loss_terms=loss_terms,
    test_metrics=test_metrics,
    val_metric="accuracy",
    inference_rows=inference_rows,
    outputs=outputs,
    check=check,
    plots=plots,
    higher_is_better=("accuracy", "macro_f1"),
)
