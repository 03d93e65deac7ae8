"""Connecting to Ray: join RAY_ADDRESS if set, else start a local instance (token auth stays on)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import ray
import ray.data

from pipeline.errors import ConfigError

QUIET_ENV = {
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    "RAY_DATA_LOGGING_CONFIG": os.environ["RAY_DATA_LOGGING_CONFIG"],  # set in pipeline/__init__.py
}


def connect() -> None:
    if ray.is_initialized():
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    # Bad data fails in several Ray Data blocks at once: the first failure is raised as one DataError
    # sentence; its siblings would otherwise be logged as "Unhandled error" tracebacks on exit.
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    # In a submitted job the job's runtime env (working_dir, QUIET_ENV: see submission.py) is the one
    # to keep: a driver runtime env merged into it makes Ray set up a new one and garbage-collect
    # the job's working directory, the driver's own cwd.
    in_job = "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ
    main_thread = threading.current_thread() is threading.main_thread()
    on_sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    ray.init(
        address=os.environ.get("RAY_ADDRESS") or None,
        runtime_env=None if in_job else {"env_vars": QUIET_ENV},
        logging_level=logging.WARNING,
    )
    if callable(on_sigterm):
        # Ray's core worker installs a C++ SIGTERM handler that aborts the process; the CLI's handler
        # (SIGTERM -> KeyboardInterrupt -> runs marked KILLED, exit 130) must stay in charge.
        signal.signal(signal.SIGTERM, on_sigterm)
    # The splits are small, materialized once: per-split progress bars in every worker would bury
    # the per-epoch lines (EpochProgress). Ray Data's console logging is quieted by
    # ray_data_logging.yaml (see pipeline/__init__.py).
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def available(resource: str) -> float:
    return float(ray.cluster_resources().get(resource, 0.0))


# Node-local filesystems are everything not listed here: checkpoints written on one host would be
# invisible to the others, and a restored worker on another host could not resume.
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "glusterfs", "9p", "virtiofs", "efs"}


def check_shared_storage(storage: str, *, hosts: list[str], mounts: str) -> None:
    """Refuse a node-local train.storage_path on a cluster whose nodes sit on more than one host."""
    if "://" in storage and not storage.startswith("file://"):
        return  # s3://, gs://, abfs://, hdfs://: shared by construction
    distinct = sorted(set(hosts))
    if len(distinct) <= 1:
        return
    path = storage.removeprefix("file://")
    fstype = _fstype(path, mounts)
    if fstype in NETWORK_FS or fstype.startswith("fuse."):
        return
    raise ConfigError(
        f"train.storage_path {storage} is on a node-local {fstype or 'unknown'} filesystem, but the Ray cluster spans "
        f"{len(distinct)} hosts ({', '.join(distinct)}); set train.storage_path to storage every node sees: "
        "an s3:// (gs://, abfs://) URI or an NFS mount"
    )


def _fstype(path: str, mounts: str) -> str:
    """The filesystem type of the longest mount point containing `path` (from /proc/mounts text)."""
    best, fstype = "", ""
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) >= 3 and (path == parts[1] or path.startswith(parts[1].rstrip("/") + "/")) and len(parts[1]) > len(best):
            best, fstype = parts[1], parts[2]
    return fstype


def check_storage(storage: str) -> None:
    """check_shared_storage against the connected cluster's alive nodes and this host's mounts."""
    hosts = [n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")]
    mounts = Path("/proc/mounts").read_text() if Path("/proc/mounts").exists() else ""
    check_shared_storage(storage, hosts=hosts, mounts=mounts)
