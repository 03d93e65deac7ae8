"""Ray Train's list of a run's checkpoints (`checkpoint_manager_snapshot.json` in the run directory),
recovered when a killed process left it damaged.

Ray 2.60 rewrites that file in place after every checkpoint (not to a temporary name first), so a
run stopped at the wrong moment (`ray job stop`, a killed driver) can leave it empty or cut short,
and Ray then refuses to resume the run at all (CheckpointManagerInitializationError). Our
checkpoints themselves are each complete or ignored (`pipeline.train.checkpoint`), so `--resume`
moves the damaged list aside and starts the workers from the latest complete checkpoint instead.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import pyarrow.fs

from pipeline.train import checkpoint
from pipeline.train.run_state import run_fs

SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"  # ray.train.v2._internal.constants
EPOCH_DIR = re.compile(r"epoch_\d+")  # our checkpoint_dir_name (pipeline.train.worker)


@dataclass(frozen=True)
class Recovered:
    moved_to: str  # where the damaged list went
    checkpoint: str | None  # the latest complete checkpoint, None if there is none
    filesystem: pyarrow.fs.FileSystem


def recover(storage: str, name: str) -> Recovered | None:
    """None when the run's checkpoint list is absent or readable (Ray restores from it); otherwise the
    list moved aside and the checkpoint to resume from."""
    fs, run_dir = run_fs(storage, name)
    path = f"{run_dir}/{SNAPSHOT_FILE}"
    if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as f:
        raw = f.read()
    try:
        if isinstance(json.loads(raw), dict):
            return None
    except ValueError:
        pass
    moved = f"{path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    fs.move(path, moved)
    return Recovered(moved_to=moved, checkpoint=latest_complete(fs, run_dir), filesystem=fs)


def latest_complete(fs: pyarrow.fs.FileSystem, run_dir: str) -> str | None:
    """The run's checkpoint of the highest epoch whose files are all there (by its manifest)."""
    entries = fs.get_file_info(pyarrow.fs.FileSelector(run_dir, allow_not_found=True))
    epochs = sorted((e.path for e in entries if EPOCH_DIR.fullmatch(e.base_name)), reverse=True)
    local = isinstance(fs, pyarrow.fs.LocalFileSystem)
    for path in epochs:
        manifest = fs.get_file_info(f"{path}/{checkpoint.MANIFEST_FILE}")
        if checkpoint.is_complete(path) if local else manifest.type == pyarrow.fs.FileType.File:
            return path
    return None
