"""Runs left RUNNING by a process that died without closing them (SIGKILL, OOM, power loss).

Every run the pipeline opens carries `lstmpipe.owner` = host:pid:start-ticks of the driver process
whose death ends it (for a sweep's trial runs, the sweep driver). At the start of every train or
tune command, and with `lstmpipe runs reconcile`, RUNNING runs of the experiment whose owner ran on
this host and is gone are marked KILLED and tagged `lstmpipe.reconciled`. Runs owned by another
host are left alone: only that host can tell whether their driver still lives (for submitted jobs
the driver runs on the cluster's head node, where the next job of the experiment reconciles them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipeline.owner import owner_alive
from pipeline.track.run import TrackedRun
from pipeline.track.store import running_runs

OWNER_TAG = "lstmpipe.owner"
RECONCILED_TAG = "lstmpipe.reconciled"


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
