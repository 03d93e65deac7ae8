"""PNG plots for a run: learning curves and the task's test view. Pure matplotlib, no MLflow here."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on workers or servers

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from pipeline.tasks import DataInfo


def learning_curves(history: dict[str, list[tuple[int, float]]]) -> Figure:
    """{"train_loss": [(epoch, value), ...], "val_loss": ...} -> loss per epoch."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in sorted(history.items()):
        if points:
            steps, values = zip(*sorted(points))
            ax.plot(np.asarray(steps) + 1, values, marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("learning curves")
    fig.tight_layout()
    return fig


def confusion_matrix(y_hat: np.ndarray, y: np.ndarray, *, classes: list[str]) -> Figure:
    k = len(classes)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y, y_hat), 1)                                    # rows: true, columns: predicted
    fig, ax = plt.subplots(figsize=(1 + 0.5 * k, 1 + 0.5 * k))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=90)
    ax.set_yticks(range(k), classes)
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("test confusion matrix")
    fig.tight_layout()
    return fig


def forecast_vs_actual(pred: np.ndarray, y: np.ndarray, baseline: np.ndarray) -> Figure:
    """First-step forecasts of consecutive test windows against the actual values (data units)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(y[:, 0], label="actual", color="black")
    ax.plot(pred[:, 0], label="model", marker=".", ms=3)
    ax.plot(baseline[:, 0], label="seasonal naive", alpha=0.6)
    ax.set_xlabel("test window")
    ax.set_title("one-step-ahead forecasts on the test split")
    ax.legend()
    fig.tight_layout()
    return fig


def anomaly_flags(table, *, threshold: float) -> Figure:
    """One series of the test period: values with flagged steps (and labelled ones), and the scores."""
    data = table.to_pandas()
    first = data[data["series"] == data["series"].iloc[0]].sort_values("time")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    top.plot(first["time"], first["value"], color="black", lw=0.8, label="value")
    if "label" in first:
        top.scatter(first["time"][first["label"] == 1], first["value"][first["label"] == 1], s=30,
                    facecolors="none", edgecolors="tab:orange", label="labelled anomaly")
    top.scatter(first["time"][first["flag"]], first["value"][first["flag"]], marker="x", color="tab:red", s=18, label="flagged")
    top.legend(fontsize=7)
    top.set_title(f"test period of series {first['series'].iloc[0]}")
    bottom.plot(first["time"], first["score"], lw=0.8)
    bottom.axhline(threshold, color="tab:red", ls="--", label="threshold (chosen on val)")
    bottom.set_ylabel("score (|error| / std)")
    bottom.legend(fontsize=7)
    fig.tight_layout()
    return fig


def test_view(out: dict[str, np.ndarray], info: DataInfo) -> dict[str, Figure]:
    """The task's picture of its test predictions, keyed by file name."""
    if info.task == "classify":
        return {"confusion_matrix.png": confusion_matrix(out["pred"].argmax(axis=1), out["y"], classes=info.classes)}
    if info.task == "forecast":
        from pipeline.tasks.forecast import in_data_units

        pred, y = in_data_units(out, info)
        return {"forecast_vs_actual.png": forecast_vs_actual(pred, y, out["baseline"])}
    if info.task == "anomaly":
        from pipeline.tasks.anomaly import flags_table

        return {"anomaly_flags.png": anomaly_flags(flags_table(out, info), threshold=info.threshold)}
    return {}
