"""Checkpoint files: state_dicts and plain metadata only, loaded with weights_only=True.

Layout of one checkpoint directory:
  model.pt       model and optimizer state_dicts (tensors only)
  meta.json      epoch, config hash, MLflow run id, the epoch's metrics, and (for loading the model
                 without its run) the full config and the data info (sizes, scalers, classes, vocab)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

MODEL_FILE = "model.pt"
META_FILE = "meta.json"


@dataclass
class CheckpointMeta:
    epoch: int
    config_hash: str
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    info: dict[str, Any] | None = None


@dataclass
class CheckpointState:
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    meta: CheckpointMeta


def save(directory: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, meta: CheckpointMeta) -> None:
    directory = Path(directory)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None}
    torch.save(state, directory / MODEL_FILE)
    (directory / META_FILE).write_text(json.dumps(asdict(meta), indent=2))


def load_meta(directory: str | Path) -> CheckpointMeta:
    return CheckpointMeta(**json.loads((Path(directory) / META_FILE).read_text()))


def load(directory: str | Path) -> CheckpointState:
    directory = Path(directory)
    state = torch.load(directory / MODEL_FILE, map_location="cpu", weights_only=True)
    return CheckpointState(model=state["model"], optimizer=state["optimizer"], meta=load_meta(directory))
