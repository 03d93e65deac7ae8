"""Text in, answers out, for a trained text model (classify on text, translate), and frames in,
text out for a transcriber: the served pyfunc (`pipeline.track.text_model`), `lstmpipe translate`
and the tests share this one path.

The texts are tokenized with the model's own tokenizers (saved in its data info), then the task
answers as `lstmpipe predict` does: a class and its probability, or a translation by beam search.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from pipeline.data.batches import collate_for
from pipeline.data.tokenize import tokenize_batch
from pipeline.errors import DataError
from pipeline.serve.loading import Trained
from pipeline.tasks import get_task


def text_rows(texts: list, trained: Trained, *, audio: bool = False) -> pa.Table:
    """Texts -> rows as the model's task prepares them (token ids; the texts kept for translate);
    a transcriber's frames ((T, C) lists) -> rows of frames, checked as training checked them."""
    info = trained.info
    if info.task == "transcribe":
        from pipeline.tasks.transcribe import frame_rows

        return frame_rows(texts, info, audio=audio)
    if info.text is None:
        raise DataError(f"this {info.task} model reads numeric sequences, not text; use lstmpipe predict")
    batch = pa.table({"x": pa.array(texts, pa.string())})
    if info.task == "translate":
        from pipeline.tasks.translate import tokenize_pairs

        return tokenize_pairs(batch, source=info.text, target=info.task_info.target)
    return tokenize_batch(batch, column="x", info=info.text)


def read_lines(path: Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from err
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}; pass a readable text file") from err
    return [line for line in lines if line.strip()]


def answer(trained: Trained, texts: list, *, audio: bool = False) -> dict[str, Any]:
    """The task's output columns (`Task.outputs`) for each text (or a transcriber's frames, or with
    `audio` its WAV files)."""
    if not texts:
        raise DataError("no texts given; pass at least one")
    rows, task, info = text_rows(texts, trained, audio=audio), get_task(trained.info.task), trained.info
    with torch.no_grad():
        if task.decode is not None:
            out = task.decode(trained.model, rows, info=info, model_cfg=trained.config.model)
        else:
            batch = collate_for(info)(rows)
            out = {"pred": trained.model(batch["x"], batch["lengths"]).numpy()}
    return {name: list(values) for name, values in task.outputs(out, info).items()}
