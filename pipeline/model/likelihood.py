"""Probabilistic forecast heads (`model.likelihood`): the linear head's outputs read as the
parameters of a distribution per horizon step, constrained here, and the negative log-likelihood
(or pinball loss) that trains them.

Per step the head gives P numbers, flattened as (B, H * P) like every other model output:
  gaussian   mu, sigma            sigma = softplus(.) + 1e-3
  student_t  mu, sigma, nu        nu = 2.01 + softplus(.) (a finite variance)
  negative_binomial  mu, alpha    mu = softplus(.) + 1e-6 (mean), alpha = softplus(.) + 1e-4 (dispersion:
                                  variance mu + alpha mu^2); for counts, scaled by the training mean only
  quantile   q_1 <= ... <= q_Q    q_1 + cumulative softplus increments: monotone by construction
All in standardized target units (negative_binomial: mu in units of the training mean, alpha in
counts' own units); the served model rescales them (`OutputUnits`).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Likelihood = Literal["none", "gaussian", "student_t", "negative_binomial", "quantile"]
PARAMS = {"gaussian": ("mu", "sigma"), "student_t": ("mu", "sigma", "nu"), "negative_binomial": ("mu", "alpha")}
UNSCALED = ("nu", "alpha")  # shape parameters: the same in any units of the target


def param_names(kind: Likelihood, quantiles: list[float]) -> tuple[str, ...]:
    """The names of one horizon step's outputs."""
    if kind == "quantile":
        return tuple(f"q{q:g}" for q in quantiles)
    return PARAMS.get(kind, ("value",))


class DistributionHead(nn.Module):
    """raw (B, H * P) -> constrained parameters (B, H * P)."""

    def __init__(self, kind: Likelihood, *, per_step: int):
        super().__init__()
        self.kind, self.per_step = kind, per_step

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        r = raw.reshape(raw.shape[0], -1, self.per_step)  # (B, H, P)
        if self.kind == "negative_binomial":
            out = torch.cat([F.softplus(r[..., :1]) + 1e-6, F.softplus(r[..., 1:2]) + 1e-4], dim=-1)  # (B, H, 2)
        elif self.kind == "quantile":
            steps = F.softplus(r[..., 1:])  # (B, H, Q-1) increments >= 0
            out = torch.cat([r[..., :1], r[..., :1] + torch.cumsum(steps, dim=-1)], dim=-1)  # (B, H, Q) sorted
        else:
            sigma = F.softplus(r[..., 1:2]) + 1e-3  # (B, H, 1)
            parts = [r[..., :1], sigma]
            if self.kind == "student_t":
                parts.append(2.01 + F.softplus(r[..., 2:3]))  # nu > 2: a finite variance
            out = torch.cat(parts, dim=-1)
        return out.reshape(raw.shape[0], -1)


def nll(
    kind: Likelihood, params: torch.Tensor, y: torch.Tensor, *, quantiles: list[float], count_scale: float = 1.0
) -> torch.Tensor:
    """Per-value loss (B, H): negative log-likelihood, or the mean pinball loss over the quantiles.
    negative_binomial: y and mu in units of `count_scale` (the training mean), scored as counts."""
    p = params.reshape(y.shape[0], y.shape[1], -1)  # (B, H, P)
    if kind == "negative_binomial":
        return negative_binomial_nll(p[..., 0] * count_scale, p[..., 1], torch.round(y * count_scale))
    if kind == "gaussian":
        mu, sigma = p[..., 0], p[..., 1]
        return 0.5 * math.log(2 * math.pi) + torch.log(sigma) + 0.5 * ((y - mu) / sigma) ** 2
    if kind == "student_t":
        dist = torch.distributions.StudentT(df=p[..., 2], loc=p[..., 0], scale=p[..., 1])
        return -dist.log_prob(y)
    levels = torch.tensor(quantiles, dtype=p.dtype, device=p.device)  # (Q,)
    err = y.unsqueeze(-1) - p  # (B, H, Q)
    return torch.maximum(levels * err, (levels - 1) * err).mean(dim=-1)


def point(kind: Likelihood, params: torch.Tensor, *, horizon: int, quantiles: list[float]) -> torch.Tensor:
    """(B, H * P) -> the point forecast (B, H): the mean, or the median (the level nearest 0.5)."""
    p = params.reshape(params.shape[0], horizon, -1)
    if kind == "quantile":
        return p[..., min(range(len(quantiles)), key=lambda i: abs(quantiles[i] - 0.5))]
    return p[..., 0]


def negative_binomial_nll(mu: torch.Tensor, alpha: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-log P(y) of counts y under mean mu and dispersion alpha (NB2: variance mu + alpha mu^2)."""
    r = 1.0 / alpha  # the number of failures, real-valued
    log_p = (
        torch.lgamma(y + r)
        - torch.lgamma(r)
        - torch.lgamma(y + 1)
        + r * torch.log(r / (r + mu))
        + y * torch.log(mu / (r + mu))
    )
    return -log_p
