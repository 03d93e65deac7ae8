"""`transcribe`'s report, after decoding: the scores (jiwer CER/WER, sequence accuracy) of the model,
the most-frequent-transcript baseline and other recognizers' transcripts, overall and per group;
the per-row table and the CTC alignment plot."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from pipeline.data.audio import PATH_COLUMN

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pipeline.tasks import DataInfo

PEER_PREFIX = "peer_"  # rows' columns holding other recognizers' transcripts (data.columns.baselines)


def scores(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Character and word error rates (jiwer, over the whole corpus) and exact-sequence accuracy."""
    import jiwer

    if not refs:
        return {"cer": float("nan"), "wer": float("nan"), "seq_accuracy": float("nan")}
    return {
        "cer": float(jiwer.cer(list(refs), list(hyps))),
        "wer": float(jiwer.wer(list(refs), list(hyps))),
        "seq_accuracy": float(np.mean([h == r for h, r in zip(hyps, refs)])),
    }


def text_scores(hyps: list[str], refs: list[str]) -> dict[str, float]:
    got = scores(hyps, refs)
    return {"cer": got["cer"], "wer": got["wer"]}


def _name(group: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", group.lower()).strip("_") or "none"


def test_metrics(out: dict[str, Any], info: DataInfo) -> dict[str, float]:
    """test_* of the model, baseline_test_* of the most frequent training transcript, and
    baseline_<peer>_test_* of each other recognizer's transcripts; overall and per group."""
    refs = list(out["ref"])
    answers = {"": list(out["hyp"]), "baseline_": [info.task_info.most_frequent] * len(refs)}
    answers |= {
        f"baseline_{k.removeprefix(PEER_PREFIX)}_": list(v) for k, v in out.items() if k.startswith(PEER_PREFIX)
    }
    groups = np.asarray(out.get("group", [""] * len(refs)), dtype=object)
    parts = {"": np.arange(len(refs))} | {
        f"_{_name(g)}": np.flatnonzero(groups == g) for g in sorted(set(groups.tolist())) if g
    }
    metrics = {}
    for prefix, hyps in answers.items():
        for suffix, rows in parts.items():
            got = scores([hyps[i] for i in rows], [refs[i] for i in rows])
            metrics |= {f"{prefix}test_{k}{suffix}": v for k, v in got.items()}
    return metrics


def outputs(out: dict[str, Any], info: DataInfo) -> dict[str, Any]:
    cols = {PATH_COLUMN: out[PATH_COLUMN]} if PATH_COLUMN in out else {}  # a folder of WAV files: which file
    cols["transcript"] = out["hyp"]
    if "ref" in out:
        cols["reference"] = out["ref"]
    if "group" in out:
        cols["group"] = out["group"]
    return cols


def export(out: dict[str, Any], info: DataInfo) -> pa.Table:
    """Every test row's reference and transcript (logged as test_transcribe.parquet), with its CER."""
    import jiwer

    cols = {k: pa.array(list(v), pa.string()) for k, v in outputs(out, info).items()}
    cer = [float(jiwer.cer(r, h)) for r, h in zip(out["ref"], out["hyp"])]
    return pa.table(cols | {"cer": pa.array(cer, pa.float64())})


def alignments(out: dict[str, Any], info: DataInfo, *, rows: int = 4) -> Figure:
    """For the first test rows: the input above (pen strokes for (dx, dy, pen_up) frames, else the
    frames as an image) and the CTC posteriors of the labels per output frame below."""
    from matplotlib.figure import Figure

    shown = list(range(min(rows, len(out["hyp"]))))
    fig = Figure(figsize=(4.5 * len(shown), 5.5), layout="constrained")
    axes = fig.subplots(2, len(shown), squeeze=False, height_ratios=[1, 1.4])
    labels_of = ["_"] + ["␣" if c == " " else c for c in info.task_info.alphabet]  # "_" is the blank
    for col, i in enumerate(shown):
        top, bottom = axes[0][col], axes[1][col]
        frames = out["frames"][i]  # (T, C)
        if frames.shape[1] == 3 and set(np.unique(frames[:, 2])) <= {0.0, 1.0}:  # pen moves: draw the strokes
            xy, up = np.cumsum(frames[:, :2], axis=0), frames[:, 2] > 0.5
            for stroke in np.split(np.arange(len(xy)), np.flatnonzero(up)):
                top.plot(xy[stroke, 0], xy[stroke, 1], "k-", lw=1)
            top.set_aspect("equal")
            top.axis("off")
        else:
            top.imshow(frames.T, aspect="auto", origin="lower", cmap="magma")
            top.set_xlabel("frame")
        post = out["posteriors"][i]  # (T', V)
        used = sorted(set(np.flatnonzero(post.max(axis=0) > 0.1)) | {0})
        bottom.imshow(post[:, used].T, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        bottom.set_yticks(range(len(used)), [labels_of[u] for u in used], fontsize=7)
        bottom.set_xlabel("output frame")
        truth = out["ref"][i] if "ref" in out else "?"
        top.set_title(f"truth: {truth!r}\ndecoded: {out['hyp'][i]!r}", fontsize=9)
    fig.suptitle("CTC alignment: label posteriors per output frame (_ = blank, ␣ = space)")
    return fig


def plots(out: dict[str, Any], info: DataInfo) -> dict[str, Figure]:
    return {"alignment.png": alignments(out, info)}
