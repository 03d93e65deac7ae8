"""Greff et al.'s LSTM variants: one step of each against the equations, and nn.LSTM equivalence."""

import numpy as np
import pytest
import torch

from pipeline.model.cells import NO_PEEPHOLES, VARIANTS, VariantLayer


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _one_step(layer: VariantLayer, x, h, c, gates, name):
    """The docstring's equations in numpy, for one step from state (h, c, previous gates)."""
    hs = layer.hidden_size
    w, b = layer.w.weight.detach().numpy(), layer.w.bias.detach().numpy()
    r, p = layer.r.detach().numpy(), layer.peep.detach().numpy()
    a = w @ x + b + r @ h  # pre-activations, order i, f, z, o
    if name == "fgr":
        fb = layer.gate_r.detach().numpy() @ gates
        a = a + np.concatenate([fb[: 2 * hs], np.zeros(hs), fb[2 * hs :]])
    ai, af, az, ao = np.split(a, 4)
    z = az if name == "niaf" else np.tanh(az)
    i = np.ones(hs) if name == "nig" else _sigmoid(ai + p[0] * c)
    f = 1 - i if name == "cifg" else (np.ones(hs) if name == "nfg" else _sigmoid(af + p[1] * c))
    c_new = z * i + c * f
    o = np.ones(hs) if name == "nog" else _sigmoid(ao + p[2] * c_new)
    h_new = (c_new if name == "noaf" else np.tanh(c_new)) * o
    return h_new, c_new


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_variant_follows_its_equations(name):
    torch.manual_seed(1)
    layer = VariantLayer(3, 4, VARIANTS[name])
    with torch.no_grad():
        layer.peep.uniform_(-0.5, 0.5)  # non-zero peepholes, so they are tested
    rng = np.random.default_rng(0)
    x, h, c, gates = rng.normal(size=3), rng.normal(size=4), rng.normal(size=4), rng.uniform(size=12)
    state = tuple(torch.tensor(v, dtype=torch.float32).unsqueeze(0) for v in (h, c, gates))
    out, (h1, c1, _) = layer(torch.tensor(x, dtype=torch.float32).view(1, 1, 3), state=state)
    h_ref, c_ref = _one_step(layer, x, h, c, gates, name)
    assert np.allclose(h1[0].detach().numpy(), h_ref, atol=1e-5) and np.allclose(
        c1[0].detach().numpy(), c_ref, atol=1e-5
    )
    assert torch.equal(out[0, 0], h1[0])


def test_all_gates_no_peepholes_equals_nn_lstm():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 8, batch_first=True)
    layer = VariantLayer(3, 8, NO_PEEPHOLES)
    with torch.no_grad():  # the same weights (torch's gate order i, f, g, o)
        layer.w.weight.copy_(lstm.weight_ih_l0)
        layer.w.bias.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
        layer.r.copy_(lstm.weight_hh_l0)
    x = torch.randn(4, 10, 3)
    expected, (h, c) = lstm(x)
    out, (h2, c2, _) = layer(x)
    assert (
        torch.allclose(out, expected, atol=1e-5)
        and torch.allclose(h2, h[0], atol=1e-5)
        and torch.allclose(c2, c[0], atol=1e-5)
    )


def test_padded_steps_keep_the_state_and_gradients_flow():
    torch.manual_seed(0)
    layer = VariantLayer(2, 5, VARIANTS["fgr"])
    seqs = [torch.randn(n, 2) for n in (6, 3)]
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=7.0)
    _, (h, _, _) = layer(padded, torch.tensor([6, 3]))
    for k, s in enumerate(seqs):
        _, (h_one, _, _) = layer(s.unsqueeze(0))
        assert torch.allclose(h[k], h_one[0], atol=1e-6)  # padding never reaches the state
    h.sum().backward()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in (layer.w.weight, layer.r, layer.peep, layer.gate_r)
    )


def test_forget_gate_bias_starts_at_one():
    layer = VariantLayer(3, 4, VARIANTS["peephole"])
    assert torch.equal(layer.w.bias[4:8], torch.ones(4))


@pytest.mark.parametrize("name", sorted(VARIANTS) + ["np"])
@pytest.mark.parametrize("masked", [0, 1])
def test_hand_written_backward_equals_autograd(name, masked):
    """`scan`'s BPTT against autograd through `reference_scan`, every variant, with padding or not."""
    from pipeline.model.cells import NO_PEEPHOLES
    from pipeline.model.scan import reference_scan, scan

    variant = NO_PEEPHOLES if name == "np" else VARIANTS[name]
    flags = variant.flags() + [masked]
    torch.manual_seed(0)
    t, b, hs = 5, 3, 4
    mask = (
        (torch.arange(t)[:, None] < torch.tensor([5, 2, 4])[None, :]).unsqueeze(-1)
        if masked
        else torch.ones(t, b, 1, dtype=torch.bool)
    )
    leaves = {
        "xw": torch.randn(t, b, 4 * hs),
        "r": torch.randn(4 * hs, hs) * 0.5,
        "peep": torch.randn(3, hs) * 0.5,
        "gate_r": torch.randn(3 * hs, 3 * hs) * 0.3 if variant.gate_recurrence else torch.zeros(0, 0),
        "h": torch.randn(b, hs),
        "c": torch.randn(b, hs),
        "gates": torch.rand(b, 3 * hs),
    }
    weights = [torch.randn(t, b, hs), torch.randn(b, hs), torch.randn(b, hs), torch.randn(b, 3 * hs)]
    grads = []
    for fn in (reference_scan, scan):
        x = {k: v.double().clone().requires_grad_(v.numel() > 0) for k, v in leaves.items()}
        outs = fn(x["xw"], x["r"], x["peep"], x["gate_r"], mask, x["h"], x["c"], x["gates"], flags)
        loss = sum((o * w.double()).sum() for o, w in zip(outs, weights))
        loss.backward()
        grads.append({k: v.grad for k, v in x.items() if v.numel() > 0})
    for key, expected in grads[0].items():
        got = grads[1][key]
        if expected is None:  # not used by this variant (e.g. peepholes of "np")
            assert got is None or torch.count_nonzero(got) == 0, key
            continue
        assert torch.allclose(got, expected, atol=1e-9), key
