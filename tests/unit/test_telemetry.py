"""Telemetry: recomputed gates and states equal the real ones, and gradient flow behaves as theory says."""

import math

import numpy as np
import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.model.cells import NO_PEEPHOLES, VariantLayer
from pipeline.model.sequence_model import build_model
from pipeline.telemetry import column, probe, summarize, trace_model
from pipeline.telemetry.trace import trace_cell


def _batch(b=4, t=9, c=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, c, generator=g), torch.tensor([t, t - 3, t, 2][:b])


def test_gates_recomputed_from_nn_lstm_weights_equal_the_custom_cells_internal_gates():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(2, 8, batch_first=True)
    custom = VariantLayer(2, 8, NO_PEEPHOLES)  # all gates, no peepholes: nn.LSTM's equations
    with torch.no_grad():
        custom.w.weight.copy_(lstm.weight_ih_l0)
        custom.w.bias.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
        custom.r.copy_(lstm.weight_hh_l0)
    x, lengths = _batch()
    fused = trace_cell(lstm, x, lengths, layer=0, direction=0)
    inner = trace_cell(custom, x, lengths, layer=0, direction=0)  # reference_scan's own i, f, o, c
    assert set(fused.gates) == set(inner.gates) == {"input", "forget", "output"}
    for name in fused.gates:
        assert torch.allclose(fused.gates[name], inner.gates[name], atol=1e-6)
    assert torch.allclose(fused.cell, inner.cell, atol=1e-6)
    # and the recomputed outputs are nn.LSTM's own, on the real steps
    out, _ = lstm(x)
    steps = torch.stack(fused.hidden, dim=1)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(steps[b, :n], out[b, :n], atol=1e-6)


@pytest.mark.parametrize(
    "cell, extra",
    [
        ("lstm", {}),
        ("lstm", {"proj_size": 3}),
        ("gru", {}),
        ("rnn", {}),
        ("cifg", {}),
        ("nog", {}),
        ("fgr", {}),
        ("lstm", {"num_layers": 2, "bidirectional": True}),
        ("slstm", {"heads": 2}),
        ("mlstm", {"heads": 2, "num_layers": 2, "bidirectional": True}),
    ],
)
def test_the_traced_model_computes_the_models_output(cell, extra):
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell=cell, hidden_size=6, **extra), input_size=2, output_size=1).eval()
    x, lengths = _batch()
    with torch.no_grad():
        expected = model(x, lengths)
    trace = trace_model(model, x, lengths)
    assert torch.allclose(trace.output, expected, atol=1e-5)
    names = {
        "lstm": {"input", "forget", "output"},
        "gru": {"update", "reset"},
        "rnn": set(),
        "cifg": {"input", "forget", "output"},
        "nog": {"input", "forget"},
        "fgr": {"input", "forget", "output"},
        "slstm": set(),  # exponential gates: their pre-activations, normalizer and stabilizer are states
        "mlstm": set(),
    }[cell]
    assert set(trace.layers[0].gates) == names
    if cell in ("slstm", "mlstm"):
        assert set(trace.layers[0].states) == {"input_pre", "forget_pre", "normalizer", "stabilizer"}
    assert len(trace.layers) == (4 if extra.get("bidirectional") else 1)


def test_summary_counts_real_steps_only_and_bounds_gates():
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="lstm", hidden_size=6), input_size=2, output_size=1)
    x, lengths = _batch()
    y = torch.randn(4, 1)
    table = summarize(probe(model, x, lengths, y, loss=lambda p, t: ((p - t) ** 2).sum()))
    assert set(table.column_names) == {"layer", "direction", "quantity", "t", "mean", "p5", "p50", "p95", "saturated"}
    assert set(table.column("quantity").to_pylist()) == {
        "gate:input",
        "gate:forget",
        "gate:output",
        "cell_norm",
        "hidden_norm",
        "grad_norm",
    }
    forget = column(table, quantity="gate:forget")
    assert forget.shape == (9,) and np.all((forget > 0) & (forget < 1))
    lo, hi = column(table, quantity="gate:input", stat="p5"), column(table, quantity="gate:input", stat="p95")
    assert np.all(lo <= hi)
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient: safe beside DDP


def test_gradient_flow_vanishes_with_distance_in_a_small_weight_rnn():
    """The textbook case: tanh RNN with recurrent weights of norm < 1, loss on the last step only:
    ||dloss/dh_t|| shrinks geometrically going back from the end."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="rnn", hidden_size=16), input_size=2, output_size=1)
    with torch.no_grad():
        model.rnn.layers[0][0].weight_hh_l0.mul_(0.5)
    t = 20
    x, y = torch.randn(8, t, 2), torch.randn(8, 1)
    table = summarize(probe(model, x, torch.full((8,), t), y, loss=lambda p, target: ((p - target) ** 2).sum()))
    flow = column(table, quantity="grad_norm")
    assert flow.shape == (t,)
    assert np.all(flow > 0) and math.isfinite(flow[0])
    assert flow[-1] > 100 * flow[t // 2] > 100 * 100 * flow[0]  # decays by orders of magnitude
    assert np.all(np.diff(np.log(flow)) > 0)  # monotone towards the loss


def test_without_a_target_gates_and_states_only_and_the_reading_says_what_happened():
    from pipeline.serve.explain import read_trace
    from pipeline.telemetry.record import record

    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="lstm", hidden_size=6), input_size=2, output_size=1)
    x, lengths = _batch(b=1, t=9)
    recorded = record(model, {"x": x, "lengths": lengths}, loss=None, epoch=0, prefix="row_0")
    assert "grad_norm" not in recorded.table.column("quantity").to_pylist()
    assert set(recorded.figures) == {"row_0_gate_heatmaps.png", "row_0_gate_bands.png", "row_0_state_norms.png"}
    reading = read_trace(recorded.table, length=9)
    assert reading[0].startswith("input gate opened most at steps") and reading[1].startswith("forget gate")
    assert len(reading) == 3  # no gradient line without a target
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("cell", ["slstm", "mlstm"])
def test_xlstm_telemetry_summarizes_gate_pre_activations_normalizer_stabilizer_and_gradient_flow(cell):
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell=cell, hidden_size=6, heads=2), input_size=2, output_size=1)
    x, lengths = _batch()
    table = summarize(probe(model, x, lengths, torch.randn(4, 1), loss=lambda p, t: ((p - t) ** 2).sum()))
    quantities = set(table.column("quantity").to_pylist())
    assert {"state:input_pre", "state:forget_pre", "state:normalizer", "state:stabilizer"} <= quantities
    assert {"cell_norm", "hidden_norm", "grad_norm"} <= quantities
    assert np.all(column(table, quantity="state:normalizer") > 0)  # n_t >= the stabilized input gate > 0
    assert np.all(np.isfinite(column(table, quantity="grad_norm")))
