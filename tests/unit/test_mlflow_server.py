"""The local cluster's `mlflow server`: loopback only, its store in the state dir, MLflow's job runners off."""

from pathlib import Path

from pipeline.cluster import mlflow_server


def test_the_job_runners_are_off_unless_the_user_turned_them_on():
    assert mlflow_server.server_env({"PATH": "/bin"}) == {"PATH": "/bin", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mine = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}
    assert mlflow_server.server_env(mine) == mine


def test_the_command_listens_on_loopback_with_the_store_in_the_state_dir(tmp_path):
    cmd = mlflow_server.command(Path("/venv/bin"), state_dir=tmp_path, port=5123)
    assert cmd[:2] == ["/venv/bin/mlflow", "server"]

    def flag(name):
        return cmd[cmd.index(name) + 1]

    assert (flag("--host"), flag("--port"), flag("--workers")) == ("127.0.0.1", "5123", "1")
    assert flag("--backend-store-uri") == f"sqlite:///{tmp_path / 'mlflow.db'}" and "--app-name" not in cmd
    basic = mlflow_server.command(Path("/venv/bin"), state_dir=tmp_path, port=5123, auth="basic")
    assert basic[-2:] == ["--app-name", "basic-auth"]
