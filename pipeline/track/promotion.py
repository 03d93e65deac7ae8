"""The promotion gate (`tracking.promote`): a newly registered model version gets the `champion` alias
only if it beats the task's baseline and the current champion on the same test split.

"The same test split" for the current champion means: its run read a dataset with the same digest
(`pipeline.track.lineage`) and the same `data.*` config (split fractions, windows, seed: every
`data.` parameter the run logged), so its logged test metric was measured on the rows this run was
tested on. Otherwise the gate cannot compare and fails closed, saying so: nothing is promoted on a
comparison that was not made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import mlflow

from pipeline.track.run import TrackedRun

CHAMPION_ALIAS = "champion"
DECISION_TAG = "lstmpipe.promotion"


@dataclass(frozen=True)
class Rival:
    name: str  # "the baseline", "champion v3"
    value: float | None  # its metric, None when it has none
    problem: str | None = None  # why it cannot be compared, in words


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str  # one sentence for the summary and the run's tag


def decide(
    metric: str, value: float, rivals: list[Rival], *, mode: Literal["min", "max"], min_delta: float
) -> Decision:
    """Pure: does `value` beat every rival by more than `min_delta` (lower is better for mode min)?"""
    if not math.isfinite(value):
        return Decision(False, f"not promoted: {metric} is {value} on this test split")
    beaten = []
    for rival in rivals:
        if rival.problem is not None:
            return Decision(False, f"not promoted: {rival.problem}")
        if rival.value is None:
            continue  # no current champion: nothing to beat
        margin = rival.value - value if mode == "min" else value - rival.value
        if not margin > min_delta:
            return Decision(
                False,
                f"not promoted: {metric} {value:.4g} does not beat {rival.name}'s {rival.value:.4g}"
                + (f" by more than {min_delta:g}" if min_delta else ""),
            )
        beaten.append(f"{rival.name}'s {rival.value:.4g}")
    if len(beaten) < len(rivals):  # a rival without a value: no champion yet
        beaten.append("no champion yet" if beaten else "(no champion yet)")
        return Decision(True, f"promoted to @{CHAMPION_ALIAS}: {metric} {value:.4g} beats " + ", ".join(beaten))
    return Decision(True, f"promoted to @{CHAMPION_ALIAS}: {metric} {value:.4g} beats " + " and ".join(beaten))


def current_champion(run: TrackedRun, name: str, *, metric: str, data_params: dict[str, str], digest: str) -> Rival:
    """The model now holding @champion under `name` as a rival (value None when there is none)."""
    client = run.client
    try:
        version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except mlflow.exceptions.MlflowException:
        return Rival(name="the current champion", value=None)  # none yet
    label = f"champion {name}/{version.version}"
    theirs = client.get_run(version.run_id)
    digests = {d.dataset.digest for d in theirs.inputs.dataset_inputs} if theirs.inputs else set()
    their_data = {k: v for k, v in theirs.data.params.items() if k.startswith("data.")}
    if digest not in digests or their_data != data_params:
        differs = sorted(k for k in their_data.keys() | data_params.keys() if their_data.get(k) != data_params.get(k))
        what = f"data config ({', '.join(differs[:3])})" if differs else "dataset (its digest)"
        return Rival(
            name=label,
            value=None,
            problem=f"{label} was tested on other data (the {what} differs), so the two cannot be compared on one "
            "test split; set tracking.promote.must_beat: [baseline] to promote on the baseline alone",
        )
    if metric not in theirs.data.metrics:
        return Rival(name=label, value=None, problem=f"{label}'s run has no {metric} to compare with")
    return Rival(name=label, value=float(theirs.data.metrics[metric]))


def gate(
    run: TrackedRun,
    *,
    name: str,
    version: str,
    metric: str,
    metrics: dict[str, float],
    must_beat: list[str],
    mode: Literal["min", "max"],
    min_delta: float,
    digest: str,
) -> Decision:
    """Decide for registered version `version` of `name` (tested on the dataset with `digest`), set
    the alias if it passes, and tag the run with the decision."""
    if metric not in metrics:
        known = ", ".join(sorted(k for k in metrics if k.startswith("test_")))
        decision = Decision(
            False, f"not promoted: this run has no {metric} (tracking.promote.metric); use one of {known}"
        )
    else:
        rivals = []
        if "baseline" in must_beat:
            base = metrics.get(f"baseline_{metric}")
            problem = None if base is not None else f"the task reports no baseline_{metric} to beat"
            rivals.append(Rival(name="the baseline", value=base, problem=problem))
        if "champion" in must_beat:
            ours = run.client.get_run(run.run_id).data.params  # as logged, so compared like for like
            data_params = {k: v for k, v in ours.items() if k.startswith("data.")}
            rivals.append(current_champion(run, name, metric=metric, data_params=data_params, digest=digest))
        decision = decide(metric, metrics[metric], rivals, mode=mode, min_delta=min_delta)
    if decision.promoted:
        run.client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    run.set_tags({DECISION_TAG: decision.reason[:5000]})
    return decision
