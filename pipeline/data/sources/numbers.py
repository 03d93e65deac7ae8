"""Number phrases in two languages from `num2words` (LGPL, a PyPI wheel): English source, a
target language of its choice ("three hundred and forty-two" -> "trois cent quarante-deux").

`count` distinct numbers are drawn from [low, high) without replacement, so a row's number is in
one split only: every test number is one the model never saw in training.

Columns: `source` (English), `target` (data.options.lang), `number`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field, field_validator, model_validator

from pipeline.data.sources.options import SEED_MAX, STRICT


def languages() -> list[str]:
    from num2words import CONVERTER_CLASSES

    return sorted(CONVERTER_CLASSES)


class NumbersOptions(BaseModel):
    model_config = STRICT

    lang: str = Field("fr", description="target language, a num2words code (fr, de, es, it, ...)")
    low: int = Field(0, ge=0, le=10**12, description="smallest number drawn")
    high: int = Field(100_000, ge=1, le=10**12, description="numbers are drawn below this")
    count: int = Field(20_000, ge=10, le=1_000_000, description="distinct numbers drawn (rows)")
    seed: int = Field(0, ge=0, le=SEED_MAX)

    @field_validator("lang")
    @classmethod
    def _known(cls, lang: str) -> str:
        known = languages()
        if lang not in known:
            raise ValueError(f"num2words has no language '{lang}'; use one of {', '.join(known)}")
        return lang

    @model_validator(mode="after")
    def _enough_numbers(self) -> NumbersOptions:
        if self.high - self.low < self.count:
            raise ValueError(
                f"count {self.count} distinct numbers do not fit in [{self.low}, {self.high}); "
                "raise high or lower count"
            )
        return self


def generate(opts: NumbersOptions) -> pa.Table:
    from num2words import num2words

    rng = np.random.default_rng(opts.seed)
    numbers = np.sort(opts.low + rng.choice(opts.high - opts.low, size=opts.count, replace=False))  # (N,) distinct
    return pa.table(
        {
            "source": pa.array([num2words(int(n), lang="en") for n in numbers], pa.string()),
            "target": pa.array([num2words(int(n), lang=opts.lang) for n in numbers], pa.string()),
            "number": pa.array(numbers, pa.int64()),
        }
    )
