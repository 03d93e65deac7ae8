"""Where runs are tracked, decided before any Ray work."""

import os

import pytest

from pipeline import track as tracking
from pipeline.config import TrackingConfig
from pipeline.errors import ConfigError


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


def test_closes_run_by_how_the_block_ends(monkeypatch):
    ended = []
    monkeypatch.setattr(tracking, "end_run", lambda uri, run_id, status: ended.append(status))
    with tracking.closes_run("u", "r"):
        pass
    with pytest.raises(KeyboardInterrupt), tracking.closes_run("u", "r"):
        raise KeyboardInterrupt
    with pytest.raises(ValueError), tracking.closes_run("u", "r"):
        raise ValueError("boom")
    assert ended == ["FINISHED", "KILLED", "FAILED"]


def test_logging_a_model_leaves_the_tracking_uri_as_it_was(tmp_path, monkeypatch):
    """MLflow exports the fluent API's URI as $MLFLOW_TRACKING_URI; a later run in the same process
    (a library user, a benchmark, the test suite) must still resolve its own default."""
    import numpy as np
    import torch

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = tracking.start_run(uri, experiment="e", run_name="r", params={})
    tracking.log_model(uri, run_id, torch.nn.Linear(2, 1), input_example=np.zeros((1, 2), np.float32))
    assert "MLFLOW_TRACKING_URI" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    tracking.log_model(uri, run_id, torch.nn.Linear(2, 1), input_example=np.zeros((1, 2), np.float32))
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5999"
