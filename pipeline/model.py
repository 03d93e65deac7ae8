"""The sequence model: a recurrent stack (LSTM, GRU or tanh RNN) and a linear head on its final state.

Training feeds zero-padded batches with their lengths; when lengths differ the batch is packed
with `pack_padded_sequence`, so padding never reaches the recurrence. `ServingModel` is what gets
logged to MLflow: it takes one float tensor, NaN-padded for ragged batches, and returns outputs
in the data's original units.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from typing import TYPE_CHECKING, Literal

from pipeline.config import ModelConfig

if TYPE_CHECKING:
    from pipeline.tasks import DataInfo

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
Readout = Literal["last", "every"]  # one output per sequence (its last step), or one per step (generate)


class SequenceModel(nn.Module):
    """x (B, T, C) + lengths (B,) -> (B, O) from each sequence's last real step (readout "last"),
    or (B, T, O) from every step (readout "every"; outputs past a sequence's end are meaningless
    and masked out by the loss)."""

    def __init__(
        self, cfg: ModelConfig, *, input_size: int, output_size: int,
        input_mean: list[float] | None = None, input_std: list[float] | None = None, readout: Readout = "last",
    ):
        super().__init__()
        self.readout = readout
        # Input standardization fitted on the training split; buffers, so it travels with the weights.
        self.register_buffer("in_mean", torch.tensor(input_mean or [0.0] * input_size, dtype=torch.float32))
        self.register_buffer("in_std", torch.tensor(input_std or [1.0] * input_size, dtype=torch.float32))
        self.rnn = CELLS[cfg.cell](
            input_size=input_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,  # torch applies it between layers only
            batch_first=True,
        )
        self.head = nn.Linear(cfg.hidden_size, output_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = (x - self.in_mean) / self.in_std                         # (B, T, C)
        total = x.shape[1]
        packed = lengths is not None and bool((lengths != total).any())
        if packed:
            x = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(x)
        if self.readout == "every":
            if packed:
                out, _ = pad_packed_sequence(out, batch_first=True, total_length=total)
            return self.head(out)                               # (B, T, O)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers, B, H); LSTM also returns c_n
        return self.head(h_n[-1])                               # (B, O)

    def step(self, x_t: torch.Tensor, state=None):
        """One step of the recurrence for sampling: x_t (B, C) -> logits (B, O) and the new state."""
        x_t = (x_t - self.in_mean) / self.in_std
        out, state = self.rnn(x_t.unsqueeze(1), state)          # out: (B, 1, H)
        return self.head(out[:, 0]), state


class ServingModel(nn.Module):
    """The logged model: x (B, T, C) float, NaN after each sequence's end -> (B, O) in data units,
    or (B, T, O) per-step logits (NaN past each end) for a readout-"every" model.

    Padding is read from NaNs instead of a second input, so the model has a single tensor input
    (MLflow's pickle-free pt2 format). A unidirectional recurrence never looks ahead, so reading
    the output at step length-1 of the zero-filled batch equals the packed result exactly.
    torch.export fixes T: callers pad to the exported length (the training data's longest sequence).
    """

    def __init__(
        self, model: SequenceModel, *, out_scale: list[float] | None = None, out_shift: list[float] | None = None,
        reference: Literal["none", "last"] = "none",
    ):
        super().__init__()
        self.rnn, self.head, self.readout, self.reference = model.rnn, model.head, model.readout, reference
        self.register_buffer("in_mean", model.in_mean.clone())
        self.register_buffer("in_std", model.in_std.clone())
        size = model.head.out_features
        self.register_buffer("out_scale", torch.tensor(out_scale or [1.0] * size, dtype=torch.float32))
        self.register_buffer("out_shift", torch.tensor(out_shift or [0.0] * size, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real = ~torch.isnan(x[..., 0])                              # (B, T)
        last = real.sum(dim=1).clamp(min=1) - 1                     # (B,) index of the last real step
        ref = torch.zeros(x.shape[0], 1, dtype=x.dtype)             # (B, 1)
        if self.reference == "last":                                # forecast relative to the last value
            ref = x[..., 0].gather(1, last.view(-1, 1))             # (B, 1) last observed target
            x = torch.cat([x[..., :1] - ref.unsqueeze(-1), x[..., 1:]], dim=-1)
        x = (x - self.in_mean) / self.in_std                        # NaN stays NaN
        out, _ = self.rnn(torch.nan_to_num(x, nan=0.0))             # (B, T, H)
        if self.readout == "every":
            logits = self.head(out)                                 # (B, T, O)
            return torch.where(real.unsqueeze(-1), logits, torch.full_like(logits, float("nan")))
        idx = last.view(-1, 1, 1).expand(-1, 1, out.shape[-1])      # (B, 1, H)
        h = out.gather(1, idx).squeeze(1)                           # (B, H)
        return self.head(h) * self.out_scale + self.out_shift + ref  # (B, O)


def build_model(
    cfg: ModelConfig, *, input_size: int, output_size: int,
    input_mean: list[float] | None = None, input_std: list[float] | None = None, readout: Readout = "last",
) -> SequenceModel:
    return SequenceModel(
        cfg, input_size=input_size, output_size=output_size, input_mean=input_mean, input_std=input_std, readout=readout
    )


def model_for(cfg: ModelConfig, info: DataInfo) -> SequenceModel:
    """The model for a prepared dataset: its sizes, its training split's input scaler, and one output
    per step for next-step targets (generate)."""
    return build_model(
        cfg, input_size=info.input_size, output_size=info.output_size, input_mean=info.input_mean, input_std=info.input_std,
        readout="every" if info.target in ("tokens", "frames") else "last",
    )
