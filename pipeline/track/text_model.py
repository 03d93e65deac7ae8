"""The served text model: an MLflow pyfunc that takes a string column `text` and answers as
`lstmpipe predict` does (classify on text: `predicted`, `probability`; translate: `source`,
`translation`), tokenizing with the model's own tokenizers and decoding by beam search inside.

Logged as a model from code (`text_model_code.py`, no pickled Python object) with the run's
checkpoint as its artifact and this package as its code, so `mlflow.pyfunc.load_model` in a
fresh process (or `mlflow models serve`) needs only the pinned requirements.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

TEXT_COLUMN = "text"


class TextModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from pipeline.serve.loading import load_dir

        self.trained = load_dir(context.artifacts["checkpoint"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from pipeline.serve.text import answer

        if isinstance(model_input, pd.DataFrame):
            if TEXT_COLUMN not in model_input.columns:
                raise ValueError(f"send a column '{TEXT_COLUMN}' of strings (got {list(model_input.columns)})")
            texts = model_input[TEXT_COLUMN].tolist()
        else:
            texts = list(model_input)
        if not all(isinstance(t, str) for t in texts):
            raise ValueError(f"column '{TEXT_COLUMN}' must hold strings")
        return pd.DataFrame(answer(self.trained, texts))
