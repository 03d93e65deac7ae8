"""Model shapes for each cell."""

import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.model import build_model


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
def test_output_shape(cell, layers):
    model = build_model(ModelConfig(cell=cell, hidden_size=8, num_layers=layers, dropout=0.1), input_size=3, output_size=2)
    out = model(torch.randn(5, 7, 3))
    assert out.shape == (5, 2)
    assert isinstance(model.rnn, {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell])


def test_dropout_only_between_layers():
    assert build_model(ModelConfig(num_layers=1, dropout=0.5), input_size=1, output_size=1).rnn.dropout == 0.0
    assert build_model(ModelConfig(num_layers=2, dropout=0.5), input_size=1, output_size=1).rnn.dropout == 0.5


def test_reads_the_last_time_step():
    model = build_model(ModelConfig(hidden_size=4), input_size=1, output_size=1).eval()
    x = torch.randn(2, 6, 1)
    changed = x.clone()
    changed[:, -1] += 1.0
    assert not torch.allclose(model(x), model(changed))
