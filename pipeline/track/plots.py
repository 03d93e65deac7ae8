"""The learning curves every run logs (the tasks draw their own test views: `Task.plots`).

Figures are `matplotlib.figure.Figure` objects, never pyplot's global state: nothing here selects a
backend or keeps a figure alive after it is logged.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def learning_curves(history: dict[str, list[tuple[int, float]]]) -> Figure:
    """{"train_loss": [(epoch, value), ...], "val_loss": ...} -> loss per epoch."""
    fig = Figure(figsize=(6, 4), layout="tight")
    ax = fig.subplots()
    for name, points in sorted(history.items()):
        if points:
            steps, values = zip(*sorted(points))
            ax.plot(np.asarray(steps) + 1, values, marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("learning curves")
    return fig
