"""A sweep's parent run and its nested child runs, one per Tune trial."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.track.run import PARENT_TAG, RunStatus, TrackedRun

TrialOutcome = Literal["FINISHED", "FAILED", "STOPPED"]
TRIAL_TAG = "lstmpipe.trial_id"


@dataclass(frozen=True)
class TrialRun:
    run: TrackedRun
    finished: bool


class SweepRun(TrackedRun):
    """The parent run of a sweep."""

    def children(self) -> list[Any]:
        experiment = self.client.get_run(self.run_id).info.experiment_id
        return self.client.search_runs(
            [experiment], filter_string=f"tags.`{PARENT_TAG}` = '{self.run_id}'", max_results=10_000
        )

    def child(self, run_id: str) -> TrackedRun:
        return TrackedRun(self.uri, run_id, client=self.client)

    def trial(self, trial_id: str) -> TrialRun | None:
        """The child run of this trial, if the trial ran before (a restored sweep)."""
        found = [r for r in self.children() if r.data.tags.get(TRIAL_TAG) == trial_id]
        if not found:
            return None
        return TrialRun(run=self.child(found[0].info.run_id), finished=found[0].info.status == "FINISHED")

    def trial_test_metrics(self) -> dict[str, dict[str, float]]:
        """trial id -> the test metrics its child run logged (test_*, baseline_test_*)."""
        return {
            r.data.tags.get(TRIAL_TAG, ""): {
                k: v for k, v in r.data.metrics.items() if k.startswith(("test_", "baseline_test_"))
            }
            for r in self.children()
        }

    def end_running_children(self, status: RunStatus) -> None:
        """A sweep that is interrupted ends its trials' runs with it."""
        for run in self.children():
            if run.info.status == "RUNNING":
                self.child(run.info.run_id).end(status)

    def close_trials(
        self, outcomes: dict[str, TrialOutcome], *, tags_of: Callable[[str], dict[str, str]] | None = None
    ) -> None:
        """Close child runs still RUNNING by Tune's verdict, with the tags `tags_of(trial_id)` gives (what
        the trial would have set itself). A trial the scheduler stops dies with its actor and cannot close
        its own run: it ends FINISHED, tagged stopped_early. A trial Tune never reported on ends FAILED."""
        for run in self.children():
            if run.info.status != "RUNNING":
                continue
            child = self.child(run.info.run_id)
            trial_id = run.data.tags.get(TRIAL_TAG, "")
            outcome = outcomes.get(trial_id, "FAILED")
            tags = dict(tags_of(trial_id)) if tags_of is not None else {}
            if outcome == "STOPPED":
                tags["lstmpipe.stopped_early"] = "true"
            if tags:
                child.set_tags(tags)
            child.end("FAILED" if outcome == "FAILED" else "FINISHED")
