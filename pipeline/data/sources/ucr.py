"""Univariate UCR sets bundled in aeon's wheel, with their published train/test split.

  gunpoint            GunPoint: hand motion (x coordinate) drawing a gun vs pointing; 50/150, length 150
  italy_power_demand  ItalyPowerDemand: a day's 24 hourly loads, winter vs summer; 67/1029, length 24
Rows: `x` (T steps of 1 value), `y` (the class label), `split`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel

from pipeline.data.sources.options import STRICT
from pipeline.data.sources.table import ragged_sequence_table


class UcrOptions(BaseModel):
    model_config = STRICT


def _published(loader) -> pa.Table:
    seqs, labels, splits = [], [], []
    for split in ("train", "test"):
        x, y = loader(split=split)  # (N, 1, T), labels "1", "2"
        seqs += [np.asarray(s, np.float32).T for s in x]  # (T, 1)
        labels += [str(v) for v in y]
        splits += [split] * len(x)
    return ragged_sequence_table(seqs, np.array(labels, dtype=object), extra={"split": np.array(splits, dtype=object)})


def gunpoint(opts: UcrOptions) -> pa.Table:
    from aeon.datasets import load_gunpoint

    return _published(load_gunpoint)


def italy_power_demand(opts: UcrOptions) -> pa.Table:
    from aeon.datasets import load_italy_power_demand

    return _published(load_italy_power_demand)
