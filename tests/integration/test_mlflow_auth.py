"""`cluster up --auth basic`: the local MLflow server answers 401 without the admin's password and
serves the pipeline's client with it; the password file is private and never printed."""

import base64
import json
import urllib.error
import urllib.request

import pytest

from pipeline.cluster import local, mlflow_auth, mlflow_server

pytestmark = pytest.mark.slow


def call(uri, path, *, password=None):
    headers = {"Content-Type": "application/json"}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
    request = urllib.request.Request(f"{uri}{path}", data=json.dumps({"max_results": 1}).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as resp:
        return resp.status


def test_the_basic_auth_server_refuses_strangers_and_serves_the_admin(tmp_path, monkeypatch):
    files = mlflow_auth.write_auth(tmp_path)
    assert files.password.stat().st_mode & 0o777 == 0o600 and files.config.stat().st_mode & 0o777 == 0o600
    port = local.free_port()
    env = mlflow_server.server_env(local._node_env(tmp_path / "token") | files.server_env())
    server = mlflow_server.command(local.BIN, state_dir=tmp_path, port=port, auth="basic")
    proc = local._spawn("mlflow", server, env=env, state_dir=tmp_path)
    uri = f"http://127.0.0.1:{port}"
    try:
        local._wait(lambda: mlflow_server.healthy(uri), [proc], what="the MLflow server", timeout_s=120)
        with pytest.raises(urllib.error.HTTPError) as refused:
            call(uri, "/api/2.0/mlflow/experiments/search")
        assert refused.value.code == 401
        with pytest.raises(urllib.error.HTTPError):
            call(uri, "/api/2.0/mlflow/experiments/search", password="wrong")
        password = files.password.read_text()
        assert call(uri, "/api/2.0/mlflow/experiments/search", password=password) == 200
        from pipeline.track import TrackedRun

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        run = TrackedRun.start(uri, experiment="auth", run_name="r", params={"a": 1})
        run.end("FINISHED")
    finally:
        local._stop([proc], grace_s=5)


def test_the_printed_environment_reads_the_password_instead_of_showing_it(tmp_path):
    cluster = local.LocalCluster(
        state_dir=str(tmp_path),
        gcs_address="127.0.0.1:1",
        dashboard_url="http://127.0.0.1:8265",
        tracking_uri="http://127.0.0.1:5000",
        token_path=str(tmp_path / "auth_token"),
        nodes=1,
        ray_temp_dir=str(tmp_path),
        auth="basic",
    )
    assert cluster.client_env()["MLFLOW_TRACKING_USERNAME"] == "admin"
    assert "MLFLOW_TRACKING_PASSWORD" not in cluster.client_env()
    assert cluster.password_path() == tmp_path / "mlflow_password"
