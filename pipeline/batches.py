"""Worker shard -> batches: the Arrow collate that pads each batch to its own longest sequence."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch
from ray.data.collate_fn import ArrowBatchCollateFn

from pipeline.tasks import TargetKind
from pipeline.transforms import float_targets, sequences_to_arrays


EXTRA_COLUMNS = ("baseline", "scale")


class SequenceBatch(ArrowBatchCollateFn):
    """Arrow rows (x, y) -> {"x": (B, T_max, C) float32, "lengths": (B,) int64, "y": (B, O) or (B,)}."""

    def __init__(self, target: TargetKind):
        super().__init__()
        self.target = target

    def __call__(self, batch: pa.Table) -> dict[str, torch.Tensor]:
        arrays = sequences_to_arrays(batch, sequence_column="x")
        if self.target == "class":
            y = np.array(batch.column("y").to_numpy(), dtype=np.int64)         # (B,), writable
        else:
            y = float_targets(batch, column="y")                               # (B, O)
        out = {
            "x": torch.from_numpy(arrays["x"]),
            "lengths": torch.from_numpy(arrays["lengths"]),
            "y": torch.from_numpy(y),
        }
        for name in EXTRA_COLUMNS:  # evaluation-only columns (forecast: seasonal-naive baseline, MASE scale)
            if name in batch.column_names:
                out[name] = torch.from_numpy(float_targets(batch, column=name))
        return out


def iter_batches(ds, *, target: TargetKind, batch_size: int, device: torch.device | str = "cpu"):
    """Batches of a dataset or a worker's shard (DataIterator), collated and moved to `device`."""
    return ds.iter_torch_batches(batch_size=batch_size, collate_fn=SequenceBatch(target), device=device)
