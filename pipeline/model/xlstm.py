"""xLSTM's cells (Beck et al. 2024), in plain PyTorch: sLSTM (exponential gating, a normalizer and
a stabilizer state) and mLSTM (a matrix memory, trained in its parallel form).

sLSTM, per head (the recurrent weights R are block-diagonal over `heads`), as the upstream
`vanilla` backend computes it:

    ĩ, f̃, z̃, õ = W x_t + R h_{t-1} + b                      pre-activations (B, H) each
    m_t = max(log σ(f̃) + m_{t-1}, ĩ)                          stabilizer (m_0 = -inf)
    i_t = exp(ĩ - m_t)      f_t = exp(log σ(f̃) + m_{t-1} - m_t) exponential gates, both <= 1
    c_t = f_t c_{t-1} + i_t tanh(z̃)                           cell state
    n_t = f_t n_{t-1} + i_t                                     normalizer
    h_t = σ(õ) c_t / n_t

mLSTM, per head of size d, with q, k, v, o from x_t alone (no recurrent weights, so all steps at once):

    m_t = max(log σ(f̃_t) + m_{t-1}, ĩ_t)
    C_t = f_t C_{t-1} + i_t v_t k_t^T / sqrt(d)      n_t = f_t n_{t-1} + i_t k_t / sqrt(d)
    h_t = σ(o_t) ⊙ C_t q_t / (max(|n_t · q_t|, exp(-m_t)) + eps)

Its parallel form (`mlstm_parallel`, upstream `parallel_stabilized_simple`) builds the (T, T) matrix of
cumulative log forget gates plus input gates, stabilized by its row maximum, which equals m_t: the
parallel and the recurrent form (`mlstm_step`, upstream `recurrent_step_stabilized_simple`) agree
(tests). Training and whole-sequence inference run the parallel form; sampling steps recurrently.
Both cells are causal: a step's output never depends on later steps, so padding after a sequence's
end changes nothing before it; the sLSTM's state also stays put on padded steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-6


def _heads(hidden_size: int, heads: int) -> int:
    if hidden_size % heads:
        raise ValueError(f"model.hidden_size {hidden_size} is not a multiple of model.heads {heads}")
    return hidden_size // heads


class SLSTMLayer(nn.Module):
    """One layer, one direction: x (B, T, C) -> outputs (B, T, H), state (h, c, n, m) each (B, H)."""

    def __init__(self, input_size: int, hidden_size: int, *, heads: int = 1, forget_bias: float = 1.0):
        super().__init__()
        self.hidden_size, self.heads, self.head_size = hidden_size, heads, _heads(hidden_size, heads)
        self.w = nn.Linear(input_size, 4 * hidden_size)  # W and b for i, f, z, o
        self.r = nn.Parameter(torch.empty(4, heads, self.head_size, self.head_size))  # block-diagonal R
        bound = hidden_size**-0.5
        nn.init.uniform_(self.w.weight, -bound, bound)
        nn.init.uniform_(self.r, -(self.head_size**-0.5), self.head_size**-0.5)
        with torch.no_grad():
            self.w.bias.zero_()
            self.w.bias[hidden_size : 2 * hidden_size] = forget_bias

    def initial_state(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        return zeros, zeros, zeros, torch.full_like(zeros, -math.inf)

    def forward(self, x: Tensor, lengths: Tensor | None = None, state=None, trace: list | None = None):
        b, t, _ = x.shape
        xw = self.w(x).view(b, t, 4, self.hidden_size)  # (B, T, 4, H): one matmul for all steps
        h, c, n, m = state if state is not None else self.initial_state(x)
        real = None if lengths is None else torch.arange(t, device=x.device)[None, :] < lengths.to(x.device)[:, None]
        nh, d = self.heads, self.head_size
        r = self.r.permute(1, 3, 0, 2).reshape(nh, d, 4 * d)  # (heads, d_in, 4 d_out): one matmul per head
        outs = []
        for step in range(t):
            ry = torch.bmm(h.view(b, nh, d).transpose(0, 1), r)  # (heads, B, 4 d)
            raw = xw[:, step] + ry.view(nh, b, 4, d).permute(1, 2, 0, 3).reshape(b, 4, self.hidden_size)  # (B, 4, H)
            i_pre, f_pre, z_pre, o_pre = raw.unbind(1)
            log_f = F.logsigmoid(f_pre) + m
            m_new = torch.maximum(log_f, i_pre)  # the stabilizer: exp below never exceeds 1
            i, f = torch.exp(i_pre - m_new), torch.exp(log_f - m_new)
            c_new = f * c + i * torch.tanh(z_pre)
            n_new = f * n + i
            h_new = torch.sigmoid(o_pre) * c_new / n_new
            if trace is not None:
                trace.append(
                    {
                        "input_pre": i_pre,
                        "forget_pre": f_pre,
                        "cell": c_new,
                        "normalizer": n_new,
                        "stabilizer": m_new,
                        "hidden": h_new,
                    }
                )
            if real is not None:
                keep = real[:, step, None]  # (B, 1): padded steps leave the state as it was
                h_new, c_new = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
                n_new, m_new = torch.where(keep, n_new, n), torch.where(keep, m_new, m)
            h, c, n, m = h_new, c_new, n_new, m_new
            outs.append(h)
        return torch.stack(outs, dim=1), (h, c, n, m)


class MLSTMLayer(nn.Module):
    """One layer, one direction: x (B, T, C) -> outputs (B, T, H); the recurrent state (C, n, m)
    only when stepping (`state` given, or one step at a time)."""

    def __init__(self, input_size: int, hidden_size: int, *, heads: int = 1, forget_bias: float = 1.0):
        super().__init__()
        self.hidden_size, self.heads, self.head_size = hidden_size, heads, _heads(hidden_size, heads)
        self.qkv = nn.Linear(input_size, 3 * hidden_size)
        self.gates = nn.Linear(input_size, 2 * heads)  # ĩ, f̃ per head
        self.out_gate = nn.Linear(input_size, hidden_size)
        with torch.no_grad():
            self.gates.bias.zero_()
            self.gates.bias[heads:] = forget_bias

    def _project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        q, k, v = (
            part.view(b, t, self.heads, self.head_size).transpose(1, 2) for part in self.qkv(x).chunk(3, dim=-1)
        )  # (B, heads, T, d) each
        i_pre, f_pre = (g.transpose(1, 2).unsqueeze(-1) for g in self.gates(x).chunk(2, dim=-1))  # (B, heads, T, 1)
        return q, k, v, i_pre, f_pre

    def forward(self, x: Tensor, lengths: Tensor | None = None, state=None):
        b, t, _ = x.shape
        q, k, v, i_pre, f_pre = self._project(x)
        if state is None and t > 1:
            h = mlstm_parallel(q, k, v, i_pre, f_pre)  # (B, heads, T, d)
        else:
            state = state if state is not None else self.initial_state(x)
            steps = []
            for s in range(t):
                h_s, state = mlstm_step(state, q[:, :, s], k[:, :, s], v[:, :, s], i_pre[:, :, s], f_pre[:, :, s])
                steps.append(h_s)
            h = torch.stack(steps, dim=2)  # (B, heads, T, d)
        h = h.transpose(1, 2).reshape(b, t, self.hidden_size)  # (B, T, H)
        return torch.sigmoid(self.out_gate(x)) * h, state

    def initial_state(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, nh, d = x.shape[0], self.heads, self.head_size
        return x.new_zeros(b, nh, d, d), x.new_zeros(b, nh, d), x.new_full((b, nh, 1), -math.inf)


def mlstm_parallel(q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, f_pre: Tensor) -> Tensor:
    """All steps at once: q, k, v (B, NH, T, d), gate pre-activations (B, NH, T, 1) -> h̃ (B, NH, T, d)."""
    t, d = q.shape[-2], q.shape[-1]
    log_f = torch.cumsum(F.logsigmoid(f_pre), dim=-2)  # (B, NH, T, 1): sum of log f_1..f_t
    causal = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    log_d = log_f - log_f.transpose(-2, -1) + i_pre.transpose(-2, -1)  # (B, NH, T, T): sum_{s<r<=t} log f_r + ĩ_s
    log_d = log_d.masked_fill(~causal, -math.inf)
    m = log_d.amax(dim=-1, keepdim=True)  # (B, NH, T, 1): the stabilizer m_t
    weights = (q @ k.transpose(-2, -1) / math.sqrt(d)) * torch.exp(log_d - m)  # (B, NH, T, T)
    norm = torch.maximum(weights.sum(dim=-1, keepdim=True).abs(), torch.exp(-m))  # (B, NH, T, 1)
    return (weights / (norm + EPS)) @ v


def mlstm_step(state, q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, f_pre: Tensor):
    """One step: state (C (B, NH, d, d), n (B, NH, d), m (B, NH, 1)); q, k, v (B, NH, d); gates (B, NH, 1)."""
    c, n, m = state
    d = q.shape[-1]
    log_f = F.logsigmoid(f_pre) + m
    m_new = torch.maximum(log_f, i_pre)
    f, i = torch.exp(log_f - m_new), torch.exp(i_pre - m_new)  # (B, NH, 1)
    k = k / math.sqrt(d)
    c = f[..., None] * c + i[..., None] * (v[..., :, None] * k[..., None, :])  # (B, NH, d, d): v k^T
    n = f * n + i * k  # (B, NH, d)
    num = (c @ q[..., None]).squeeze(-1)  # (B, NH, d)
    den = torch.maximum((n * q).sum(-1, keepdim=True).abs(), torch.exp(-m_new)) + EPS  # (B, NH, 1)
    return num / den, (c, n, m_new)
