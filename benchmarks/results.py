"""What every benchmark returns, and how `make bench` writes it: RESULTS.md and an MLflow run.

A figure is a `Stat` over repetitions (median, min, max); a benchmark returns a `Result`: its
headline figure against its goal, and a Markdown section with the measured detail.
"""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Stat:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        return cls(median=statistics.median(values), low=min(values), high=max(values), n=len(values))

    def show(self, fmt: str = ".2f", unit: str = "") -> str:
        return f"{self.median:{fmt}}{unit} ({self.low:{fmt}}–{self.high:{fmt}}, n={self.n})"


Verdict = Literal["met", "missed", "reported"]


@dataclass
class Result:
    key: str  # "B1"
    title: str
    figure: str  # the headline, e.g. "0.97x (0.95-0.99, n=5)"
    goal: str
    verdict: Verdict
    section: str  # Markdown: the measured detail, tables, notes
    metrics: dict[str, float] = field(default_factory=dict)  # logged to MLflow, prefixed with the key
    figures: dict[str, Any] = field(default_factory=dict)  # matplotlib figures: file name -> figure


def machine() -> str:
    import ray
    import torch

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, Ray {ray.__version__}, {platform.system()} {platform.release()}"
    )


def render(results: list[Result], *, command: str, started: str, minutes: float) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Measured by `{command}` on {started} in {minutes:.1f} min.",
        "",
        f"Machine: {machine()}.",
        "",
        "Each figure is the median over repetitions measured side by side in one run, with (min–max, n).",
        "",
        "| | benchmark | measured | goal | |",
        "|---|---|---|---|---|",
    ]
    marks = {"met": "met", "missed": "**missed**", "reported": "reported"}
    lines += [f"| {r.key} | {r.title} | {r.figure} | {r.goal} | {marks[r.verdict]} |" for r in results]
    for r in results:
        lines += ["", f"## {r.key}: {r.title}", "", r.section.strip()]
    return "\n".join(lines) + "\n"


def log_to_mlflow(results: list[Result], *, text: str, uri: str, experiment: str) -> str:
    """One run in `experiment`: every result's metrics (prefixed with its key), RESULTS.md, the plots."""
    from pipeline.track import KIND_TAG, TrackedRun

    run = TrackedRun.start(
        uri, experiment=experiment, run_name="bench", params={"machine": machine()[:500]}, tags={KIND_TAG: "bench"}
    )
    with run.closes():
        for r in results:
            run.log_metrics({f"{r.key}_{k}": v for k, v in r.metrics.items()}, step=0)
            run.set_tags({f"bench.{r.key}": r.verdict})
            if r.figures:
                run.log_figures(r.figures)
        run.log_text(text, "RESULTS.md")
    return run.run_id
