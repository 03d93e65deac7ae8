"""`lstmpipe explain`: the telemetry of any trained model on one chosen sequence of any data.

Which steps opened the input gate, when the forget gate closed, how the cell state grew, and how
far back the loss's gradient reaches: the same table and plots a run records with
`telemetry.enabled`, for one sequence, written to a directory with a short text reading. For a
text model the steps are its tokens: the reading names them, and `tokens.png` shows each token's
input gate and how much it moved the cell state, the words on the axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipeline.data.batches import collate_for
from pipeline.data.tokenize import id_tokens
from pipeline.errors import ConfigError, DataError
from pipeline.model.ensemble import Ensemble
from pipeline.serve.inputs import DataChoice, prepared_inputs
from pipeline.tasks import get_task
from pipeline.telemetry.plots import per_token
from pipeline.telemetry.record import record
from pipeline.telemetry.stats import column


@dataclass(frozen=True)
class Explained:
    out: Path
    files: list[str]
    reading: list[str]  # one line per finding, also in reading.md


def explain(model_uri: str, data: DataChoice, *, row: int, out: Path, tracking_uri: str) -> Explained:
    inputs = prepared_inputs(model_uri, data, tracking_uri=tracking_uri)
    trained = inputs.trained
    if trained.info.task == "translate":  # telemetry traces one recurrent stack
        raise ConfigError(
            f"--model {model_uri} is a translate model (an encoder and a decoder); explain reads single-stack models: "
            "see its attention in the run's plots/attention.png"
        )
    if trained.info.task == "transcribe":  # telemetry is not recorded for CTC models (tasks/transcribe.py)
        raise ConfigError(
            f"--model {model_uri} is a transcribe model; explain does not trace CTC models yet: see its alignments in "
            "the run's plots/alignment.png"
        )
    rows = inputs.rows.limit(row + 1).take_batch(row + 1, batch_format="pyarrow")
    if rows.num_rows <= row:
        raise DataError(
            f"{inputs.source}: --row {row} asked for, but the data has {rows.num_rows} row(s) once prepared; pick "
            f"--row 0..{rows.num_rows - 1}"
        )
    batch = collate_for(trained.info)(rows.slice(row, 1))
    task = get_task(trained.info.task)
    has_target = "y" in batch
    recorded = record(
        trained.model,
        batch,
        loss=(lambda p, y: task.loss(None, trained.info)(p.float(), y)["loss"][0]) if has_target else None,
        epoch=0,
        label=f"{model_uri}, row {row} of {Path(inputs.source).name}",
        prefix=f"row_{row}",
    )
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(recorded.table.drop_columns(["epoch"]), out / "telemetry.parquet")
    files = ["telemetry.parquet"]
    length = int(batch["lengths"][0])
    figures = dict(recorded.figures)
    tokens = None
    if trained.info.text is not None:
        tokens = id_tokens(batch["x"][0, :length, 0].long().tolist(), trained.info.text)
        fig = per_token(recorded.table, tokens=tokens, title=f"{model_uri}, row {row}: per token")
        if fig is not None:
            figures["tokens.png"] = fig
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
        files.append(name)
    reading = read_trace(recorded.table, length=length, tokens=tokens)
    if not has_target:
        reading.append("no target in the data: gates and states only, no gradient flow")
    if isinstance(trained.model, Ensemble):
        reading.append(f"the model averages {len(trained.model.members)} members: these are the first member's gates")
    (out / "reading.md").write_text("\n".join(f"- {line}" for line in reading) + "\n")
    return Explained(out=out, files=files + ["reading.md"], reading=reading)


def read_trace(table, *, length: int, top: int = 3, tokens: list[str] | None = None) -> list[str]:
    """Plain-language findings for the first layer (forward direction) of one sequence; a text's
    steps are named by their tokens."""
    quantities = set(table.column("quantity").to_pylist())
    lines = []

    def step(t) -> str:
        return f"{tokens[int(t)]!r} ({int(t)})" if tokens is not None and int(t) < len(tokens) else str(int(t))

    if "gate:input" in quantities:
        gate = column(table, quantity="gate:input")[:length]
        opened = np.argsort(gate)[::-1][:top]
        lines.append(
            f"input gate opened most at {'tokens' if tokens else 'steps'} {', '.join(step(t) for t in sorted(opened))} "
            f"(mean over units {', '.join(f'{gate[t]:.2f}' for t in sorted(opened))}; median over the sequence "
            f"{np.median(gate):.2f})"
        )
    if "gate:forget" in quantities:
        gate = column(table, quantity="gate:forget")[:length]
        closed = np.flatnonzero(gate < 0.5)
        lines.append(
            f"forget gate closed (mean < 0.5) first at step {int(closed[0])}, at {len(closed)} step(s) in all"
            if len(closed)
            else f"forget gate never closed: mean {gate.min():.2f}..{gate.max():.2f} over the sequence"
        )
    if "cell_norm" in quantities:
        norm = column(table, quantity="cell_norm")[:length]
        lines.append(
            f"cell state norm {norm[0]:.2f} at step 0, largest {norm.max():.2f} at step {step(norm.argmax())}, "
            f"{norm[-1]:.2f} at the end"
        )
    if "grad_norm" in quantities:
        flow = column(table, quantity="grad_norm")[:length]
        lines.append(
            f"gradient of the loss reaching back: ||dloss/dh_t|| {flow[-1]:.2e} at the last step, "
            f"{flow[0]:.2e} at step 0 ({flow[0] / flow[-1]:.1e} of it)"
            if flow[-1] > 0
            else "the loss has no gradient at the last step"
        )
    return lines
