"""`classify`: sequence -> class. Cross-entropy; accuracy and macro-F1 against the majority class.

Labels may be ints or strings; they are mapped to class ids by the training split's sorted
labels (the mapping is saved with the model), and a label seen only in val/test is an error.

Text (`data.text`): the sequence column holds strings, tokenized in Ray Data by a tokenizer fitted
on the training split (pipeline/data/tokenize.py; the model embeds the ids). Two more baselines
are scored on the same test rows: TF-IDF + logistic regression, and the source's own scorer if it
has one (`pipeline.tasks.text_baselines`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from pipeline.data.scaling import fit_input_stats
from pipeline.data.splitting import SPLITS, canonical_rows, data_errors, split_rows
from pipeline.data.tokenize import TextInfo, fit_tokenizer, texts_of, tokenize_batch
from pipeline.data.transforms import encode_labels, label_strings
from pipeline.errors import DataError
from pipeline.tasks import DataInfo, Prepared, Task, TaskInfo, text_baselines
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
    return batch.set_column(batch.schema.get_field_index("y"), "y", pa.array(ids, pa.int64()))


def _with_baselines(batch: pa.Table, *, tfidf, scorer, classes: list[str]) -> pa.Table:
    """Test rows + the text baselines' class ids (`baseline_tfidf`, `baseline_lexicon`)."""
    texts = texts_of(batch, column="x")
    batch = batch.append_column("baseline_tfidf", pa.array(tfidf.predict(texts).astype(np.int64)))
    if scorer is not None:
        ids = encode_labels(np.asarray(scorer(texts), dtype=object), classes=classes, column="the lexicon baseline")
        batch = batch.append_column("baseline_lexicon", pa.array(ids))
    return batch


def _tokenized(
    splits: tuple[ray.data.Dataset, ...], cfg: DataConfig, *, classes: list[str], path: str
) -> tuple[tuple[ray.data.Dataset, ...], TextInfo]:
    """Fit the tokenizer and the TF-IDF baseline on the training texts, then tokenize every split in
    Ray Data (the test split also gets the baselines' predictions); truncations are counted."""
    text = cfg.text
    blocks = splits[0].select_columns(["x", "y"]).iter_batches(batch_format="pyarrow", batch_size=None)
    train = pa.concat_tables(list(blocks))  # the training texts, on the driver: the tokenizer and TF-IDF fit here
    texts = texts_of(train, column="x")
    info = fit_tokenizer(
        [texts],
        kind=text.tokenizer,
        vocab_size=text.vocab_size,
        lowercase=text.lowercase,
        max_tokens=text.max_tokens,
        keep_whole=text.keep_whole,
    )
    tfidf = text_baselines.tfidf_logreg(texts, train.column("y").to_numpy())
    baselines = functools.partial(
        _with_baselines, tfidf=tfidf, scorer=text_baselines.source_scorer(cfg.source), classes=classes
    )
    tokenize = functools.partial(tokenize_batch, column="x", info=info)
    with data_errors(path):
        out = []
        for name, split in zip(SPLITS, splits):
            if name == "test":
                split = split.map_batches(baselines, batch_format="pyarrow")
            out.append(split.map_batches(tokenize, batch_format="pyarrow").materialize())
        info.truncated = {name: int(split.sum("truncated") or 0) for name, split in zip(SPLITS, out)}
    return tuple(out), info


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str) -> Prepared:
    text = cfg.text is not None
    train, val, test = split_rows(canonical_rows(ds, cfg, kind="class", text=text), cfg, path=path)
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
    text_info = None
    if text:
        (train, val, test), text_info = _tokenized((train, val, test), cfg, classes=classes, path=path)
    stats = fit_input_stats(train, standardize=cfg.input_scaling == "standard" and not text)
    info = DataInfo(
        task="classify",
        target="class",
        input_size=text_info.vocab_size if text_info else stats.channels,
        output_size=len(classes),
        max_len=stats.max_len,
        input_mean=stats.mean,
        input_std=stats.std,
        num_rows={"train": train.count(), "val": val.count(), "test": test.count()},
        task_info=ClassifyInfo(classes=classes, majority_class=int(counts.argmax())),
        text=text_info,
    )
    return Prepared(train=train, val=val, test=test, info=info)


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    rows = canonical_rows(ds, cfg, kind="class", mode="infer", text=info.tokens_in)
    if info.text is not None:  # the model's own tokenizer
        rows = rows.map_batches(functools.partial(tokenize_batch, column="x", info=info.text), batch_format="pyarrow")
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


def loss_terms(
    pred: torch.Tensor, y: torch.Tensor, *, label_smoothing: float = 0.0
) -> dict[str, tuple[torch.Tensor, int]]:
    import torch.nn.functional as F

    if pred.dim() == 3:  # an ensemble in training: each member's logits (M, B, K), each on its own loss
        from pipeline.model.ensemble import mean_log_probs

        members = pred.shape[0]
        ce = F.cross_entropy(pred.flatten(0, 1), y.repeat(members), reduction="sum", label_smoothing=label_smoothing)
        ce, pred = ce / members, mean_log_probs(pred)  # the members' mean loss; accuracy of their mean (B, K)
    else:
        ce = F.cross_entropy(pred, y, reduction="sum", label_smoothing=label_smoothing)  # pred: (B, K), y: (B,) ids
    correct = (pred.argmax(dim=1) == y).sum()
    return {"loss": (ce, len(y)), "accuracy": (correct.detach().double(), len(y))}


def test_metrics(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, float]:
    pred, y = out["pred"], out["y"]  # (N, K) logits, (N,) ids
    k = info.output_size
    y_hat = pred.argmax(axis=1)  # (N,)
    majority = np.full_like(y, info.task_info.majority_class)
    metrics = {
        "test_accuracy": accuracy(y_hat, y),
        "test_macro_f1": macro_f1(y_hat, y, num_classes=k),
        "baseline_test_accuracy": accuracy(majority, y),
        "baseline_test_macro_f1": macro_f1(majority, y, num_classes=k),
    }
    for name in TEXT_BASELINES:  # text: the baselines' predictions of the same rows
        if f"baseline_{name}" in out:
            ids = out[f"baseline_{name}"].reshape(len(y), -1)[:, 0].astype(np.int64)  # (N,)
            metrics[f"baseline_{name}_test_accuracy"] = accuracy(ids, y)
            metrics[f"baseline_{name}_test_macro_f1"] = macro_f1(ids, y, num_classes=k)
    return metrics


TEXT_BASELINES = ("tfidf", "lexicon")


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
