"""The training recipe: the optimizer, the learning rate of each epoch, and when to stop early.

The learning rate and the stopping decision are pure functions of the epoch and the history of
epoch metrics the run has reported (and every checkpoint keeps). So a resumed run, or a worker
group restarted from a checkpoint, continues with exactly the rate and the patience count it would
have had, with no scheduler state to save; and every rank, holding the same all-reduced metrics,
decides the same. The rate changes once per epoch, before its first batch:

  warmup     epochs 0..W-1: lr * (e + 1) / (W + 1), rising to lr at epoch W
  constant   lr
  cosine     lr/100 + (lr - lr/100) * (1 + cos(pi * (e - W) / (E - W))) / 2
  onecycle   up from lr/25 to lr over W epochs (30% of E when W = 0), cosine down to lr/10^4 at the end
  plateau    lr * factor^k, k the number of cuts: one each time val_loss has not beaten its best for
             more than `patience` epochs (then the count restarts), as torch's ReduceLROnPlateau
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from pipeline.config import TrainConfig

COSINE_FLOOR = 0.01  # cosine ends at lr/100
ONECYCLE_START, ONECYCLE_END = 1 / 25, 1e-4  # torch's OneCycleLR defaults (div_factor, final_div_factor / div)
ONECYCLE_RISE = 0.3  # share of the epochs spent rising when train.warmup_epochs is 0 (torch's pct_start)
PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.5, 2
SGD_MOMENTUM = 0.9


def optimizer_for(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """adam, adamw or sgd; weight decay on matrices and embeddings only (parameters of 2+ dims)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},  # biases, norms' gains
    ]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "sgd":
        momentum = SGD_MOMENTUM if cfg.momentum is None else cfg.momentum
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=momentum)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.Adam(groups, lr=cfg.lr)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """A checkpoint's optimizer state (moments, momentum buffers) under this run's hyperparameters:
    torch's load_state_dict would also bring back the saved weight decay and momentum, which a PBT
    clone has just mutated (the rate is set each epoch anyway)."""
    own = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, hyper in zip(optimizer.param_groups, own, strict=True):
        group.update(hyper)


def lr_at(epoch: int, history: Sequence[dict[str, float]], cfg: TrainConfig) -> float:
    """The learning rate of `epoch`, from the metrics of the epochs before it."""
    lr, total, warm = cfg.lr, cfg.epochs, cfg.warmup_epochs
    if cfg.schedule == "onecycle":
        rise = warm or max(1, round(ONECYCLE_RISE * total))
        if epoch < rise:
            return lr * (ONECYCLE_START + (1 - ONECYCLE_START) * epoch / rise)
        return _cosine(epoch - rise, total - rise, top=lr, floor=lr * ONECYCLE_END)
    if epoch < warm:
        return lr * (epoch + 1) / (warm + 1)
    if cfg.schedule == "cosine":
        return _cosine(epoch - warm, total - warm, top=lr, floor=lr * COSINE_FLOOR)
    if cfg.schedule == "plateau":
        losses = [h["val_loss"] for h in history[warm:epoch]]
        return lr * _plateau_factor(cfg) ** plateau_cuts(losses, patience=_plateau_patience(cfg))
    return lr


def _cosine(step: int, steps: int, *, top: float, floor: float) -> float:
    """From `top` at step 0 down towards `floor` (reached at step `steps`, one past the last epoch)."""
    return floor + (top - floor) * (1 + math.cos(math.pi * min(step / max(steps, 1), 1.0))) / 2


def _plateau_factor(cfg: TrainConfig) -> float:
    return PLATEAU_FACTOR if cfg.plateau_factor is None else cfg.plateau_factor


def _plateau_patience(cfg: TrainConfig) -> int:
    return PLATEAU_PATIENCE if cfg.plateau_patience is None else cfg.plateau_patience


def plateau_cuts(losses: Sequence[float], *, patience: int) -> int:
    """How many times ReduceLROnPlateau (mode min, threshold 0, cooldown 0) cut the rate over `losses`."""
    best, bad, cuts = math.inf, 0, 0
    for loss in losses:
        if loss < best:
            best, bad = loss, 0
        else:
            bad += 1
        if bad > patience:
            cuts, bad = cuts + 1, 0
    return cuts


@dataclass(frozen=True)
class StopRule:
    """Early stopping (`train.early_stopping`): the watched metric, its direction and the patience."""

    metric: str
    mode: Literal["min", "max"]
    patience: int
    min_delta: float

    def reached(self, history: Sequence[dict[str, float]]) -> bool:
        """True when the last `patience` epochs did not beat the best before them by more than `min_delta`."""
        values = [h[self.metric] for h in history]
        if len(values) <= self.patience:
            return False
        sign = 1.0 if self.mode == "min" else -1.0  # compared as losses
        best = min(sign * v for v in values[: -self.patience])
        return not any(sign * v < best - self.min_delta for v in values[-self.patience :])


def stop_rule(cfg: TrainConfig, *, mode_of: Callable[[str], Literal["min", "max"]]) -> StopRule | None:
    """The run's stopping rule (None: train every epoch); `mode_of(metric)` is the task's direction."""
    rule = cfg.early_stopping
    if rule is None:
        return None
    metric = rule.metric or cfg.checkpoint_metric
    return StopRule(metric=metric, mode=mode_of(metric), patience=rule.patience, min_delta=rule.min_delta)
