"""Models in MLflow: the served model (pytorch flavor, pt2, pickle-free), the checkpoint beside it,
the registry, and getting a run's checkpoint back from a runs:/ or models:/ URI."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature

from pipeline.errors import ConfigError
from pipeline.track.run import TrackedRun
from pipeline.track.store import client_for

CHECKPOINT_ARTIFACT = "checkpoint"


@dataclass(frozen=True)
class LoggedModel:
    model_uri: str
    registered_name: str | None
    version: str | None
    model_id: str | None = None  # MLflow 3's LoggedModel id: its metrics, searchable across runs

    @property
    def registered_label(self) -> str | None:
        return f"{self.registered_name}/{self.version}" if self.registered_name else None


def log_checkpoint(run: TrackedRun, directory: str | Path) -> None:
    """The model's checkpoint (state_dict + meta.json with its config and data info), beside the
    pt2 model: what `lstmpipe evaluate|predict|generate` load from a runs:/ or models:/ URI."""
    run.log_artifacts(directory, CHECKPOINT_ARTIFACT)


def download_checkpoint(uri: str, model_uri: str, *, dst: str | Path) -> Path:
    """runs:/RUN_ID[/...] or models:/NAME@ALIAS | models:/NAME/VERSION -> the run's checkpoint, downloaded."""
    client = client_for(uri)
    try:
        if model_uri.startswith("runs:/"):
            run_id = model_uri.removeprefix("runs:/").strip("/").split("/")[0]
        else:
            name, _, ref = model_uri.removeprefix("models:/").strip("/").partition("@")
            if ref:
                run_id = client.get_model_version_by_alias(name, ref).run_id
            else:
                name, _, version = name.partition("/")
                run_id = client.get_model_version(name, version).run_id
        with _no_progress_bars():
            path = client.download_artifacts(run_id, CHECKPOINT_ARTIFACT, str(dst))
    except mlflow.exceptions.MlflowException as err:
        raise ConfigError(f"cannot load model {model_uri} from {uri}: {str(err).splitlines()[0]}") from err
    return Path(path)


def warm_export() -> threading.Thread:
    """Import what `log_model`'s pt2 export needs (torch.export, dynamo, sympy: ~2 CPU s here) in a
    thread, while the caller waits on Ray Train and a core is often idle; the export then only traces.
    (Measured on the smoke config: `finish` 4.0 -> see docs/performance.md.)"""

    def load() -> None:
        # torch.export imports its tracer and archive writer on first use: these are the heavy parts.
        import torch.export._trace
        import torch.export.pt2_archive._package  # noqa: F401

    thread = threading.Thread(target=load, name="lstmpipe-warm-export", daemon=True)
    thread.start()
    return thread


def log_model(
    run: TrackedRun,
    model: torch.nn.Module,
    *,
    input_example: np.ndarray,
    metadata: dict[str, Any] | None = None,
    register_as: str | None = None,
    alias: str | None = None,
) -> LoggedModel:
    """Log the model (pt2, pickle-free) with signature and input example; optionally register it."""
    model = model.eval().cpu()
    with torch.no_grad():
        output = model(torch.from_numpy(input_example)).numpy()
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}", "numpy"]
    with _fluent_api_at(run.uri), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export's notes on nn.LSTM's flat weights
        with mlflow.start_run(run_id=run.run_id):
            info = mlflow.pytorch.log_model(
                model,
                name="model",
                signature=infer_signature(input_example, output),
                input_example=input_example,
                pip_requirements=requirements,
                metadata=metadata,
            )
        version = _register(run, info, name=register_as) if register_as else None
    if register_as and alias:
        run.client.set_registered_model_alias(register_as, alias, version)
    return LoggedModel(model_uri=info.model_uri, registered_name=register_as, version=version, model_id=info.model_id)


def log_text_model(
    run: TrackedRun,
    checkpoint_dir: str | Path,
    *,
    input_example: list,
    output_example: dict[str, list],
    input_column: str = "text",
    optional_input: tuple[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
    register_as: str | None = None,
    alias: str | None = None,
) -> LoggedModel:
    """Log a text model as a pyfunc from code (`text_model.py`): a string column `text` (frames for
    a transcriber; or `optional_input`, (column, MLflow type), instead) in, the task's columns out;
    the checkpoint is its artifact, this package its code."""
    import pandas as pd

    here = Path(__file__).resolve()
    inputs = pd.DataFrame({input_column: input_example})
    signature = infer_signature(inputs, pd.DataFrame(output_example))
    if optional_input is not None:  # a second way in (an audio model: WAV bytes instead of frames); either may come
        from mlflow.types.schema import ColSpec, Schema

        name, kind = optional_input
        given = [ColSpec(type=c.type, name=c.name, required=False) for c in signature.inputs.inputs]
        signature.inputs = Schema([*given, ColSpec(type=kind, name=name, required=False)])
    with _fluent_api_at(run.uri), warnings.catch_warnings(), _no_progress_bars():
        warnings.simplefilter("ignore")
        with mlflow.start_run(run_id=run.run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(here.with_name("text_model_code.py")),
                artifacts={"checkpoint": str(checkpoint_dir)},
                code_paths=[str(here.parents[1])],  # the pipeline package
                signature=signature,
                input_example=inputs,
                pip_requirements=_requirements(
                    "torch", "mlflow", "numpy", "pandas", "pyarrow", "pydantic", "pyyaml", "tokenizers", "jiwer"
                )
                + (_requirements("kaldi-native-fbank", "scipy") if optional_input else []),
                metadata=metadata,
            )
        version = _register(run, info, name=register_as) if register_as else None
    if register_as and alias:
        run.client.set_registered_model_alias(register_as, alias, version)
    return LoggedModel(model_uri=info.model_uri, registered_name=register_as, version=version, model_id=info.model_id)


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """MLflow loads the logged pyfunc to check its input example and draws a download progress bar
    on stderr; its switch is an environment variable, set while logging and put back after."""
    name, before = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _requirements(*packages: str) -> list[str]:
    """Each package pinned at the version installed here (a local build suffix such as +cpu dropped)."""
    from importlib.metadata import version

    return [f"{name}=={version(name).split('+')[0]}" for name in packages]


def _register(run: TrackedRun, info, *, name: str) -> str:
    """A new version of registered model `name` for the logged model: what
    `log_model(registered_model_name=...)` does (a client of the registry that goes with the global
    tracking URI, set by the caller), without the two lines it prints on stderr."""
    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(name)
    except mlflow.exceptions.MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    version = client.create_model_version(name, source=info.model_uri, run_id=run.run_id, model_id=info.model_id)
    return str(version.version)


@contextmanager
def _fluent_api_at(uri: str) -> Iterator[None]:
    """mlflow's model logging needs the global tracking URI (there is no client form of it), which
    MLflow also exports as $MLFLOW_TRACKING_URI: put both back as they were, or the next run in this
    process would silently go here. (MLflow's own `_use_tracking_uri` restores the global only.)"""
    from mlflow.tracking._tracking_service import utils

    global_before, env_before = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(global_before)  # None unsets the variable too
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before
