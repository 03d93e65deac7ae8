"""The promotion gate: the decision (pure), and against a real MLflow store (SQLite, no Ray): the alias
moves only when the new version beats the baseline and the champion tested on the same data."""

import math

import pytest

from pipeline.config import ConfigError, validate
from pipeline.data.fingerprint import DataLineage
from pipeline.track.lineage import digest, log_lineage
from pipeline.track.promotion import CHAMPION_ALIAS, DECISION_TAG, Rival, decide, gate
from pipeline.track.run import TrackedRun


@pytest.mark.parametrize(
    ("mode", "value", "rival", "min_delta", "promoted"),
    [
        ("min", 0.4, 0.5, 0.0, True),
        ("min", 0.5, 0.5, 0.0, False),  # a tie is not a win
        ("min", 0.45, 0.5, 0.1, False),  # better, but not by more than min_delta
        ("max", 0.9, 0.8, 0.05, True),
        ("max", 0.7, 0.8, 0.0, False),
    ],
)
def test_decide_compares_in_the_metrics_direction_with_a_margin(mode, value, rival, min_delta, promoted):
    decision = decide("test_x", value, [Rival("the baseline", rival)], mode=mode, min_delta=min_delta)
    assert decision.promoted is promoted
    assert decision.reason.startswith("promoted to @champion" if promoted else "not promoted: test_x")


def test_decide_without_a_champion_and_with_a_rival_it_cannot_compare():
    none_yet = decide(
        "test_x", 1.0, [Rival("the baseline", 2.0), Rival("the current champion", None)], mode="min", min_delta=0
    )
    assert none_yet.promoted and "no champion yet" in none_yet.reason
    blocked = decide(
        "test_x",
        1.0,
        [Rival("champion m/1", None, problem="champion m/1 was tested on other data")],
        mode="min",
        min_delta=0,
    )
    assert not blocked.promoted and "other data" in blocked.reason
    assert not decide("test_x", math.nan, [], mode="min", min_delta=0).promoted


def _run(uri: str, *, source: str, test_x: float, baseline: float = 9.0) -> TrackedRun:
    run = TrackedRun.start(
        uri, experiment="gate", run_name="r", params={"data.source": source, "data.test_fraction": 0.2}
    )
    run.log_metrics({"test_x": test_x, "baseline_test_x": baseline}, step=0)
    log_lineage(run, _lineage(source))
    return run


def _lineage(source: str) -> DataLineage:
    return DataLineage(name=source, uri=None, fingerprint={source: "1"}, columns={"x": "list<float>"}, split_sizes={})


def _register(run: TrackedRun, name: str) -> str:
    try:
        run.client.create_registered_model(name)
    except Exception:  # noqa: BLE001 - already there
        pass
    return str(run.client.create_model_version(name, source=f"runs:/{run.run_id}/model", run_id=run.run_id).version)


def _gate(run: TrackedRun, version: str, *, must_beat=("baseline", "champion"), min_delta=0.0, source="a"):
    metrics = run.client.get_run(run.run_id).data.metrics
    return gate(
        run,
        name="m",
        version=version,
        metric="test_x",
        metrics=metrics,
        must_beat=list(must_beat),
        mode="min",
        min_delta=min_delta,
        digest=digest(_lineage(source)),
    )


def test_the_alias_moves_only_to_a_version_that_beats_the_champion_on_the_same_data(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    first = _run(uri, source="a", test_x=1.0)
    assert _gate(first, _register(first, "m")).promoted  # beats the baseline, no champion yet
    client = first.client
    assert str(client.get_model_version_by_alias("m", CHAMPION_ALIAS).version) == "1"

    worse = _run(uri, source="a", test_x=1.5)
    decision = _gate(worse, _register(worse, "m"))
    assert not decision.promoted and "does not beat champion m/1's 1" in decision.reason
    assert str(client.get_model_version_by_alias("m", CHAMPION_ALIAS).version) == "1"  # registered, not promoted
    assert client.get_run(worse.run_id).data.tags[DECISION_TAG] == decision.reason

    close = _run(uri, source="a", test_x=0.95)
    assert not _gate(close, _register(close, "m"), min_delta=0.1).promoted  # better, but within min_delta

    better = _run(uri, source="a", test_x=0.5)
    decision = _gate(better, _register(better, "m"))
    assert decision.promoted and "beats the baseline's 9 and champion m/1's 1" in decision.reason
    assert str(client.get_model_version_by_alias("m", CHAMPION_ALIAS).version) == "4"

    other_data = _run(uri, source="b", test_x=0.1)
    decision = _gate(other_data, _register(other_data, "m"), source="b")
    assert not decision.promoted and "tested on other data (the data config (data.source) differs)" in decision.reason
    assert str(client.get_model_version_by_alias("m", CHAMPION_ALIAS).version) == "4"
    assert _gate(other_data, "5", must_beat=["baseline"], source="b").promoted  # on the baseline alone, as told

    no_beat = _run(uri, source="b", test_x=20.0)
    assert (
        "does not beat the baseline's 9"
        in _gate(no_beat, _register(no_beat, "m"), must_beat=["baseline"], source="b").reason
    )


def test_promote_config_rules():
    base = {"data": {"source": "adding"}}
    ok = validate(base | {"tracking": {"promote": {"metric": "test_mse", "min_delta": 0.01}}})
    assert ok.tracking.promote.must_beat == ["baseline", "champion"]
    with pytest.raises(ConfigError, match="'val_mse' is not a test metric"):
        validate(base | {"tracking": {"promote": {"metric": "val_mse"}}})
    with pytest.raises(ConfigError, match="names a rival twice"):
        validate(base | {"tracking": {"promote": {"must_beat": ["baseline", "baseline"]}}})
    with pytest.raises(ConfigError, match="must_beat"):
        validate(base | {"tracking": {"promote": {"must_beat": ["production"]}}})
    with pytest.raises(ConfigError, match="min_delta"):
        validate(base | {"tracking": {"promote": {"min_delta": -1.0}}})
