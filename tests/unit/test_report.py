"""The sweep report: trials table, metric per cell, fANOVA importance, from fake Tune results."""

from types import SimpleNamespace

import numpy as np
import pandas as pd

from pipeline.config import SpaceSpec
from pipeline.tune import report

SPACE = {"model.cell": SpaceSpec(choice=["lstm", "nfg"]), "train.lr": SpaceSpec(loguniform=[1e-3, 1e-1])}


def _results():
    rng = np.random.default_rng(0)
    out = []
    for k in range(8):
        cell, lr = ("lstm", "nfg")[k % 2], float(10 ** rng.uniform(-3, -1))
        losses = [1.0, 0.5 if cell == "lstm" else 0.9, 0.4 if cell == "lstm" else 0.85]
        history = pd.DataFrame({"epoch": [0, 1, 2], "val_loss": losses})
        out.append(
            SimpleNamespace(
                config={"model.cell": cell, "train.lr": lr},
                metrics={"trial_id": f"t{k}"},
                metrics_dataframe=history,
                error=None,
            )
        )
    out.append(
        SimpleNamespace(
            config={"model.cell": "lstm", "train.lr": 0.01},
            metrics={"trial_id": "bad"},
            metrics_dataframe=None,
            error=RuntimeError("x"),
        )
    )
    return out


def test_table_markdown_box_plot_and_importance():
    table = report.trial_table(_results(), space=SPACE, metric="val_loss", mode="min")
    assert list(table.columns) == [
        "trial_id",
        "status",
        "model.cell",
        "train.lr",
        "epochs",
        "best_val_loss",
        "last_val_loss",
    ]
    assert table.iloc[0]["model.cell"] == "lstm" and table.iloc[0]["best_val_loss"] == 0.4
    assert table.iloc[-1]["status"] == "ERROR" and np.isnan(table.iloc[-1]["best_val_loss"])
    md = report.markdown(table)
    assert md.startswith("| trial_id | status | model.cell") and md.count("\n") == len(table) + 2
    assert report.metric_by_cell(table, metric="val_loss") is not None
    scores = report.importance(table, space=SPACE, metric="val_loss", mode="min")
    assert set(scores) == {"model.cell", "train.lr"} and scores["model.cell"] > scores["train.lr"]  # the cell decides
    assert report.importance_chart(scores) is not None


def test_cells_by_data_pivots_test_metrics_and_marks_solved():
    """The long-memory view: test MSE per cell (rows) and seq_len (columns), baseline as the last row."""
    space = {"model.cell": SpaceSpec(choice=["lstm", "rnn"]), "data.options.seq_len": SpaceSpec(choice=[50, 100])}
    results, tested = [], {}
    for k, (cell, n) in enumerate([("lstm", 50), ("lstm", 100), ("rnn", 50), ("rnn", 100)]):
        results.append(
            SimpleNamespace(
                config={"model.cell": cell, "data.options.seq_len": n},
                metrics={"trial_id": f"t{k}"},
                metrics_dataframe=pd.DataFrame({"epoch": [0], "val_mse": [0.1]}),
                error=None,
            )
        )
        tested[f"t{k}"] = {
            "test_mse": 0.003 if cell == "lstm" else (0.05 if n == 50 else 0.17),
            "baseline_test_mse": 0.167,
        }
    table = report.with_test_metrics(report.trial_table(results, space=space, metric="val_mse", mode="min"), tested)
    pivot = report.cells_by_data(table, space=space, metric="test_mse")
    assert pivot.loc["lstm", 100] == 0.003 and pivot.loc["rnn", 100] == 0.17 and pivot.loc["(baseline)", 50] == 0.167
    md = report.cells_by_data_markdown(pivot, solved_below=0.01)
    assert (
        "| lstm | 0.003 ✓ | 0.003 ✓ |" in md and "| rnn | 0.05 | 0.17 |" in md and "(baseline) | 0.167 | 0.167 |" in md
    )
    assert report.cells_by_data_chart(pivot, metric="test_mse", solved_below=0.01) is not None
    assert (
        report.cells_by_data(table, space={"model.cell": space["model.cell"]}, metric="test_mse") is None
    )  # no data key searched
