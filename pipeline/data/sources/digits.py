"""Handwritten digits (scikit-learn's bundled 8x8 UCI set) read as sequences: 8 rows of 8 pixels.

The classic "image as a sequence" setup for recurrent nets: the model sees one pixel row per
time step, top to bottom, and names the digit at the end. 1,797 images, 10 classes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel

from pipeline.data.sources.options import STRICT
from pipeline.data.sources.table import sequence_table


class DigitsOptions(BaseModel):
    model_config = STRICT


def generate(opts: DigitsOptions) -> pa.Table:
    from sklearn.datasets import load_digits  # ships the data in its wheel

    digits = load_digits()
    x = digits.images.astype(np.float32) / 16.0  # (N, 8, 8): rows as time steps, pixels in [0, 1]
    return sequence_table(x, digits.target.astype(np.int64))
