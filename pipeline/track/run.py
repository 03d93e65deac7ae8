"""One MLflow run: one `MlflowClient` for one run id, never MLflow's global "active run".

The driver, a Tune trial and a rank-0 worker each hold their own `TrackedRun`, so they log to their
own run without stepping on each other. Everything logged is redacted first (`pipeline.redaction`).
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from pipeline.redaction import redact, redact_tree, redact_value
from pipeline.track.store import client_for, experiment_id

RunStatus = Literal["FINISHED", "FAILED", "KILLED", "RUNNING"]
PARENT_TAG = "mlflow.parentRunId"
KIND_TAG = "lstmpipe.kind"
MAX_PARAM_CHARS = 6000


def now_ms() -> int:
    return int(time.time() * 1000)


def redacted_tags(tags: dict[str, str]) -> list[RunTag]:
    return [RunTag(k, redact(v)) for k, v in tags.items()]


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:MAX_PARAM_CHARS]


class TrackedRun:
    """One run of the tracking store at `uri`, addressed by `run_id`."""

    def __init__(self, uri: str, run_id: str, *, client: MlflowClient | None = None):
        self.uri = uri
        self.run_id = run_id
        self.client = client or client_for(uri)

    @classmethod
    def start(
        cls,
        uri: str,
        *,
        experiment: str,
        run_name: str,
        params: dict[str, Any],
        tags: dict[str, str] | None = None,
        parent: TrackedRun | None = None,
    ):
        """A new run in `experiment` (created if needed), nested under `parent` if given."""
        client = client_for(uri)
        tags = dict(tags or {}) | ({PARENT_TAG: parent.run_id} if parent else {})
        info = client.create_run(
            experiment_id(client, uri, experiment), run_name=run_name, tags={k: redact(v) for k, v in tags.items()}
        ).info
        client.log_batch(info.run_id, params=[Param(k, _param_value(redact_value(k, v))) for k, v in params.items()])
        return cls(uri, info.run_id, client=client)

    # -- lifecycle -------------------------------------------------------------------------------
    def reopen(self, *, tags: dict[str, str]) -> None:
        """Continue this run (resume): its new owner first, then status back to RUNNING (so a reconcile in
        between never sees a RUNNING run whose owner is the dead one); params are immutable and kept."""
        self.set_tags(tags)
        self.client.update_run(self.run_id, status="RUNNING")

    def end(self, status: RunStatus = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    @property
    def status(self) -> str:
        return self.client.get_run(self.run_id).info.status

    @contextmanager
    def closes(self) -> Iterator[TrackedRun]:
        """End the run by how the block ends: FINISHED, KILLED on Ctrl-C/SIGTERM, else FAILED."""
        try:
            yield self
        except KeyboardInterrupt:
            self.end_if_reachable("KILLED")
            raise
        except BaseException:
            self.end_if_reachable("FAILED")
            raise
        self.end("FINISHED")

    def end_if_reachable(self, status: RunStatus) -> None:
        """On the way out of a failure, a tracking server that is down must not hide the real error:
        the run stays RUNNING and `lstmpipe runs reconcile` (or the next start) closes it."""
        try:
            self.end(status)
        except Exception as err:  # noqa: BLE001  (any MLflow/HTTP error: the original exception matters more)
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            warnings.warn(f"could not mark MLflow run {self.run_id} {status}: {redact(first)}", stacklevel=2)

    # -- values ----------------------------------------------------------------------------------
    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=redacted_tags(tags))

    def log_metrics(self, metrics: dict[str, float], *, step: int, model_id: str | None = None) -> None:
        """`model_id`: the metrics are also the logged model's (MLflow 3: `search_logged_models` ranks by them)."""
        ts = now_ms()
        batch = [
            Metric(k, float(v), ts, step, model_id=model_id) for k, v in metrics.items() if isinstance(v, (int, float))
        ]
        self.client.log_batch(self.run_id, metrics=batch)

    def metric_history(self, keys: list[str]) -> dict[str, list[tuple[int, float]]]:
        return {k: [(m.step, m.value) for m in self.client.get_metric_history(self.run_id, k)] for k in keys}

    def epoch_history(self) -> list[dict[str, float]]:
        """Every logged metric by step (epoch), in epoch order, each dict with its `epoch`."""
        by_epoch: dict[int, dict[str, float]] = {}
        for key in self.client.get_run(self.run_id).data.metrics:
            for m in self.client.get_metric_history(self.run_id, key):
                by_epoch.setdefault(m.step, {"epoch": m.step})[key] = m.value
        return [by_epoch[e] for e in sorted(by_epoch)]

    # -- artifacts -------------------------------------------------------------------------------
    def log_config(self, config: dict[str, Any]) -> None:
        self.log_dict(config, "config.yaml")

    def log_dict(self, payload: dict[str, Any], name: str) -> None:
        self.client.log_dict(self.run_id, redact_tree(payload), name)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, redact(text), name)

    def log_figures(self, figures: dict[str, Any]) -> None:
        """matplotlib Figures -> PNG artifacts under plots/."""
        for name, fig in figures.items():
            self.client.log_figure(self.run_id, fig, f"plots/{name}")

    def log_table(self, table, name: str) -> None:
        """An Arrow table as a Parquet artifact `name`."""
        import pyarrow.parquet as pq

        folder = str(Path(name).parent)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(name).name
            pq.write_table(table, local)
            self.client.log_artifact(self.run_id, str(local), artifact_path=None if folder == "." else folder)

    def latest_table(self, folder: str):
        """The last (by name) Parquet artifact under `folder`, e.g. a trial's latest telemetry; None if none."""
        import pyarrow.parquet as pq

        names = sorted(a.path for a in self.client.list_artifacts(self.run_id, folder) if a.path.endswith(".parquet"))
        if not names:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            return pq.read_table(self.client.download_artifacts(self.run_id, names[-1], tmp))

    def log_artifacts(self, directory: str | Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(directory), artifact_path)
