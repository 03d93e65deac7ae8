"""B7: how training cost grows with sequence length and hidden size.

Training throughput (sequences/s, forward + backward + Adam step) of the pipeline's model with the
fused LSTM, 1 thread, batch 64, at every seq_len x hidden pair; each point is measured in every
repetition, pairs interleaved, so noise hits them alike.
"""

from __future__ import annotations

import time

import torch

from pipeline.config import ModelConfig
from pipeline.model import build_model

SEQ_LENS = (50, 100, 200, 400)
HIDDENS = (64, 128, 256)


def seq_per_s(seq_len: int, hidden: int, *, batch: int = 64, steps: int = 3) -> float:
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="lstm", hidden_size=hidden), input_size=2, output_size=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, seq_len, 2), torch.randn(batch, 1)               # (B, T, 2), (B, 1)
    lengths = torch.full((batch,), seq_len)                                     # (B,)

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for hidden in HIDDENS:
        ax.plot(SEQ_LENS, [medians[(t, hidden)] for t in SEQ_LENS], marker="o", label=f"hidden {hidden}")
    ax.set(xscale="log", yscale="log", xlabel="sequence length (steps)", ylabel="training sequences / s (1 thread)",
           title="LSTM training throughput vs work")
    ax.set_xticks(SEQ_LENS, [str(t) for t in SEQ_LENS])
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig
