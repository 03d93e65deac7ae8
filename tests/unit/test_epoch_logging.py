"""Rank 0's epoch logger: never blocks or crashes training on an outage, never logs an epoch twice."""

import os
import time

from mlflow.tracking import MlflowClient

from pipeline.track import TrackedRun
from pipeline.track.epochs import FAST_HTTP, RERUN_TAG, RunLogger, sync_epochs


def _steps(uri, run_id, key="val_loss"):
    return [m.step for m in MlflowClient(uri).get_metric_history(run_id, key)]


def test_a_restored_worker_logs_only_the_epochs_mlflow_lacks(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    run = TrackedRun.start(uri, experiment="e", run_name="r", params={})
    run_id = run.run_id
    first = RunLogger(run)
    for epoch in range(3):
        assert first.log_epoch({"val_loss": 1.0 / (epoch + 1), "epoch": epoch}, epoch=epoch)
    # The worker died after logging epoch 2 but before Ray registered checkpoint 2, and earlier it
    # could not log epoch 1: the restored worker gets history 0..1 from checkpoint 1 and reruns 2.
    history = [{"epoch": 0, "val_loss": 1.0}, {"epoch": 1, "val_loss": 0.5}]
    restored = RunLogger(TrackedRun(uri, run_id))
    assert restored.log_history(history)
    assert restored.log_epoch({"val_loss": 0.3, "epoch": 2}, epoch=2)
    assert restored.log_epoch({"val_loss": 0.2, "epoch": 3}, epoch=3)
    assert _steps(uri, run_id) == [0, 1, 2, 3]
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.tags[RERUN_TAG] == "2" and "epoch" not in run.data.metrics  # history is not a rerun


def test_an_epoch_queued_twice_before_a_send_is_logged_once_with_its_first_value(tmp_path):
    """The sweep driver's logger of a trial whose worker group restarted: both reports of epoch 1 wait
    in one send (the sender thread takes what is queued, or an outage kept both)."""
    uri = f"sqlite:///{tmp_path}/m.db"
    run = TrackedRun.start(uri, experiment="e", run_name="r", params={})
    logger = RunLogger(run)
    for epoch, loss in ((0, 1.0), (1, 0.5), (1, 0.4)):
        logger.queue_epoch({"val_loss": loss, "epoch": epoch}, epoch=epoch)
    assert logger.flush()
    history = MlflowClient(uri).get_metric_history(run.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]
    assert MlflowClient(uri).get_run(run.run_id).data.tags[RERUN_TAG] == "1"


def test_an_unreachable_server_buffers_without_raising_or_stalling(tmp_path, capsys):
    logger = RunLogger(TrackedRun("http://127.0.0.1:9", "0" * 32))  # port 9 (discard): connection refused
    start = time.monotonic()
    assert not logger.log_epoch({"val_loss": 1.0}, epoch=0)
    assert not logger.log_epoch({"val_loss": 0.5}, epoch=1)
    assert time.monotonic() - start < 30
    assert logger.pending_epochs == 2
    assert capsys.readouterr().err.count("unreachable") == 1  # one warning per outage
    # The server comes back (here: the same run in a store that answers): everything buffered lands.
    uri = f"sqlite:///{tmp_path}/m.db"
    logger.run = TrackedRun.start(uri, experiment="e", run_name="r", params={})
    run_id = logger.run.run_id
    assert logger.log_epoch({"val_loss": 0.25}, epoch=2)
    assert _steps(uri, run_id) == [0, 1, 2] and logger.pending_epochs == 0
    assert "is back" in capsys.readouterr().err


def test_fast_http_limits_hold_for_the_loggers_own_calls_only(tmp_path, monkeypatch):
    """MLflow reads its retry limits from the environment per request: the logger's calls see the short
    ones, and nothing else in the process does afterwards (the driver's log_model keeps MLflow's)."""
    for key in FAST_HTTP:
        monkeypatch.delenv(key, raising=False)
    run = TrackedRun.start(f"sqlite:///{tmp_path}/m.db", experiment="e", run_name="r", params={})
    seen = []
    send = run.client.log_batch
    monkeypatch.setattr(
        run.client,
        "log_batch",
        lambda *a, **k: seen.append(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")) or send(*a, **k),
    )
    assert sync_epochs(run, [{"epoch": 0, "val_loss": 1.0}], wait_s=0)
    assert seen == ["1"]
    assert not [key for key in FAST_HTTP if key in os.environ]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")  # a user's own setting wins, and stays
    assert RunLogger(run).log_epoch({"val_loss": 0.5}, epoch=1)
    assert seen[-1] == "3" and os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
