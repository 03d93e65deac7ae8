"""`lstmpipe`: the command line. Parses flags and config, calls the pipeline, sets the exit code.

Exit codes: 0 success; 2 bad config, bad data or a run that cannot start/resume; 1 training failed;
130 interrupted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Optional

import typer

from pipeline import config as config_mod
from pipeline.errors import PipelineError

app = typer.Typer(
    name="lstmpipe",
    help="Train, tune and track LSTM sequence models on Ray, with MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML config (see conf/).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a key: --set model.hidden_size=128 (repeatable).")]
NameOpt = Annotated[Optional[str], typer.Option("--name", help="Run name (Ray run directory and MLflow run); default: unique.")]
SummaryOpt = Annotated[Optional[Path], typer.Option("--summary-json", help="Write the run summary as JSON to this path.")]


@contextmanager
def _user_errors() -> Iterator[None]:
    """PipelineError -> one sentence on stderr and its exit code; Ctrl-C -> 130. No tracebacks."""
    try:
        yield
    except PipelineError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: runs in progress were marked KILLED", err=True)
        raise typer.Exit(130) from None


def _report(summary, *, title: str, summary_json: Path | None, extra: dict | None = None) -> None:
    from pipeline.summary import render, write_json

    typer.echo(render(summary, title=title))
    if summary_json:
        write_json(summary_json, summary.as_dict() | (extra or {}))


@app.command()
def train(
    config: ConfOpt,
    set_: SetOpt = None,
    name: NameOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue run --name from its last checkpoint, same MLflow run.")] = False,
    summary_json: SummaryOpt = None,
) -> None:
    """Train one model on train.workers Ray Train workers and log it to MLflow."""
    with _user_errors():
        if resume and not name:
            raise config_mod.ConfigError("--resume needs --name NAME of the run to continue")
        cfg = config_mod.load(config, set_)
        from pipeline.training import run_training  # heavy imports only after the config is valid

        summary = run_training(cfg, name=name, resume=resume)
    _report(summary, title="train", summary_json=summary_json)


@app.command()
def tune(config: ConfOpt, set_: SetOpt = None, name: NameOpt = None, summary_json: SummaryOpt = None) -> None:
    """Run a Ray Tune sweep; each trial trains on train.workers workers; register the best model."""
    with _user_errors():
        cfg = config_mod.load(config, set_)
        from pipeline.tuning import run_sweep

        summary = run_sweep(cfg, name=name)
    _report(summary, title="tune", summary_json=summary_json)


data_app = typer.Typer(help="Built-in datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list() -> None:
    """The built-in datasets (data.source): name, task, size, what they are. All ship inside PyPI packages."""
    from pipeline.sources import SOURCES

    for src in SOURCES.values():
        typer.echo(f"{src.name:<16} {src.task:<11} {src.size}\n{'':<28} {src.description}")


@app.command()
def smoke(summary_json: SummaryOpt = None) -> None:
    """End to end on the built-in adding problem: Parquet -> Ray Data -> 2-worker training -> 2-trial sweep -> MLflow."""
    start = time.monotonic()
    with _user_errors():
        cfg = config_mod.load(config_mod.bundled_config("smoke.yaml"))
        from pipeline import cluster
        from pipeline.ingest import load_splits
        from pipeline.training import run_training
        from pipeline.tuning import run_sweep

        cluster.connect()
        splits = load_splits(cfg)  # read and split once, for the training run and the sweep
        trained = run_training(cfg, splits=splits)
        swept = run_sweep(cfg, splits=splits)
    _report(trained, title="train", summary_json=None)
    wall = time.monotonic() - start
    _report(swept, title="tune", summary_json=summary_json, extra={"train": trained.as_dict(), "wall_time_s": wall})
    typer.echo(f"smoke finished in {wall:.0f} s")


def run_command(argv: list[str]) -> int:
    """Run one `lstmpipe` command in-process and return its exit code (for jobs/*.py)."""
    try:
        app(argv, prog_name="lstmpipe")  # standalone: usage errors print and exit 2
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


def main() -> None:
    sys.exit(run_command(sys.argv[1:]))


if __name__ == "__main__":
    main()
