"""Telemetry plots: gate heat maps, percentile bands per gate, state norms, gradient flow through time."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch
from matplotlib.figure import Figure

from pipeline.telemetry.stats import column
from pipeline.telemetry.trace import ModelTrace

GATE_ORDER = ["input", "forget", "output", "update", "reset"]


def _keys(table: pa.Table) -> list[tuple[int, int]]:
    return sorted(set(zip(table.column("layer").to_pylist(), table.column("direction").to_pylist())))


def _label(layer: int, direction: int) -> str:
    return f"layer {layer}" + (" (backward)" if direction else "")


def unit_means(trace: ModelTrace) -> dict[tuple[int, int, str], np.ndarray]:
    """Each gate's mean over the probe batch's real steps, per unit and step: (H, T)."""
    real = (torch.arange(len(trace.layers[0].hidden))[None, :] < trace.lengths[:, None]).float()  # (B, T)
    out = {}
    for tr in trace.layers:
        for name, values in tr.gates.items():  # (B, T, H)
            mean = (values.detach() * real[..., None]).sum(0) / real.sum(0).clamp(min=1)[:, None]  # (T, H)
            out[(tr.layer, tr.direction, name)] = mean.t().numpy()
    return out


def gate_heatmaps(trace: ModelTrace, *, title: str):
    means = unit_means(trace)
    rows = sorted({(layer, d) for layer, d, _ in means})
    gates = sorted({g for _, _, g in means}, key=GATE_ORDER.index)
    if not rows:
        return None
    fig = Figure(figsize=(3.4 * len(gates) + 1, 2.8 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(gates), squeeze=False)
    for r, (layer, d) in enumerate(rows):
        for g, gate in enumerate(gates):
            ax = axes[r][g]
            image = ax.imshow(
                means[(layer, d, gate)], aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest"
            )
            ax.set(title=f"{gate} gate, {_label(layer, d)}", xlabel="time step", ylabel="unit")
    fig.colorbar(image, ax=axes, shrink=0.8, label="mean activation over the probe batch")
    fig.suptitle(title)
    return fig


def gate_bands(table: pa.Table, *, title: str):
    gates = sorted(
        {q for q in table.column("quantity").to_pylist() if q.startswith("gate:")},
        key=lambda q: GATE_ORDER.index(q.removeprefix("gate:")),
    )
    if not gates:
        return None
    keys = _keys(table)
    fig = Figure(figsize=(3.4 * len(gates), 2.8 * len(keys)), layout="constrained")
    axes = fig.subplots(len(keys), len(gates), squeeze=False, sharey=True)
    for r, (layer, d) in enumerate(keys):
        for g, gate in enumerate(gates):
            ax = axes[r][g]
            stat = {
                s: column(table, quantity=gate, stat=s, layer=layer, direction=d)
                for s in ("p5", "p50", "p95", "saturated")
            }
            t = np.arange(len(stat["p50"]))
            ax.fill_between(t, stat["p5"], stat["p95"], alpha=0.3, label="5-95%")
            ax.plot(t, stat["p50"], label="median")
            ax.plot(t, stat["saturated"], ls=":", color="black", label="saturated share")
            ax.set(
                title=f"{gate.removeprefix('gate:')} gate, {_label(layer, d)}", xlabel="time step", ylim=(-0.02, 1.02)
            )
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    return fig


def state_norms(table: pa.Table, *, title: str):
    fig = Figure(figsize=(6, 3.5), layout="tight")
    ax = fig.subplots()
    for layer, d in _keys(table):
        for quantity, style in (("cell_norm", "-"), ("hidden_norm", "--")):
            values = column(table, quantity=quantity, layer=layer, direction=d)
            if len(values):
                ax.plot(values, ls=style, label=f"{quantity.replace('_norm', '')} state, {_label(layer, d)}")
    ax.set(xlabel="time step", ylabel="mean L2 norm over the probe batch", title=title)
    ax.legend(fontsize=7)
    return fig


def per_token(table: pa.Table, *, tokens: list[str], title: str):
    """One text: how far each token opened the input gate, and how much it moved the cell state
    (the change of the cell state's norm at that token), the tokens on the axis (layer 0, forward)."""
    gate = column(table, quantity="gate:input")[: len(tokens)]
    norm = column(table, quantity="cell_norm")[: len(tokens)]
    if not len(gate) or not len(norm):
        return None
    moved = np.abs(np.diff(norm, prepend=0.0))  # (T,) |change of ||c_t|||
    fig = Figure(figsize=(max(6, 0.35 * len(tokens)), 4.5), layout="tight")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.bar(range(len(gate)), gate, color="tab:blue")
    top.set(ylabel="input gate (mean)", ylim=(0, 1), title=title)
    bottom.bar(range(len(moved)), moved, color="tab:orange")
    bottom.set(ylabel="|change of cell norm|")
    bottom.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    return fig


def gradient_flow(tables: dict[str, pa.Table], *, title: str):
    """||dloss/dh_t|| against t on a log scale, one line per table (e.g. per cell) and layer."""
    fig = Figure(figsize=(6, 3.5), layout="tight")
    ax = fig.subplots()
    for label, table in tables.items():
        for layer, d in _keys(table):
            values = column(table, quantity="grad_norm", layer=layer, direction=d)
            if len(values):
                ax.plot(values, label=label if len(_keys(table)) == 1 else f"{label}, {_label(layer, d)}")
    ax.set(yscale="log", xlabel="time step t", ylabel="mean ||dloss/dh_t||", title=title)
    ax.legend(fontsize=7)
    return fig


def figures(trace: ModelTrace, table: pa.Table, *, title: str, prefix: str) -> dict[str, object]:
    """Every telemetry plot of one probe, keyed by file name (None-plots, e.g. a plain RNN's gates, left out)."""
    figs = {
        f"{prefix}_gate_heatmaps.png": gate_heatmaps(trace, title=title),
        f"{prefix}_gate_bands.png": gate_bands(table, title=title),
        f"{prefix}_state_norms.png": state_norms(table, title=title),
        f"{prefix}_gradient_flow.png": gradient_flow({"probe batch": table}, title=title)
        if "grad_norm" in table.column("quantity").to_pylist()
        else None,
    }
    return {name: fig for name, fig in figs.items() if fig is not None}


KEEP_GATE = {"gate:forget": "forget gate", "gate:update": "update gate z"}  # the share of the old state kept


def cells_compared(tables: dict[tuple[str, str], pa.Table], *, title: str):
    """The long-memory view: per data variant (columns), each cell's gradient flow through time
    (top, log scale) and its median keep gate (bottom: LSTM forget gate, GRU update gate)."""
    variants = sorted({v for v, _ in tables}, key=lambda v: (len(v), v))
    cells = sorted({c for _, c in tables})
    fig = Figure(figsize=(4.2 * len(variants), 6), layout="constrained")
    axes = fig.subplots(2, len(variants), squeeze=False)
    for col, variant in enumerate(variants):
        top, bottom = axes[0][col], axes[1][col]
        for cell in cells:
            table = tables.get((variant, cell))
            if table is None:
                continue
            flow = column(table, quantity="grad_norm")
            if len(flow):
                top.plot(flow, label=cell)
            for quantity, name in KEEP_GATE.items():
                keep = column(table, quantity=quantity, stat="p50")
                if len(keep):
                    bottom.plot(keep, label=f"{cell}: {name}")
        top.set(yscale="log", title=variant or "all trials", xlabel="time step t", ylabel="mean ||dloss/dh_t||")
        bottom.set(ylim=(-0.02, 1.02), xlabel="time step t", ylabel="median over units and sequences")
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.suptitle(title)
    return fig
