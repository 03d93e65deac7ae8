"""The adding problem (Hochreiter & Schmidhuber 1997), the classic long-memory benchmark.

Each sequence has two input channels over `seq_len` steps:
  channel 0: values drawn uniformly from [0, 1)
  channel 1: a marker, 1.0 at exactly two steps (one in each half of the sequence), else 0.0
The target is the sum of the two marked values. Predicting the constant 1.0 gives an MSE of
Var(U + U') = 2/12 ~= 0.167; solving it requires carrying a value across up to `seq_len` steps.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from pipeline.data.sources.options import SEED_MAX, STRICT
from pipeline.data.sources.table import sequence_table


class AddingOptions(BaseModel):
    model_config = STRICT

    seq_len: int = Field(100, ge=2, le=100_000, description="time steps per sequence")
    num_sequences: int = Field(10_000, ge=10, le=10_000_000, description="sequences to generate")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="generator seed")


def generate(opts: AddingOptions) -> pa.Table:
    rng = np.random.default_rng(opts.seed)
    n, t = opts.num_sequences, opts.seq_len
    values = rng.random((n, t), dtype=np.float32)  # (N, T)
    half = t // 2
    first = rng.integers(0, half, size=n)  # (N,) marker in the first half
    second = rng.integers(half, t, size=n)  # (N,) marker in the second half
    markers = np.zeros((n, t), dtype=np.float32)  # (N, T)
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1)  # (N, T, 2)
    y = values[rows, first] + values[rows, second]  # (N,)
    return sequence_table(x, y.astype(np.float32))  # float targets
