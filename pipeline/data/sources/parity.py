"""Running parity, and its modular-arithmetic generalization: a state-tracking task that tells
recurrent cells apart by length generalization.

Each sequence is a string of symbols drawn uniformly from 0..modulus-1, one-hot per step; its class is
the sum of its symbols modulo `modulus` (modulus 2: the parity of a bit string). A model must carry
an exact state across the whole string. Training and validation strings are short
(`min_length`..`max_length` symbols); the test strings are all `test_length` long, so the test
split measures whether what a cell learned holds at lengths it never saw. The `split` column carries
the split (set `data.split_column: split`). A model that has not tracked the state scores the
majority class: 1/modulus.

Expected from the literature (Deletang et al. 2023; Grazzi et al. 2024; Beck et al. 2024): LSTM and
sLSTM can solve it and generalize; mLSTM, a linear recurrence whose forget gate lies in (0, 1),
cannot represent it; a tanh RNN may fit short strings.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field, model_validator

from pipeline.data.sources.options import SEED_MAX, STRICT
from pipeline.data.sources.table import ragged_sequence_table


class ParityOptions(BaseModel):
    model_config = STRICT

    modulus: int = Field(
        2, ge=2, le=16, description="symbols 0..modulus-1; the class is their sum mod this (2: parity)"
    )
    min_length: int = Field(2, ge=1, le=10_000, description="shortest training and validation string")
    max_length: int = Field(20, ge=1, le=10_000, description="longest training and validation string")
    test_length: int = Field(40, ge=1, le=100_000, description="the length of every test string")
    num_sequences: int = Field(6000, ge=20, le=10_000_000, description="training and validation strings")
    val_share: float = Field(0.1, gt=0, lt=1, description="share of them held out for validation")
    test_sequences: int = Field(1000, ge=10, le=10_000_000, description="test strings")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="generator seed")

    @model_validator(mode="after")
    def _lengths(self) -> ParityOptions:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} is above max_length {self.max_length}; swap them")
        return self


def generate(opts: ParityOptions) -> pa.Table:
    rng = np.random.default_rng(opts.seed)
    short = rng.integers(opts.min_length, opts.max_length + 1, size=opts.num_sequences)  # (N,) lengths
    lengths = np.concatenate([short, np.full(opts.test_sequences, opts.test_length)])
    eye = np.eye(opts.modulus, dtype=np.float32)
    symbols = [rng.integers(0, opts.modulus, size=n) for n in lengths]  # each (T_i,)
    seqs = [eye[s] for s in symbols]  # each (T_i, modulus) one-hot
    labels = np.array([str(int(s.sum()) % opts.modulus) for s in symbols], dtype=object)
    n_val = max(1, round(opts.val_share * opts.num_sequences))
    split = np.array(
        ["val"] * n_val + ["train"] * (opts.num_sequences - n_val) + ["test"] * opts.test_sequences, dtype=object
    )
    return ragged_sequence_table(seqs, labels, extra={"split": split})
