"""The recurrent loop of the custom LSTM cells, with a hand-written backward pass (BPTT).

`reference_scan` is the loop as plain tensor code: autograd differentiates it and torch.export
traces it (the served model). Training uses `scan`: the same loop in TorchScript without autograd,
saving each step's activations, and a TorchScript backward loop that needs one small matmul per
step; the weight gradients are one large matmul over all steps afterwards. Tests check it against
`reference_scan` with `torch.autograd.gradcheck`.

Shapes: xw (T, B, 4H) input projections W x_t + b in nn.LSTM's gate order (i, f, z, o); r (4H, H);
peep (3, H) peepholes p_i, p_f, p_o; gate_r (3H, 3H) full gate recurrence (or 0x0); mask (T, B, 1)
real steps; h, c (B, H); gates (B, 3H) the previous step's i, f, o. Flags: input gate, forget
gate, output gate, input activation, output activation, coupled, gate recurrence, peepholes, masked.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reference_scan(
    xw: Tensor,
    r: Tensor,
    peep: Tensor,
    gate_r: Tensor,
    mask: Tensor,
    h: Tensor,
    c: Tensor,
    gates: Tensor,
    flags: list[int],
    trace: list[dict[str, Tensor]] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """-> outputs (T, B, H), final h, c, gates. With `trace` (a list), each step's block input,
    gates, cell state and output (B, H) are appended to it (`pipeline.telemetry`)."""
    use_i, use_f, use_o, act_z, act_h, coupled, fgr, peepholes, masked = flags
    hidden = h.shape[1]
    one = torch.ones_like(c)
    outs = []
    for t in range(xw.shape[0]):
        a = torch.addmm(xw[t], h, r.t())  # (B, 4H)
        if fgr:
            fb = torch.mm(gates, gate_r.t())  # (B, 3H) previous i, f, o -> i, f, o
            a = a + torch.cat([fb[:, : 2 * hidden], torch.zeros_like(h), fb[:, 2 * hidden :]], 1)
        ai, af, az, ao = a.chunk(4, 1)
        if peepholes:
            ai, af = ai + peep[0] * c, af + peep[1] * c
        z = torch.tanh(az) if act_z else az
        i = torch.sigmoid(ai) if use_i else one
        f = 1.0 - i if coupled else (torch.sigmoid(af) if use_f else one)
        c_new = z * i + c * f
        o = (torch.sigmoid(ao + peep[2] * c_new) if peepholes else torch.sigmoid(ao)) if use_o else one
        h_new = (torch.tanh(c_new) if act_h else c_new) * o
        if trace is not None:
            trace.append({"block_input": z, "input": i, "forget": f, "output": o, "cell": c_new, "hidden": h_new})
        if masked:
            m = mask[t]
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            gates = torch.where(m, torch.cat([i, f, o], 1), gates) if fgr else gates
        else:
            h, c = h_new, c_new
            gates = torch.cat([i, f, o], 1) if fgr else gates
        outs.append(h_new)
    return torch.stack(outs), h, c, gates


@torch.jit.script
def _forward(
    xw: Tensor,
    r: Tensor,
    peep: Tensor,
    gate_r: Tensor,
    mask: Tensor,
    h: Tensor,
    c: Tensor,
    gates: Tensor,
    flags: list[int],
) -> list[Tensor]:
    """The loop without autograd; returns outputs, final state and what the backward pass needs."""
    use_i, use_f, use_o, act_z, act_h, coupled, fgr, peepholes, masked = (
        flags[0],
        flags[1],
        flags[2],
        flags[3],
        flags[4],
        flags[5],
        flags[6],
        flags[7],
        flags[8],
    )
    hidden = h.shape[1]
    steps = xw.shape[0]
    r_t, gate_r_t = r.t(), gate_r.t()
    one = torch.ones_like(c)
    hs = xw.new_empty(steps + 1, h.shape[0], hidden)  # h entering each step, and the final h
    cs = xw.new_empty(steps + 1, h.shape[0], hidden)
    gs = xw.new_empty(steps + 1, h.shape[0], 3 * hidden)  # previous gates entering each step
    acts = xw.new_empty(steps, h.shape[0], 6 * hidden)  # z, i, f, o, act_h(c_new), c_new
    outs = xw.new_empty(steps, h.shape[0], hidden)
    for t in range(steps):
        hs[t], cs[t], gs[t] = h, c, gates
        a = torch.addmm(xw[t], h, r_t)
        if fgr == 1:
            fb = torch.mm(gates, gate_r_t)
            a = a + torch.cat([fb[:, : 2 * hidden], torch.zeros_like(h), fb[:, 2 * hidden :]], 1)
        ai, af, az, ao = a.chunk(4, 1)
        if peepholes == 1:
            ai = ai + peep[0] * c
            af = af + peep[1] * c
        z = torch.tanh(az) if act_z == 1 else az
        i = torch.sigmoid(ai) if use_i == 1 else one
        if coupled == 1:
            f = 1.0 - i
        elif use_f == 1:
            f = torch.sigmoid(af)
        else:
            f = one
        c_new = z * i + c * f
        if use_o == 1:
            o = torch.sigmoid(ao + peep[2] * c_new) if peepholes == 1 else torch.sigmoid(ao)
        else:
            o = one
        hc = torch.tanh(c_new) if act_h == 1 else c_new
        h_new = hc * o
        acts[t] = torch.cat([z, i, f, o, hc, c_new], 1)
        outs[t] = h_new
        if masked == 1:
            m = mask[t]
            h = torch.where(m, h_new, h)
            c = torch.where(m, c_new, c)
            if fgr == 1:
                gates = torch.where(m, torch.cat([i, f, o], 1), gates)
        else:
            h, c = h_new, c_new
            if fgr == 1:
                gates = torch.cat([i, f, o], 1)
    hs[steps], cs[steps], gs[steps] = h, c, gates
    return [outs, hs, cs, gs, acts]


@torch.jit.script
def _backward(
    dout: Tensor,
    dh: Tensor,
    dc: Tensor,
    dg: Tensor,
    hs: Tensor,
    cs: Tensor,
    gs: Tensor,
    acts: Tensor,
    r: Tensor,
    peep: Tensor,
    gate_r: Tensor,
    mask: Tensor,
    flags: list[int],
) -> list[Tensor]:
    """Gradients from the loss's dout (T, B, H) and the final state's dh, dc, dg, step by step back."""
    use_i, use_f, use_o, act_z, act_h, coupled, fgr, peepholes, masked = (
        flags[0],
        flags[1],
        flags[2],
        flags[3],
        flags[4],
        flags[5],
        flags[6],
        flags[7],
        flags[8],
    )
    hidden = dh.shape[1]
    steps = dout.shape[0]
    dxw = dout.new_empty(steps, dh.shape[0], 4 * hidden)
    dpeep = torch.zeros_like(peep)
    zero = torch.zeros_like(dh)
    for t in range(steps - 1, -1, -1):
        z, i, f, o, hc, c_new = acts[t].chunk(6, 1)
        c_prev = cs[t]
        if masked == 1:  # a padded step passed the state through
            mf = mask[t].to(dh.dtype)
            dh_new, dc_new, dg_new = dout[t] + mf * dh, mf * dc, mf * dg
            keep_h, keep_c, keep_g = (1.0 - mf) * dh, (1.0 - mf) * dc, (1.0 - mf) * dg
        else:
            dh_new, dc_new, dg_new = dout[t] + dh, dc, dg
            keep_h, keep_c, keep_g = zero, zero, torch.zeros_like(dg)
        d_o = dh_new * hc if use_o == 1 else zero
        dhc = dh_new * o
        if fgr == 1:
            d_o = d_o + dg_new[:, 2 * hidden :]
        dc_new = dc_new + (dhc * (1.0 - hc * hc) if act_h == 1 else dhc)
        d_ao = d_o * o * (1.0 - o) if use_o == 1 else zero
        if peepholes == 1 and use_o == 1:
            dc_new = dc_new + d_ao * peep[2]
            dpeep[2] += (d_ao * c_new).sum(0)
        dz, di, df = dc_new * i, dc_new * z, dc_new * c_prev
        dc_prev = dc_new * f
        if fgr == 1:
            di = di + dg_new[:, :hidden]
            df = df + dg_new[:, hidden : 2 * hidden]
        if coupled == 1:  # f = 1 - i
            di = di - df
        d_ai = di * i * (1.0 - i) if use_i == 1 else zero
        d_af = df * f * (1.0 - f) if (use_f == 1 and coupled == 0) else zero
        d_az = dz * (1.0 - z * z) if act_z == 1 else dz
        if peepholes == 1:
            dc_prev = dc_prev + d_ai * peep[0] + d_af * peep[1]
            dpeep[0] += (d_ai * c_prev).sum(0)
            dpeep[1] += (d_af * c_prev).sum(0)
        da = torch.cat([d_ai, d_af, d_az, d_ao], 1)  # (B, 4H)
        dxw[t] = da
        dh = torch.mm(da, r) + keep_h
        dc = dc_prev + keep_c
        if fgr == 1:
            dg = torch.mm(torch.cat([d_ai, d_af, d_ao], 1), gate_r) + keep_g
        # without gate recurrence the gates state passes through untouched: dg carries over as is
    flat = dxw.reshape(-1, 4 * hidden)
    dr = torch.mm(flat.t(), hs[:steps].reshape(-1, hidden))  # all steps in one matmul
    if fgr == 1:
        ifo = torch.cat([flat[:, : 2 * hidden], flat[:, 3 * hidden :]], 1)
        dgate_r = torch.mm(ifo.t(), gs[:steps].reshape(-1, 3 * hidden))
    else:
        dgate_r = torch.zeros_like(gate_r)
    return [dxw, dr, dpeep, dgate_r, dh, dc, dg]


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xw, r, peep, gate_r, mask, h, c, gates, flags):
        outs, hs, cs, gs, acts = _forward(xw, r, peep, gate_r, mask, h, c, gates, flags)
        ctx.save_for_backward(hs, cs, gs, acts, r, peep, gate_r, mask)
        ctx.flags = flags
        return outs, hs[-1], cs[-1], gs[-1]

    @staticmethod
    def backward(ctx, dout, dh, dc, dg):
        hs, cs, gs, acts, r, peep, gate_r, mask = ctx.saved_tensors
        dxw, dr, dpeep, dgate_r, dh0, dc0, dg0 = _backward(
            dout.contiguous(), dh, dc, dg, hs, cs, gs, acts, r, peep, gate_r, mask, ctx.flags
        )
        return dxw, dr, dpeep, dgate_r, None, dh0, dc0, dg0, None


def scan(
    xw: Tensor,
    r: Tensor,
    peep: Tensor,
    gate_r: Tensor,
    mask: Tensor,
    h: Tensor,
    c: Tensor,
    gates: Tensor,
    flags: list[int],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The loop for training and inference (hand-written backward); the reference when exporting."""
    if torch.compiler.is_exporting():
        return reference_scan(xw, r, peep, gate_r, mask, h, c, gates, flags)
    outs, h, c, gates = _Scan.apply(xw, r, peep, gate_r, mask, h, c, gates, flags)
    return outs, h, c, gates
