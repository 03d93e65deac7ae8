"""The served text model: an MLflow pyfunc that takes a string column `text` (or, for transcribe,
a column `frames` of (T, C) float lists) and answers as `lstmpipe predict` does (classify on text:
`predicted`, `probability`; translate: `source`, `translation`; transcribe: `transcript`),
tokenizing with the model's own tokenizers and decoding by beam search inside.

Logged as a model from code (`text_model_code.py`, no pickled Python object) with the run's
checkpoint as its artifact and this package as its code, so `mlflow.pyfunc.load_model` in a
fresh process (or `mlflow models serve`) needs only the pinned requirements.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

TEXT_COLUMN = "text"
FRAMES_COLUMN = "frames"  # transcribe
AUDIO_COLUMN = "audio"  # transcribe from audio: WAV bytes or paths


def input_column(info) -> str:
    """The column the served model reads: text, or a transcriber's frames (an audio transcriber also
    takes WAV files, bytes or paths, in `audio` instead)."""
    return FRAMES_COLUMN if info.task == "transcribe" else TEXT_COLUMN


class TextModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from pipeline.serve.loading import load_dir

        self.trained = load_dir(context.artifacts["checkpoint"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from pipeline.serve.text import answer

        info = self.trained.info
        column = input_column(info)
        if isinstance(model_input, pd.DataFrame) and info.task == "transcribe" and info.task_info.audio:
            if AUDIO_COLUMN in model_input.columns and model_input[AUDIO_COLUMN].notna().all():
                return pd.DataFrame(answer(self.trained, model_input[AUDIO_COLUMN].tolist(), audio=True))
        if isinstance(model_input, pd.DataFrame):
            if column not in model_input.columns:
                raise ValueError(f"send a column '{column}' (got {list(model_input.columns)})")
            values = model_input[column].tolist()
        else:
            values = list(model_input)
        if column == TEXT_COLUMN and not all(isinstance(t, str) for t in values):
            raise ValueError(f"column '{TEXT_COLUMN}' must hold strings")
        return pd.DataFrame(answer(self.trained, values))
