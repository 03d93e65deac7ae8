"""The sweep report ("odyssey", after Greff et al. 2017), logged to the sweep's parent run:
every trial in a table (CSV and Markdown), the validation metric per cell variant (box plot),
hyperparameter importance by functional ANOVA (optuna's fANOVA evaluator) as a bar chart, and, when
the sweep crossed cells with data settings (the long-memory experiment), the test metric per cell
and data variant as a table and a plot against the naive baseline."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.config import SpaceSpec


def trial_table(results: list[Any], *, space: dict[str, SpaceSpec], metric: str, mode: str) -> pd.DataFrame:
    """One row per trial: id, status, searched values, epochs run, best and last value of the metric."""
    rows = []
    for r in results:
        history = r.metrics_dataframe if r.metrics_dataframe is not None else pd.DataFrame()
        values = history[metric].dropna() if metric in history else pd.Series(dtype=float)
        best = (values.max() if mode == "max" else values.min()) if len(values) else math.nan
        rows.append(
            {
                "trial_id": (r.metrics or {}).get("trial_id", ""),
                "status": "ERROR" if r.error is not None else "OK",
                **{key: r.config.get(key) for key in space},
                "epochs": int(history["epoch"].max() + 1) if "epoch" in history and len(history) else 0,
                f"best_{metric}": float(best),
                f"last_{metric}": float(values.iloc[-1]) if len(values) else math.nan,
            }
        )
    return pd.DataFrame(rows).sort_values(f"best_{metric}", ascending=mode == "min", na_position="last")


def with_test_metrics(table: pd.DataFrame, tested: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Add each trial's test metrics (its best checkpoint on the test split; NaN when stopped early)."""
    keys = sorted({k for metrics in tested.values() for k in metrics})
    extra = pd.DataFrame(
        [{k: tested.get(t, {}).get(k, math.nan) for k in keys} for t in table["trial_id"]], index=table.index
    )
    return pd.concat([table, extra], axis=1)


def cells_by_data(table: pd.DataFrame, *, space: dict[str, SpaceSpec], metric: str) -> pd.DataFrame | None:
    """Best test `metric` per cell (rows) and data variant (columns), with the baseline's as a last row."""
    data_keys = [k for k in space if k.startswith("data.")]
    if "model.cell" not in table or not data_keys or metric not in table or table[metric].isna().all():
        return None
    pivot = table.pivot_table(index="model.cell", columns=data_keys, values=metric, aggfunc="min")
    baseline = f"baseline_{metric}"
    if baseline in table:
        pivot.loc["(baseline)"] = table.pivot_table(columns=data_keys, values=baseline, aggfunc="mean").iloc[0]
    return pivot


def cells_by_data_markdown(pivot: pd.DataFrame, *, solved_below: float | None) -> str:
    """The pivot as Markdown; with `solved_below`, solved entries are marked ✓."""
    header = [pivot.index.name or "model.cell"] + [
        ", ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in pivot.columns
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell, row in pivot.iterrows():
        marks = [
            f"{v:.4g}" + (" ✓" if solved_below is not None and cell != "(baseline)" and v < solved_below else "")
            for v in row.to_numpy(dtype=float)
        ]
        lines.append("| " + " | ".join([str(cell), *marks]) + " |")
    return "\n".join(lines) + "\n"


def cells_by_data_chart(pivot: pd.DataFrame, *, metric: str, solved_below: float | None) -> Figure:
    fig = Figure(figsize=(6, 4), layout="tight")
    ax = fig.subplots()
    labels = [", ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in pivot.columns]
    for cell, row in pivot.iterrows():
        style = {"color": "grey", "linestyle": "--"} if cell == "(baseline)" else {"marker": "o"}
        ax.plot(labels, row.to_numpy(dtype=float), label=str(cell), **style)
    if solved_below is not None:
        ax.axhline(solved_below, color="green", linewidth=0.8, label=f"solved below {solved_below:g}")
    ax.set_yscale("log")
    ax.set_xlabel(", ".join(n for n in pivot.columns.names if n))
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per cell and data variant")
    ax.legend(fontsize=8)
    return fig


SEED = "train.seed"


def over_seeds(table: pd.DataFrame, *, space: dict[str, SpaceSpec]) -> pd.DataFrame | None:
    """With `train.seed` in the space: each setting of the other searched keys over its seeds, every
    test metric (and baseline) as mean and std (ddof 1) beside the number of seeds; None without."""
    if SEED not in space or SEED not in table:
        return None
    tested = [c for c in table.columns if c.startswith(("test_", "baseline_")) and table[c].notna().any()]
    if not tested:
        return None
    keys = [k for k in space if k != SEED and k in table]
    grouped = table.groupby(keys, dropna=False) if keys else table.assign(_all="all").groupby("_all")
    stats = grouped[tested].agg(["mean", "std"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    stats.insert(0, "seeds", grouped[SEED].nunique())
    return stats.reset_index().drop(columns=["_all"], errors="ignore")


def seed_lines(spread: pd.DataFrame, *, metric: str, mode: str) -> dict[str, float]:
    """The best setting's test metrics over its seeds, as <metric>_mean / _std / seeds (the summary's)."""
    order = spread.sort_values(f"{metric}_mean", ascending=mode == "min", na_position="last")
    best = order.iloc[0]
    means = [c.removesuffix("_mean") for c in spread.columns if c.endswith("_mean")]
    out = {f"seeds_{m}_mean": float(best[f"{m}_mean"]) for m in means}
    out |= {f"seeds_{m}_std": float(best[f"{m}_std"]) for m in means}
    return out | {"seeds": float(best["seeds"])}


def markdown(table: pd.DataFrame) -> str:
    cells = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"


def metric_by_cell(table: pd.DataFrame, *, metric: str) -> Figure | None:
    """Box plot of the trials' best metric per model.cell (when the sweep searched cells)."""
    column = f"best_{metric}"
    if "model.cell" not in table or table["model.cell"].nunique() < 2:
        return None
    groups = {cell: g[column].dropna().to_numpy() for cell, g in table.groupby("model.cell")}
    groups = {k: v for k, v in groups.items() if len(v)}
    fig = Figure(figsize=(1.2 + 0.8 * len(groups), 4), layout="tight")
    ax = fig.subplots()
    ax.boxplot(list(groups.values()), tick_labels=list(groups))
    for k, values in enumerate(groups.values(), start=1):
        ax.scatter(np.full(len(values), k), values, s=10, alpha=0.6)
    ax.set_ylabel(column)
    ax.set_title("best validation metric per cell variant")
    return fig


def importance(table: pd.DataFrame, *, space: dict[str, SpaceSpec], metric: str, mode: str) -> dict[str, float]:
    """fANOVA importance of each searched key for the trials' best metric (optuna's evaluator)."""
    import optuna

    column = f"best_{metric}"
    done = table[np.isfinite(table[column].astype(float))]
    varying = [k for k in space if done[k].nunique() > 1]
    if len(done) < 3 or not varying:
        return {}
    dists = {k: _distribution(space[k]) for k in varying}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" on the console
    try:
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for _, row in done.iterrows():
        params = {k: _param(row[k], space[k]) for k in varying}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(row[column])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


def _distribution(spec: SpaceSpec):
    import optuna.distributions as d

    if spec.choice is not None:
        return d.CategoricalDistribution([_plain(v) for v in spec.choice])
    if spec.randint is not None:
        return d.IntDistribution(spec.randint[0], spec.randint[1] - 1)
    low, high = spec.uniform or spec.loguniform
    return d.FloatDistribution(low, high, log=spec.loguniform is not None)


def _param(value, spec: SpaceSpec):
    return _plain(value) if spec.choice is not None else (int(value) if spec.randint is not None else float(value))


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def importance_chart(scores: dict[str, float]) -> Figure | None:
    if not scores:
        return None
    fig = Figure(figsize=(6, 1 + 0.4 * len(scores)), layout="tight")
    ax = fig.subplots()
    names = list(scores)[::-1]
    ax.barh(names, [scores[n] for n in names])
    ax.set_xlabel("fANOVA importance (share of variance)")
    ax.set_title("what mattered in this sweep")
    return fig
