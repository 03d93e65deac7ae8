"""Recurrent cells: torch's fused LSTM/GRU/RNN, and the LSTM variants of Greff et al. (2017),
"LSTM: A Search Space Odyssey", as one custom cell.

Notation (Greff et al.): x_t input, h_{t-1} previous output, c_{t-1} previous cell state,
W input weights, R recurrent weights, p peephole weights, b biases, σ the logistic sigmoid,
g = h = tanh. The vanilla LSTM with peepholes (V, `peephole`):

    z_t = g(W_z x_t + R_z h_{t-1} + b_z)                      block input
    i_t = σ(W_i x_t + R_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)       input gate
    f_t = σ(W_f x_t + R_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)       forget gate
    c_t = z_t ⊙ i_t + c_{t-1} ⊙ f_t                            cell state
    o_t = σ(W_o x_t + R_o h_{t-1} + p_o ⊙ c_t + b_o)           output gate
    h_t = h(c_t) ⊙ o_t                                        block output

Each variant changes one thing:
    nig   no input gate:            i_t = 1
    nfg   no forget gate:           f_t = 1
    nog   no output gate:           o_t = 1
    niaf  no input activation:      g(x) = x
    noaf  no output activation:     h(x) = x
    cifg  coupled input and forget: f_t = 1 - i_t
    fgr   full gate recurrence:     the gates also see all three gates' previous activations,
                                    e.g. i_t = σ(... + R_ii i_{t-1} + R_fi f_{t-1} + R_oi o_{t-1})
    np    no peepholes:             p = 0; this is torch's fused `nn.LSTM` (config `lstm`)

The custom cell computes the input projections W x_t + b for all steps in one matmul and keeps
only the recurrent part in a loop (`pipeline.model.scan`: TorchScript, hand-written backward).
Padded steps (t >= length) leave the state unchanged, so the final state equals the packed result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.model.scan import scan
from pipeline.model.xlstm import MLSTMLayer, SLSTMLayer

if TYPE_CHECKING:
    from pipeline.config import ModelConfig

FUSED: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
Padding = Literal["pack", "mask"]  # pack_padded_sequence (training), or run padded and read by length (export)


@dataclass(frozen=True)
class Variant:
    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    input_activation: bool = True
    output_activation: bool = True
    coupled: bool = False  # f = 1 - i
    gate_recurrence: bool = False
    peepholes: bool = True

    def flags(self) -> list[int]:
        return [
            int(v)
            for v in (
                self.input_gate,
                self.forget_gate,
                self.output_gate,
                self.input_activation,
                self.output_activation,
                self.coupled,
                self.gate_recurrence,
                self.peepholes,
            )
        ]


VARIANTS: dict[str, Variant] = {
    "peephole": Variant(),
    "nig": Variant(input_gate=False),
    "nfg": Variant(forget_gate=False),
    "nog": Variant(output_gate=False),
    "niaf": Variant(input_activation=False),
    "noaf": Variant(output_activation=False),
    "cifg": Variant(coupled=True, forget_gate=False),
    "fgr": Variant(gate_recurrence=True),
}
XLSTM: dict[str, type[nn.Module]] = {"slstm": SLSTMLayer, "mlstm": MLSTMLayer}  # Beck et al. 2024 (model/xlstm.py)
NO_PEEPHOLES = Variant(peepholes=False)  # Greff's NP, computed by the custom cell (tests: equals nn.LSTM)


class VariantLayer(nn.Module):
    """One layer, one direction, of a Greff variant: x (B, T, C) -> outputs (B, T, H)."""

    def __init__(self, input_size: int, hidden_size: int, variant: Variant, *, forget_bias: float = 1.0):
        super().__init__()
        self.hidden_size = hidden_size
        self.flags = variant.flags()
        self.w = nn.Linear(input_size, 4 * hidden_size)  # W and b for i, f, z, o
        self.r = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))  # R
        # parameters only where the variant has them (DDP requires every parameter to get a gradient)
        if variant.peepholes:
            self.peep = nn.Parameter(torch.zeros(3, hidden_size))  # p_i, p_f, p_o
        else:
            self.register_buffer("peep", torch.zeros(3, hidden_size))
        if variant.gate_recurrence:
            self.gate_r = nn.Parameter(torch.empty(3 * hidden_size, 3 * hidden_size))
        else:
            self.register_buffer("gate_r", torch.zeros(0, 0))
        bound = hidden_size**-0.5  # nn.LSTM's initialization
        for weight in (self.w.weight, self.w.bias, self.r):
            nn.init.uniform_(weight, -bound, bound)
        if variant.gate_recurrence:
            nn.init.uniform_(self.gate_r, -bound, bound)
        with torch.no_grad():
            self.w.bias[hidden_size : 2 * hidden_size] = forget_bias  # Jozefowicz et al. 2015

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: tuple[Tensor, Tensor, Tensor] | None = None):
        b, t, _ = x.shape
        xw = self.w(x).transpose(0, 1)  # (T, B, 4H): one matmul for all steps
        if lengths is None:
            mask = torch.ones(t, b, 1, dtype=torch.bool, device=x.device)
        else:
            mask = (torch.arange(t, device=x.device)[:, None] < lengths.to(x.device)[None, :]).unsqueeze(
                -1
            )  # (T, B, 1)
        if state is None:
            zeros = x.new_zeros(b, self.hidden_size)
            state = (zeros, zeros, x.new_zeros(b, 3 * self.hidden_size))
        h, c, gates = state
        masked = int(lengths is not None and (torch.compiler.is_exporting() or bool((lengths < t).any())))
        out, h, c, gates = scan(xw, self.r, self.peep, self.gate_r, mask, h, c, gates, self.flags + [masked])
        return out.transpose(0, 1), (h, c, gates)  # (B, T, H)


CUSTOM = (VariantLayer, SLSTMLayer, MLSTMLayer)  # our own layers: (x, lengths, state) -> (outputs, state)


def _cell(cfg: ModelConfig, input_size: int) -> nn.Module:
    """One layer, one direction."""
    if cfg.cell in XLSTM:
        return XLSTM[cfg.cell](input_size, cfg.hidden_size, heads=cfg.heads or 1, forget_bias=cfg.lstm_forget_bias)
    if cfg.cell in VARIANTS:
        return VariantLayer(input_size, cfg.hidden_size, VARIANTS[cfg.cell], forget_bias=cfg.lstm_forget_bias)
    kwargs = {"proj_size": cfg.proj_size} if cfg.cell == "lstm" else {}
    cell = FUSED[cfg.cell](input_size=input_size, hidden_size=cfg.hidden_size, batch_first=True, **kwargs)
    if cfg.cell == "lstm":
        with torch.no_grad():  # bias_ih + bias_hh = forget_bias for f
            cell.bias_ih_l0[cfg.hidden_size : 2 * cfg.hidden_size] = cfg.lstm_forget_bias
            cell.bias_hh_l0[cfg.hidden_size : 2 * cfg.hidden_size] = 0.0
    return cell


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row's first lengths[b] steps, leave the padding in place: (B, T, C) -> (B, T, C)."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
    n = lengths.to(x.device)[:, None]  # (B, 1)
    idx = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


class Recurrent(nn.Module):
    """Stacked, optionally bidirectional recurrence over any cell.

    x (B, T, C), lengths (B,) -> outputs (B, T, D) and each sequence's final output (B, D), with
    D = (proj_size or hidden_size) x directions. The backward direction reads each sequence
    reversed within its length; its final output is the one at step 0.
    """

    def __init__(self, cfg: ModelConfig, *, input_size: int):
        super().__init__()
        directions = 2 if cfg.bidirectional else 1
        width = cfg.proj_size or cfg.hidden_size
        self.layers = nn.ModuleList(
            nn.ModuleList(_cell(cfg, input_size if k == 0 else width * directions) for _ in range(directions))
            for k in range(cfg.num_layers)
        )
        self.dropout = nn.Dropout(cfg.dropout)  # between layers
        self.width = width
        self.output_size = width * directions
        self.subsample = cfg.subsample or 1  # transcribe: frames pooled by this factor after the first layer

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) input steps -> (B,) output steps (fewer when the stack subsamples)."""
        return torch.div(lengths + self.subsample - 1, self.subsample, rounding_mode="floor")

    def forward(self, x: Tensor, lengths: Tensor | None = None, *, padding: Padding = "pack") -> tuple[Tensor, Tensor]:
        b, t, _ = x.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.int64)
        for k, layer in enumerate(self.layers):
            if k:
                x = self.dropout(x)
            outs = []
            for d, cell in enumerate(layer):
                inp = x if d == 0 else reverse_padded(x, lengths)
                out = _run(cell, inp, lengths, padding=padding)  # (B, T, width)
                outs.append(out if d == 0 else reverse_padded(out, lengths))
            x = torch.cat(outs, dim=-1)  # (B, T, D)
            if k == 0 and self.subsample > 1:
                x, lengths = pool_time(x, lengths, factor=self.subsample), self.output_lengths(lengths)
        last_step = (lengths.to(x.device) - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, self.width)
        last = x[..., : self.width].gather(1, last_step).squeeze(1)  # (B, width) forward direction
        if len(self.layers[0]) == 2:
            last = torch.cat([last, x[:, 0, self.width :]], dim=-1)  # backward direction ends at step 0
        return x, last

    def step(self, x_t: Tensor, state: list | None = None) -> tuple[Tensor, list]:
        """One step of a unidirectional stack (sampling): x_t (B, C) -> output (B, D), new states."""
        state = state or [None] * len(self.layers)
        x = x_t.unsqueeze(1)  # (B, 1, C)
        new = []
        for (cell,), s in zip(self.layers, state):
            x, s = cell(x, state=s) if isinstance(cell, CUSTOM) else cell(x, s)
            new.append(s)
        return x[:, 0], new


def pool_time(x: Tensor, lengths: Tensor, *, factor: int) -> Tensor:
    """x (B, T, D) -> (B, ceil(T / factor), D): the mean of each `factor` consecutive real steps
    (padding excluded; zeros past each sequence's new end)."""
    b, t, d = x.shape
    pad = -t % factor
    real = (torch.arange(t + pad, device=x.device)[None, :] < lengths.to(x.device)[:, None]).to(x.dtype)  # (B, T+p)
    x = nn.functional.pad(x, (0, 0, 0, pad)) * real.unsqueeze(-1)  # (B, T+p, D)
    summed = x.reshape(b, -1, factor, d).sum(dim=2)  # (B, T', D)
    counts = real.reshape(b, -1, factor).sum(dim=2, keepdim=True)  # (B, T', 1)
    return summed / counts.clamp(min=1)


def _run(cell: nn.Module, x: Tensor, lengths: Tensor, *, padding: Padding) -> Tensor:
    if isinstance(cell, CUSTOM):
        return cell(x, lengths)[0]  # masked (or causal): padding never reaches a real step
    if padding == "pack" and bool((lengths != x.shape[1]).any()):
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(cell(packed)[0], batch_first=True, total_length=x.shape[1])[0]
    return cell(x)[0]  # causal: steps < length are exact
