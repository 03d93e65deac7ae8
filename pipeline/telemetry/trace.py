"""Recompute a model's recurrence step by step on a probe batch, keeping what fused kernels hide.

torch's fused `nn.LSTM`/`nn.GRU`/`nn.RNN` return only outputs; here the same equations run from
their weights, one step at a time, so every gate's activation, the cell state and each hidden
state h_t are tensors of the graph. Custom cells run `reference_scan` with its trace hook. Training
never takes this path: it costs one Python loop over time steps on one small batch.

Padded steps (t >= length) leave the state unchanged, as in training. The recomputed output equals
the model's own (tested), so gradients taken through it are the model's gradients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from pipeline.model.cells import VariantLayer, reverse_padded
from pipeline.model.scan import reference_scan
from pipeline.model.sequence_model import read_out
from pipeline.model.xlstm import MLSTMLayer, SLSTMLayer, mlstm_step


@dataclass
class LayerTrace:
    """One layer, one direction: per-step tensors stacked to (B, T, H)."""

    layer: int
    direction: int  # 0 forward, 1 backward (bidirectional models)
    gates: dict[str, Tensor]  # input/forget/output (LSTM cells), update/reset (GRU): (B, T, H) in [0, 1]
    cell: Tensor | None  # (B, T, H) c_t of LSTM cells, else None
    hidden: list[Tensor]  # T tensors (B, H): h_t as computed, nodes of the graph
    grads: list[Tensor] | None = None  # T tensors (B, H): dloss/dh_t, set by `telemetry.probe`
    # xLSTM cells: gate pre-activations, normalizer and stabilizer (B, T, H or heads), unbounded
    states: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class ModelTrace:
    layers: list[LayerTrace]
    output: Tensor  # (B, O) or (B, T, O): the model's output, recomputed
    lengths: Tensor  # (B,)


def trace_model(model: nn.Module, x: Tensor, lengths: Tensor) -> ModelTrace:
    """x (B, T, C), lengths (B,) through a `SequenceModel` in eval mode, step by step."""
    model.eval()
    rnn = model.rnn
    inp = model.inputs(x)  # (B, T, C), or (B, T, E) embedded tokens
    traces = []
    for k, layer in enumerate(rnn.layers):
        outs = []
        for d, cell in enumerate(layer):
            seq = inp if d == 0 else reverse_padded(inp, lengths)
            tr = trace_cell(cell, seq, lengths, layer=k, direction=d)
            out = torch.stack(tr.hidden, dim=1)  # (B, T, H)
            if isinstance(cell, nn.LSTM) and cell.proj_size:
                out = out @ cell.weight_hr_l0.t()  # LSTMP: (B, T, P)
            outs.append(out if d == 0 else reverse_padded(out, lengths))
            traces.append(tr)
        inp = torch.cat(outs, dim=-1)  # (B, T, D); dropout is off in eval
    width = rnn.width
    last_step = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, width)
    last = inp[..., :width].gather(1, last_step).squeeze(1)  # (B, width)
    if len(rnn.layers[0]) == 2:
        last = torch.cat([last, inp[:, 0, width:]], dim=-1)
    output = (
        model.head(inp)
        if model.readout == "every"
        else model.dist(
            read_out(
                model.head, inp, last, lengths, readout=model.readout, pooling=model.pooling, horizon=model.horizon
            )
        )
    )
    return ModelTrace(layers=traces, output=output, lengths=lengths)


def trace_cell(cell: nn.Module, x: Tensor, lengths: Tensor, *, layer: int, direction: int) -> LayerTrace:
    """One layer, one direction: x (B, T, C) -> its gates and states per step."""
    mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]  # (B, T) real steps
    if isinstance(cell, VariantLayer):
        return _variant(cell, x, mask, layer=layer, direction=direction)
    if isinstance(cell, SLSTMLayer):
        return _slstm(cell, x, mask, layer=layer, direction=direction)
    if isinstance(cell, MLSTMLayer):
        return _mlstm(cell, x, mask, layer=layer, direction=direction)
    if isinstance(cell, nn.LSTM):
        return _lstm(cell, x, mask, layer=layer, direction=direction)
    if isinstance(cell, nn.GRU):
        return _gru(cell, x, mask, layer=layer, direction=direction)
    return _rnn(cell, x, mask, layer=layer, direction=direction)


def _keep(m: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(m[:, None], new, old)  # padded steps keep the state


def _stacked(steps: list[dict[str, Tensor]], names: tuple[str, ...]) -> dict[str, Tensor]:
    return {name: torch.stack([s[name] for s in steps], dim=1) for name in names}  # (B, T, H)


def _lstm(cell: nn.LSTM, x: Tensor, mask: Tensor, *, layer: int, direction: int) -> LayerTrace:
    """nn.LSTM's equations (gate order i, f, g, o; two biases; optional projection of h)."""
    wx = x @ cell.weight_ih_l0.t() + cell.bias_ih_l0 + cell.bias_hh_l0  # (B, T, 4H)
    hidden_size = cell.hidden_size
    h = x.new_zeros(x.shape[0], cell.proj_size or hidden_size)
    c = x.new_zeros(x.shape[0], hidden_size)
    steps, hs = [], []
    for t in range(x.shape[1]):
        a = wx[:, t] + h @ cell.weight_hh_l0.t()  # (B, 4H)
        ai, af, ag, ao = a.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(ai), torch.sigmoid(af), torch.tanh(ag), torch.sigmoid(ao)
        c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)  # (B, H)
        h_out = h_new @ cell.weight_hr_l0.t() if cell.proj_size else h_new
        steps.append({"input": i, "forget": f, "output": o, "cell": c_new})
        hs.append(h_new)
        h, c = _keep(mask[:, t], h_out, h), _keep(mask[:, t], c_new, c)
    stacked = _stacked(steps, ("input", "forget", "output", "cell"))
    cell_state = stacked.pop("cell")
    return LayerTrace(layer=layer, direction=direction, gates=stacked, cell=cell_state, hidden=hs)


def _gru(cell: nn.GRU, x: Tensor, mask: Tensor, *, layer: int, direction: int) -> LayerTrace:
    """nn.GRU's equations: r, z gates; n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) n + z h."""
    wx = x @ cell.weight_ih_l0.t() + cell.bias_ih_l0  # (B, T, 3H)
    h = x.new_zeros(x.shape[0], cell.hidden_size)
    steps, hs = [], []
    for t in range(x.shape[1]):
        rh = h @ cell.weight_hh_l0.t() + cell.bias_hh_l0  # (B, 3H)
        xr, xz, xn = wx[:, t].chunk(3, dim=1)
        hr, hz, hn = rh.chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        h_new = (1 - z) * torch.tanh(xn + r * hn) + z * h
        steps.append({"update": z, "reset": r})
        hs.append(h_new)
        h = _keep(mask[:, t], h_new, h)
    return LayerTrace(
        layer=layer, direction=direction, gates=_stacked(steps, ("update", "reset")), cell=None, hidden=hs
    )


def _rnn(cell: nn.RNN, x: Tensor, mask: Tensor, *, layer: int, direction: int) -> LayerTrace:
    act = torch.tanh if cell.nonlinearity == "tanh" else torch.relu
    wx = x @ cell.weight_ih_l0.t() + cell.bias_ih_l0 + cell.bias_hh_l0  # (B, T, H)
    h = x.new_zeros(x.shape[0], cell.hidden_size)
    hs = []
    for t in range(x.shape[1]):
        h_new = act(wx[:, t] + h @ cell.weight_hh_l0.t())  # (B, H)
        hs.append(h_new)
        h = _keep(mask[:, t], h_new, h)
    return LayerTrace(layer=layer, direction=direction, gates={}, cell=None, hidden=hs)


def _variant(cell: VariantLayer, x: Tensor, mask: Tensor, *, layer: int, direction: int) -> LayerTrace:
    """A Greff variant through `reference_scan`'s trace hook; gates a variant lacks are omitted."""
    b, hidden_size = x.shape[0], cell.hidden_size
    xw = cell.w(x).transpose(0, 1)  # (T, B, 4H)
    zeros = x.new_zeros(b, hidden_size)
    steps: list[dict[str, Tensor]] = []
    reference_scan(
        xw,
        cell.r,
        cell.peep,
        cell.gate_r,
        mask.t().unsqueeze(-1),
        zeros,
        zeros,
        x.new_zeros(b, 3 * hidden_size),
        cell.flags + [1],
        trace=steps,
    )
    use_i, use_f, use_o, _, _, coupled = cell.flags[:6]
    names = [n for n, on in (("input", use_i), ("forget", use_f or coupled), ("output", use_o)) if on]
    stacked = _stacked(steps, (*names, "cell"))
    cell_state = stacked.pop("cell")
    return LayerTrace(
        layer=layer, direction=direction, gates=stacked, cell=cell_state, hidden=[s["hidden"] for s in steps]
    )


def _slstm(cell: SLSTMLayer, x: Tensor, mask: Tensor, *, layer: int, direction: int) -> LayerTrace:
    """sLSTM through its own loop's trace hook: pre-activations of the exponential input gate and the
    forget gate, the normalizer n_t and the stabilizer m_t per unit."""
    steps: list[dict[str, Tensor]] = []
    cell(x, mask.sum(dim=1), trace=steps)
    states = _stacked(steps, ("input_pre", "forget_pre", "normalizer", "stabilizer", "cell"))
    cell_state = states.pop("cell")
    return LayerTrace(
        layer=layer, direction=direction, gates={}, cell=cell_state, hidden=[s["hidden"] for s in steps], states=states
    )


def _mlstm(cell: MLSTMLayer, x: Tensor, mask: Tensor, *, layer: int, direction: int) -> LayerTrace:
    """mLSTM in its recurrent form (equal to the parallel one, tested): gate pre-activations and the
    stabilizer per head, the normalizer's norm per head, the matrix memory C_t as the cell state."""
    b = x.shape[0]
    q, k, v, i_pre, f_pre = cell._project(x)  # (B, NH, T, d), gates (B, NH, T, 1)
    out_gate = torch.sigmoid(cell.out_gate(x))  # (B, T, H)
    state = cell.initial_state(x)
    steps, hs = [], []
    for t in range(x.shape[1]):
        h_t, new = mlstm_step(state, q[:, :, t], k[:, :, t], v[:, :, t], i_pre[:, :, t], f_pre[:, :, t])
        keep = mask[:, t].view(b, 1, 1)  # padded steps leave the state as it was
        state = tuple(torch.where(keep.view(b, *[1] * (s.dim() - 1)), s_new, s) for s, s_new in zip(state, new))
        hs.append(out_gate[:, t] * h_t.reshape(b, -1))  # (B, H)
        c, n, m = new
        steps.append(
            {
                "input_pre": i_pre[:, :, t, 0],
                "forget_pre": f_pre[:, :, t, 0],
                "normalizer": n.norm(dim=-1),
                "stabilizer": m[..., 0],
                "cell": c.reshape(b, -1),
            }
        )
    states = _stacked(steps, ("input_pre", "forget_pre", "normalizer", "stabilizer", "cell"))
    cell_state = states.pop("cell")
    return LayerTrace(layer=layer, direction=direction, gates={}, cell=cell_state, hidden=hs, states=states)
