"""`generate`: next-step prediction over a sequence's own steps, then sampling new sequences.

Two kinds of sequences, told apart by the column's type:
  tokens  a string (read as characters) or a list of integers: softmax over the vocabulary
  frames  a list of 0/1 vectors (e.g. piano-roll frames, several keys at once): one Bernoulli per unit
Inputs are the steps 0..T-2 (token ids, embedded by the model: `model.embedding_dim`), targets the
steps 1..T-1 (`pipeline.data.transforms.next_step`).
Metric: negative log-likelihood per step in nats (and perplexity for tokens) against the
unigram / independent-Bernoulli model fitted on the training split.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from pipeline.data.splitting import SPLITS, data_errors, split_rows
from pipeline.data.transforms import PAD, _column, sequence_values
from pipeline.errors import DataError
from pipeline.tasks import DataInfo, Prepared, Task, TaskInfo
from pipeline.tasks.rules import check_layout

if TYPE_CHECKING:
    import ray.data
    import torch

    from pipeline.config import Config, DataConfig


@dataclass
class GenerateInfo(TaskInfo):
    marginal: list[float]  # unigram / per-key on-rate over the training split (the baseline)
    first_step: list[float]  # the same for first steps (where sampling starts)
    vocab: list[str] | None = None  # tokens: token id -> the character or integer token
    token_kind: Literal["char", "int"] | None = None


def sequence_kind(dtype: pa.DataType) -> str:
    """The column's Arrow type -> "char", "int" (token sequences) or "frames"."""
    if pat.is_string(dtype) or pat.is_large_string(dtype):
        return "char"
    if pat.is_list(dtype) or pat.is_large_list(dtype) or pat.is_fixed_size_list(dtype):
        inner = dtype.value_type
        if pat.is_integer(inner):
            return "int"
        if pat.is_list(inner) or pat.is_large_list(inner) or pat.is_fixed_size_list(inner):
            return "frames"
    raise DataError(
        f"generate needs a string, list<int> (tokens) or list<list<number>> (0/1 frames) column; got {dtype}"
    )


def token_codes(batch: pa.Table, *, column: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows -> (codes (sum T_i,) int64: Unicode code points or the integers, lengths (B,))."""
    arr = _column(batch, column)
    if arr.null_count:
        raise DataError(f"column '{column}' has {arr.null_count} null sequence(s); drop them")
    if kind == "char":
        lengths = pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
        text = "".join(arr.to_pylist())
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    else:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = arr.flatten()
        if flat.null_count:
            raise DataError(f"column '{column}' has {flat.null_count} null token(s); drop or fill them")
        codes = flat.to_numpy(zero_copy_only=False).astype(np.int64)
    _check_lengths(lengths, column=column)
    return codes, lengths


def _check_lengths(lengths: np.ndarray, *, column: str) -> None:
    short = int((lengths < 2).sum())
    if short:
        raise DataError(
            f"column '{column}' has {short} sequence(s) shorter than 2 steps; next-step prediction needs at least 2"
        )


def encode_tokens(codes: np.ndarray, *, vocab_codes: np.ndarray, column: str) -> np.ndarray:
    """codes -> ids by the sorted vocabulary; a token outside it is an error."""
    ids = np.clip(np.searchsorted(vocab_codes, codes), 0, len(vocab_codes) - 1)
    unseen = codes != vocab_codes[ids]
    if unseen.any():
        raise DataError(f"column '{column}' has {int(unseen.sum())} token(s) outside the model's vocabulary")
    return ids


def _codes(batch: pa.Table, *, column: str, kind: str) -> pa.Table:
    codes, _ = token_codes(batch, column=column, kind=kind)
    return pa.table({"code": np.unique(codes)})


def _encode(batch: pa.Table, *, column: str, kind: str, vocab_codes: np.ndarray) -> pa.Table:
    codes, lengths = token_codes(batch, column=column, kind=kind)
    ids = encode_tokens(codes, vocab_codes=vocab_codes, column=column)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    out = {"x": pa.ListArray.from_arrays(offsets, pa.array(ids, pa.int64()))}
    return _with_split(out, batch)


def _frames(batch: pa.Table, *, column: str) -> pa.Table:
    values, lengths, _ = sequence_values(batch, column=column)
    _check_lengths(lengths, column=column)
    off = int(((values != 0) & (values != 1)).sum())
    if off:
        raise DataError(f"column '{column}' has {off} frame value(s) other than 0 and 1; frames are multi-hot")
    return _with_split({"x": _column(batch, column)}, batch)


def _with_split(out: dict, batch: pa.Table) -> pa.Table:
    if "split" in batch.column_names:
        out["split"] = batch.column("split").cast(pa.string())
    return pa.table(out)


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str) -> Prepared:
    column = cfg.columns.sequence
    if column not in ds.schema().names:
        raise DataError(
            f"{path}: column '{column}' is missing (columns: {ds.schema().names}); set data.columns.sequence"
        )
    kind = sequence_kind(ds.schema().types[ds.schema().names.index(column)])
    keep = [column, *([cfg.split_column] if cfg.split_column else [])]
    rows = ds.select_columns(keep)
    if cfg.split_column:
        rows = rows.rename_columns({cfg.split_column: "split"})
    with data_errors(path):
        if kind == "frames":
            rows = rows.map_batches(functools.partial(_frames, column=column), batch_format="pyarrow")
            vocab_codes = None
        else:
            vocab_codes = np.sort(
                np.asarray(
                    rows.map_batches(
                        functools.partial(_codes, column=column, kind=kind), batch_format="pyarrow"
                    ).unique("code"),
                    dtype=np.int64,
                )
            )
            encode = functools.partial(_encode, column=column, kind=kind, vocab_codes=vocab_codes)
            rows = rows.map_batches(encode, batch_format="pyarrow")
    train, val, test = split_rows(rows, cfg, path=path, keep=("x",))
    marginal, first, max_len, width = _marginals(
        train, kind=kind, size=None if vocab_codes is None else len(vocab_codes)
    )
    info = DataInfo(
        task="generate",
        target="frames" if kind == "frames" else "tokens",
        input_size=width,
        output_size=width,
        max_len=max_len,
        num_rows=dict(zip(SPLITS, (d.count() for d in (train, val, test)))),
        task_info=GenerateInfo(
            marginal=marginal,
            first_step=first,
            token_kind=None if kind == "frames" else kind,
            vocab=None if vocab_codes is None else [chr(c) if kind == "char" else str(c) for c in vocab_codes],
        ),
    )
    return Prepared(train=train, val=val, test=test, info=info)


def _marginals(train: ray.data.Dataset, *, kind: str, size: int | None) -> tuple[list[float], list[float], int, int]:
    """Over the training split: per-unit rate of all steps and of first steps, max length, width."""
    total = first = None
    steps = rows = max_len = 0
    for batch in train.select_columns(["x"]).iter_batches(batch_format="pyarrow", batch_size=4096):
        values, lengths, width = sequence_values(batch, column="x")
        if kind == "frames":
            frames = values.reshape(-1, width)  # (sum T_i, K)
            all_sum, first_sum = frames.sum(0), frames[np.cumsum(lengths) - lengths].sum(0)
        else:
            ids = values.astype(np.int64)
            all_sum = np.bincount(ids, minlength=size)
            first_sum = np.bincount(ids[np.cumsum(lengths) - lengths], minlength=size)
        total = all_sum if total is None else total + all_sum
        first = first_sum if first is None else first + first_sum
        steps, rows, max_len = (
            steps + len(values) // (width if kind == "frames" else 1),
            rows + len(lengths),
            max(max_len, int(lengths.max())),
        )
    width = len(total)
    if kind == "frames":  # Bernoulli rates, kept off 0 and 1 so every frame has a finite likelihood
        clip = lambda p: np.clip(p, 1e-4, 1 - 1e-4)
        return clip(total / steps).tolist(), clip(first / rows).tolist(), max_len, width
    # add-one smoothing: a token seen only in val/test still has a finite unigram likelihood
    return (
        ((total + 1) / (total.sum() + width)).tolist(),
        ((first + 1) / (first.sum() + width)).tolist(),
        max_len,
        width,
    )


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    column = cfg.columns.sequence
    if column not in ds.schema().names:
        raise DataError(
            f"{path}: column '{column}' is missing (columns: {ds.schema().names}); set data.columns.sequence"
        )
    kind = sequence_kind(ds.schema().types[ds.schema().names.index(column)])
    if (kind == "frames") != (info.target == "frames"):
        raise DataError(f"{path}: column '{column}' holds {kind} sequences but the model was trained on {info.target}")
    rows = ds.select_columns([column])
    with data_errors(path):
        if kind == "frames":
            return rows.map_batches(functools.partial(_frames, column=column), batch_format="pyarrow").materialize()
        codes = np.array([ord(v) if kind == "char" else int(v) for v in info.task_info.vocab], np.int64)
        encode = functools.partial(_encode, column=column, kind=kind, vocab_codes=codes)
        return rows.map_batches(encode, batch_format="pyarrow").materialize()


def outputs(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, np.ndarray]:
    """Per sequence: NLL per step (nats) and its number of predicted steps."""
    y = out["y"]
    real = (y != PAD) if y.dtype.kind == "i" else ~np.isnan(y[..., 0])  # (B, T)
    per_step = np.zeros(real.shape)
    per_step[real] = step_nll(out["pred"], y)
    steps = real.sum(axis=1)
    return {"nll_per_step": per_step.sum(axis=1) / np.maximum(steps, 1), "steps": steps}


def loss_terms(pred: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, int]]:
    import torch
    import torch.nn.functional as F

    if y.dtype == torch.int64:  # tokens: pred (B, T, V), y (B, T), PAD past ends
        nll = F.cross_entropy(pred.flatten(0, 1), y.flatten(), ignore_index=PAD, reduction="sum")
        real = y != PAD
        correct = ((pred.argmax(-1) == y) & real).sum()
        n = int(real.sum())
        return {"loss": (nll, n), "nll": (nll.detach(), n), "accuracy": (correct.detach().double(), n)}
    real = ~torch.isnan(y[..., 0])  # frames: pred, y (B, T, K), NaN past ends
    nll = F.binary_cross_entropy_with_logits(pred[real], y[real], reduction="sum")  # summed over keys
    n = int(real.sum())
    return {"loss": (nll, n), "nll": (nll.detach(), n)}


def step_nll(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-step NLL (nats) of real steps, flat: tokens (N, T, V) logits + (N, T) ids; frames (N, T, K)."""
    if y.dtype.kind == "i":
        real = y != PAD
        logits = pred[real]  # (S, V)
        log_z = np.logaddexp.reduce(logits, axis=1)
        return log_z - logits[np.arange(len(logits)), y[real]]
    real = ~np.isnan(y[..., 0])
    logits, target = pred[real], y[real]  # (S, K)
    return (np.logaddexp(0, logits) - target * logits).sum(axis=1)  # BCE with logits, summed over keys


def baseline_nll(y: np.ndarray, marginal: np.ndarray) -> np.ndarray:
    """Per-step NLL of the unigram / independent-Bernoulli model with the training rates."""
    if y.dtype.kind == "i":
        return -np.log(marginal[y[y != PAD]])
    target = y[~np.isnan(y[..., 0])]  # (S, K)
    return -(target * np.log(marginal) + (1 - target) * np.log1p(-marginal)).sum(axis=1)


def test_metrics(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, float]:
    nll = float(step_nll(out["pred"], out["y"]).mean())
    base = float(baseline_nll(out["y"], np.asarray(info.task_info.marginal)).mean())
    metrics = {"test_nll": nll, "baseline_test_nll": base}
    if info.target == "tokens":
        metrics |= {"test_perplexity": float(np.exp(nll)), "baseline_test_perplexity": float(np.exp(base))}
    return metrics


def check(cfg: Config) -> None:
    check_layout(cfg, task="generate", layout="rows")
    if cfg.model.bidirectional:
        raise ValueError(
            "model.bidirectional reads the future, which next-step prediction must not see; set it false for generate"
        )
    if cfg.data.columns.target != "y":
        raise ValueError(
            "data.columns.target is not read by task: generate, whose target is each sequence's next step; remove it"
        )
    if cfg.data.input_scaling != "standard":
        raise ValueError(
            "data.input_scaling does not apply to task: generate (its inputs are tokens or 0/1 frames); remove it"
        )


TASK = Task(
    name="generate",
    layout="rows",
    info_type=GenerateInfo,
    prepare=prepare,
    loss_terms=loss_terms,
    test_metrics=test_metrics,
    val_metric="nll",
    extra_val_metrics=("accuracy",),
    inference_rows=inference_rows,
    outputs=outputs,
    check=check,
    higher_is_better=("accuracy",),
)
