"""The arc many integration tests walk: validate a config -> prepare its data -> train on Ray ->
load the served model back from MLflow by URI -> predict. One place, so each test says only what it checks."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mlflow

from pipeline import config
from pipeline.tasks import Prepared
from pipeline.track.summary import RunSummary


def load_served(tracking_uri: str, model_uri: str):
    """The logged pyfunc model at `model_uri` (models:/NAME/1, runs:/...), read from `tracking_uri`.
    MLflow resolves registry URIs through its global tracking URI (and exports it as
    $MLFLOW_TRACKING_URI): both are put back, so nothing leaks into the next test."""
    from mlflow.tracking._tracking_service import utils

    global_before, env_before = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        return mlflow.pyfunc.load_model(model_uri)
    finally:
        mlflow.set_tracking_uri(global_before)
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


@dataclass
class Trained:
    cfg: config.Config
    splits: Prepared
    summary: RunSummary
    served: Any  # the pyfunc model from MLflow


def train_and_serve(raw: dict, *, name: str, splits: Prepared | None = None) -> Trained:
    """validate -> load_splits -> run_training -> the served model (registered as tracking.register_as,
    else the run's logged model)."""
    from pipeline.data.ingest import load_splits
    from pipeline.train.driver import run_training

    cfg = config.validate(raw)
    splits = splits or load_splits(cfg)
    summary = run_training(cfg, name=name, splits=splits)
    model_uri = f"models:/{cfg.tracking.register_as}/1" if cfg.tracking.register_as else summary.model_uri
    return Trained(cfg=cfg, splits=splits, summary=summary, served=load_served(summary.tracking_uri, model_uri))


@contextmanager
def served_over_http(model_uri: str, tracking_uri: str, *, port: int, route: str) -> Iterator[Any]:
    """`lstmpipe serve`'s deployment of a model on the session's Serve (conftest's serve_port), half
    a CPU per replica; its applications are deleted afterwards."""
    from ray import serve

    from pipeline.serve.deployment import ServeOptions, deploy
    from pipeline.serve.loading import load

    options = ServeOptions(route=route, replica_cpus=0.5, max_rows=64)
    served = deploy(load(model_uri, tracking_uri=tracking_uri), options=options, http_port=port)
    try:
        yield served
    finally:
        for app in served.apps:  # not waiting for the replicas to go: the next test's own start overlaps it
            serve.delete(app, _blocking=False)


def post(url: str, body: Any, *, raw: bytes | None = None) -> tuple[int, Any]:
    """POST JSON (or `raw` bytes) -> (HTTP status, the JSON answer)."""
    import json
    import urllib.error
    import urllib.request

    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# A line Ray forwards from one of its worker processes: "(ListFiles pid=587) ...", colored or not.
_RAY_FORWARDED = re.compile(r"^(?:\x1b\[[\d;]*m)?\((?:[A-Za-z_][\w.]*|raylet) pid=\d+(?:, ip=[\d.]+)?\)")


def own_output(text: str) -> str:
    """What the command itself wrote, without the lines Ray forwards from its worker processes.

    A command that fails on bad input must print one sentence and no traceback of its own. Ray
    Data's ListFiles task (Ray 2.60) sometimes prints a traceback of its own thread when the
    failed dataset's executor is torn down under it ("completion-signaler ... InterruptedError"):
    Ray's noise on the worker channel, not the command's error output, so it is set aside here."""
    return "\n".join(line for line in text.splitlines() if not _RAY_FORWARDED.match(line))


def served_in_fresh_process(tracking_uri: str, model_uri: str, texts: list[str]) -> dict:
    """A logged text model's answers to `texts`, from `mlflow.pyfunc.load_model` in a new Python
    process (nothing of this test's process: imports, globals, the package on sys.path)."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys, mlflow, pandas as pd; "
        "m = mlflow.pyfunc.load_model(sys.argv[1]); "
        "print(json.dumps(m.predict(pd.DataFrame({'text': json.loads(sys.argv[2])})).to_dict(orient='list')))"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    done = subprocess.run(
        [sys.executable, "-c", code, model_uri, json.dumps(texts)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
