"""Free the placement groups that a dead actor of this job left behind: a Tune trial's Train workers.

A Tune trial's actor owns its Ray Train controller, and the controller creates the placement group
its workers run in. When Tune stops a trial (ASHA, PBT pausing it, an error), it ends the trial's
actor and the controller dies with it; but a placement group lives as long as its creator's *job*
(Ray removes it only when both the creating actor and the job are dead), so the workers' CPUs stayed
reserved until the sweep ended, and the next trials waited for them. Ray 2.60's answer is a detached
PlacementGroupCleaner actor per Train run, which asks the dashboard's State API every second whether
its controller lives: one more process per trial, and the dashboard (its process and ten head module
processes) in every Ray that runs a sweep. The GCS itself records, per placement group, its creating
actor and whether that actor is dead (`creator_actor_dead`): the sweep driver reads that table once
a second, in a thread of its own, and removes this job's groups whose creating actor is dead.

Placement groups a driver creates (Tune's own, one per trial actor) have no creating actor and are
never touched; a detached group outlives its creator by design and is left alone too."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

NIL_ACTOR_ID = b"\xff" * 16  # Ray's ActorID::Nil(): the creator of a group a driver created
REAP_INTERVAL_S = 1.0  # as often as Ray's PlacementGroupCleaner checked its controller


def orphans(tables: Iterable, *, job_id: str) -> list[bytes]:
    """Ids of job `job_id`'s live placement groups whose creating actor is dead, from the GCS's
    `PlacementGroupTableData` messages (a pure function: unit-tested on hand-made messages)."""
    from ray.core.generated import gcs_pb2

    removed = gcs_pb2.PlacementGroupTableData.REMOVED
    return [
        t.placement_group_id
        for t in tables
        if t.creator_job_id.hex() == job_id
        and t.creator_actor_id != NIL_ACTOR_ID
        and t.creator_actor_dead
        and not t.is_detached
        and t.state != removed
    ]


def placement_group_tables() -> list:
    """Every placement group the GCS knows, as `PlacementGroupTableData` (the table
    `ray.util.placement_group_table` renders without the creator fields)."""
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    accessor = state._connect_and_get_accessor()
    return [gcs_pb2.PlacementGroupTableData.FromString(raw) for raw in accessor.get_placement_group_table()]


def remove_orphans(job_id: str) -> int:
    """Remove job `job_id`'s placement groups whose creating actor is dead; how many were removed."""
    import ray
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    ids = orphans(placement_group_tables(), job_id=job_id)
    for pg_id in ids:
        remove_placement_group(PlacementGroup(ray.PlacementGroupID(pg_id)))
        log.debug("removed placement group %s: its creating actor is dead", pg_id.hex())
    return len(ids)


@contextlib.contextmanager
def freeing_dead_actors_groups(interval_s: float = REAP_INTERVAL_S) -> Iterator[None]:
    """While the block runs (a sweep's `Tuner.fit`), remove this job's placement groups whose creating
    actor died, every `interval_s`, in a thread of its own (Tune's loop never waits on the GCS)."""
    import ray

    job_id = ray.get_runtime_context().get_job_id()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                remove_orphans(job_id)
            except Exception as err:  # noqa: BLE001  (the GCS busy or going away: try again next time)
                log.debug("placement group check failed: %r", err)

    thread = threading.Thread(target=loop, name="lstmpipe-free-placement-groups", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
