"""The sequence model: a recurrent stack (LSTM, GRU or tanh RNN) and a linear head on the last step."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import ModelConfig

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class SequenceRegressor(nn.Module):
    """x (B, T, C) -> y (B, O): run the recurrent stack, read out its last hidden state."""

    def __init__(self, cfg: ModelConfig, *, input_size: int, output_size: int):
        super().__init__()
        self.rnn = CELLS[cfg.cell](
            input_size=input_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,  # torch applies it between layers only
            batch_first=True,
        )
        self.head = nn.Linear(cfg.hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)          # (B, T, H)
        return self.head(out[:, -1])  # (B, O)


def build_model(cfg: ModelConfig, *, input_size: int, output_size: int) -> SequenceRegressor:
    return SequenceRegressor(cfg, input_size=input_size, output_size=output_size)
