"""Worker shard -> batches: the Arrow collate that pads each batch to its own longest sequence."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import torch
from ray.data.collate_fn import ArrowBatchCollateFn

from pipeline.data.transforms import float_targets, next_step, sequences_to_arrays

if TYPE_CHECKING:
    from pipeline.tasks import DataInfo, TargetKind

EXTRA_COLUMNS = ("baseline", "scale", "ref", "label")


class SequenceBatch(ArrowBatchCollateFn):
    """Arrow rows (x, y) -> {"x": (B, T_max, C) float32, "lengths": (B,) int64, "y": (B, O) or (B,)}."""

    def __init__(self, target: TargetKind, *, vocab_size: int | None = None):
        super().__init__()
        self.target = target
        self.vocab_size = vocab_size

    def __call__(self, batch: pa.Table) -> dict[str, torch.Tensor]:
        arrays = sequences_to_arrays(batch, sequence_column="x")
        if self.target in ("tokens", "frames"):
            return {k: torch.from_numpy(v) for k, v in next_step(arrays, target=self.target, vocab_size=self.vocab_size).items()}
        out = {"x": torch.from_numpy(arrays["x"]), "lengths": torch.from_numpy(arrays["lengths"])}
        if "y" in batch.column_names:  # absent when predicting on data without targets
            if self.target == "class":
                y = np.array(batch.column("y").to_numpy(), dtype=np.int64)     # (B,), writable
            else:
                y = float_targets(batch, column="y")                           # (B, O)
            out["y"] = torch.from_numpy(y)
        for name in EXTRA_COLUMNS:  # evaluation-only columns (forecast: seasonal-naive baseline, MASE scale, last value; anomaly: labels)
            if name in batch.column_names:
                out[name] = torch.from_numpy(float_targets(batch, column=name))
        return out


def collate_for(info: DataInfo) -> SequenceBatch:
    """The collate for a prepared dataset (its DataInfo)."""
    return SequenceBatch(info.target, vocab_size=info.input_size if info.target == "tokens" else None)


def iter_batches(ds, *, info: DataInfo, batch_size: int, device: torch.device | str = "cpu", pin_memory: bool = False):
    """Batches of a dataset or a worker's shard (DataIterator), collated and moved to `device`.
    `pin_memory` (GPU training) pins the CPU batches in the collate threads, two batches ahead, so
    the copy to the GPU can overlap compute (`to_device(..., non_blocking=True)`)."""
    return ds.iter_torch_batches(
        batch_size=batch_size, collate_fn=collate_for(info), device=device, pin_memory=pin_memory,
        prefetch_batches=2 if pin_memory else 1,
    )


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A CPU batch on the training device (a no-op on CPU; asynchronous from pinned memory)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class ShardCache:
    """A worker's shard as collated batches, kept in memory after the first epoch if they fit.

    Ray Data streams the shard every epoch (block fetch, slicing, collate: ~1 ms per batch here, a
    tenth of a small LSTM's step); a shard that fits `budget_mb` is streamed once and then replayed
    from memory in the same order, which is what a hand-written PyTorch loop over tensors does.
    A shard over budget is streamed every epoch and nothing is kept.
    """

    def __init__(self, stream, *, budget_mb: float):
        self.stream = stream            # () -> iterable of batches (a fresh pass over the shard)
        self.budget = budget_mb * 2**20
        self.batches: list[dict[str, torch.Tensor]] | None = None
        self.over_budget = budget_mb == 0

    def __iter__(self):
        if self.batches is not None:
            yield from self.batches
            return
        kept: list[dict[str, torch.Tensor]] = []
        size = 0
        for batch in self.stream():
            if not self.over_budget:
                size += sum(t.element_size() * t.nelement() for t in batch.values())
                self.over_budget = size > self.budget
                if self.over_budget:
                    kept = []       # stream from now on
                else:
                    kept.append(batch)
            yield batch
        if not self.over_budget:  # only a complete pass is kept (a consumer that stops early keeps nothing)
            self.batches = kept
