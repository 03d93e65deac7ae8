"""Connecting to Ray, and what the connected cluster offers (CPUs/GPUs, storage every node sees)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import ray
import ray.data

from pipeline import ray_compat
from pipeline.console import EPOCH_LINE, RAYLET_STARTUP_WARNING, quiet_libraries, ray_log_level, verbose
from pipeline.errors import ConfigError
from pipeline.ray_compat import actors as ray_actors


def worker_runtime_env(*, local: bool = False) -> dict[str, Any]:
    """What every Ray worker process of a driver or job of ours gets: our setup hook (a module path:
    each node resolves Ray Data's logging config itself) and quiet Python warnings. It names no path
    of this machine, so it is the same for a local run and a job on a remote cluster.

    The Train controller polls its workers every 0.05 s instead of 2 s (see
    ray_compat.HEALTH_CHECK_INTERVAL_S: epochs shorter than the interval wait for the poll).

    A Ray instance this process starts for itself (`local`) lives on one machine that no cloud can
    preempt: Ray Train's PreemptionWatcher (one more actor process per run, polling every node)
    is left out there; on a cluster it stays. Its raylet keeps one idle worker per CPU, so Ray Data's
    task workers are not killed and started again around every run (a cluster's raylets are
    configured where they start), and its log monitor looks for new log files twice a second."""
    env_vars = {"PYTHONWARNINGS": "ignore::DeprecationWarning"}
    # A user's own setting reaches the controller anyway (Ray Train propagates it from the driver).
    env_vars[ray_compat.HEALTH_CHECK_INTERVAL_ENV] = os.environ.get(
        ray_compat.HEALTH_CHECK_INTERVAL_ENV, str(ray_compat.HEALTH_CHECK_INTERVAL_S)
    )
    if local:
        env_vars[ray_compat.PREEMPTION_WATCHER_ENV] = "0"
        # idle workers kept: one per CPU, not Ray's -1 (ray_compat.WORKERS_SOFT_LIMIT_ENV)
        env_vars[ray_compat.WORKERS_SOFT_LIMIT_ENV] = str(os.cpu_count() or 1)
        # its log monitor looks for new files twice a second, not ten times (ray_compat.LOG_MONITOR_GLOB_BACKOFF_ENV)
        env_vars[ray_compat.LOG_MONITOR_GLOB_BACKOFF_ENV] = "0"
        # Ray Train's controller and workers run without runtime envs of their own on such a Ray
        # (ray_actors.use_our_controller, env="inherited"): what those carried is inherited instead
        env_vars[ray_actors.OWN_RAY_ENV] = "1"
        env_vars[ray_actors.WARN_BLOCKING_GET_ENV] = "0"
        env_vars[ray_actors.TUNE_DEFAULT_ENV] = "1"  # and Tune's trial actors (tune_trials_share_the_worker_pool)
    return {"worker_process_setup_hook": ray_compat.SETUP_HOOK, "env_vars": env_vars}


@contextmanager
def inherited_by_ray(runtime_env: dict[str, Any]) -> Iterator[None]:
    """`runtime_env` for every process of a Ray instance this process starts, given as the environment
    its processes inherit while `ray.init` starts them, then this process's environment as it was.

    A job runtime env, however small, makes each worker a runtime-env worker: the raylet asks its
    agent to set it up and starts the worker through `setup_worker.py`, and workers Ray prestarts
    without it cannot take the job's tasks (B9: Ray Data's first task waited ~1.4 s for a new
    worker, beside two prestarted ones left idle). The setup hook reaches the workers the way Ray
    itself passes it (ray_compat.SETUP_HOOK_ENV)."""
    env = runtime_env["env_vars"] | {ray_compat.SETUP_HOOK_ENV: runtime_env["worker_process_setup_hook"]}
    before = {key: os.environ.get(key) for key in env}
    os.environ.update({key: value for key, value in env.items() if before[key] is None})  # a user's own wins
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)


# A local instance runs without Ray's dashboard (its process and ten head module processes: ~3 s of
# `ray.init` and ~6 CPU s here, then ~2 CPU s a minute idle): nothing of ours asks its State API. Ray
# Train's PlacementGroupCleaner did, once per Tune trial; a sweep frees its stopped trials' placement
# groups from the GCS's own table instead (pipeline.ray_compat.placement).
def connect() -> None:
    """Join RAY_ADDRESS if set, else start a local Ray instance (token auth on, as Ray 2.60 does)."""
    if ray.is_initialized():
        return
    ray_compat.setup_process()  # this driver, as the hook does for every worker
    # Bad data fails in several Ray Data blocks at once: the first failure is raised as one DataError
    # sentence; its siblings would otherwise be logged as "Unhandled error" tracebacks on exit.
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    quiet_libraries()  # Ray's notice that token auth is on (it stays on), MLflow's table set-up lines
    # In a submitted job the job's runtime env (working_dir, worker_runtime_env: see submit.py) is the
    # one to keep: a driver runtime env merged into it makes Ray set up a new one and garbage-collect
    # the job's working directory, the driver's own cwd.
    main_thread = threading.current_thread() is threading.main_thread()
    on_sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    address = os.environ.get("RAY_ADDRESS") or None
    runtime_env = None if ray_compat.in_ray_job() else worker_runtime_env(local=address is None)
    local = address is None and runtime_env is not None
    with inherited_by_ray(runtime_env) if local else nullcontext():
        ray.init(
            address=address or "local",  # never a `ray start` instance found on this machine: RAY_ADDRESS says
            runtime_env=None if local else runtime_env,
            logging_level=ray_log_level(),
            include_dashboard=None if address else False,
        )
    ray_actors.set_own_ray(local)
    if callable(on_sigterm):
        # Ray's core worker installs a C++ SIGTERM handler that aborts the process; the CLI's handler
        # (SIGTERM -> KeyboardInterrupt -> runs marked KILLED, exit 130) must stay in charge.
        signal.signal(signal.SIGTERM, on_sigterm)
    # The splits are small, materialized once: per-split progress bars in every worker would bury
    # the per-epoch lines (EpochProgress). Ray Data's console logging is quieted by
    # pipeline/ray_data_logging.yaml (see pipeline.ray_compat.setup_process).
    ray_compat.never_deduplicate(EPOCH_LINE)  # two trials' epoch lines are not "repeated" lines
    if not verbose():
        ray_compat.drop_forwarded(RAYLET_STARTUP_WARNING)
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
        if (
            len(parts) >= 3
            and (path == parts[1] or path.startswith(parts[1].rstrip("/") + "/"))
            and len(parts[1]) > len(best)
        ):
            best, fstype = parts[1], parts[2]
    return fstype


def check_storage(storage: str) -> None:
    """check_shared_storage against the connected cluster's alive nodes and this host's mounts."""
    hosts = [n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")]
    mounts = Path("/proc/mounts").read_text() if Path("/proc/mounts").exists() else ""
    check_shared_storage(storage, hosts=hosts, mounts=mounts)
