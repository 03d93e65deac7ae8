"""Tracking with MLflow: the only package that imports mlflow.

One MLflow run per training run (`TrackedRun`, one client for one run id), a sweep as a parent run
(`SweepRun`) with one nested child run per trial, rank 0's buffered epoch logger (`epochs`), the
served model and its checkpoint (`models`), and runs a dead driver left RUNNING (`reconcile`).
"""

from pipeline.track.epochs import RunLogger, sync_epochs
from pipeline.track.models import (
    CHECKPOINT_ARTIFACT,
    LoggedModel,
    download_checkpoint,
    log_checkpoint,
    log_model,
    log_text_model,
)
from pipeline.track.run import KIND_TAG, PARENT_TAG, RunStatus, TrackedRun
from pipeline.track.store import check_reachable, resolve_uri, running_runs, ui_command
from pipeline.track.trials import TRIAL_TAG, SweepRun, TrialOutcome, TrialRun

__all__ = [
    "CHECKPOINT_ARTIFACT",
    "KIND_TAG",
    "PARENT_TAG",
    "TRIAL_TAG",
    "LoggedModel",
    "RunLogger",
    "RunStatus",
    "SweepRun",
    "TrackedRun",
    "TrialOutcome",
    "TrialRun",
    "check_reachable",
    "download_checkpoint",
    "log_checkpoint",
    "log_model",
    "log_text_model",
    "resolve_uri",
    "running_runs",
    "sync_epochs",
    "ui_command",
]
