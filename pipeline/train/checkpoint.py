"""Checkpoint files: state_dicts and plain metadata only, loaded with weights_only=True.

Layout of one checkpoint directory:
  model.pt       model and optimizer state_dicts (tensors only)
  meta.json      epoch, config hash, MLflow run id, the metrics of this and every earlier epoch, and (for
                 loading the model without its run) the full config and the data info
  manifest.json  the size and sha256 of the two files above

Each file is written to a temporary name and renamed into place, the manifest last: a directory
without it, or whose files do not match it (a writer killed mid-save, a truncated copy), is never
loaded, and says so in one sentence.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import RunStateError

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.json"


@dataclass
class CheckpointMeta:
    epoch: int
    config_hash: str
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    info: dict[str, Any] | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # every epoch's metrics so far, this one last
    tags: dict[str, str] = field(default_factory=dict)  # the run's tags from its workers (world size, nodes)


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
    _write(directory / META_FILE, json.dumps(asdict(meta), indent=2))
    manifest = {name: _describe(directory / name) for name in (MODEL_FILE, META_FILE)}
    _write(directory / MANIFEST_FILE, json.dumps(manifest, indent=2))  # the completion marker: written last


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _manifest(directory: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(manifest, dict) and all(isinstance(manifest.get(n), dict) for n in (MODEL_FILE, META_FILE))
    return manifest if ok else None


def is_complete(directory: str | Path) -> bool:
    """The manifest is there and every file has its size (the cheap check; `load` also checks sha256)."""
    directory = Path(directory)
    manifest = _manifest(directory)
    if manifest is None:
        return False
    for name in (MODEL_FILE, META_FILE):
        path = directory / name
        if not path.is_file() or path.stat().st_size != manifest[name].get("size"):
            return False
    return True


def load_meta(directory: str | Path) -> CheckpointMeta:
    _check_complete(directory)
    try:
        return CheckpointMeta(**json.loads((Path(directory) / META_FILE).read_text()))
    except (ValueError, TypeError) as err:
        raise RunStateError(
            f"{directory}/{META_FILE} does not describe a checkpoint ({_first_line(err)}); use a checkpoint "
            "directory lstmpipe wrote"
        ) from err


def _check_complete(directory: str | Path, *, verify: bool = False) -> None:
    if not is_complete(directory):
        raise RunStateError(
            f"{directory} is not a complete checkpoint ({MANIFEST_FILE} is missing or its files' sizes differ: its "
            "writer was probably killed mid-save, or the copy is truncated); use an earlier checkpoint of the run"
        )
    if verify:
        manifest = _manifest(Path(directory))
        for name in (MODEL_FILE, META_FILE):
            if _describe(Path(directory) / name)["sha256"] != manifest[name].get("sha256"):
                raise RunStateError(
                    f"{directory}/{name} does not match its checksum in {MANIFEST_FILE} (the file was changed or "
                    "damaged); use an earlier checkpoint of the run"
                )


def load(directory: str | Path) -> CheckpointState:
    directory = Path(directory)
    _check_complete(directory, verify=True)
    try:
        state = torch.load(directory / MODEL_FILE, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        raise RunStateError(
            f"{directory}/{MODEL_FILE} cannot be loaded as weights ({_first_line(err)}); only checkpoints lstmpipe "
            "wrote load, never arbitrary pickles"
        ) from err
    if not isinstance(state, dict) or "model" not in state:
        raise RunStateError(f"{directory}/{MODEL_FILE} holds no model state; use a checkpoint directory lstmpipe wrote")
    return CheckpointState(model=state["model"], optimizer=state.get("optimizer"), meta=load_meta(directory))


def check_belongs(meta: CheckpointMeta, *, run_id: str | None, config_hash: str, where: str) -> None:
    """A checkpoint restored into a run must be that run's: another run of the same name in the same
    directory, or a changed config, would otherwise continue from foreign weights."""
    if meta.config_hash != config_hash or (run_id and meta.run_id and meta.run_id != run_id):
        raise RunStateError(
            f"checkpoint {where} belongs to run {meta.run_id} (config {meta.config_hash}), not to this run {run_id} "
            f"(config {config_hash}); give this run its own --name or train.storage_path"
        )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__
