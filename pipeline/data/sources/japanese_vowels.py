"""JapaneseVowels (UCI; bundled with aeon): which of 9 speakers uttered /ae/.

Each utterance is 7-29 frames of 12 LPC cepstral coefficients: ragged multivariate sequences.
The published split is kept (270 train / 370 test) in a `split` column; validation is carved out of
the training part.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel

from pipeline.data.sources.options import STRICT
from pipeline.data.sources.table import ragged_sequence_table


class JapaneseVowelsOptions(BaseModel):
    model_config = STRICT


def generate(opts: JapaneseVowelsOptions) -> pa.Table:
    from aeon.datasets import load_japanese_vowels  # bundled in aeon's wheel: no download

    seqs, labels, splits = [], [], []
    for split in ("train", "test"):
        x, y = load_japanese_vowels(split=split)  # list of (12, T_i) arrays, labels "1".."9"
        seqs += [np.asarray(s, dtype=np.float32).T for s in x]  # (T_i, 12)
        labels += [str(v) for v in y]
        splits += [split] * len(x)
    return ragged_sequence_table(seqs, np.array(labels, dtype=object), extra={"split": np.array(splits, dtype=object)})
