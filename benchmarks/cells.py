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
from pipeline.model.xlstm import MLSTMLayer, SLSTMLayer

XLSTM_CELLS = ("slstm", "mlstm")  # reported beside the Greff variants, not held to their goal


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
    layers |= {"slstm": SLSTMLayer(inputs, hidden), "mlstm": MLSTMLayer(inputs, hidden)}
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(reps):
        for name, layer in layers.items():
            times[name].append(seconds_per_step(layer, x, steps=steps))
    return {
        name: {"seconds": ts, "ratio": [ref / t for ref, t in zip(times["nn.LSTM"], ts)]} for name, ts in times.items()
    }


def forward_flops(name: str, *, hidden: int, seq: int, inputs: int) -> float:
    """Multiply-adds x 2 of one sequence's forward pass through one layer (matmuls only; one head).
    LSTM and sLSTM: 4 gates from the input and from h_{t-1}; `fgr` adds the 3 x 3 gate recurrence.
    mLSTM: q, k, v, o and 2 gate projections of the input, then its parallel form's (T, T) scores
    and their product with v: quadratic in the sequence length."""
    lstm = 2 * seq * 4 * hidden * (inputs + hidden)
    if name == "fgr":
        return lstm + 2 * seq * (3 * hidden) ** 2
    if name == "mlstm":
        return 2 * seq * inputs * (4 * hidden + 2) + 2 * 2 * seq * seq * hidden
    return lstm


def table(measured: dict[str, dict[str, list[float]]], *, hidden: int = 128, seq: int = 100, inputs: int = 8) -> str:
    """Speed relative to nn.LSTM, and FLOP-adjusted: the ratio times the cell's FLOPs over the LSTM's
    (above 1: more arithmetic per second than nn.LSTM)."""
    lines = [
        "| cell | ms per step (median) | speed vs nn.LSTM: median | min | max | FLOPs vs LSTM | FLOP-adjusted |",
        "|---|---|---|---|---|---|---|",
    ]
    base = forward_flops("lstm", hidden=hidden, seq=seq, inputs=inputs)
    for name, m in measured.items():
        r = m["ratio"]
        work = forward_flops(name, hidden=hidden, seq=seq, inputs=inputs) / base
        lines.append(
            f"| `{name}` | {1000 * statistics.median(m['seconds']):.1f} | {statistics.median(r):.2f}x | "
            f"{min(r):.2f}x | {max(r):.2f}x | {work:.2f} | {statistics.median(r) * work:.2f}x |"
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
    print(table(measured, hidden=args.hidden, seq=args.seq, inputs=args.inputs))


if __name__ == "__main__":
    main()
