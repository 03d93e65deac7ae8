"""Checkpoint files: state_dicts and plain metadata only, loaded with weights_only=True.

Layout of one checkpoint directory:
  model.pt       model and optimizer state_dicts (tensors only)
  meta.json      epoch, config hash, MLflow run id, the metrics of this and every earlier epoch, and (for
                 loading the model without its run) the full config and the data info

Each file is written to a temporary name and renamed into place, meta.json last: a directory
without meta.json is a partial checkpoint (a writer killed mid-save) and is never loaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import RunStateError

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
    history: list[dict[str, float]] = field(default_factory=list)  # every epoch's metrics so far, this one last


@dataclass
class CheckpointState:
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    meta: CheckpointMeta


def save(
    directory: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, meta: CheckpointMeta
) -> None:
    directory = Path(directory)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None}
    tmp = directory / f".{MODEL_FILE}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, directory / MODEL_FILE)
    tmp = directory / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(meta), indent=2))
    os.replace(tmp, directory / META_FILE)  # the completion marker: written last


def is_complete(directory: str | Path) -> bool:
    return (Path(directory) / META_FILE).is_file() and (Path(directory) / MODEL_FILE).is_file()


def load_meta(directory: str | Path) -> CheckpointMeta:
    _check_complete(directory)
    return CheckpointMeta(**json.loads((Path(directory) / META_FILE).read_text()))


def _check_complete(directory: str | Path) -> None:
    if not is_complete(directory):
        raise RunStateError(
            f"{directory} is not a complete checkpoint ({META_FILE} and {MODEL_FILE} are both needed; its writer "
            "was probably killed mid-save); use an earlier checkpoint of the run"
        )


def load(directory: str | Path) -> CheckpointState:
    directory = Path(directory)
    _check_complete(directory)
    state = torch.load(directory / MODEL_FILE, map_location="cpu", weights_only=True)
    return CheckpointState(model=state["model"], optimizer=state["optimizer"], meta=load_meta(directory))
