"""Custom cells vs torch's fused nn.LSTM: forward + backward time per batch, side by side in one run.

    .venv/bin/python benchmarks/cells.py [--hidden 128] [--seq 100] [--batch 64] [--reps 7] [--threads 1]

Each repetition times every cell (and nn.LSTM) on the same batch in turn, so machine noise hits
them alike; the table gives each cell's speed relative to nn.LSTM: median, min and max over the
repetitions (higher is faster; the goal is >= 0.5). Writes the table to stdout as Markdown.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from pipeline.model.cells import VARIANTS, VariantLayer


def seconds_per_step(layer: nn.Module, x: torch.Tensor, *, steps: int) -> float:
    """Mean wall time of one forward + backward over `steps` batches, after one warm-up."""

    def step() -> None:
        out = layer(x)[0]  # (B, T, H)
        out.sum().backward()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def measure(
    *,
    hidden: int = 128,
    seq: int = 100,
    batch: int = 64,
    inputs: int = 8,
    reps: int = 7,
    steps: int = 5,
    threads: int = 1,
) -> dict[str, dict[str, list[float]]]:
    """Per cell: seconds per step and speed relative to nn.LSTM, one value per repetition."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(batch, seq, inputs)  # (B, T, C)
    layers: dict[str, nn.Module] = {"nn.LSTM": nn.LSTM(inputs, hidden, batch_first=True)}
    layers |= {name: VariantLayer(inputs, hidden, variant) for name, variant in VARIANTS.items()}
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(reps):
        for name, layer in layers.items():
            times[name].append(seconds_per_step(layer, x, steps=steps))
    return {
        name: {"seconds": ts, "ratio": [ref / t for ref, t in zip(times["nn.LSTM"], ts)]} for name, ts in times.items()
    }


def table(measured: dict[str, dict[str, list[float]]]) -> str:
    lines = ["| cell | ms per step (median) | speed vs nn.LSTM: median | min | max |", "|---|---|---|---|---|"]
    for name, m in measured.items():
        r = m["ratio"]
        lines.append(
            f"| `{name}` | {1000 * statistics.median(m['seconds']):.1f} | {statistics.median(r):.2f}x | "
            f"{min(r):.2f}x | {max(r):.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seq", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    measured = measure(**vars(args))
    print(
        f"hidden {args.hidden}, seq {args.seq}, batch {args.batch}, {args.threads} thread(s), "
        f"{args.reps} repetitions of {args.steps} forward+backward steps; torch {torch.__version__}\n"
    )
    print(table(measured))


if __name__ == "__main__":
    main()
