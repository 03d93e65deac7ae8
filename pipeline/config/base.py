"""What every config section shares: no unknown keys, and the closest valid key when one is mistyped."""

from __future__ import annotations

import difflib

from pydantic import BaseModel

from pipeline.data.sources.options import STRICT


class Section(BaseModel):
    """No unknown keys, strict types (`true` is not 1, `"8"` is not 8), finite numbers."""

    model_config = STRICT


def suggest(key: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""
