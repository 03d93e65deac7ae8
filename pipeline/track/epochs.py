"""Per-epoch metrics from rank 0 (in a Tune trial, from the sweep driver: `pipeline.tune.epochs`):
buffered while the tracking server is away, never logged twice.

The policy (tests/reliability/test_failures.py proves it):
- Training never waits on MLflow. A failed `log_batch` keeps the epoch in a buffer that is retried
  with the next epoch; rank 0 prints one warning per outage. HTTP retries are cut to a few seconds
  for this logger's own calls (MLflow's default is 7 retries with exponential backoff, minutes per
  call); every other MLflow call of the process keeps MLflow's defaults.
- Every checkpoint carries the metrics of all epochs so far (`CheckpointMeta.history`), so a buffer
  lost with a dead worker is rebuilt: a restored worker logs the epochs MLflow lacks.
- An epoch MLflow already holds is not logged again (a worker logged it, then died before Ray
  registered its checkpoint, and the restored run trained it again): the run keeps the first
  attempt's values and gets the tag `lstmpipe.rerun_epochs`.
- After training the driver logs whatever is still missing (`sync_epochs`), waiting for the server.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException, RestException

from pipeline.redaction import redact
from pipeline.track.run import TrackedRun, now_ms, redacted_tags

RERUN_TAG = "lstmpipe.rerun_epochs"
BATCH_LIMIT = 1000  # MLflow's log_batch cap on metrics per call
FAST_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
_FAST_HTTP_LOCK = threading.Lock()


@contextmanager
def fast_http() -> Iterator[None]:
    """MLflow reads its HTTP retry limits from the environment on every request, and has no per-client
    setting: set ours (unless the user set their own) for the duration of this logger's calls only,
    then put the environment back as it was."""
    with _FAST_HTTP_LOCK:
        saved = {key: os.environ.get(key) for key in FAST_HTTP}
        for key, value in FAST_HTTP.items():
            os.environ.setdefault(key, value)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def is_outage(err: BaseException) -> bool:
    """The server is away (connection refused, timeouts, 5xx), as opposed to a request it rejects."""
    if isinstance(err, RestException):
        return err.get_http_status_code() >= 500
    return isinstance(err, (MlflowException, requests.RequestException, OSError))


class RunLogger:
    """One run's epoch metrics and tags, logged by rank 0 (or the driver) without blocking training."""

    def __init__(self, run: TrackedRun):
        self.run = run
        self._pending: list[Metric] = []
        self._pending_tags: dict[str, str] = {}
        self._logged: dict[str, set[int]] | None = None  # key -> steps MLflow holds (fetched once)
        self._trained: set[int] = set()  # epochs queued by log_epoch (trained by this process)
        self._rerun: set[int] = set()
        self._down_since: float | None = None

    @property
    def pending_epochs(self) -> int:
        return len({m.step for m in self._pending})

    def log_epoch(self, metrics: dict[str, Any], *, epoch: int) -> bool:
        """Queue the epoch and try to send everything queued; False while the server is away."""
        self.queue_epoch(metrics, epoch=epoch)
        return self.flush()

    def queue_epoch(self, metrics: dict[str, Any], *, epoch: int) -> None:
        """An epoch this process saw trained, sent with the next flush."""
        ts = now_ms()
        self._pending += [
            Metric(k, float(v), ts, epoch) for k, v in metrics.items() if isinstance(v, (int, float)) and k != "epoch"
        ]
        self._trained.add(epoch)

    def log_history(self, history: list[dict[str, Any]], *, tags: dict[str, str] | None = None) -> bool:
        """Epochs from a checkpoint's history (and the run's tags); only epochs MLflow lacks are sent."""
        self._pending_tags |= tags or {}
        for metrics in history:
            ts = now_ms()
            self._pending += [
                Metric(k, float(v), ts, int(metrics["epoch"]))
                for k, v in metrics.items()
                if isinstance(v, (int, float)) and k != "epoch"
            ]
        return self.flush()

    def log_artifacts(self, *, tables: dict[str, Any], figures: dict[str, Any], folder: str) -> bool:
        """Telemetry: Parquet tables under `folder/`, figures under `plots/folder/`. Best effort: during
        an outage they are dropped with a warning (`lstmpipe explain` recomputes them from a model)."""
        try:
            with fast_http():
                for name, table in tables.items():
                    self.run.log_table(table, f"{folder}/{name}")
                self.run.log_figures({f"{folder}/{name}": fig for name, fig in figures.items()})
        except Exception as err:
            if not is_outage(err):
                raise
            print(
                redact(f"MLflow at {self.run.uri} unreachable; {folder} artifacts of this epoch not logged"),
                file=sys.stderr,
            )
            return False
        return True

    def set_tags(self, tags: dict[str, str]) -> bool:
        self._pending_tags |= tags
        return self.flush()

    def flush(self) -> bool:
        try:
            with fast_http():
                self._send()
        except Exception as err:
            if not is_outage(err):
                raise
            if self._down_since is None:
                self._down_since = time.monotonic()
                first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
                print(
                    redact(f"MLflow at {self.run.uri} unreachable ({first}); training goes on, metrics are buffered"),
                    file=sys.stderr,
                )
            return False
        if self._down_since is not None:
            print(
                redact(
                    f"MLflow at {self.run.uri} is back after {time.monotonic() - self._down_since:.0f} s; buffered "
                    "metrics logged"
                ),
                file=sys.stderr,
            )
            self._down_since = None
        return True

    def _send(self) -> None:
        logged = self._known()
        fresh, rerun, queued = [], set(), set()
        for m in self._pending:  # an epoch trained twice (after a restart) keeps its first value
            if m.step in logged.get(m.key, set()) or (m.key, m.step) in queued:
                rerun |= {m.step} & self._trained
            else:
                queued.add((m.key, m.step))
                fresh.append(m)
        tags = dict(self._pending_tags)
        if rerun - self._rerun:
            self._rerun |= rerun
            tags[RERUN_TAG] = ",".join(str(e) for e in sorted(self._rerun))
        for start in range(0, len(fresh), BATCH_LIMIT):
            self.run.client.log_batch(self.run.run_id, metrics=fresh[start : start + BATCH_LIMIT])
        if tags:
            self.run.client.log_batch(self.run.run_id, tags=redacted_tags(tags))
        for m in fresh:
            logged.setdefault(m.key, set()).add(m.step)
        self._pending, self._pending_tags = [], {}

    def _known(self) -> dict[str, set[int]]:
        if self._logged is None:
            client, run_id = self.run.client, self.run.run_id
            self._logged = {
                k: {m.step for m in client.get_metric_history(run_id, k)} for k in client.get_run(run_id).data.metrics
            }
        return self._logged


def sync_epochs(
    run: TrackedRun,
    history: list[dict[str, Any]],
    *,
    tags: dict[str, str] | None = None,
    wait_s: float,
    poll_s: float = 5.0,
) -> bool:
    """Log the epochs of `history` MLflow lacks (and `tags`), retrying for up to `wait_s`; False if the
    server stayed away."""
    logger = RunLogger(run)
    deadline = time.monotonic() + wait_s
    ok = logger.log_history(history, tags=tags)
    while not ok and time.monotonic() < deadline:
        time.sleep(poll_s)
        ok = logger.flush()
    return ok
