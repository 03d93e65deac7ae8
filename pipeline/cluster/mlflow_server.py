"""The `mlflow server` of a local cluster: its command line, its environment, its health check."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from pipeline.cluster.mlflow_auth import Auth

# MLflow 3's server runs its GenAI jobs (prompt optimization, scorers, trace roll-ups) in Huey
# consumers: eight more Python processes per server, 27-30 CPU s in its first 30 s and 7-11 s to
# come up here, against 2 processes, 6 CPU s and 6-7 s without (measured side by side, 2 cores).
# Training runs never submit such jobs. A user's own setting of the variable is kept.
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def server_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for an `mlflow server` of ours: MLflow's job runners off, unless `env` sets them."""
    return {JOB_EXECUTION_ENV: "false"} | env


def command(bin_dir: Path, *, state_dir: Path, port: int, auth: Auth = "none") -> list[str]:
    """SQLite backend store and served artifacts in `state_dir`, on 127.0.0.1:`port`, one worker."""
    return [
        str(bin_dir / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{state_dir / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(state_dir / "mlartifacts"),
        "--workers",
        "1",
        *(["--app-name", "basic-auth"] if auth == "basic" else []),
    ]


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False
