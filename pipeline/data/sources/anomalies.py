"""A synthetic sensor log with injected, labelled anomalies, in the long format.

Each series is a daily-like cycle (period 48 steps) with a slower weekly modulation, AR(1) noise,
and anomalies of three kinds injected at random places: spikes (1-2 steps), level shifts
(8-24 steps offset) and drifts (a ramp over 16-40 steps). Columns: series, time, value, label
(1 on every anomalous step). About 3% of the steps are anomalous.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from pipeline.data.sources.options import SEED_MAX, STRICT

PERIOD = 48


class AnomalyOptions(BaseModel):
    model_config = STRICT

    num_series: int = Field(4, ge=1, le=1000, description="sensor series")
    length: int = Field(3000, ge=200, le=10_000_000, description="time steps per series")
    anomalies_per_1000: float = Field(2.0, ge=0, description="anomaly events per 1000 steps")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="generator seed")


def _series(rng: np.random.Generator, *, length: int) -> np.ndarray:
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi)
    cycle = np.sin(2 * np.pi * t / PERIOD + phase) + 0.4 * np.sin(4 * np.pi * t / PERIOD + 2 * phase)
    weekly = 1.0 + 0.3 * np.sin(2 * np.pi * t / (7 * PERIOD) + rng.uniform(0, 2 * np.pi))
    noise = np.zeros(length)
    eps = rng.normal(0, 0.08, length)
    for i in range(1, length):  # AR(1) noise, phi = 0.6
        noise[i] = 0.6 * noise[i - 1] + eps[i]
    return 10.0 + 2.0 * cycle * weekly + noise


def inject(values: np.ndarray, rng: np.random.Generator, *, events: int) -> tuple[np.ndarray, np.ndarray]:
    """Add `events` anomalies at random non-overlapping places -> (values, labels (T,) int8)."""
    out, labels = values.copy(), np.zeros(len(values), np.int8)
    scale = np.std(values)
    for _ in range(events):
        kind = rng.choice(["spike", "level_shift", "drift"])
        width = {"spike": rng.integers(1, 3), "level_shift": rng.integers(8, 25), "drift": rng.integers(16, 41)}[kind]
        start = int(rng.integers(PERIOD, len(values) - width))
        if labels[max(0, start - PERIOD // 2) : start + width + PERIOD // 2].any():
            continue  # keep events apart
        sign = rng.choice([-1.0, 1.0])
        if kind == "spike":
            bump = np.full(width, sign * rng.uniform(1.2, 2.0) * scale)
        elif kind == "level_shift":
            bump = np.full(width, sign * rng.uniform(0.6, 1.0) * scale)
        else:
            bump = sign * np.linspace(0, rng.uniform(0.8, 1.2) * scale, width)
        out[start : start + width] += bump
        labels[start : start + width] = 1
    return out, labels


def generate(opts: AnomalyOptions) -> pa.Table:
    rng = np.random.default_rng(opts.seed)
    series, time, value, label = [], [], [], []
    for s in range(opts.num_series):
        clean = _series(rng, length=opts.length)
        v, lab = inject(clean, rng, events=int(round(opts.anomalies_per_1000 * opts.length / 1000)))
        series += [f"sensor_{s}"] * opts.length
        time.append(np.arange(opts.length))
        value.append(v)
        label.append(lab)
    return pa.table(
        {
            "series": pa.array(series, pa.string()),
            "time": pa.array(np.concatenate(time).astype(np.int64)),
            "value": pa.array(np.concatenate(value)),
            "label": pa.array(np.concatenate(label)),
        }
    )
