"""xLSTM's cells against their equations: sLSTM and mLSTM stabilized as upstream does, the mLSTM's
parallel and recurrent forms equal, no overflow where plain exponential gates overflow."""

import math

import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.model.sequence_model import build_model
from pipeline.model.xlstm import MLSTMLayer, SLSTMLayer, mlstm_parallel


def _slstm_unstabilized(layer: SLSTMLayer, x: torch.Tensor) -> torch.Tensor:
    """The paper's equations without the stabilizer (i = exp(ĩ), f = σ(f̃)): equal while nothing overflows."""
    b, t, _ = x.shape
    hid, heads, d = layer.hidden_size, layer.heads, layer.head_size
    r = torch.block_diag(*[layer.r[g, n] for g in range(4) for n in range(heads)])  # (4H, 4H) per gate and head
    h = c = n = x.new_zeros(b, hid)
    outs = []
    for s in range(t):
        rec = torch.cat([h.view(b, heads, d)] * 4, dim=1).reshape(b, 4 * hid) @ r.t()  # (B, 4H)
        i_pre, f_pre, z_pre, o_pre = (layer.w(x[:, s]) + rec).chunk(4, dim=1)
        i, f = torch.exp(i_pre), torch.sigmoid(f_pre)
        c, n = f * c + i * torch.tanh(z_pre), f * n + i
        h = torch.sigmoid(o_pre) * c / n
        outs.append(h)
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("heads", [1, 2])
def test_slstm_follows_its_equations(heads):
    torch.manual_seed(0)
    layer = SLSTMLayer(3, 8, heads=heads)
    x = torch.randn(4, 9, 3)
    out, (h, c, n, m) = layer(x)
    assert torch.allclose(out, _slstm_unstabilized(layer, x), atol=1e-5)
    assert torch.equal(h, out[:, -1]) and torch.all(n > 0) and torch.isfinite(m).all()


def _mlstm_unstabilized(q, k, v, i_pre, f_pre):
    """C_t = f C + i v k^T / sqrt(d), n_t = f n + i k / sqrt(d), h = C q / max(|n q|, 1), i = exp(ĩ)."""
    b, nh, t, d = q.shape
    c, n, outs = q.new_zeros(b, nh, d, d), q.new_zeros(b, nh, d), []
    for s in range(t):
        i, f = torch.exp(i_pre[:, :, s]), torch.sigmoid(f_pre[:, :, s])  # (B, NH, 1)
        k_s = k[:, :, s] / math.sqrt(d)
        c = f[..., None] * c + i[..., None] * (v[:, :, s, :, None] * k_s[..., None, :])
        n = f * n + i * k_s
        den = torch.maximum((n * q[:, :, s]).sum(-1, keepdim=True).abs(), torch.ones(1))
        outs.append((c @ q[:, :, s, :, None]).squeeze(-1) / den)
    return torch.stack(outs, dim=2)


def test_mlstm_parallel_and_recurrent_forms_agree_with_the_equations():
    torch.manual_seed(0)
    layer = MLSTMLayer(3, 8, heads=2).eval()
    x = torch.randn(4, 11, 3)
    parallel, state = layer(x)
    assert state is None  # the parallel form keeps no state
    stepped, state = layer(x, state=layer.initial_state(x))  # the recurrent form from the start
    assert torch.allclose(parallel, stepped, atol=1e-5)
    one_at_a_time, s = [], None
    for t in range(x.shape[1]):  # sampling: one step per call, the state carried
        out, s = layer(x[:, t : t + 1], state=s)
        one_at_a_time.append(out)
    assert torch.allclose(torch.cat(one_at_a_time, dim=1), parallel, atol=1e-5)
    q, k, v, i_pre, f_pre = layer._project(x)
    assert torch.allclose(mlstm_parallel(q, k, v, i_pre, f_pre), _mlstm_unstabilized(q, k, v, i_pre, f_pre), atol=1e-5)


def test_exponential_gates_do_not_overflow():
    """Input gate pre-activations of ~1000 overflow exp() in float32; the stabilized cells stay finite."""
    torch.manual_seed(0)
    x = torch.randn(2, 20, 3) * 1000
    for layer in (SLSTMLayer(3, 8), MLSTMLayer(3, 8)):
        with torch.no_grad():
            for p in layer.parameters():
                p.mul_(50)
        out, _ = layer(x)
        assert torch.isfinite(out).all()
        out.sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    q = torch.randn(1, 1, 5, 4)
    i_pre = torch.full((1, 1, 5, 1), 1000.0)
    assert not torch.isfinite(_mlstm_unstabilized(q, q, q, i_pre, i_pre)).all()  # what the stabilizer prevents


@pytest.mark.parametrize("cell", ["slstm", "mlstm"])
def test_sampling_steps_equal_the_whole_sequence(cell):
    """A generate model steps one input at a time (state carried) and must equal its training pass."""
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(cell=cell, hidden_size=8, num_layers=2, heads=2), input_size=3, output_size=5, readout="every"
    ).eval()
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        whole = model(x)  # (B, T, O)
        state, steps = None, []
        for t in range(6):
            logits, state = model.step(x[:, t], state)
            steps.append(logits)
    assert torch.allclose(torch.stack(steps, dim=1), whole, atol=1e-5)


def test_heads_must_divide_the_hidden_size_and_belong_to_an_xlstm_cell():
    from pipeline import config
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="model.hidden_size 10 is not a multiple of model.heads 4"):
        config.validate({"model": {"cell": "mlstm", "hidden_size": 10, "heads": 4}})
    with pytest.raises(ConfigError, match="model.heads is for cell slstm or mlstm"):
        config.validate({"model": {"cell": "lstm", "heads": 2}})
