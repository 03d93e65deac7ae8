"""What a command tells the user at the end: a short text summary and the --summary-json file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.tracking import ui_command


@dataclass
class RunSummary:
    status: str
    tracking_uri: str
    experiment: str
    run_id: str
    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    registered_model: str | None = None  # "name/version"
    checkpoint: str | None = None
    best_config: dict[str, Any] | None = None
    child_run_ids: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.best_config is None:
            out.pop("best_config")
            out.pop("child_run_ids")
        return out


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def render(summary: RunSummary, *, title: str) -> str:
    m = summary.metrics
    lines = [f"== {title}: {summary.name} ({summary.status}) =="]
    if summary.best_config:
        lines.append("best config: " + ", ".join(f"{k}={v}" for k, v in summary.best_config.items()))
    if "val_mse" in m:
        lines.append(f"val   mse {m['val_mse']:.4f}")
    if "test_mse" in m:
        lines.append(
            f"test  mse {m['test_mse']:.4f}   vs predict-the-mean baseline {m['baseline_test_mse']:.4f}"
            f"  ({m['baseline_test_mse'] / max(m['test_mse'], 1e-12):.1f}x better)"
        )
    lines.append(f"mlflow run {summary.run_id} in experiment '{summary.experiment}'")
    if summary.child_run_ids:
        lines.append(f"trial runs: {', '.join(summary.child_run_ids)}")
    if summary.model_uri:
        reg = f"  registered as {summary.registered_model}" if summary.registered_model else ""
        lines.append(f"model {summary.model_uri}{reg}")
    if summary.checkpoint:
        lines.append(f"checkpoint {summary.checkpoint}")
    lines.append(f"browse: {ui_command(summary.tracking_uri)}")
    return "\n".join(lines)
