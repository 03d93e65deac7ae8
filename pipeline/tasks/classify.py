"""`classify`: sequence -> class. Cross-entropy; accuracy and macro-F1 against the majority class.

Labels may be ints or strings; they are mapped to class ids by the training split's sorted
labels (the mapping is saved with the model), and a label seen only in val/test is an error.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import ray.data
import torch
import torch.nn.functional as F

from pipeline.config import DataConfig
from pipeline.errors import DataError
from pipeline.train.reductions import accuracy, macro_f1
from pipeline.data.scaling import fit_input_stats
from pipeline.tasks import DataInfo, Prepared, Task
from pipeline.data.splitting import canonical_rows, data_errors, split_rows
from pipeline.data.transforms import encode_labels, label_strings


def _encode(batch: pa.Table, *, classes: list[str], column: str) -> pa.Table:
    ids = encode_labels(label_strings(batch, column="y"), classes=classes, column=column)
    return batch.set_column(1, "y", pa.array(ids, pa.int64()))


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str) -> Prepared:
    train, val, test = split_rows(canonical_rows(ds, cfg, kind="class"), cfg, path=path)
    labels = np.concatenate([label_strings(b, column="y") for b in train.select_columns(["y"]).iter_batches(batch_format="pyarrow")])
    classes = sorted(set(labels), key=_label_order)
    if len(classes) < 2:
        raise DataError(f"{path}: column '{cfg.columns.target}' has {len(classes)} class in the training split; need at least 2")
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
        classes=classes,
        majority_class=int(counts.argmax()),
    )
    return Prepared(train=train, val=val, test=test, info=info)


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    rows = canonical_rows(ds, cfg, kind="class", mode="infer")
    if "y" not in rows.schema().names:
        return rows
    return rows.map_batches(functools.partial(_encode, classes=info.classes, column=cfg.columns.target), batch_format="pyarrow")


def outputs(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, np.ndarray]:
    logits = out["pred"]                                         # (B, K)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    classes = np.asarray(info.classes, dtype=object)
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
    ce = F.cross_entropy(pred, y, reduction="sum")              # pred: (B, K) logits, y: (B,) ids
    correct = (pred.argmax(dim=1) == y).sum()
    return {"loss": (ce, len(y)), "accuracy": (correct.detach().double(), len(y))}


def test_metrics(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, float]:
    pred, y = out["pred"], out["y"]                              # (N, K) logits, (N,) ids
    k = info.output_size
    y_hat = pred.argmax(axis=1)                                  # (N,)
    majority = np.full_like(y, info.majority_class)
    return {
        "test_accuracy": accuracy(y_hat, y),
        "test_macro_f1": macro_f1(y_hat, y, num_classes=k),
        "baseline_test_accuracy": accuracy(majority, y),
        "baseline_test_macro_f1": macro_f1(majority, y, num_classes=k),
    }


TASK = Task(name="classify", prepare=prepare, loss_terms=loss_terms, test_metrics=test_metrics, val_metric="accuracy", inference_rows=inference_rows, outputs=outputs)
