"""An ensemble of classifiers (`model.ensemble: M`): M copies of one model, each with its own random
initialization and dropout, trained side by side on the same batches, each on its own loss; their
class probabilities are averaged when it is judged or served.

Averaging a few independently initialized networks is the cheapest reliable gain on a small labelled
set (Lakshminarayanan et al. 2017; Dietterich 2000): members overfit in different ways, and their mean
does not share each one's mistakes. It costs M times the training and inference compute.

In training mode the forward returns every member's logits, (M, B, K), so the loss can train each on
its own (`tasks.classify.loss_terms` takes the mean of their cross-entropies); in eval mode it returns
the log of the members' mean probabilities, (B, K), which every consumer of logits (softmax, argmax,
cross-entropy) reads as one model's.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def mean_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Members' logits (M, B, K) -> log of their mean class probabilities (B, K)."""
    return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(logits.shape[0])


class Ensemble(nn.Module):
    """x (B, T, C), lengths (B,) -> each member's logits (M, B, K) in training, (B, K) log mean
    probabilities in eval."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        logits = torch.stack([member(x, lengths) for member in self.members])  # (M, B, K)
        return logits if self.training else mean_log_probs(logits)


class EnsembleServing(nn.Module):
    """The logged form of an ensemble: its members' `ServingModel`s on one NaN-padded input x (B, T, C)
    -> (B, K) log mean probabilities."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_log_probs(torch.stack([member(x) for member in self.members]))  # (M, B, K) -> (B, K)


def traced_member(model: nn.Module) -> nn.Module:
    """The model whose recurrent stack telemetry and `explain` trace: an ensemble's first member."""
    return model.members[0] if isinstance(model, Ensemble) else model
