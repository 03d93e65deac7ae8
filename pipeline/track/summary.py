"""What a command tells the user at the end: a short text summary and the --summary-json file."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.redaction import redact, redact_tree
from pipeline.track.store import ui_command


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
    phase_s: dict[str, float] = field(default_factory=dict)  # where the command's time went (PhaseClock)
    promotion: str | None = None  # tracking.promote's decision, in words

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.promotion is None:
            out.pop("promotion")
        if self.best_config is None:
            out.pop("best_config")
            out.pop("child_run_ids")
        return out


class PhaseClock:
    """Wall seconds per phase of a command, in order: `lap(name)` closes the phase since the last lap."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.phases: dict[str, float] = {}

    def lap(self, name: str) -> dict[str, float]:
        now = time.monotonic()
        self.phases[name] = round(now - self._last, 3)
        self._last = now
        return self.phases


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(redact_tree(payload), indent=2, default=str) + "\n")


# why a test metric can have no value (NaN), in words for the summary
UNDEFINED = {
    "test_auroc": (
        "the test period holds no labelled anomaly (or only anomalies), so AUROC has no value; "
        "give the test period more time (data.test_fraction)"
    ),
}


COUNTS = {"test_windows": "windows", "test_series": "series"}  # what the test metrics average over
LOWER_IS_BETTER = ("mae", "rmse", "smape", "mase", "crps", "pinball", "cer", "wer")


def verdict(key: str, value: float, metrics: dict[str, float]) -> str:
    """For a lower-is-better test metric with two or more baselines: the strongest, and whether the
    model beats it."""
    if not key.endswith(LOWER_IS_BETTER):
        return ""
    bases = {
        ("naive" if k == f"baseline_{key}" else k.removeprefix("baseline_").removesuffix(f"_{key}")): v
        for k, v in metrics.items()
        if k.startswith("baseline_") and k.endswith(key) and v == v
    }
    if len(bases) < 2 or value != value:
        return ""
    name = min(bases, key=bases.get)
    return f"   -> beats the strongest baseline ({name})" if value < bases[name] else f"   -> behind {name}"


def render(summary: RunSummary, *, title: str) -> str:
    m = summary.metrics
    lines = [f"== {title}: {summary.name} ({summary.status}) =="]
    if summary.best_config:
        best = redact_tree(summary.best_config)
        lines.append("best config: " + ", ".join(f"{k}={v}" for k, v in best.items()))
    val = [f"{k.removeprefix('val_')} {v:.4f}" for k, v in m.items() if k.startswith("val_")]
    if val:
        lines.append(f"best epoch {int(m.get('best_epoch', 0)) + 1}: val " + ", ".join(val))
    if "stopped_epoch" in m:  # train.early_stopping ended the run (or the best trial) before train.epochs
        lines.append(f"early stopping: stopped after epoch {int(m['stopped_epoch'])} of {int(m['max_epochs'])}")
    for key, value in m.items():
        if key in COUNTS:
            continue
        if key.startswith("test_"):
            base = m.get(f"baseline_{key}")
            vs = f"   naive baseline {base:.4f}" if base is not None else ""
            others = {  # further baselines of the same metric: baseline_<name>_<key> (text: tfidf, lexicon)
                k.removeprefix("baseline_").removesuffix(f"_{key}"): v
                for k, v in m.items()
                if k.startswith("baseline_") and k.endswith(f"_{key}") and k != f"baseline_{key}"
            }
            vs += "".join(f"   {name} {v:.4f}" for name, v in others.items())
            if value != value:  # NaN: the metric has no value on this test split; say why instead
                lines.append(f"{key:<16} undefined: {UNDEFINED.get(key, 'the test split cannot score it')}")
                continue
            lines.append(f"{key:<16} {value:.4f}{vs}{verdict(key, value, m)}")
    if "seeds" in m:  # a sweep with a seed axis: the best setting's test metrics over its seeds
        means = {k[6:-5]: v for k, v in m.items() if k.startswith("seeds_test_") and k.endswith("_mean")}  # test_<x>
        spread = [f"{name} {v:.4f} ± {m.get(f'seeds_{name}_std', float('nan')):.4f}" for name, v in means.items()]
        lines.append(f"over {int(m['seeds'])} seeds (mean ± std): " + ", ".join(spread))
    if "folds" in m:  # lstmpipe backtest: the test metrics above are means over the folds
        spread = [
            f"{k} {m[k]:.4f} ± {m[f'folds_{k}_std']:.4f}"
            for k in m
            if k.startswith("test_") and k not in COUNTS and f"folds_{k}_std" in m
        ]
        lines.append(f"over {int(m['folds'])} folds (mean ± std): " + ", ".join(spread))
    counted = [f"{int(m[k])} {COUNTS[k]}" for k in COUNTS if k in m]
    folds = "folds" in m
    if counted:
        lines.append(
            "scored on " + ", ".join(counted) + (" of each fold's test split (mean)" if folds else " of the test split")
        )
    lines.append(f"mlflow run {summary.run_id} in experiment '{summary.experiment}'")
    if summary.child_run_ids:
        lines.append(f"{'fold' if folds else 'trial'} runs: {', '.join(summary.child_run_ids)}")
    if summary.model_uri:
        reg = f"  registered as {summary.registered_model}" if summary.registered_model else ""
        lines.append(f"model {summary.model_uri}{reg}")
    if summary.promotion:
        lines.append(summary.promotion)
    if summary.checkpoint:
        lines.append(f"checkpoint {summary.checkpoint}")
    lines.append(f"browse: {redact(ui_command(summary.tracking_uri))}")
    return "\n".join(lines)
