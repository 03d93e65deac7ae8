"""A character corpus for language modelling: Jane Austen's "Lady Susan" (Project Gutenberg),
the English sample text that ships inside music21's wheel (~124,000 characters).

Written as rows of `chunk_chars` characters (column `text`); the generate task reads a string
column as a sequence of characters.
"""

from __future__ import annotations

from importlib import resources

import pyarrow as pa
from pydantic import BaseModel, Field

from pipeline.data.sources.options import STRICT


class TextOptions(BaseModel):
    model_config = STRICT

    chunk_chars: int = Field(200, ge=8, description="characters per sequence (row)")


def lady_susan_text() -> str:
    raw = resources.files("music21").joinpath("languageExcerpts/trainingData/en.txt").read_text(encoding="utf-8")
    lines = raw.splitlines()
    body = [line for line in lines if "Project Gutenberg Etext" not in line]  # drop the header and footer lines
    return "\n".join(body).strip() + "\n"


def generate(opts: TextOptions) -> pa.Table:
    text = lady_susan_text()
    n = opts.chunk_chars
    chunks = [text[i : i + n] for i in range(0, len(text) - n + 1, n)]
    return pa.table({"text": pa.array(chunks, pa.string())})
