"""Failures during training, for real: a SIGKILLed worker, a tracking server that goes away, SIGTERM."""

import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline import config
from pipeline.errors import ConfigError, TrainingFailed
from pipeline.train.driver import run_training

pytestmark = pytest.mark.slow

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
    import ray._private.state

    # the GCS's actor table of this session's instance (a local Ray runs without the dashboard's State API)
    actors = ray._private.state.actors().values()
    workers = [a for a in actors if a["ActorClassName"] == "RayTrainWorker" and a["State"] == "ALIVE"]
    assert workers, "no live Ray Train worker to kill"
    os.kill(workers[0]["Pid"], signal.SIGKILL)
    return workers[0]["Pid"]


def registered_epoch(run_dir: Path) -> int | None:
    """The epoch of the latest checkpoint Ray Train has registered for the run, from the snapshot its
    controller writes beside the checkpoints (Ray 2.60's `checkpoint_manager_snapshot.json`)."""
    try:
        snapshot = json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())
        return int(snapshot["latest_checkpoint_result"]["checkpoint_dir_name"].removeprefix("epoch_"))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not written yet, or mid-write


def test_killed_worker_restarts_from_the_last_registered_checkpoint_into_the_same_run(ray_session, raw):
    """The guarantee: a restart continues from the last checkpoint Ray registered; epochs after it
    (trained, perhaps reported, not yet registered) are trained again and logged once."""
    cfg = config.validate({**raw, "train": {**raw["train"], "max_failures": 1}})
    uri = cfg.tracking.uri
    run_dir = Path(cfg.train.storage_path) / "w-kill"
    job = Background(cfg, "w-kill")
    deadline = time.monotonic() + 240
    while (registered := registered_epoch(run_dir)) is None or registered < 1:  # checkpoint 1 registered
        assert time.monotonic() < deadline and job.thread.is_alive(), job.error
        time.sleep(0.05)
    kill_one_worker()
    reported = max(int(p.name.removeprefix("epoch_")) for p in run_dir.glob("epoch_*"))  # each report's checkpoint
    run_id = wait_for_epochs(uri, "w-kill", 1)
    job.join()

    assert job.error is None, job.error
    assert job.result.run_id == run_id  # the same MLflow run throughout
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "val_loss")]
    assert sorted(steps) == list(range(EPOCHS))  # no duplicate, none missing
    restored = int(run.data.tags["lstmpipe.restored_from_epoch"])
    assert restored >= registered  # never an older checkpoint than the one registered before the kill
    rerun = [int(e) for e in run.data.tags.get("lstmpipe.rerun_epochs", "").split(",") if e]
    assert all(restored < e <= reported + 1 for e in rerun)  # only what came after that checkpoint


def test_killed_worker_without_retries_fails_the_run_naming_the_worker(ray_session, raw):
    cfg = config.validate(raw)  # train.max_failures: 0 (the default)
    job = Background(cfg, "w-fail")
    deadline = time.monotonic() + 240
    # the first epoch's report taken by the controller (it registered that checkpoint); its folder alone
    # appears before the report reaches the controller, and a kill in between loses the report
    while registered_epoch(Path(cfg.train.storage_path) / "w-fail") is None:
        assert time.monotonic() < deadline and job.thread.is_alive(), job.error
        time.sleep(0.05)
    pid = kill_one_worker()
    run_id = wait_for_epochs(cfg.tracking.uri, "w-fail", 1)  # what was reported before the kill is logged
    job.join()

    assert isinstance(job.error, TrainingFailed)
    message = str(job.error)
    assert f"(pid {pid} " in message and "died" in message and "train.max_failures" in message
    assert MlflowClient(cfg.tracking.uri).get_run(run_id).info.status == "FAILED"


def _start_mlflow(state, port):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from pipeline.cluster import mlflow_server

    proc = subprocess.Popen(
        mlflow_server.command(Path(sys.executable).parent, state_dir=state, port=port),
        env=mlflow_server.server_env(dict(os.environ)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    from pipeline.track import check_reachable

    deadline = time.monotonic() + 90
    while True:
        try:
            check_reachable(f"http://127.0.0.1:{port}")
            return proc
        except ConfigError:
            assert time.monotonic() < deadline and proc.poll() is None, "mlflow server did not start"
            time.sleep(0.5)


def test_tracking_server_outage_mid_run_loses_no_epoch(ray_session, raw, tmp_path):
    from pipeline.cluster.local import free_port

    port, state = free_port(), tmp_path / "server"
    state.mkdir()
    server = _start_mlflow(state, port)
    uri = f"http://lstm:{PLANTED}@127.0.0.1:{port}"  # credentials in the URI: a secret to find nowhere
    train = {**raw["train"], "epochs": 6, "checkpoints_to_keep": 6}  # every epoch's folder stays: a count to wait on
    cfg = config.validate({**raw, "train": train, "tracking": {**raw["tracking"], "uri": uri}})
    job = Background(cfg, "outage")
    try:
        run_id = wait_for_epochs(uri, "outage", 1)
        os.killpg(server.pid, signal.SIGKILL)  # the server goes away mid-run
        server.wait()
        run_dir = tmp_path / "runs" / "outage"
        deadline = time.monotonic() + 120
        while len(list(run_dir.glob("epoch_*"))) < 6 and job.thread.is_alive():  # training goes on to its end
            assert time.monotonic() < deadline, "training did not reach its last epoch while MLflow was down"
            time.sleep(0.2)
        assert job.thread.is_alive(), job.error  # nothing failed: the driver waits for the server to log the rest
        server = _start_mlflow(state, port)  # and comes back
        job.join()
        assert job.error is None, job.error
        client = MlflowClient(uri)
        assert client.get_run(run_id).info.status == "FINISHED"
        assert sorted(m.step for m in client.get_metric_history(run_id, "val_loss")) == list(range(6))
        assert_no_secret_logged(client, run_id, tmp_path / "runs", PLANTED)
    finally:
        if server.poll() is None:  # not the server this test already killed: that would hide the failure above
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


PLANTED = "planted-s3cr3t-9f2c"


def assert_no_secret_logged(client, run_id, run_dir, secret):
    """The secret is in no param, tag or artifact of the run, nor in a checkpoint on disk."""
    run = client.get_run(run_id)
    texts = [*run.data.params.values(), *run.data.tags.values()]
    assert run.data.params["tracking.uri"].startswith("http://lstm:***@")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(run_id, "", tmp))
        texts += [
            f.read_text(errors="ignore")
            for f in local.rglob("*")
            if f.is_file() and f.suffix in {".json", ".yaml", ".md", ".txt", ".csv", ""}
        ]
    texts += [f.read_text(errors="ignore") for f in Path(run_dir).rglob("*.json")]
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path())  # every Ray process's stdout/stderr
    texts += [
        f.read_text(errors="ignore") for f in logs.glob("*") if f.is_file() and f.suffix in {".out", ".err", ".log"}
    ]
    assert len(texts) > 20 and not [t[:200] for t in texts if secret in t]


def test_unreachable_tracking_server_fails_before_any_ray_work(tmp_path):
    import subprocess
    import sys

    from pipeline.cluster.local import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "c.yaml").write_text(f"tracking: {{uri: '{uri}'}}\ntrain: {{storage_path: {tmp_path}/runs}}\n")
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "train", "-c", str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: MLflow tracking server {uri} is unreachable")
    assert "Ray" not in out.stderr and not (tmp_path / "runs").exists()


def test_sigterm_marks_the_run_killed_and_exits_130(ray_session, raw, tmp_path):
    import subprocess
    import sys

    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**raw, "train": {**raw["train"], "epochs": 30}}))
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "train", "-c", str(tmp_path / "c.yaml"), "--name", "term"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_id = wait_for_epochs(raw["tracking"]["uri"], "term", 1, proc=proc)
    proc.send_signal(signal.SIGTERM)  # what `ray job stop`, `kill` and Kubernetes send
    assert proc.wait(timeout=60) == 130, proc.stderr.read()[-3000:]
    assert "marked KILLED" in proc.stderr.read()
    assert MlflowClient(raw["tracking"]["uri"]).get_run(run_id).info.status == "KILLED"
