"""A real 2-node Ray cluster and MLflow server on 127.0.0.1: `lstmpipe submit` runs the smoke config
as a Ray job on both nodes, and the server's REST API holds the experiment, run, metrics and model."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipeline.devcluster import free_port

ROOT = Path(__file__).resolve().parents[2]
LSTMPIPE = [sys.executable, "-m", "pipeline.cli"]


def lstmpipe(*args, env, timeout=600):
    return subprocess.run([*LSTMPIPE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting for init to reap it."""
    try:
        return "\tZ" not in next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("State:"))
    except (OSError, StopIteration):
        return False


def rest(uri, path, body=None):
    """One call to the MLflow server's REST API."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{uri}{path}", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if resp.headers.get_content_type() == "application/json" else raw


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("cluster")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "MLFLOW_", "RAY_AUTH"))}
    up = lstmpipe("cluster", "up", "--workers", "1", "--cpus-per-node", "1", "--state-dir", str(state),
                  "--dashboard-port", str(free_port()), "--mlflow-port", str(free_port()), env=env, timeout=300)
    assert up.returncode == 0, up.stderr[-3000:]
    exports = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines() if line.startswith("export "))
    pids = [p["pid"] for p in json.loads((state / "cluster.json").read_text())["procs"]]
    try:
        yield {"env": env | exports, "state": state, "exports": exports}
    finally:
        down = lstmpipe("cluster", "down", "--state-dir", str(state), env=env, timeout=180)
        assert down.returncode == 0, down.stderr[-2000:]
        deadline = time.monotonic() + 20                                         # down stopped everything up started
        while (left := [pid for pid in pids if running(pid)]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left


def test_cluster_status_sees_two_nodes_and_mlflow(local_cluster):
    st = lstmpipe("cluster", "status", "--state-dir", str(local_cluster["state"]), env=local_cluster["env"], timeout=60)
    assert st.returncode == 0, st.stdout + st.stderr
    assert "ray nodes  2/2 alive" in st.stdout and "mlflow     healthy" in st.stdout
    assert local_cluster["exports"]["RAY_AUTH_MODE"] == "token"
    token = Path(local_cluster["exports"]["RAY_AUTH_TOKEN_PATH"])
    assert token.stat().st_mode & 0o077 == 0
    jobs_api = f"{local_cluster['exports']['RAY_ADDRESS']}/api/jobs/"
    with pytest.raises(urllib.error.HTTPError) as denied:                   # the Jobs API wants the token
        urllib.request.urlopen(jobs_api, timeout=10)
    assert denied.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as wrong:
        urllib.request.urlopen(urllib.request.Request(jobs_api, headers={"Authorization": "Bearer not-the-token"}), timeout=10)
    assert wrong.value.code == 403


def listening(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp and tcp6)."""
    import ipaddress

    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(addr)
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))   # per-32-bit-word little-endian
                ip = ipaddress.ip_address(words)
                found.add(str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip))
    return found


def test_jobs_api_and_mlflow_listen_on_loopback_only(local_cluster):
    for url in (local_cluster["exports"]["RAY_ADDRESS"], local_cluster["exports"]["MLFLOW_TRACKING_URI"]):
        port = urllib.parse.urlparse(url).port
        assert listening(port) == {"127.0.0.1"}, (url, listening(port))


def test_submitted_smoke_trains_on_both_nodes_and_tracks_on_the_server(local_cluster):
    env, uri = local_cluster["env"], local_cluster["exports"]["MLFLOW_TRACKING_URI"]
    storage = local_cluster["state"] / "runs"        # one host: a local path every node sees
    job = lstmpipe("submit", "train", "-c", "conf/smoke.yaml", "--set", "train.epochs=2", "--set", "data.options.num_sequences=1000",
                   "--set", "tracking.register_as=cluster-smoke", "--set", f"train.storage_path={storage}", "--name", "it-cluster", env=env)
    assert job.returncode == 0, (job.stdout + job.stderr)[-4000:]
    assert "SUCCEEDED" in job.stdout and "epoch 2/2" in job.stdout                   # followed the job's logs
    assert (storage / "it-cluster" / "lstmpipe_run.json").is_file()                 # checkpoints where the config said
    job_id = job.stdout.strip().splitlines()[-1].split()[1].rstrip(":")
    status = lstmpipe("jobs", "status", job_id, env=env, timeout=60)
    assert status.returncode == 0 and f"{job_id}: SUCCEEDED" in status.stdout
    logs = lstmpipe("jobs", "logs", job_id, env=env, timeout=60)
    assert logs.returncode == 0 and "== train: it-cluster (FINISHED) ==" in logs.stdout

    exp = rest(uri, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=smoke")["experiment"]
    runs = rest(uri, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
    run = next(r for r in runs if r["info"]["run_name"] == "it-cluster")
    assert run["info"]["status"] == "FINISHED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["lstmpipe.world_size"] == "2" and len(set(tags["lstmpipe.worker_nodes"].split(","))) == 2   # both nodes trained
    run_id = run["info"]["run_id"]
    query = urllib.parse.urlencode({"run_id": run_id, "metric_key": "val_loss"})
    history = rest(uri, f"/api/2.0/mlflow/metrics/get-history?{query}")["metrics"]
    assert sorted(m["step"] for m in history) == [0, 1]
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert metrics["test_mse"] < metrics["baseline_test_mse"]

    # artifacts come through the server (--serve-artifacts), not from a local path
    listed = rest(uri, f"/api/2.0/mlflow/artifacts/list?{urllib.parse.urlencode({'run_id': run_id})}")["files"]
    assert {"config.yaml", "checkpoint", "plots"} <= {f["path"] for f in listed}
    config_text = rest(uri, f"/get-artifact?{urllib.parse.urlencode({'path': 'config.yaml', 'run_uuid': run_id})}")
    assert yaml.safe_load(config_text)["train"]["epochs"] == 2
    version = rest(uri, "/api/2.0/mlflow/registered-models/get-latest-versions", {"name": "cluster-smoke"})["model_versions"][0]
    assert version["run_id"] == run_id and version["source"].startswith("models:/")

    evaluated = lstmpipe("submit", "evaluate", "--set", "data.options.num_sequences=300", "--model", "models:/cluster-smoke/1",
                         "--data", "adding", "--log", env=env)
    assert evaluated.returncode == 0, (evaluated.stdout + evaluated.stderr)[-3000:]
    assert "test_mse" in evaluated.stdout and "logged to mlflow run" in evaluated.stdout

    import mlflow
    import numpy as np

    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/cluster-smoke/1")                      # downloaded from the server
    assert np.isfinite(model.predict(model.input_example)).all()


def test_submit_refuses_what_a_cluster_job_would_lose_before_uploading(local_cluster):
    def jobs():
        listed = lstmpipe("jobs", "list", env=local_cluster["env"], timeout=60)
        assert listed.returncode == 0, listed.stderr
        return listed.stdout.splitlines()

    before = jobs()
    local_file = lstmpipe("submit", "train", "-c", "conf/smoke.yaml", env=local_cluster["env"] | {"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"})
    assert local_file.returncode == 2 and "a job on the cluster cannot write" in local_file.stderr
    relative = lstmpipe("submit", "train", "-c", "conf/smoke.yaml", env=local_cluster["env"])   # storage_path: runs
    assert relative.returncode == 2 and "train.storage_path 'runs' is relative" in relative.stderr
    assert "Traceback" not in local_file.stderr + relative.stderr
    assert jobs() == before                                                     # nothing was submitted


def run_by_name(uri, experiment, name):
    exp = rest(uri, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}")["experiment"]
    runs = rest(uri, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                     "filter": f"attributes.run_name = '{name}'"}).get("runs", [])
    return runs[0] if runs else None


def val_steps(uri, run_id):
    query = urllib.parse.urlencode({"run_id": run_id, "metric_key": "val_loss"})
    return sorted(m["step"] for m in rest(uri, f"/api/2.0/mlflow/metrics/get-history?{query}").get("metrics", []))


def test_a_stopped_job_resumes_into_the_same_run(local_cluster):
    """`jobs stop` (SIGTERM) ends the run KILLED; the same submit with --resume continues it."""
    env, uri = local_cluster["env"], local_cluster["exports"]["MLFLOW_TRACKING_URI"]
    submit = ["submit", "train", "-c", "conf/smoke.yaml", "--set", f"train.storage_path={local_cluster['state'] / 'runs'}",
              "--set", "data.options.num_sequences=1000", "--name", "it-stop"]
    job = lstmpipe(*submit, "--set", "train.epochs=50", "--no-wait", "--submission-id", "it-stop-1", env=env, timeout=120)
    assert job.returncode == 0 and "job it-stop-1:" in job.stdout
    deadline = time.monotonic() + 240
    while not ((run := run_by_name(uri, "smoke", "it-stop")) and val_steps(uri, run["info"]["run_id"])):
        assert time.monotonic() < deadline, "the job never finished an epoch"
        time.sleep(1)
    stop = lstmpipe("jobs", "stop", "it-stop-1", env=env, timeout=120)
    assert stop.returncode == 0 and "it-stop-1: STOPPED" in stop.stdout, stop.stdout + stop.stderr
    status = lstmpipe("jobs", "status", "it-stop-1", env=env, timeout=60)
    assert status.returncode == 130 and "STOPPED" in status.stdout
    run_id = run["info"]["run_id"]
    assert rest(uri, f"/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]["info"]["status"] == "KILLED"
    done_before = val_steps(uri, run_id)

    again = lstmpipe(*submit, "--set", "train.epochs=50", env=env)              # same name, no --resume
    assert again.returncode == 1 and "--name it-stop --resume" in again.stdout + again.stderr
    resumed = lstmpipe(*submit, "--set", f"train.epochs={done_before[-1] + 3}", "--resume", env=env)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert "== train: it-stop (FINISHED) ==" in resumed.stdout
    run = rest(uri, f"/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
    assert run["info"]["status"] == "FINISHED"
    assert val_steps(uri, run_id) == list(range(done_before[-1] + 3))           # continued: no duplicate, none missing
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert int(tags["lstmpipe.restored_from_epoch"]) >= done_before[-1] - 1     # from its checkpoint, not from scratch

    missing = lstmpipe("jobs", "status", "no-such-job", env=env, timeout=60)
    assert missing.returncode == 2 and "no job no-such-job" in missing.stderr and "Traceback" not in missing.stderr
