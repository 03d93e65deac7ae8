"""B7: how training cost grows with sequence length and hidden size.

Training throughput (sequences/s, forward + backward + Adam step) of the pipeline's model with the
fused LSTM, 1 thread, batch 64, at every seq_len x hidden pair; each point is measured in every
repetition, pairs interleaved, so noise hits them alike.
"""

from __future__ import annotations

import io
import time

import torch

from pipeline.config import ModelConfig
from pipeline.model.sequence_model import build_model

SEQ_LENS = (50, 100, 200, 400)
HIDDENS = (64, 128, 256)


def seq_per_s(seq_len: int, hidden: int, *, batch: int = 64, steps: int = 3) -> float:
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="lstm", hidden_size=hidden), input_size=2, output_size=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, seq_len, 2), torch.randn(batch, 1)  # (B, T, 2), (B, 1)
    lengths = torch.full((batch,), seq_len)  # (B,)

    def step() -> None:
        loss = ((model(x, lengths) - y) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def measure(*, reps: int = 3, threads: int = 1) -> dict[tuple[int, int], list[float]]:
    torch.set_num_threads(threads)
    speeds: dict[tuple[int, int], list[float]] = {(t, h): [] for t in SEQ_LENS for h in HIDDENS}
    for _ in range(reps):
        for seq_len, hidden in speeds:
            speeds[(seq_len, hidden)].append(seq_per_s(seq_len, hidden))
    return speeds


def plot(medians: dict[tuple[int, int], float]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="tight")
    ax = fig.subplots()
    for hidden in HIDDENS:
        ax.plot(SEQ_LENS, [medians[(t, hidden)] for t in SEQ_LENS], marker="o", label=f"hidden {hidden}")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length (steps)",
        ylabel="training sequences / s (1 thread)",
        title="LSTM training throughput vs work",
    )
    ax.set_xticks(SEQ_LENS, [str(t) for t in SEQ_LENS])
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return fig


def telemetry_cost(*, seq_len: int = 100, hidden: int = 64, probe: int = 32, reps: int = 3) -> dict[str, list[float]]:
    """Seconds for one telemetry recording (trace, gradient flow, table, plots) against one training
    epoch of 6,000 sequences at batch 64 on 1 thread, with the same model."""
    from pipeline.telemetry.record import record

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="lstm", hidden_size=hidden), input_size=2, output_size=1)
    batch = {"x": torch.randn(probe, seq_len, 2), "lengths": torch.full((probe,), seq_len), "y": torch.randn(probe, 1)}
    out: dict[str, list[float]] = {"record_s": [], "epoch_s": []}
    for _ in range(reps):
        start = time.perf_counter()
        rec = record(model, batch, loss=lambda p, y: ((p - y) ** 2).sum(), epoch=0)
        for fig in rec.figures.values():
            fig.savefig(io.BytesIO(), format="png")  # what logging the PNGs costs
        out["record_s"].append(time.perf_counter() - start)
        out["epoch_s"].append(6000 / seq_per_s(seq_len, hidden))
    return out
