"""Plots render to non-empty PNGs (no MLflow, no Ray): the learning curves, and each task's own views."""

import io

import numpy as np

from pipeline.tasks import DataInfo, get_task
from pipeline.tasks.classify import ClassifyInfo
from pipeline.tasks.forecast import ForecastInfo
from pipeline.track import plots


def _png_bytes(fig) -> int:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return len(buf.getvalue())


def test_learning_curves_and_task_views():
    assert (
        _png_bytes(plots.learning_curves({"train_loss": [(0, 1.0), (1, 0.5)], "val_loss": [(0, 1.2), (1, 0.7)]})) > 1000
    )
    info = DataInfo(
        task="classify",
        input_size=1,
        output_size=3,
        target="class",
        max_len=4,
        task_info=ClassifyInfo(classes=["a", "b", "c"], majority_class=0),
    )
    views = get_task("classify").plots({"pred": np.eye(3)[[0, 1, 2, 2]], "y": np.array([0, 1, 2, 1])}, info)
    assert set(views) == {"confusion_matrix.png"} and _png_bytes(views["confusion_matrix.png"]) > 1000
    info = DataInfo(
        task="forecast",
        input_size=1,
        output_size=2,
        target="float",
        max_len=4,
        task_info=ForecastInfo(scaler={"mean": [10.0, 10.0], "std": [2.0, 2.0]}, season=1),
    )
    out = {"pred": np.zeros((5, 2)), "y": np.ones((5, 2)), "baseline": np.full((5, 2), 11.0)}
    views = get_task("forecast").plots(out, info)
    assert set(views) == {"forecast_vs_actual.png"} and _png_bytes(views["forecast_vs_actual.png"]) > 1000
    assert get_task("regression").plots(out, info) == {}
