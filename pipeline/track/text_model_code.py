"""The model-from-code script MLflow runs when it loads a served text model (`text_model.py`);
never imported by the package."""

import mlflow

from pipeline.track.text_model import TextModel

mlflow.models.set_model(TextModel())
