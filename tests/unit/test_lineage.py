"""Logging a run's dataset input when another run inserts the same dataset at the same moment (a
sweep's trials starting side by side on one SQL store): the lost race is retried, anything else raised."""

import pytest
from mlflow.exceptions import MlflowException

from pipeline.data.fingerprint import DataLineage
from pipeline.track.lineage import log_lineage

LINEAGE = DataLineage(name="adding", uri=None, fingerprint={"adding": "1"}, columns={"x": "double"}, split_sizes={})
RACE = "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest"


class _Client:
    def __init__(self, failures: list[str]):
        self.failures, self.calls = list(failures), 0

    def log_inputs(self, run_id, datasets):
        self.calls += 1
        if self.failures:
            raise MlflowException(self.failures.pop(0))


class _Run:
    run_id = "r"

    def __init__(self, client):
        self.client = client


def test_a_lost_insert_race_is_logged_again_and_links_the_existing_row():
    client = _Client([RACE])
    log_lineage(_Run(client), LINEAGE)
    assert client.calls == 2


def test_other_errors_and_a_race_lost_every_time_are_raised():
    other = _Client(["RESOURCE_DOES_NOT_EXIST: run r"])
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        log_lineage(_Run(other), LINEAGE)
    assert other.calls == 1
    always = _Client([RACE] * 5)
    with pytest.raises(MlflowException, match="UNIQUE constraint failed"):
        log_lineage(_Run(always), LINEAGE, tries=3)
    assert always.calls == 3
