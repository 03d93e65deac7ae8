"""The Train controller's side of PBT's reporting (`pipeline.tune.pbt`): each epoch's metrics and
checkpoint go to the trial's thread through a small async actor. Imported by the controller, so it
imports Ray only (no torch, no mlflow)."""

from __future__ import annotations

import asyncio
from typing import Any

import ray
import ray.exceptions
import ray.train
from ray.train.v2.api.callback import UserCallback

__all__ = ["CheckpointReport", "Handoff"]


@ray.remote(num_cpus=0)
class Handoff:
    """One epoch at a time from the Train controller to the trial's thread (an async actor)."""

    def __init__(self) -> None:
        self._items: asyncio.Queue = asyncio.Queue(maxsize=1)
        self._reported: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def send(self, item) -> None:
        """The controller's side: returns once the trial has reported `item` to Tune (None: the end)."""
        await self._items.put(item)
        if item is not None:
            await self._reported.get()

    async def receive(self):
        return await self._items.get()

    async def reported(self) -> None:
        await self._reported.put(True)


class CheckpointReport(UserCallback):
    """Runs in the Train controller: every report goes to the trial with its checkpoint (rank 0's metrics)."""

    def __init__(self, handoff) -> None:
        self._handoff = handoff

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint: ray.train.Checkpoint | None):
        try:
            ray.get(self._handoff.send.remote((dict(metrics[0]), checkpoint)))
        except ray.exceptions.RayActorError:
            # PBT paused the trial (or Tune ended it) on this very report: its actor, the handoff and
            # this controller go together; a traceback here would only be noise.
            pass
