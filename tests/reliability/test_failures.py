"""Failures during training, for real: a SIGKILLed worker, a tracking server that goes away, SIGTERM."""

import os
import signal
import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from pipeline import config
from pipeline.errors import TrainingFailed
from pipeline.training import run_training

EPOCHS = 5


@pytest.fixture()
def raw(tiny_raw, tmp_path):
    """Epochs long enough (~1 s) to kill a worker between two of them."""
    return {
        **tiny_raw,
        "data": {**tiny_raw["data"], "options": {"seq_len": 16, "num_sequences": 1500}},
        "train": {**tiny_raw["train"], "epochs": EPOCHS, "storage_path": str(tmp_path / "runs")},
        "tracking": {**tiny_raw["tracking"], "uri": f"sqlite:///{tmp_path}/m.db", "experiment": "failures"},
    }


class Background:
    """run_training in a thread, so the test can hurt it from outside."""

    def __init__(self, cfg, name):
        self.result, self.error = None, None
        self.thread = threading.Thread(target=self._run, args=(cfg, name), daemon=True)
        self.thread.start()

    def _run(self, cfg, name):
        try:
            self.result = run_training(cfg, name=name)
        except BaseException as err:  # noqa: BLE001
            self.error = err

    def join(self):
        self.thread.join(timeout=600)
        assert not self.thread.is_alive()


def wait_for_epochs(uri, name, n, *, proc=None, timeout=240):
    """The MLflow run named `name`, once it holds `n` epochs of val_loss."""
    client = MlflowClient(uri)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exp = client.get_experiment_by_name("failures")
        runs = exp and client.search_runs([exp.experiment_id], f"attributes.run_name = '{name}'")
        if runs and len(client.get_metric_history(runs[0].info.run_id, "val_loss")) >= n:
            return runs[0].info.run_id
        assert proc is None or proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"run {name} never reached {n} epochs")


def kill_one_worker() -> int:
    from ray.util.state import list_actors

    workers = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    assert workers, "no live Ray Train worker to kill"
    os.kill(workers[0].pid, signal.SIGKILL)
    return workers[0].pid


def test_killed_worker_restarts_from_the_last_checkpoint_into_the_same_run(ray_session, raw):
    cfg = config.validate({**raw, "train": {**raw["train"], "max_failures": 1}})
    uri = cfg.tracking.uri
    job = Background(cfg, "w-kill")
    run_id = wait_for_epochs(uri, "w-kill", 2)        # checkpoints 0 and 1 reported
    kill_one_worker()
    job.join()

    assert job.error is None, job.error
    assert job.result.run_id == run_id                 # the same MLflow run throughout
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "val_loss")]
    assert sorted(steps) == list(range(EPOCHS))        # no duplicate, none missing
    restored = int(run.data.tags["lstmpipe.restored_from_epoch"])   # resumed from a checkpoint, not from scratch
    rerun = [int(e) for e in run.data.tags.get("lstmpipe.rerun_epochs", "").split(",") if e]
    assert all(e > restored for e in rerun) and len(rerun) <= 1   # at most one checkpoint interval lost


def test_killed_worker_without_retries_fails_the_run_naming_the_worker(ray_session, raw):
    cfg = config.validate(raw)                         # train.max_failures: 0 (the default)
    job = Background(cfg, "w-fail")
    run_id = wait_for_epochs(cfg.tracking.uri, "w-fail", 1)
    pid = kill_one_worker()
    job.join()

    assert isinstance(job.error, TrainingFailed)
    message = str(job.error)
    assert f"(pid {pid} " in message and "died" in message and "train.max_failures" in message
    assert MlflowClient(cfg.tracking.uri).get_run(run_id).info.status == "FAILED"
