"""Runs left RUNNING by a process that died without closing them (SIGKILL, OOM, power loss).

Every run the pipeline opens carries `lstmpipe.owner` = host:pid:start-ticks of the driver process
whose death ends it (for a sweep's trial runs, the sweep driver). At the start of every train or
tune command, and with `lstmpipe runs reconcile`, RUNNING runs of the experiment whose owner ran on
this host and is gone are marked KILLED and tagged `lstmpipe.reconciled`. Runs owned by another
host are left alone: only that host can tell whether their driver still lives (for submitted jobs
the driver runs on the cluster's head node, where the next job of the experiment reconciles them).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.track.run import TrackedRun
from pipeline.track.store import running_runs

OWNER_TAG = "lstmpipe.owner"
RECONCILED_TAG = "lstmpipe.reconciled"


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None if there is no such process."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        text = stat.read_text()
    except OSError:
        if stat.parent.parent.is_dir() and Path("/proc/self/stat").exists():
            return None  # Linux: no /proc entry, no process
        try:
            os.kill(pid, 0)  # elsewhere: existence only
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    return text.rsplit(")", 1)[1].split()[19]  # field 22, counted after the parenthesised command


def owner() -> str:
    """This process as a run owner: host:pid:start-ticks (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def owner_alive(value: str, *, host: str | None = None) -> bool | None:
    """True/False for an owner on this host; None (unknown) for another host's or a malformed value."""
    parts = value.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != (host or socket.gethostname()) or not parts[1].isdigit():
        return None
    ticks = _start_ticks(int(parts[1]))
    return ticks is not None and (ticks == parts[2] or "?" in (ticks, parts[2]))


@dataclass(frozen=True)
class Reconciled:
    killed: list[str]  # run ids marked KILLED
    unknown: list[str]  # RUNNING runs owned by another host (left alone)


def reconcile(uri: str, experiment: str) -> Reconciled:
    """Mark the experiment's RUNNING runs whose owner died on this host KILLED."""
    killed, unknown = [], []
    for run in running_runs(uri, experiment):
        alive = owner_alive(run.data.tags.get(OWNER_TAG, ""))
        if alive is None:
            unknown.append(run.info.run_id)
        elif not alive:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            dead = TrackedRun(uri, run.info.run_id)
            dead.set_tags({RECONCILED_TAG: f"owner {run.data.tags[OWNER_TAG]} gone at {stamp}"})
            dead.end("KILLED")
            killed.append(run.info.run_id)
    return Reconciled(killed=killed, unknown=unknown)


def reconcile_and_report(uri: str, experiment: str) -> Reconciled:
    """`reconcile`, saying on stderr what it marked (called as every train/tune command starts)."""
    import sys

    done = reconcile(uri, experiment)
    if done.killed:
        print(
            f"marked {len(done.killed)} run(s) of experiment '{experiment}' left RUNNING by a dead process as KILLED: "
            f"{', '.join(done.killed)}",
            file=sys.stderr,
        )
    return done
