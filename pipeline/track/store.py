"""Where runs are tracked: the tracking URI, whether its server answers, the experiment, the UI command."""

from __future__ import annotations

import base64
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient

from pipeline.config import TrackingConfig
from pipeline.errors import ConfigError, PipelineError
from pipeline.redaction import redact


def resolve_uri(cfg: TrackingConfig) -> str:
    """tracking.uri, else $MLFLOW_TRACKING_URI, else MLflow's default sqlite:///mlflow.db (made absolute
    so Ray workers, whose working directory differs, write to the same file)."""
    uri = cfg.uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


def ui_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


TRACKING_SCHEMES = {
    "",
    "file",
    "http",
    "https",
    "sqlite",
    "postgresql",
    "mysql",
    "mssql",
    "databricks",
    "databricks-uc",
    "uc",
}


def check_reachable(uri: str) -> None:
    """Fail before any Ray work if a tracking server does not answer (credentials in the URI are
    sent as basic auth, as MLflow's client does)."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme not in TRACKING_SCHEMES:
        raise ConfigError(
            f"tracking URI {redact(uri)} has the scheme '{scheme}', which MLflow cannot track to; use http(s)://HOST, "
            "sqlite:///PATH, postgresql://..., databricks or a local path"
        )
    if not uri.startswith(("http://", "https://")):
        return
    parts = urllib.parse.urlsplit(uri)
    headers = {}
    if parts.username is not None:
        user, password = urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    request = urllib.request.Request(f"{parts.geturl().rstrip('/')}/health", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5):
            pass
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ConfigError(
            f"MLflow tracking server {redact(uri)} is unreachable ({redact(str(err))}); start it or fix tracking.uri"
        ) from err


def experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    """The experiment's id, creating it (artifacts beside a SQLite store) if it does not exist."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_root(uri, name))


def _artifact_root(uri: str, name: str) -> str | None:
    """With a SQLite store, keep artifacts beside the database file (MLflow's own default is
    ./mlruns under whatever directory the creating process happens to run in)."""
    if not uri.startswith("sqlite:///"):
        return None  # a tracking server decides
    db = Path(uri.removeprefix("sqlite:///"))
    return (db.parent / "mlruns" / name).as_uri()


LOCK_RETRY_S = 30.0  # how long a call waits out "database is locked" (each attempt already waits 5 s)


class LockRetrying:
    """An MlflowClient whose calls wait out a SQLite store that another process holds locked (an
    `mlflow ui` reading it, another run writing): "database is locked" is contention, not an outage.
    Past LOCK_RETRY_S the call fails with one sentence; the run's checkpoints stay resumable."""

    def __init__(self, client: MlflowClient, *, uri: str):
        self._client, self._uri = client, uri

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            deadline, delay = time.monotonic() + LOCK_RETRY_S, 0.2
            while True:
                try:
                    return attr(*args, **kwargs)
                except Exception as err:
                    if "database is locked" not in str(err):
                        raise
                    if time.monotonic() > deadline:
                        raise PipelineError(
                            f"the MLflow store {redact(self._uri)} stayed locked by another process for "
                            f"{LOCK_RETRY_S:.0f} s ({name}); close the other writer (another run, a busy `mlflow ui`) "
                            "and finish with --resume (the checkpoints are kept), or use a tracking server"
                        ) from err
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)

        return call


def client_for(uri: str) -> MlflowClient:
    """The MLflow client for `uri`; for SQLite stores one that waits out a locked database."""
    client = MlflowClient(tracking_uri=uri)
    return LockRetrying(client, uri=uri) if uri.startswith("sqlite:") else client  # type: ignore[return-value]


def running_runs(uri: str, experiment: str) -> list:
    """The experiment's runs whose status is RUNNING (for `reconcile`)."""
    client = client_for(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=10_000)
