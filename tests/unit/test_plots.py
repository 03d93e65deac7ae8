"""Plots render to non-empty PNGs (no MLflow, no Ray)."""

import io

import numpy as np

from pipeline.track import plots
from pipeline.tasks import DataInfo


def _png_bytes(fig) -> int:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return len(buf.getvalue())


def test_learning_curves_and_task_views():
    assert _png_bytes(plots.learning_curves({"train_loss": [(0, 1.0), (1, 0.5)], "val_loss": [(0, 1.2), (1, 0.7)]})) > 1000
    info = DataInfo(task="classify", input_size=1, output_size=3, target="class", max_len=4, classes=["a", "b", "c"])
    views = plots.test_view({"pred": np.eye(3)[[0, 1, 2, 2]], "y": np.array([0, 1, 2, 1])}, info)
    assert set(views) == {"confusion_matrix.png"} and _png_bytes(views["confusion_matrix.png"]) > 1000
    info = DataInfo(task="forecast", input_size=1, output_size=2, target="float", max_len=4,
                    scaler={"mean": [10.0, 10.0], "std": [2.0, 2.0]})
    out = {"pred": np.zeros((5, 2)), "y": np.ones((5, 2)), "baseline": np.full((5, 2), 11.0)}
    assert set(plots.test_view(out, info)) == {"forecast_vs_actual.png"}
    assert plots.test_view(out, DataInfo(task="regression", input_size=1, output_size=1, target="float", max_len=1)) == {}
