"""Scale: per-feature input statistics over the training split, one streaming pass with Ray Data.

The mean/std become buffers of the model (see `pipeline.model`), so serving applies the same
standardization; nothing fitted on validation or test data touches the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.transforms import sequence_values

if TYPE_CHECKING:
    import ray.data


@dataclass(frozen=True)
class InputStats:
    channels: int
    max_len: int
    mean: list[float]
    std: list[float]


def moments(values: np.ndarray, channels: int) -> np.ndarray:
    """Flat (sum T_i * C,) values -> (3, C): count, sum, sum of squares per feature (float64)."""
    steps = values.reshape(-1, channels).astype(np.float64)  # (sum T_i, C)
    return np.stack([np.full(channels, len(steps), dtype=np.float64), steps.sum(0), (steps**2).sum(0)])


def finish(total: np.ndarray) -> tuple[list[float], list[float]]:
    count, s, sq = total
    mean = s / np.maximum(count, 1)
    std = np.sqrt(np.maximum(sq / np.maximum(count, 1) - mean**2, 0.0))
    std = np.where(std < 1e-8, 1.0, std)  # constant feature: leave unscaled
    return mean.tolist(), std.tolist()


def fit_input_stats(train: ray.data.Dataset, *, standardize: bool) -> InputStats:
    total, max_len, channels = None, 0, 0
    for batch in train.select_columns(["x"]).iter_batches(batch_format="pyarrow", batch_size=4096):
        values, lengths, channels = sequence_values(batch, column="x")
        max_len = max(max_len, int(lengths.max()))
        m = moments(values, channels)
        total = m if total is None else total + m
    if not standardize or total is None:
        return InputStats(channels=channels, max_len=max_len, mean=[0.0] * channels, std=[1.0] * channels)
    mean, std = finish(total)
    return InputStats(channels=channels, max_len=max_len, mean=mean, std=std)
