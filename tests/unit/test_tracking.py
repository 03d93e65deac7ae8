"""Where runs are tracked, decided before any Ray work."""

import contextlib
import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline import track as tracking
from pipeline.config import TrackingConfig
from pipeline.errors import ConfigError
from pipeline.track import TrackedRun


def test_default_is_mlflows_sqlite_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_uri(TrackingConfig()) == f"sqlite:///{tmp_path}/mlflow.db"


def test_env_then_config_override(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolve_uri(TrackingConfig()) == "http://127.0.0.1:5000"
    assert tracking.resolve_uri(TrackingConfig(uri=f"sqlite:///{tmp_path}/x.db")) == f"sqlite:///{tmp_path}/x.db"


def test_ui_command():
    assert tracking.ui_command("sqlite:////a/mlflow.db") == "mlflow ui --backend-store-uri sqlite:////a/mlflow.db"


def test_unreachable_server_fails_naming_the_uri():
    with pytest.raises(ConfigError, match=r"http://127.0.0.1:9 is unreachable.*tracking.uri"):
        tracking.check_reachable("http://127.0.0.1:9")


def test_closes_run_by_how_the_block_ends(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    ended = []
    for error in (None, KeyboardInterrupt, ValueError):
        run = TrackedRun.start(uri, experiment="e", run_name="r", params={})
        with pytest.raises(error) if error else contextlib.nullcontext(), run.closes():
            if error:
                raise error("boom")
        ended.append(run.status)
    assert ended == ["FINISHED", "KILLED", "FAILED"]


def test_one_client_per_run_and_nested_trials(tmp_path):
    from pipeline.track import SweepRun

    uri = f"sqlite:///{tmp_path}/m.db"
    parent = SweepRun.start(uri, experiment="e", run_name="sweep", params={"tune.space": {"x": 1}})
    child = tracking.TrackedRun.start(
        uri, experiment="e", run_name="t", params={}, tags={tracking.TRIAL_TAG: "t1"}, parent=parent
    )
    assert parent.trial("t1").run.run_id == child.run_id and parent.trial("t2") is None
    child.log_metrics({"val_loss": 0.5, "test_mse": 0.1}, step=0)
    assert parent.trial_test_metrics() == {"t1": {"test_mse": 0.1}}
    parent.close_trials({"t1": "STOPPED"}, tags_of=lambda trial_id: {"lstmpipe.world_size": "2"})  # its checkpoint's
    finished = MlflowClient(uri).get_run(child.run_id)
    assert finished.info.status == "FINISHED" and finished.data.tags["lstmpipe.stopped_early"] == "true"
    assert finished.data.tags["lstmpipe.world_size"] == "2"
    assert child.epoch_history() == [{"epoch": 0, "val_loss": 0.5, "test_mse": 0.1}]


def test_logging_a_model_leaves_the_tracking_uri_as_it_was(tmp_path, monkeypatch):
    """MLflow exports the fluent API's URI as $MLFLOW_TRACKING_URI; a later run in the same process
    (a library user, a benchmark, the test suite) must still resolve its own default."""
    import numpy as np
    import torch

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = TrackedRun.start(uri, experiment="e", run_name="r", params={})
    tracking.log_model(run, torch.nn.Linear(2, 1), input_example=np.zeros((1, 2), np.float32))
    assert "MLFLOW_TRACKING_URI" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    tracking.log_model(run, torch.nn.Linear(2, 1), input_example=np.zeros((1, 2), np.float32))
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5999"
    from mlflow.tracking._tracking_service import utils

    assert utils._tracking_uri is None  # nor MLflow's own global


def test_a_sweeps_params_tags_and_texts_carry_no_planted_secret(tmp_path, monkeypatch):
    """Every exit of TrackedRun (params, tags, dict and text artifacts) is redacted, tune.space's
    choice lists included (they were logged in plain text as the param `tune.space`)."""
    from pipeline import config

    monkeypatch.setenv("HF_TOKEN", "hf-plant")
    cfg = config.validate(
        {
            "data": {"source": "b.parquet"},
            "tune": {
                "space": {
                    "model.hidden_size": {"choice": [4, 8]},
                    "data.source": {"choice": ["b.parquet", "https://u:plant-pw@h/x.parquet"]},
                }
            },
        }
    )
    uri = f"sqlite:///{tmp_path}/m.db"
    parent = TrackedRun.start(uri, experiment="e", run_name="p", params=cfg.flat(), tags={"note": "hf-plant"})
    child = TrackedRun.start(
        uri, experiment="e", run_name="c", params={"data.source": "https://u:plant-pw@h/x.parquet"}, parent=parent
    )
    parent.log_dict({"best": {"token": "abc123", "uri": "https://ghp_abcdefghijklmnopqrstuvwx@h"}}, "b.json")
    child.log_text("failed with hf-plant at https://u:plant-pw@h", "err.txt")
    client = MlflowClient(uri)
    shown = []
    for run in (parent, child):
        data = client.get_run(run.run_id).data
        shown += [*data.params.values(), *data.tags.values()]
        local = client.download_artifacts(run.run_id, "", str(tmp_path / run.run_id))
        shown += [p.read_text() for p in Path(local).rglob("*") if p.is_file()]
    assert "https://u:***@h/x.parquet" in client.get_run(parent.run_id).data.params["tune.space"]
    assert not [s for s in shown if "plant" in s or "abc123" in s or "ghp_" in s]


class Locked:
    """A client whose store answers "database is locked" `times` times (MLflow's SQLite engine has
    already waited its 20 s busy timeout each time), then works."""

    def __init__(self, times):
        self.times, self.calls = times, 0

    def set_tag(self, run_id, key, value):
        self.calls += 1
        if self.calls <= self.times:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return key


def test_a_locked_sqlite_store_is_waited_out_then_one_sentence(monkeypatch, tmp_path):
    """ "database is locked" (another writer, a busy `mlflow ui`) is contention, not an outage."""
    from pipeline.errors import PipelineError
    from pipeline.track import store

    monkeypatch.setattr(store.time, "sleep", lambda s: None)
    fake = Locked(times=3)
    assert store.LockRetrying(fake, uri="sqlite:////x/m.db").set_tag("r", "k", "v") == "k" and fake.calls == 4
    monkeypatch.setattr(store, "LOCK_RETRY_S", 0.0)
    with pytest.raises(PipelineError, match=r"m.db stayed locked by another process .*\(set_tag\).*--resume"):
        store.LockRetrying(Locked(times=99), uri="sqlite:////x/m.db").set_tag("r", "k", "v")
    other = Locked(times=0)
    other.set_tag = lambda *a: (_ for _ in ()).throw(RuntimeError("no such table"))
    with pytest.raises(RuntimeError, match="no such table"):  # anything else is not retried
        store.LockRetrying(other, uri="sqlite:////x/m.db").set_tag("r", "k", "v")
    assert isinstance(TrackedRun(f"sqlite:///{tmp_path}/m.db", "r").client, store.LockRetrying)  # a real store


def test_dataset_lineage_names_the_source_digest_schema_and_split_sizes():
    import json

    from pipeline.data.fingerprint import DataLineage
    from pipeline.track.lineage import dataset_entity, digest

    files = DataLineage(
        name="s3://key:secret@bucket/sales/",
        uri="s3://key:secret@bucket/sales/",
        fingerprint={"a.parquet": "10:1", "b.parquet": "12:2"},
        columns={"x": "list<item: list<item: float>>", "y": "float"},
        split_sizes={"train": 80, "val": 10, "test": 10},
    )
    entity = dataset_entity(files)
    assert entity.source_type == "s3" and "secret" not in entity.source and "secret" not in entity.name
    assert json.loads(entity.profile) == {"split_sizes": {"train": 80, "val": 10, "test": 10}, "files": 2}
    assert [c["name"] for c in json.loads(entity.schema)["mlflow_colspec"]] == ["x", "y"]
    changed = DataLineage(**{**files.__dict__, "fingerprint": {"a.parquet": "10:1", "b.parquet": "13:3"}})
    assert digest(changed) != digest(files) == entity.digest  # different data, different digest
    builtin = dataset_entity(
        DataLineage(
            name="adding", uri=None, fingerprint={"built-in adding": '{"seq_len": 8}'}, columns={}, split_sizes={}
        )
    )
    assert builtin.source_type == "code" and json.loads(builtin.source)["tags"]["lstmpipe.builtin"] == "adding"
