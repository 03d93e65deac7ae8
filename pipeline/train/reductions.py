"""Loss accumulation on a worker and its reduction across workers.

Each worker sums squared errors and counts over its shard; the sums are all-reduced so every
worker reports the same global mean, whatever the shard sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class MeanAccumulator:
    """A running sum kept as a tensor on the batch's device: adding never waits for the GPU
    (a float() per batch would synchronize every step); the sum is read once per epoch."""

    total: torch.Tensor | float = 0.0
    count: int = 0

    def add(self, batch_sum: torch.Tensor, n: int) -> None:
        self.total = self.total + batch_sum.detach().double()
        self.count += int(n)

    @property
    def mean(self) -> float:
        return float(self.total) / self.count if self.count else float("nan")


def reduce_means(accs: dict[str, MeanAccumulator]) -> dict[str, float]:
    """Global means over all workers (a single all-reduce for all metrics); local if not distributed."""
    names = sorted(accs)
    buf = torch.tensor([[float(accs[k].total), accs[k].count] for k in names], dtype=torch.float64)  # (M, 2)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return {k: (float(buf[i, 0] / buf[i, 1]) if buf[i, 1] > 0 else float("nan")) for i, k in enumerate(names)}


def reduce_throughput(sequences: int, seconds: float) -> dict[str, float]:
    """Training throughput over all workers: every worker's sequences over the slowest worker's
    time (the epoch waits for it). `train_seq_per_s` is global, `train_epoch_s` the training time."""
    seqs = torch.tensor([float(sequences)], dtype=torch.float64)
    slowest = torch.tensor([seconds], dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(seqs, op=dist.ReduceOp.SUM)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return {"train_seq_per_s": float(seqs / slowest) if slowest > 0 else float("nan"), "train_epoch_s": float(slowest)}


def gather_lists(local: list) -> list:
    """Every worker's list, concatenated in rank order, on every worker (all_gather_object)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(local)
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, local)
    return [item for part in parts for item in part]
