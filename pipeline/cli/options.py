"""What every `lstmpipe` command shares: its option types and the user-error handler (one sentence, an exit code)."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import PipelineError
from pipeline.redaction import redact

ConfOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML config (see conf/).")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a key: --set model.hidden_size=128 (repeatable).")
]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="Run name (Ray run directory and MLflow run); default: unique.")
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="runs:/RUN_ID, models:/NAME@ALIAS, models:/NAME/VERSION or a checkpoint directory."
    ),
]
TrackingOpt = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow tracking URI; default MLFLOW_TRACKING_URI or sqlite:///mlflow.db."),
]
SummaryOpt = Annotated[Path | None, typer.Option("--summary-json", help="Write the run summary as JSON to this path.")]


DEBUG_ENV = "LSTMPIPE_DEBUG"


def debugging() -> bool:
    """`--debug` or LSTMPIPE_DEBUG=1: errors come with their whole traceback, causes included."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextmanager
def user_errors() -> Iterator[None]:
    """PipelineError -> one sentence on stderr and its exit code; Ctrl-C -> 130. No tracebacks, unless
    debugging: then the traceback of the error and of its causes comes first (redacted)."""
    try:
        yield
    except PipelineError as err:
        if debugging():
            typer.echo(redact("".join(traceback.format_exception(err))), err=True)
        typer.echo(f"error: {redact(str(err))}", err=True)
        raise typer.Exit(err.exit_code) from err
    except KeyboardInterrupt as err:
        typer.echo("interrupted: runs in progress were marked KILLED", err=True)
        raise typer.Exit(130) from err
