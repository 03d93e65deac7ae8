"""What the telemetry records, per layer, direction and time step, as one long Arrow table.

    quantity        values summarized over the probe batch (real steps only)
    gate:<name>     gate activations over batch x units: mean, p5, p50, p95, fraction saturated
    cell_norm       ||c_t|| per sequence (LSTM cells)
    hidden_norm     ||h_t|| per sequence
    grad_norm       ||dloss/dh_t|| per sequence: gradient flow through time (after `backward`)

A gate counts as saturated below 0.05 or above 0.95. Steps past every sequence's end are NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import Tensor, nn

from pipeline.telemetry.trace import LayerTrace, ModelTrace, trace_model

SATURATION = (0.05, 0.95)
QUANTILES = torch.tensor([0.05, 0.5, 0.95])
COLUMNS = ("layer", "direction", "quantity", "t", "mean", "p5", "p50", "p95", "saturated")


def probe(
    model: nn.Module, x: Tensor, lengths: Tensor, y: Tensor | None, *, loss: Callable[[Tensor, Tensor], Tensor] | None
) -> ModelTrace:
    """Trace the model on a probe batch and take dloss/dh_t for every layer and step in one backward
    (gates and states only when there is no target or no loss).

    Only the hidden states are differentiated (`torch.autograd.grad`): no parameter gradient is
    accumulated, so the probe can run on rank 0 alone without waking DDP's all-reduce hooks."""
    if y is None or loss is None:
        with torch.no_grad():
            return trace_model(model, x, lengths)
    with torch.enable_grad():
        trace = trace_model(model, x, lengths)
        hidden = [h for layer in trace.layers for h in layer.hidden]
        grads = iter(torch.autograd.grad(loss(trace.output, y), hidden, allow_unused=True))
    for layer in trace.layers:
        layer.grads = [g if g is not None else torch.zeros_like(h) for g, h in zip(grads, layer.hidden)]
    return trace


def summarize(trace: ModelTrace) -> pa.Table:
    real = torch.arange(len(trace.layers[0].hidden))[None, :] < trace.lengths[:, None]  # (B, T) real steps
    rows: list[tuple] = []
    for layer in trace.layers:
        rows += _layer_rows(layer, real)
    return (
        pa.table(dict(zip(COLUMNS, (list(col) for col in zip(*rows))))) if rows else pa.table({c: [] for c in COLUMNS})
    )


def _layer_rows(tr: LayerTrace, real: Tensor) -> list[tuple]:
    key = (tr.layer, tr.direction)
    rows = []
    for name, values in tr.gates.items():  # (B, T, H)
        rows += [
            (*key, f"gate:{name}", t, *_spread(values[:, t][real[:, t]].detach().flatten(), gate=True))
            for t in range(values.shape[1])
        ]
    for name, values in tr.states.items():  # xLSTM: (B, T, H or heads), unbounded
        rows += [
            (*key, f"state:{name}", t, *_spread(values[:, t][real[:, t]].detach().flatten(), gate=False))
            for t in range(values.shape[1])
        ]
    per_seq: dict[str, Tensor] = {
        "hidden_norm": torch.stack([h.detach().norm(dim=1) for h in tr.hidden], dim=1)
    }  # (B, T)
    if tr.cell is not None:
        per_seq["cell_norm"] = tr.cell.detach().norm(dim=2)
    if tr.grads is not None:
        per_seq["grad_norm"] = torch.stack([g.norm(dim=1) for g in tr.grads], dim=1)
    for name, values in per_seq.items():
        rows += [(*key, name, t, *_spread(values[:, t][real[:, t]], gate=False)) for t in range(values.shape[1])]
    return rows


def _spread(values: Tensor, *, gate: bool) -> tuple[float, float, float, float, float]:
    """mean, p5, p50, p95 and (gates) the saturated fraction of a 1-D tensor; NaN when empty."""
    if values.numel() == 0:
        return (float("nan"),) * 5
    v = values.float()
    q = torch.quantile(v, QUANTILES).tolist()
    saturated = float(((v < SATURATION[0]) | (v > SATURATION[1])).float().mean()) if gate else float("nan")
    return float(v.mean()), q[0], q[1], q[2], saturated


def column(table: pa.Table, *, quantity: str, stat: str = "mean", layer: int = 0, direction: int = 0) -> np.ndarray:
    """One quantity's statistic over time, e.g. the grad_norm curve of layer 0: (T,)."""
    rows = table.filter(
        (pc.field("quantity") == quantity) & (pc.field("layer") == layer) & (pc.field("direction") == direction)
    )
    order = np.argsort(rows.column("t").to_numpy())
    return rows.column(stat).to_numpy()[order]
