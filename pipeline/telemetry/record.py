"""One telemetry recording: probe batch -> trace -> table + plots, timed (so its cost is visible)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from torch import Tensor, nn

from pipeline.model.ensemble import traced_member
from pipeline.telemetry.stats import probe, summarize


@dataclass
class Recorded:
    table: pa.Table  # the long table of `telemetry.stats`, with an `epoch` column
    figures: dict[str, object]  # file name -> matplotlib figure
    seconds: float


def probe_batch(batch: dict[str, Tensor], *, size: int) -> dict[str, Tensor]:
    """The first `size` sequences of a batch, on the CPU: the fixed probe every recording reuses."""
    return {k: v[:size].detach().cpu() for k, v in batch.items() if k in ("x", "lengths", "y")}


def record(
    model: nn.Module,
    batch: dict[str, Tensor],
    *,
    loss: Callable[[Tensor, Tensor], Tensor] | None,
    epoch: int,
    label: str = "",
    prefix: str | None = None,
) -> Recorded:
    """Trace `model` (a copy on the CPU, in eval mode: training state is untouched) on `batch`."""
    from pipeline.telemetry import plots  # matplotlib only where telemetry is on

    start = time.perf_counter()
    member = traced_member(model)  # an ensemble: its first member's stack
    twin = _cpu_copy(member)
    trace = probe(twin, batch["x"], batch["lengths"], batch.get("y"), loss=loss)
    table = summarize(trace)
    table = table.append_column("epoch", pa.array([epoch] * table.num_rows, pa.int64()))
    title = label or f"epoch {epoch}, {len(batch['x'])} validation sequences"
    if member is not model:
        title += f" (ensemble member 1 of {len(model.members)})"
    figs = plots.figures(trace, table, title=title, prefix=prefix or f"epoch_{epoch:04d}")
    return Recorded(table=table, figures=figs, seconds=time.perf_counter() - start)


def _cpu_copy(model: nn.Module) -> nn.Module:
    import copy

    twin = copy.deepcopy(model).cpu().float().eval()
    for p in twin.parameters():
        p.requires_grad_(True)
    return twin
