"""`lstmpipe train`'s epochs logged to its MLflow run by the driver, as the run's controller takes them.

Rank 0 would otherwise import MLflow and open the tracking store itself (~1.5 s of CPU, before its
first epoch: on every run's critical path); the driver has both loaded already, and follows the run
anyway (`ray_compat.actors.follow_reports` asks the controller for rank 0's new reports twice a
second). Rank 0's policy comes with `RunLogger`: buffered through an outage (what is still missing
after training, `sync_history` logs from the last checkpoint, waiting for the server), an epoch a
restarted worker group trains again logged once and tagged `lstmpipe.rerun_epochs`. Each report
carries the run's tags (world size, worker nodes, the epoch a restarted group started from).
"""

from __future__ import annotations

from typing import Any

from pipeline.track import RunLogger, TrackedRun
from pipeline.train.spec import RUN_TAGS_KEY


class DriverEpochs:
    """Called by `follow_reports` with rank 0's new reports; logs them to `run`."""

    def __init__(self, run: TrackedRun):
        self.logger = RunLogger(run)

    def __call__(self, reports: list[dict[str, Any]]) -> None:
        tags: dict[str, str] = {}
        for report in reports:
            metrics = dict(report)
            tags |= metrics.pop(RUN_TAGS_KEY, None) or {}
            self.logger.queue_epoch(metrics, epoch=int(metrics["epoch"]))
        self.logger.set_tags(tags)  # and sends the epochs: buffered while the server is away
