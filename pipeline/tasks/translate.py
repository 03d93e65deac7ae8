"""`translate`: source text -> target text, an encoder-decoder with attention (`pipeline.model.seq2seq`).

Each side has its own tokenizer fitted on the training split (`data.text` applies to both; the
target side adds <s> and </s>), applied in Ray Data to every split. Rows: x = source ids,
y = target ids, plus the texts themselves (`src`, `ref`) for scoring. Training is teacher forcing
(cross-entropy over target tokens + </s>, `train.label_smoothing`, padding ignored); the epoch
metric is token accuracy. The test split is decoded on the driver by beam search
(`pipeline.model.decoding`, `model.beam_size`) and scored with sacrebleu: BLEU, chrF and exact
match, beside the baseline that copies the source. References are the target texts as the target
tokenizer normalizes them (NFKC, lowercased when data.text.lowercase), the only forms the model
can produce.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.data.splitting import SPLITS, data_errors, split_labels, split_rows
from pipeline.data.tokenize import PAD_ID, TextInfo, encode_texts, fit_tokenizer, load_tokenizer, texts_of
from pipeline.tasks import DataInfo, Prepared, Task, TaskInfo
from pipeline.tasks.rules import check_layout

if TYPE_CHECKING:
    import ray.data
    import torch
    from matplotlib.figure import Figure

    from pipeline.config import Config, DataConfig, ModelConfig, TextConfig

SOURCE_COLUMN = "source"  # data.columns.source's default


@dataclass
class TranslateInfo(TaskInfo):
    target: TextInfo  # the target side's tokenizer (DataInfo.text is the source side's)
    max_target_tokens: int  # the longest training target, in tokens

    def __post_init__(self) -> None:
        if isinstance(self.target, dict):  # read back from JSON
            self.target = TextInfo(**self.target)


def text_config(cfg: DataConfig) -> TextConfig:
    from pipeline.config.data import TextConfig

    return cfg.text or TextConfig(tokenizer="bpe")


def _pairs(batch: pa.Table, *, source: str, target: str | None, split: str | None) -> pa.Table:
    """The user's columns -> (x: source text[, y: target text][, split]), every text checked."""
    columns = {"x": pa.array(texts_of(batch, column=source), pa.string())}
    if target is not None:
        columns["y"] = pa.array(texts_of(batch, column=target), pa.string())
    if split is not None:
        columns["split"] = split_labels(batch, column=split)
    return pa.table(columns)


def tokenize_pairs(batch: pa.Table, *, source: TextInfo, target: TextInfo) -> pa.Table:
    """Texts -> ids: x (source ids), y (target ids, when there is a target), the texts as src/ref."""
    x, cut = encode_texts(batch.column("x").to_pylist(), source)
    columns = {"x": x, "src": batch.column("x"), "truncated": pa.array(cut)}
    if "y" in batch.column_names:
        y, cut_y = encode_texts(batch.column("y").to_pylist(), target)
        columns |= {"y": y, "ref": batch.column("y"), "truncated_target": pa.array(cut_y)}
    return pa.table(columns)


def _texts(ds: ray.data.Dataset, column: str) -> list[str]:
    return [t for b in ds.select_columns([column]).iter_batches(batch_format="pyarrow") for t in b[column].to_pylist()]


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str) -> Prepared:
    pairs = functools.partial(
        _pairs, source=cfg.columns.source or SOURCE_COLUMN, target=cfg.columns.target, split=cfg.split_column
    )
    with data_errors(path):
        rows = ds.map_batches(pairs, batch_format="pyarrow", zero_copy_batch=True)
    splits = split_rows(rows, cfg, path=path)
    text = text_config(cfg)
    sides = {
        side: fit_tokenizer(
            [_texts(splits[0], column)],
            kind=text.tokenizer,
            vocab_size=text.vocab_size,
            lowercase=text.lowercase,
            max_tokens=text.max_tokens,
            decoder_side=side == "target",
            keep_whole=text.keep_whole,
        )
        for side, column in (("source", "x"), ("target", "y"))
    }
    tokenize = functools.partial(tokenize_pairs, **sides)
    with data_errors(path):
        train, val, test = (s.map_batches(tokenize, batch_format="pyarrow").materialize() for s in splits)
        for side, column in (("source", "truncated"), ("target", "truncated_target")):
            sides[side].truncated = {n: int(s.sum(column) or 0) for n, s in zip(SPLITS, (train, val, test))}
        lengths = [pc.max(pc.list_value_length(b["x"])).as_py() for b in train.iter_batches(batch_format="pyarrow")]
        target_lengths = [
            pc.max(pc.list_value_length(b["y"])).as_py() for b in train.iter_batches(batch_format="pyarrow")
        ]
    info = DataInfo(
        task="translate",
        target="sequence",
        input_size=sides["source"].vocab_size,
        output_size=sides["target"].vocab_size,
        max_len=int(max(lengths)),
        num_rows={"train": train.count(), "val": val.count(), "test": test.count()},
        task_info=TranslateInfo(target=sides["target"], max_target_tokens=int(max(target_lengths))),
        text=sides["source"],
    )
    return Prepared(train=train, val=val, test=test, info=info)


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    """Source texts (and target texts, if the data has them: then predict also scores) -> ids."""
    target = cfg.columns.target if cfg.columns.target in ds.schema().names else None
    pairs = functools.partial(_pairs, source=cfg.columns.source or SOURCE_COLUMN, target=target, split=None)
    tokenize = functools.partial(tokenize_pairs, source=info.text, target=info.task_info.target)
    return ds.map_batches(pairs, batch_format="pyarrow").map_batches(tokenize, batch_format="pyarrow")


def loss_terms(pred: torch.Tensor, y: torch.Tensor, *, label_smoothing: float = 0.0):
    """pred (B, T, V) logits for target + </s>, y (B, T) ids, PAD_ID after each end."""
    import torch.nn.functional as F

    real = y != PAD_ID  # (B, T)
    n = int(real.sum())
    ce = F.cross_entropy(
        pred.transpose(1, 2), y, ignore_index=PAD_ID, reduction="sum", label_smoothing=label_smoothing
    )  # (B, V, T) vs (B, T)
    correct = ((pred.argmax(dim=-1) == y) & real).sum()
    return {"loss": (ce, n), "accuracy": (correct.detach().double(), n)}


def decode(model, rows: pa.Table, *, info: DataInfo, model_cfg: ModelConfig) -> dict[str, Any]:
    """Rows (x ids, src[, ref]) -> each row's translation (`hyp`), by beam search, with its attention."""
    from pipeline.data.batches import collate_for
    from pipeline.model.decoding import translate_batch

    batch = collate_for(info)(rows)
    settings = model_cfg.decoding
    max_len = model_cfg.max_output_tokens or info.task_info.target.max_tokens
    found = translate_batch(
        model,
        batch["x"],
        batch["lengths"],
        beam=int(settings["beam_size"]),
        max_len=max_len,
        alpha=float(settings["length_penalty"]),
    )
    tok = load_tokenizer(info.task_info.target.tokenizer_json)
    out = {
        "hyp": np.asarray(tok.decode_batch(found.tokens), dtype=object),
        "hyp_ids": found.tokens,
        "attention": found.attention,
        "src": np.asarray(rows.column("src").to_pylist(), dtype=object),
        "src_ids": rows.column("x").to_pylist(),
    }
    if "ref" in rows.column_names:
        out["ref"] = np.asarray(rows.column("ref").to_pylist(), dtype=object)
    return out


def val_texts(model, batch: dict, *, info: DataInfo) -> tuple[list[str], list[str]]:
    """A validation batch decoded greedily -> (translations, references), the references decoded
    from their target ids (normalized text, as the test's references)."""
    from pipeline.data.tokenize import EOS_ID
    from pipeline.model.decoding import greedy_ids

    target = info.task_info.target
    found = greedy_ids(model.eval(), batch["x"], batch["lengths"], max_len=target.max_tokens)
    tok = load_tokenizer(target.tokenizer_json)
    refs = [[i for i in row if i not in (PAD_ID, EOS_ID)] for row in batch["y"].tolist()]
    return tok.decode_batch(found), tok.decode_batch(refs)


def text_scores(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Validation: corpus BLEU and chrF of greedy translations (exact match is the test's)."""
    got = scores(hyps, refs)
    return {"bleu": got["bleu"], "chrf": got["chrf"]}


def normalized(texts, info: TextInfo) -> list[str]:
    """Texts as the tokenizer normalizes them (NFKC, lowercase if set), spaces collapsed."""
    norm = load_tokenizer(info.tokenizer_json).normalizer
    return [" ".join((norm.normalize_str(t) if norm else t).split()) for t in texts]


def scores(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu's defaults: 13a tokenization, chrF with beta 2), exact match."""
    import sacrebleu

    return {
        "bleu": float(sacrebleu.corpus_bleu(hyps, [refs]).score),
        "chrf": float(sacrebleu.corpus_chrf(hyps, [refs]).score),
        "exact_match": float(np.mean([h.strip() == r.strip() for h, r in zip(hyps, refs)])) if refs else float("nan"),
    }


def test_metrics(out: dict[str, Any], info: DataInfo) -> dict[str, float]:
    target = info.task_info.target
    refs = normalized(out["ref"], target)
    model = scores(normalized(out["hyp"], target), refs)
    copy = scores(normalized(out["src"], target), refs)  # the baseline: the source, unchanged
    return {f"test_{k}": v for k, v in model.items()} | {f"baseline_test_{k}": v for k, v in copy.items()}


def outputs(out: dict[str, Any], info: DataInfo) -> dict[str, Any]:
    cols = {"source": out["src"], "translation": out["hyp"]}
    if "ref" in out:
        cols["reference"] = out["ref"]
    return cols


def export(out: dict[str, Any], info: DataInfo) -> pa.Table:
    """Every test sentence with its reference and translation (logged as test_translate.parquet)."""
    return pa.table({k: pa.array(list(v), pa.string()) for k, v in outputs(out, info).items()})


def attention_maps(out: dict[str, Any], info: DataInfo, *, rows: int = 4) -> Figure:
    """Where each output token looked: attention weights (output tokens x source tokens) of the
    first test sentences, the tokens on the axes."""
    from matplotlib.figure import Figure

    from pipeline.data.tokenize import id_tokens

    shown = list(range(min(rows, len(out["src"]))))
    fig = Figure(figsize=(5.5 * len(shown), 5), layout="constrained")
    for ax, i in zip(fig.subplots(1, len(shown), squeeze=False)[0], shown):
        source = id_tokens(out["src_ids"][i], info.text)
        output = id_tokens(out["hyp_ids"][i], info.task_info.target) + ["</s>"]
        weights = out["attention"][i][: len(output), : len(source)]  # (T_out, S)
        ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(source)), source, rotation=90, fontsize=7)
        ax.set_yticks(range(len(output)), output, fontsize=7)
        ax.set_title(f"test sentence {i}", fontsize=9)
    fig.suptitle("attention: each output token (rows) over the source tokens (columns)")
    return fig


def plots(out: dict[str, Any], info: DataInfo) -> dict[str, Figure]:
    return {"attention.png": attention_maps(out, info)}


def check(cfg: Config) -> None:
    check_layout(cfg, task="translate", layout="rows")
    text = text_config(cfg.data)
    if text.tokenizer == "word":
        raise ValueError(
            "data.text.tokenizer: word does not restore the spaces between words and punctuation when decoding a "
            "translation; set data.text.tokenizer: bpe (or char)"
        )
    if cfg.data.columns.sequence != "x":
        raise ValueError("translate reads data.columns.source and data.columns.target; remove data.columns.sequence")
    if cfg.model.pooling != "last":
        raise ValueError("model.pooling does not apply to translate: the decoder attends over every source step")
    if cfg.telemetry.enabled:
        raise ValueError("telemetry records single-stack models; translate has an encoder and a decoder: remove it")


TASK = Task(
    name="translate",
    layout="rows",
    info_type=TranslateInfo,
    prepare=prepare,
    loss_terms=loss_terms,
    test_metrics=test_metrics,
    val_metric="accuracy",
    inference_rows=inference_rows,
    outputs=outputs,
    check=check,
    plots=plots,
    export=export,
    decode=decode,
    val_texts=val_texts,
    text_scores=text_scores,
    extra_val_metrics=("bleu", "chrf"),
    higher_is_better=("accuracy", "bleu", "chrf", "exact_match"),
)
