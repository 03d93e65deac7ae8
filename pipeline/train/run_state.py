"""Run names and the state file that ties a Ray run directory to its MLflow run.

`{storage_path}/{name}/lstmpipe_run.json` holds the MLflow run id, the config hash and the data's
fingerprint, written before training starts, so `--name N --resume` continues the same MLflow run
and refuses a changed config or changed data, and a fresh run never silently reuses an old name.

A name is one path segment of a safe alphabet. A process claims it before any work: it creates
`{storage_path}/{name}/.lstmpipe.lock`, holding its owner (host, pid, process start time), and
removes it when the command ends. On a local or mounted filesystem the check and the write happen
under an flock on `.lstmpipe.guard`, so two processes can never both take the name. A second run
of the same name, started or resumed while the first lives, is refused; a lock whose owner died
on this host is taken over.
On object stores (s3://, gs://) the claim is written and read back, which narrows the race but
cannot close it: give concurrent runs distinct names there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.fs

from pipeline.data.fingerprint import changes
from pipeline.errors import ConfigError, RunStateError
from pipeline.owner import owner, owner_alive

STATE_FILE = "lstmpipe_run.json"
LOCK_FILE = ".lstmpipe.lock"
GUARD_FILE = ".lstmpipe.guard"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class RunState:
    run_id: str
    config_hash: str
    kind: str  # "train" or "tune"
    data: dict[str, str] = field(default_factory=dict)  # the source's fingerprint (data.fingerprint)


def check_name(name: str) -> None:
    """A run name is one path segment: letters, digits, '.', '_' and '-', starting with a letter or digit."""
    if not NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"--name {name!r} is not a run name: use up to 100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it names one directory under train.storage_path)"
        )


def unique_name(kind: str) -> str:
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def resolve_storage(path: str) -> str:
    """Ray needs an absolute local path or a URI."""
    return path if "://" in path else str(Path(path).expanduser().resolve())


def run_fs(storage: str, name: str) -> tuple[pyarrow.fs.FileSystem, str]:
    fs, root = pyarrow.fs.FileSystem.from_uri(storage) if "://" in storage else (pyarrow.fs.LocalFileSystem(), storage)
    return fs, f"{root.rstrip('/')}/{name}"


def read_state(storage: str, name: str) -> RunState | None:
    fs, run_dir = run_fs(storage, name)
    info = fs.get_file_info(f"{run_dir}/{STATE_FILE}")
    if info.type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(info.path) as f:
        raw = f.read()
    try:
        return RunState(**json.loads(raw))
    except (ValueError, TypeError) as err:
        raise RunStateError(
            f"{info.path} is not a run state lstmpipe wrote; move that directory away or pick another --name"
        ) from err


def write_state(storage: str, name: str, state: RunState) -> None:
    fs, run_dir = run_fs(storage, name)
    fs.create_dir(run_dir, recursive=True)
    tmp = f"{run_dir}/.{STATE_FILE}.{os.getpid()}"
    with fs.open_output_stream(tmp) as f:
        f.write(json.dumps(asdict(state)).encode())
    fs.move(tmp, f"{run_dir}/{STATE_FILE}")


def check_writable(storage: str) -> None:
    """Fail before any Ray work if checkpoints could not be written: Ray would fail deep in a worker."""
    fs, probe = run_fs(storage, f".lstmpipe-write-probe-{os.getpid()}")
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


@dataclass
class Claim:
    """This process's hold on a run name (see the module docstring); `release` ends it."""

    storage: str
    name: str
    token: str

    def release(self) -> None:
        fs, run_dir = run_fs(self.storage, self.name)
        try:
            if isinstance(fs, pyarrow.fs.LocalFileSystem):
                with _guard(run_dir):
                    self._delete_if_ours(fs, f"{run_dir}/{LOCK_FILE}")
            else:
                self._delete_if_ours(fs, f"{run_dir}/{LOCK_FILE}")
        except (OSError, pyarrow.ArrowException):
            pass  # a lock left behind names a dead owner: the next run takes it over

    def _delete_if_ours(self, fs: pyarrow.fs.FileSystem, lock: str) -> None:
        if _read_lock(fs, lock) == self.token:
            fs.delete_file(lock)


def claim(storage: str, name: str) -> Claim:
    """Claim `name` under `storage` for this process, or refuse (RunStateError) while another holds it."""
    fs, run_dir = run_fs(storage, name)
    fs.create_dir(run_dir, recursive=True)
    lock, token = f"{run_dir}/{LOCK_FILE}", f"{owner()}:{secrets.token_hex(4)}"
    if isinstance(fs, pyarrow.fs.LocalFileSystem):
        with _guard(run_dir):  # check-then-take is one step for every process on this host
            _refuse_if_held(fs, lock, name=name, storage=storage)
            _write_atomic(lock, token)
        return Claim(storage=storage, name=name, token=token)
    if fs.get_file_info(lock).type != pyarrow.fs.FileType.NotFound:
        _refuse_if_held(fs, lock, name=name, storage=storage)
    with fs.open_output_stream(lock) as f:  # object stores: write, then check that ours is the one kept
        f.write(token.encode())
    if _read_lock(fs, lock) != token:
        raise RunStateError(f"could not claim run '{name}' in {storage}: another process took it; pick another --name")
    return Claim(storage=storage, name=name, token=token)


def _refuse_if_held(fs: pyarrow.fs.FileSystem, lock: str, *, name: str, storage: str) -> None:
    if fs.get_file_info(lock).type == pyarrow.fs.FileType.NotFound:
        return
    holder = _read_lock(fs, lock)
    if holder and owner_alive(holder.rsplit(":", 1)[0]) is False:
        return  # its owner died on this host: the name is taken over
    raise RunStateError(
        f"run '{name}' in {storage} is in use by another process ({holder or 'unknown owner'}); wait for it to "
        "end or pick another --name"
    )


@contextlib.contextmanager
def _guard(run_dir: str) -> Iterator[None]:
    """An flock on `{run_dir}/.lstmpipe.guard`: the kernel drops it when its holder dies, so it never goes stale."""
    fd = os.open(f"{run_dir}/{GUARD_FILE}", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _write_atomic(path: str, text: str) -> None:
    """Readers see the whole lock or none of it: never an empty file mid-write."""
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_lock(fs: pyarrow.fs.FileSystem, path: str) -> str:
    try:
        with fs.open_input_stream(path) as f:
            return f.read().decode(errors="replace").strip()
    except (OSError, pyarrow.ArrowException):
        return ""


def check_start(
    storage: str, name: str, *, kind: str, resume: bool, config_hash: str, data: dict[str, str] | None = None
) -> RunState | None:
    """Validate a start/resume request (the caller holds the name's claim); return the existing
    state when resuming. `data` is the source's fingerprint now, compared with the stored one."""
    check_name(name)
    check_writable(storage)
    state = read_state(storage, name)
    fs, run_dir = run_fs(storage, name)
    entries = fs.get_file_info(pyarrow.fs.FileSelector(run_dir, allow_not_found=True))
    exists = any(not e.base_name.startswith((LOCK_FILE, GUARD_FILE)) for e in entries)
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
    if data is not None and state.data and data != state.data:
        raise RunStateError(
            f"cannot resume '{name}': its data changed since it started ({'; '.join(changes(state.data, data))}); "
            "restore the data or start a new run"
        )
    return state
