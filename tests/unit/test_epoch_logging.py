"""Rank 0's epoch logger: never blocks or crashes training on an outage, never logs an epoch twice."""

import time

from mlflow.tracking import MlflowClient

from pipeline import track as tracking
from pipeline.track.epochs import RERUN_TAG, RunLogger


def _steps(uri, run_id, key="val_loss"):
    return [m.step for m in MlflowClient(uri).get_metric_history(run_id, key)]


def test_a_restored_worker_logs_only_the_epochs_mlflow_lacks(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    run_id = tracking.start_run(uri, experiment="e", run_name="r", params={})
    first = RunLogger(uri, run_id)
    for epoch in range(3):
        assert first.log_epoch({"val_loss": 1.0 / (epoch + 1), "epoch": epoch}, epoch=epoch)
    # The worker died after logging epoch 2 but before Ray registered checkpoint 2, and earlier it
    # could not log epoch 1: the restored worker gets history 0..1 from checkpoint 1 and reruns 2.
    history = [{"epoch": 0, "val_loss": 1.0}, {"epoch": 1, "val_loss": 0.5}]
    restored = RunLogger(uri, run_id)
    assert restored.log_history(history)
    assert restored.log_epoch({"val_loss": 0.3, "epoch": 2}, epoch=2)
    assert restored.log_epoch({"val_loss": 0.2, "epoch": 3}, epoch=3)
    assert _steps(uri, run_id) == [0, 1, 2, 3]
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.tags[RERUN_TAG] == "2" and "epoch" not in run.data.metrics  # history is not a rerun


def test_an_unreachable_server_buffers_without_raising_or_stalling(tmp_path, capsys):
    logger = RunLogger("http://127.0.0.1:9", "0" * 32)  # port 9 (discard): connection refused
    start = time.monotonic()
    assert not logger.log_epoch({"val_loss": 1.0}, epoch=0)
    assert not logger.log_epoch({"val_loss": 0.5}, epoch=1)
    assert time.monotonic() - start < 30
    assert logger.pending_epochs == 2
    assert capsys.readouterr().err.count("unreachable") == 1  # one warning per outage
    # The server comes back (here: the same run in a store that answers): everything buffered lands.
    uri = f"sqlite:///{tmp_path}/m.db"
    run_id = tracking.start_run(uri, experiment="e", run_name="r", params={})
    logger.uri, logger.run_id, logger._client = uri, run_id, tracking.client(uri)
    assert logger.log_epoch({"val_loss": 0.25}, epoch=2)
    assert _steps(uri, run_id) == [0, 1, 2] and logger.pending_epochs == 0
    assert "is back" in capsys.readouterr().err
