"""MLflow: the only package that imports mlflow (`tracking.epochs`: rank 0's buffered per-epoch logger).

Runs are addressed by id through `MlflowClient`, never through a global "active run", so the
driver, a Tune trial and a rank-0 worker can each log to their own run without stepping on each
other. One run per training run; a sweep is a parent run with one nested child run per trial.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
import os
import tempfile
import time
import base64
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import torch
from mlflow.entities import Metric, Param, RunTag
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from pipeline.config import TrackingConfig
from pipeline.redaction import redact, redact_tree, redact_value

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars in CLI output
from pipeline.errors import ConfigError

RunStatus = Literal["FINISHED", "FAILED", "KILLED", "RUNNING"]
TrialOutcome = Literal["FINISHED", "FAILED", "STOPPED"]
PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "lstmpipe.trial_id"
KIND_TAG = "lstmpipe.kind"
MAX_PARAM_CHARS = 6000


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


def check_reachable(uri: str) -> None:
    """Fail before any Ray work if a tracking server does not answer (credentials in the URI are
    sent as basic auth, as MLflow's client does)."""
    if not uri.startswith(("http://", "https://")):
        return
    parts = urllib.parse.urlsplit(uri)
    headers = {}
    if parts.username is not None:
        token = base64.b64encode(f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}".encode())
        headers["Authorization"] = f"Basic {token.decode()}"
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{parts.geturl().rstrip('/')}/health", headers=headers), timeout=5):
            pass
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ConfigError(f"MLflow tracking server {redact(uri)} is unreachable ({redact(str(err))}); start it or fix tracking.uri") from None


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str) -> str:
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(name, artifact_location=_artifact_root(uri, name))


def _artifact_root(uri: str, name: str) -> str | None:
    """With a SQLite store, keep artifacts beside the database file (MLflow's own default is
    ./mlruns under whatever directory the creating process happens to run in)."""
    if not uri.startswith("sqlite:///"):
        return None  # a tracking server decides
    db = Path(uri.removeprefix("sqlite:///"))
    return (db.parent / "mlruns" / name).as_uri()


def start_run(
    uri: str,
    *,
    experiment: str,
    run_name: str,
    params: dict[str, Any],
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
) -> str:
    c = client(uri)
    tags = dict(tags or {})
    if parent_run_id:
        tags[PARENT_TAG] = parent_run_id
    run = c.create_run(ensure_experiment(uri, experiment), run_name=run_name, tags={k: redact(v) for k, v in tags.items()})
    c.log_batch(run.info.run_id, params=[Param(k, _param_value(redact_value(k, v))) for k, v in params.items()])
    return run.info.run_id


def reopen_run(uri: str, run_id: str, *, tags: dict[str, str]) -> None:
    """Continue an existing run (resume): status back to RUNNING; params are immutable and kept."""
    c = client(uri)
    c.update_run(run_id, status="RUNNING")
    c.log_batch(run_id, tags=_tags(tags))


def end_run(uri: str, run_id: str, status: RunStatus = "FINISHED") -> None:
    client(uri).set_terminated(run_id, status=status)


@contextmanager
def closes_run(uri: str, run_id: str) -> Iterator[None]:
    """End `run_id` by how the block ends: FINISHED, KILLED on Ctrl-C/SIGTERM, else FAILED."""
    try:
        yield
    except KeyboardInterrupt:
        _end_if_reachable(uri, run_id, "KILLED")
        raise
    except BaseException:
        _end_if_reachable(uri, run_id, "FAILED")
        raise
    end_run(uri, run_id, "FINISHED")


def _end_if_reachable(uri: str, run_id: str, status: RunStatus) -> None:
    """On the way out of a failure, a tracking server that is down must not hide the real error:
    the run stays RUNNING and `lstmpipe runs reconcile` (or the next start) closes it."""
    try:
        end_run(uri, run_id, status)
    except Exception as err:  # noqa: BLE001  (any MLflow/HTTP error: the original exception matters more)
        warnings.warn(f"could not mark MLflow run {run_id} {status}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    client(uri).log_batch(run_id, tags=_tags(tags))


def _tags(tags: dict[str, str]) -> list[RunTag]:
    return [RunTag(k, redact(v)) for k, v in tags.items()]


def run_status(uri: str, run_id: str) -> str:
    return client(uri).get_run(run_id).info.status


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:MAX_PARAM_CHARS]


def log_metrics(uri: str, run_id: str, metrics: dict[str, float], *, step: int) -> None:
    ts = _now_ms()
    client(uri).log_batch(run_id, metrics=[Metric(k, float(v), ts, step) for k, v in metrics.items() if isinstance(v, (int, float))])


def log_config(uri: str, run_id: str, config: dict[str, Any]) -> None:
    client(uri).log_dict(run_id, redact_tree(config), "config.yaml")


def metric_history(uri: str, run_id: str, keys: list[str]) -> dict[str, list[tuple[int, float]]]:
    c = client(uri)
    return {k: [(m.step, m.value) for m in c.get_metric_history(run_id, k)] for k in keys}


def log_figures(uri: str, run_id: str, figures: dict[str, Any]) -> None:
    """Matplotlib figures -> PNG artifacts under plots/ (closed after logging)."""
    import matplotlib.pyplot as plt

    c = client(uri)
    for name, fig in figures.items():
        c.log_figure(run_id, fig, f"plots/{name}")
        plt.close(fig)


def log_dict(uri: str, run_id: str, payload: dict[str, Any], name: str) -> None:
    client(uri).log_dict(run_id, redact_tree(payload), name)


def log_text(uri: str, run_id: str, text: str, name: str) -> None:
    client(uri).log_text(run_id, redact(text), name)


def log_table(uri: str, run_id: str, table, name: str) -> None:
    """An Arrow table as a Parquet artifact `name`."""
    import pyarrow.parquet as pq

    folder = str(Path(name).parent)
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(table, Path(tmp) / Path(name).name)
        client(uri).log_artifact(run_id, str(Path(tmp) / Path(name).name), artifact_path=None if folder == "." else folder)


def latest_table(uri: str, run_id: str, folder: str):
    """The last (by name) Parquet artifact under `folder`, e.g. a trial's latest telemetry; None if none."""
    import pyarrow.parquet as pq

    names = sorted(a.path for a in client(uri).list_artifacts(run_id, folder) if a.path.endswith(".parquet"))
    if not names:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return pq.read_table(client(uri).download_artifacts(run_id, names[-1], tmp))


CHECKPOINT_ARTIFACT = "checkpoint"


def log_checkpoint(uri: str, run_id: str, directory: str | Path) -> None:
    """The model's checkpoint (state_dict + meta.json with its config and data info), beside the
    pt2 model: what `lstmpipe evaluate|predict|generate` load from a runs:/ or models:/ URI."""
    client(uri).log_artifacts(run_id, str(directory), CHECKPOINT_ARTIFACT)


def download_checkpoint(uri: str, model_uri: str, *, dst: str | Path) -> Path:
    """runs:/RUN_ID[/...] or models:/NAME@ALIAS | models:/NAME/VERSION -> the run's checkpoint, downloaded."""
    c = client(uri)
    try:
        if model_uri.startswith("runs:/"):
            run_id = model_uri.removeprefix("runs:/").strip("/").split("/")[0]
        else:
            name, _, ref = model_uri.removeprefix("models:/").strip("/").partition("@")
            if ref:
                run_id = c.get_model_version_by_alias(name, ref).run_id
            else:
                name, _, version = name.partition("/")
                run_id = c.get_model_version(name, version).run_id
        path = c.download_artifacts(run_id, CHECKPOINT_ARTIFACT, str(dst))
    except mlflow.exceptions.MlflowException as err:
        raise ConfigError(f"cannot load model {model_uri} from {uri}: {str(err).splitlines()[0]}") from None
    return Path(path)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class LoggedModel:
    model_uri: str
    registered_name: str | None
    version: str | None

    @property
    def registered_label(self) -> str | None:
        return f"{self.registered_name}/{self.version}" if self.registered_name else None


def log_model(
    uri: str,
    run_id: str,
    model: torch.nn.Module,
    *,
    input_example: np.ndarray,
    metadata: dict[str, Any] | None = None,
    register_as: str | None = None,
    alias: str | None = None,
) -> LoggedModel:
    """Log the model (pt2, pickle-free) with signature and input example; optionally register it."""
    with _fluent_api_at(uri):
        return _log_model(uri, run_id, model, input_example=input_example, metadata=metadata, register_as=register_as, alias=alias)


@contextmanager
def _fluent_api_at(uri: str) -> Iterator[None]:
    """mlflow's model logging needs the global tracking URI, which MLflow also exports as
    $MLFLOW_TRACKING_URI: put both back, or the next run in this process would silently go here."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def _log_model(uri: str, run_id: str, model: torch.nn.Module, *, input_example: np.ndarray, metadata: dict[str, Any] | None,
               register_as: str | None, alias: str | None) -> LoggedModel:
    model = model.eval().cpu()
    with torch.no_grad():
        output = model(torch.from_numpy(input_example)).numpy()
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}", "numpy"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export's notes on nn.LSTM's flat weights
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pytorch.log_model(
                model,
                name="model",
                signature=infer_signature(input_example, output),
                input_example=input_example,
                pip_requirements=requirements,
                metadata=metadata,
                registered_model_name=register_as,
            )
    version = str(info.registered_model_version) if register_as else None
    if register_as and alias:
        client(uri).set_registered_model_alias(register_as, alias, version)
    return LoggedModel(model_uri=info.model_uri, registered_name=register_as, version=version)


def running_runs(uri: str, experiment: str) -> list[Any]:
    exp = client(uri).get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client(uri).search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=10_000)


def end_running_children(uri: str, parent_run_id: str, status: RunStatus) -> None:
    """A sweep that is interrupted ends its trials' runs with it."""
    for run in child_runs(uri, parent_run_id):
        if run.info.status == "RUNNING":
            end_run(uri, run.info.run_id, status)


def child_runs(uri: str, parent_run_id: str) -> list[Any]:
    parent = client(uri).get_run(parent_run_id)
    return client(uri).search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=10_000
    )


@dataclass(frozen=True)
class TrialRun:
    run_id: str
    finished: bool


def trial_run(uri: str, parent_run_id: str, trial_id: str) -> TrialRun | None:
    """The child run of this trial under the sweep, if the trial ran before (a restored sweep)."""
    found = [r for r in child_runs(uri, parent_run_id) if r.data.tags.get(TRIAL_TAG) == trial_id]
    return TrialRun(run_id=found[0].info.run_id, finished=found[0].info.status == "FINISHED") if found else None


def trial_test_metrics(uri: str, parent_run_id: str) -> dict[str, dict[str, float]]:
    """trial id -> the test metrics its child run logged (test_*, baseline_test_*)."""
    return {
        r.data.tags.get(TRIAL_TAG, ""): {k: v for k, v in r.data.metrics.items() if k.startswith(("test_", "baseline_test_"))}
        for r in child_runs(uri, parent_run_id)
    }


def epoch_history(uri: str, run_id: str) -> list[dict[str, float]]:
    """The per-epoch metrics `RunLogger.log_epoch` wrote, in epoch order, each with its `epoch`."""
    c = client(uri)
    by_epoch: dict[int, dict[str, float]] = {}
    for key in c.get_run(run_id).data.metrics:
        for m in c.get_metric_history(run_id, key):
            by_epoch.setdefault(m.step, {"epoch": m.step})[key] = m.value
    return [by_epoch[e] for e in sorted(by_epoch)]


def close_trial_runs(uri: str, parent_run_id: str, outcomes: dict[str, TrialOutcome]) -> None:
    """Close child runs still RUNNING by Tune's verdict. A trial the scheduler stops dies with its
    actor and cannot close its own run: it ends FINISHED, tagged stopped_early. A trial Tune never
    reported on ends FAILED."""
    for run in child_runs(uri, parent_run_id):
        if run.info.status != "RUNNING":
            continue
        outcome = outcomes.get(run.data.tags.get(TRIAL_TAG, ""), "FAILED")
        if outcome == "STOPPED":
            set_tags(uri, run.info.run_id, {"lstmpipe.stopped_early": "true"})
        end_run(uri, run.info.run_id, "FAILED" if outcome == "FAILED" else "FINISHED")


from pipeline.track.epochs import RunLogger, sync_epochs  # noqa: E402  (re-exported; it uses the helpers above)
