"""Online handwriting synthesized from Hershey stroke fonts (`hershey-fonts`, MIT: every glyph as
polylines, pen up between strokes): the words of Lady Susan (the text the product ships, from
music21) written with a random slant, scale, baseline drift, jitter and pen speed.

Each row is one word as pen moves: frames (dx, dy, pen_up) from one sampled pen position to the
next (pen_up = 1: the move to the first point of a new stroke), and its transcript. Words are
assigned to a split by a hash of the word, so every test word is one the model never saw written;
the test split also holds the test words in `held_out_font`, a font never trained on (column
`group`: `seen_fonts` or `held_out_font`, reported separately by `task: transcribe`).

Hershey's `cursive` is the same glyph data as `scripts` (checked), so it is not offered twice.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field, model_validator

from pipeline.data.sources.options import SEED_MAX, STRICT

Font = Literal["scripts", "scriptc", "timesi", "futural", "rowmans", "greeks"]


class HandwritingOptions(BaseModel):
    model_config = STRICT

    fonts: list[Font] = Field(
        ["scripts", "scriptc"], min_length=1, description="fonts the training split is written in"
    )
    held_out_font: Font | None = Field("timesi", description="a font only the test split is written in (None: none)")
    renders: int = Field(2, ge=1, le=50, description="renderings of each training word per font")
    min_letters: int = Field(2, ge=1, le=30, description="shortest word kept")
    max_letters: int = Field(10, ge=1, le=30, description="longest word kept")
    step: float = Field(0.12, gt=0.01, le=1.0, description="mean pen travel between samples (letter height 1)")
    seed: int = Field(0, ge=0, le=SEED_MAX)

    @model_validator(mode="after")
    def _fonts(self) -> HandwritingOptions:
        if self.held_out_font in self.fonts:
            raise ValueError(f"held_out_font '{self.held_out_font}' is also a training font; pick another")
        if self.min_letters > self.max_letters:
            raise ValueError(f"min_letters {self.min_letters} > max_letters {self.max_letters}")
        return self


def words(*, min_letters: int, max_letters: int) -> list[str]:
    """The distinct lowercase words of Lady Susan, in order of first appearance."""
    from pipeline.data.sources.text import lady_susan_text

    seen = dict.fromkeys(re.findall(r"[a-z]+", lady_susan_text().lower()))
    return [w for w in seen if min_letters <= len(w) <= max_letters]


def split_of(word: str) -> str:
    """80/10/10 by a hash of the word: stable whatever the options."""
    bucket = int(hashlib.sha256(word.encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def glyph_strokes(font: str, word: str) -> list[np.ndarray]:
    """The word set in `font`: its strokes as polylines [(N_i, 2) x, y], letter height 1."""
    return [np.asarray(s, dtype=np.float64) for s in _font(font).strokes_for_text(word) if len(s) > 1]


_LOADED: dict[str, object] = {}


def _font(font: str):
    from HersheyFonts import HersheyFonts

    if font not in _LOADED:
        hf = HersheyFonts()
        hf.load_default_font(font)
        hf.normalize_rendering(1.0)
        _LOADED[font] = hf
    return _LOADED[font]


def _resample(stroke: np.ndarray, *, step: float, rng: np.random.Generator) -> np.ndarray:
    """Points along a polyline (N, 2) every ~`step` of travel, the pen's speed varying smoothly."""
    seg = np.linalg.norm(np.diff(stroke, axis=0), axis=1)  # (N-1,)
    along = np.concatenate([[0.0], np.cumsum(seg)])  # (N,) arc length at each vertex
    total = along[-1]
    if total <= 0:
        return stroke[:1]
    speed = step * np.exp(0.25 * rng.standard_normal())  # this stroke's pace
    n = max(2, int(np.ceil(total / speed)) + 1)
    wobble = 1.0 + 0.3 * np.sin(np.linspace(0, rng.uniform(1, 4) * np.pi, n) + rng.uniform(0, 2 * np.pi))
    at = np.concatenate([[0.0], np.cumsum(wobble[1:])])
    at = at / at[-1] * total  # (n,) positions along the stroke, denser where the pen is slow
    return np.stack([np.interp(at, along, stroke[:, 0]), np.interp(at, along, stroke[:, 1])], axis=1)  # (n, 2)


def write(word: str, *, font: str, step: float, rng: np.random.Generator) -> np.ndarray:
    """One rendering of `word` -> frames (T, 3): dx, dy, pen_up."""
    strokes = glyph_strokes(font, word)
    slant = np.tan(rng.uniform(-0.35, 0.35))
    scale = rng.uniform(0.8, 1.25) * np.array([rng.uniform(0.85, 1.15), 1.0])  # size and aspect
    drift, bend = rng.uniform(-0.06, 0.06), rng.uniform(-0.05, 0.05)
    points, pen_up = [], []
    for stroke in strokes:
        xy = _resample(stroke, step=step, rng=rng)  # (n, 2)
        xy = xy + rng.normal(0.0, 0.012, size=xy.shape)  # hand jitter
        x, y = xy[:, 0], xy[:, 1]
        y = y + drift * x + bend * np.sin(x)  # baseline drift
        x = x + slant * y  # slant
        points.append(np.stack([x, y], axis=1) * scale)
        pen_up.append(np.r_[1.0, np.zeros(len(xy) - 1)])
    xy, up = np.concatenate(points), np.concatenate(pen_up)  # (T+1, 2), (T+1,)
    moves = np.diff(xy, axis=0)  # (T, 2)
    return np.concatenate([moves, up[1:, None]], axis=1).astype(np.float32)  # (T, 3)


def generate(opts: HandwritingOptions) -> pa.Table:
    rng = np.random.default_rng(opts.seed)
    rows: dict[str, list] = {"frames": [], "text": [], "split": [], "font": [], "group": []}

    def add(word: str, font: str, split: str, group: str) -> None:
        rows["frames"].append(write(word, font=font, step=opts.step, rng=rng))
        rows["text"].append(word)
        rows["split"].append(split)
        rows["font"].append(font)
        rows["group"].append(group)

    for word in words(min_letters=opts.min_letters, max_letters=opts.max_letters):
        split = split_of(word)
        for font in opts.fonts:
            for _ in range(opts.renders if split == "train" else 1):
                add(word, font, split, "seen_fonts")
        if split == "test" and opts.held_out_font is not None:
            add(word, opts.held_out_font, split, "held_out_font")
    frames = pa.array([f.tolist() for f in rows.pop("frames")], pa.list_(pa.list_(pa.float32())))
    return pa.table({"frames": frames} | {k: pa.array(v, pa.string()) for k, v in rows.items()})
