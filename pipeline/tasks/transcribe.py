"""`transcribe`: frames -> a label sequence of its own, shorter length, by CTC (`pipeline.model.ctc`).

Rows: x = float frames (T, C) (pen moves, audio features, any sensor), y = the transcript's label
ids. The alphabet is the training split's characters, fitted once and saved with the model (id 0
is CTC's blank, so a character c has id 1 + its place in the alphabet); a transcript character
never seen in training is an error naming it. A transcript that cannot be aligned to its frames
after `model.subsample` (fewer frames than labels plus the blanks between repeats) fails, or is
dropped and counted with `data.missing: drop`.

Training minimizes CTC's negative log-likelihood per label; every epoch the validation split is
decoded greedily on the workers and scored (`val_cer`, `val_wer`). The test split is decoded on
the driver by prefix beam search (`model.beam_size`) and scored with jiwer: character and word
error rates and sequence accuracy, beside the most frequent training transcript as the baseline,
overall and per value of `data.columns.group` if set (e.g. held-out fonts or voices).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.data.audio import AUDIO_COLUMN, PATH_COLUMN
from pipeline.data.scaling import fit_input_stats
from pipeline.data.splitting import SPLITS, data_errors, split_labels, split_rows
from pipeline.data.tokenize import texts_of
from pipeline.data.transforms import sequence_values
from pipeline.errors import DataError
from pipeline.tasks import DataInfo, Prepared, Task, TaskInfo
from pipeline.tasks.rules import check_layout
from pipeline.tasks.transcribe_report import PEER_PREFIX, export, outputs, plots, test_metrics, text_scores

if TYPE_CHECKING:
    import ray.data
    import torch

    from pipeline.config import Config, DataConfig, ModelConfig


@dataclass
class TranscribeInfo(TaskInfo):
    alphabet: list[str]  # label id i + 1 -> character (id 0 is the blank)
    most_frequent: str  # the baseline's answer: the most frequent training transcript
    subsample: int = 1  # frames per output step (model.subsample)
    dropped: dict[str, int] = field(default_factory=dict)  # unalignable rows dropped per split (data.missing: drop)
    audio: dict[str, Any] | None = None  # data.audio (AudioSpec's fields): the sequence column holds WAV audio

    @property
    def audio_spec(self):
        from pipeline.data.audio import AudioSpec

        return AudioSpec(**self.audio) if self.audio else None


def _rows(
    batch: pa.Table,
    *,
    frames: str,
    text: str | None,
    group: str | None,
    split: str | None,
    audio=None,
    peers: tuple[str, ...] = (),
) -> pa.Table:
    """The user's columns -> (x frames[, text][, group][, split]), every frame and transcript checked;
    with `audio` (an AudioSpec) the frames column holds WAV audio, featurized here."""
    if audio is not None:
        from pipeline.data.audio import audio_frames

        columns = {"x": audio_frames(batch, column=frames, spec=audio)}
        if PATH_COLUMN in batch.column_names:
            columns[PATH_COLUMN] = batch.column(PATH_COLUMN)
    else:
        sequence_values(batch, column=frames)  # lists of equal-width finite frames, none empty
        columns = {"x": batch.column(frames)}
    if text is not None:
        columns["text"] = pa.array(texts_of(batch, column=text), pa.string())
    if group is not None:
        if group not in batch.column_names:
            raise DataError(
                f"group column '{group}' is missing (columns: {batch.column_names}); fix data.columns.group"
            )
        columns["group"] = batch.column(group).cast(pa.string()).fill_null("")
    for peer in peers:  # other recognizers' transcripts, for the test split's baselines
        if peer not in batch.column_names:
            raise DataError(
                f"baseline column '{peer}' is missing (columns: {batch.column_names}); fix data.columns.baselines"
            )
        columns[f"{PEER_PREFIX}{peer}"] = batch.column(peer).cast(pa.string()).fill_null("")
    if split is not None:
        columns["split"] = split_labels(batch, column=split)
    return pa.table(columns)


def frame_rows(frames: list, info: DataInfo, *, audio: bool = False) -> pa.Table:
    """What a client sends -> rows (x), checked: (T, C) nested lists or arrays per row, or with
    `audio` (an audio model's) WAV files, bytes or paths, featurized as in training."""
    spec = info.task_info.audio_spec
    if audio:
        kind = pa.string() if all(isinstance(f, str) for f in frames) else pa.binary()
        return _rows(pa.table({"x": pa.array(frames, kind)}), frames="x", text=None, group=None, split=None, audio=spec)
    try:
        x = pa.array([np.asarray(f, dtype=np.float32).tolist() for f in frames], pa.list_(pa.list_(pa.float32())))
    except (ValueError, TypeError, pa.ArrowException) as err:
        raise DataError(f"frames must be (steps, features) numbers per row ({err}); send lists of float lists") from err
    return _rows(pa.table({"x": x}), frames="x", text=None, group=None, split=None)


def encode(texts: list[str], alphabet: list[str], *, where: str) -> list[list[int]]:
    """Transcripts -> label ids (1 + place in the alphabet); a character the alphabet lacks is an error."""
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    out = []
    for text in texts:
        try:
            out.append([index[c] for c in text])
        except KeyError as err:
            raise DataError(
                f"{where}: transcript {text!r} has the character {err.args[0]!r}, never seen in the "
                "training split; add training rows with it or drop those rows"
            ) from err
    return out


def labels(batch: pa.Table, *, alphabet: list[str], subsample: int, where: str) -> pa.Table:
    """Rows -> rows with y (label ids) and `alignable`: frames after subsampling are enough for CTC."""
    ids = encode(batch.column("text").to_pylist(), alphabet, where=where)
    frames = -(-pc.list_value_length(batch.column("x")).to_numpy(zero_copy_only=False) // subsample)  # ceil
    needed = np.fromiter((len(i) + sum(a == b for a, b in zip(i, i[1:])) for i in ids), np.int64, len(ids))
    return batch.append_column("y", pa.array(ids, pa.list_(pa.int64()))).append_column(
        "alignable", pa.array(frames >= needed)
    )


def _alignable(batch: pa.Table) -> pa.Table:
    return batch.filter(batch.column("alignable"))


def _audio_spec(cfg: DataConfig):
    from pipeline.data.audio import AudioSpec

    return AudioSpec(**cfg.audio.model_dump()) if cfg.audio is not None else None


def _text_column(cfg: DataConfig) -> str:
    return cfg.columns.target


def prepare(ds: ray.data.Dataset, cfg: DataConfig, *, path: str, model_cfg: ModelConfig) -> Prepared:
    rows = functools.partial(
        _rows,
        frames=cfg.columns.sequence,
        text=_text_column(cfg),
        group=cfg.columns.group,
        split=cfg.split_column,
        audio=_audio_spec(cfg),
        peers=tuple(cfg.columns.baselines),
    )
    keep = ("x", "text", *(["group"] if cfg.columns.group else []), *(PEER_PREFIX + p for p in cfg.columns.baselines))
    with data_errors(path):
        splits = split_rows(
            ds.map_batches(rows, batch_format="pyarrow", zero_copy_batch=True), cfg, path=path, keep=keep
        )
        texts = [
            t
            for b in splits[0].select_columns(["text"]).iter_batches(batch_format="pyarrow")
            for t in b["text"].to_pylist()
        ]
    alphabet = sorted(set("".join(texts)))
    subsample = model_cfg.subsample or 1
    out, dropped = [], {}
    with data_errors(path):
        for name, split in zip(SPLITS, splits):
            fn = functools.partial(labels, alphabet=alphabet, subsample=subsample, where=f"{name} split")
            split = split.map_batches(fn, batch_format="pyarrow").materialize()
            bad = split.count() - int(split.sum("alignable") or 0)
            if bad and cfg.missing != "drop":
                raise DataError(
                    f"{bad} transcript(s) of the {name} split are longer than their frames after model.subsample "
                    f"{subsample} allows (CTC cannot align them); lower model.subsample or set data.missing: drop"
                )
            dropped[name] = bad
            out.append(split.map_batches(_alignable, batch_format="pyarrow").materialize() if bad else split)
    train, val, test = out
    stats = fit_input_stats(train, standardize=cfg.input_scaling == "standard")
    info = DataInfo(
        task="transcribe",
        target="labels",
        input_size=stats.channels,
        output_size=len(alphabet) + 1,
        max_len=stats.max_len,
        input_mean=stats.mean,
        input_std=stats.std,
        num_rows={"train": train.count(), "val": val.count(), "test": test.count()},
        task_info=TranscribeInfo(
            alphabet=alphabet,
            most_frequent=Counter(texts).most_common(1)[0][0],
            subsample=subsample,
            dropped=dropped,
            audio=cfg.audio.model_dump() if cfg.audio is not None else None,
        ),
    )
    return Prepared(train=train, val=val, test=test, info=info)


def inference_rows(ds: ray.data.Dataset, cfg: DataConfig, info: DataInfo, *, path: str) -> ray.data.Dataset:
    """Frames (and transcripts and groups, if the data has them: then predict and evaluate score);
    a folder of WAV files gives an `audio` column (and each file's `path`)."""
    names = ds.schema().names
    text = _text_column(cfg) if _text_column(cfg) in names else None
    group = cfg.columns.group if cfg.columns.group in names else None
    spec = info.task_info.audio_spec
    frames = AUDIO_COLUMN if spec is not None and cfg.columns.sequence not in names else cfg.columns.sequence
    peers = tuple(p for p in cfg.columns.baselines if p in names)
    fn = functools.partial(_rows, frames=frames, text=text, group=group, split=None, audio=spec, peers=peers)
    return ds.map_batches(fn, batch_format="pyarrow")


def loss_terms(pred: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, int]]:
    """pred (B, T', V) logits, NaN past each end; y (B, L) label ids, 0 past each end. The loss is
    CTC's negative log-likelihood per label; `infeasible` counts rows no alignment fits (their loss
    is zeroed, so they give no gradient)."""
    import torch.nn.functional as F

    from pipeline.model.ctc import BLANK, infeasible, log_probs, output_lengths

    frames, label_lengths = output_lengths(pred), (y != BLANK).sum(dim=1)  # (B,), (B,)
    nll = F.ctc_loss(
        log_probs(pred).transpose(0, 1),  # (T', B, V)
        y,
        frames,
        label_lengths,
        blank=BLANK,
        reduction="none",
        zero_infinity=True,
    )  # (B,)
    bad = infeasible(label_lengths, y, frames)
    return {"loss": (nll.sum(), int(label_lengths.sum())), "infeasible": (bad.sum().double(), int(y.shape[0]))}


def texts(ids: list[list[int]], alphabet: list[str]) -> list[str]:
    return ["".join(alphabet[i - 1] for i in row if i > 0) for row in ids]


def decode(model, rows: pa.Table, *, info: DataInfo, model_cfg: ModelConfig) -> dict[str, Any]:
    """Rows (x frames[, text][, group]) -> each row's transcript (`hyp`) by prefix beam search, with
    its per-frame posteriors."""
    import torch

    from pipeline.data.batches import collate_for
    from pipeline.model.ctc import decode_batch, output_lengths

    batch = collate_for(info)(rows)
    with torch.no_grad():
        logits = model(batch["x"], batch["lengths"])  # (B, T', V)
    found, posteriors = decode_batch(logits, beam=int(model_cfg.decoding["beam_size"]))
    n = output_lengths(logits).tolist()
    out = {
        "hyp": np.asarray(texts(found, info.task_info.alphabet), dtype=object),
        "posteriors": [posteriors[i, : n[i]] for i in range(len(n))],  # (T'_i, V) each
        "frames": [batch["x"][i, :length].numpy() for i, length in enumerate(batch["lengths"].tolist())],
    }
    for name in rows.column_names:
        if name in ("text", "group", PATH_COLUMN) or name.startswith(PEER_PREFIX):
            out["ref" if name == "text" else name] = np.asarray(rows.column(name).to_pylist(), dtype=object)
    return out


def val_texts(model, batch: dict, *, info: DataInfo) -> tuple[list[str], list[str]]:
    """A validation batch decoded greedily -> (transcripts, references)."""
    from pipeline.model.ctc import greedy, log_probs, output_lengths

    model.eval()
    logits = model(batch["x"], batch["lengths"])
    lp, n = log_probs(logits).float().cpu().numpy(), output_lengths(logits).tolist()
    alphabet = info.task_info.alphabet
    return texts([greedy(lp[i, : n[i]]) for i in range(len(n))], alphabet), texts(batch["y"].tolist(), alphabet)


def check(cfg: Config) -> None:
    check_layout(cfg, task="transcribe", layout="rows")
    if cfg.data.audio is not None and cfg.data.columns.sequence == "x":
        raise ValueError("data.audio: set data.columns.sequence to the column holding the WAV audio (bytes or paths)")
    if cfg.model.pooling != "last":
        raise ValueError("model.pooling does not apply to transcribe, which labels every frame; remove it")
    if cfg.telemetry.enabled:
        raise ValueError("telemetry is not recorded for transcribe models yet; remove telemetry")


TASK = Task(
    name="transcribe",
    layout="rows",
    info_type=TranscribeInfo,
    prepare=prepare,
    loss_terms=loss_terms,
    test_metrics=test_metrics,
    val_metric="cer",
    inference_rows=inference_rows,
    outputs=outputs,
    check=check,
    plots=plots,
    export=export,
    decode=decode,
    val_texts=val_texts,
    text_scores=text_scores,
    extra_val_metrics=("wer", "infeasible"),
    higher_is_better=("seq_accuracy",),
    prepare_reads=("model.subsample",),
)
