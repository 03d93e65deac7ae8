"""Run names and the state file that ties a Ray run directory to its MLflow run.

`{storage_path}/{name}/lstmpipe_run.json` holds the MLflow run id and the config hash, written
before training starts, so `--name N --resume` continues the same MLflow run and refuses a
changed config, and a fresh run never silently reuses an old name.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.fs

from pipeline.errors import ConfigError, RunStateError

STATE_FILE = "lstmpipe_run.json"


@dataclass(frozen=True)
class RunState:
    run_id: str
    config_hash: str
    kind: str  # "train" or "tune"


def unique_name(kind: str) -> str:
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def resolve_storage(path: str) -> str:
    """Ray needs an absolute local path or a URI."""
    return path if "://" in path else str(Path(path).expanduser().resolve())


def _fs(storage: str, name: str) -> tuple[pyarrow.fs.FileSystem, str]:
    fs, root = pyarrow.fs.FileSystem.from_uri(storage) if "://" in storage else (pyarrow.fs.LocalFileSystem(), storage)
    return fs, f"{root.rstrip('/')}/{name}"


def read_state(storage: str, name: str) -> RunState | None:
    fs, run_dir = _fs(storage, name)
    info = fs.get_file_info(f"{run_dir}/{STATE_FILE}")
    if info.type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(info.path) as f:
        return RunState(**json.loads(f.read()))


def write_state(storage: str, name: str, state: RunState) -> None:
    fs, run_dir = _fs(storage, name)
    fs.create_dir(run_dir, recursive=True)
    tmp = f"{run_dir}/.{STATE_FILE}.{os.getpid()}"
    with fs.open_output_stream(tmp) as f:
        f.write(json.dumps(asdict(state)).encode())
    fs.move(tmp, f"{run_dir}/{STATE_FILE}")


def check_writable(storage: str) -> None:
    """Fail before any Ray work if checkpoints could not be written: Ray would fail deep in a worker."""
    fs, probe = _fs(storage, f".lstmpipe-write-probe-{os.getpid()}")
    try:
        fs.create_dir(probe.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except (OSError, pyarrow.ArrowException) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"train.storage_path {storage} is not writable ({reason}); point it at a directory or bucket this "
            "process can write to"
        ) from err


def check_start(storage: str, name: str, *, kind: str, resume: bool, config_hash: str) -> RunState | None:
    """Validate a start/resume request; return the existing state when resuming."""
    check_writable(storage)
    state = read_state(storage, name)
    fs, run_dir = _fs(storage, name)
    exists = fs.get_file_info(run_dir).type != pyarrow.fs.FileType.NotFound
    if not resume:
        if exists:
            raise RunStateError(
                f"run '{name}' already exists in {storage}; continue it with --name {name} --resume, or pick another "
                "--name"
            )
        return None
    if state is None:
        raise RunStateError(
            f"cannot resume '{name}': no {kind} run of that name in {storage}; check --name and train.storage_path"
        )
    if state.kind != kind:
        raise RunStateError(f"cannot resume '{name}' with `{kind}`: it is a {state.kind} run")
    if state.config_hash != config_hash:
        raise RunStateError(
            f"cannot resume '{name}': its config changed (hash {state.config_hash} -> {config_hash}); "
            "only train.epochs may change on resume, start a new run for other changes"
        )
    return state
