"""`lstmpipe`: the command line. Parses flags and config, calls the pipeline, sets the exit code.

Exit codes: 0 success; 2 bad config, bad data or a run that cannot start/resume; 1 training failed;
130 interrupted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
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


def _fail(err: PipelineError) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(err.exit_code)


def _interrupted() -> None:
    typer.echo("interrupted: runs in progress were marked KILLED", err=True)
    raise typer.Exit(130)


@app.command()
def train(
    config: ConfOpt,
    set_: SetOpt = None,
    name: NameOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue run --name from its last checkpoint, same MLflow run.")] = False,
    summary_json: SummaryOpt = None,
) -> None:
    """Train one model on train.workers Ray Train workers and log it to MLflow."""
    try:
        if resume and not name:
            raise config_mod.ConfigError("--resume needs --name NAME of the run to continue")
        cfg = config_mod.load(config, set_)
        from pipeline.summary import render, write_json
        from pipeline.training import run_training

        summary = run_training(cfg, name=name, resume=resume)
    except PipelineError as err:
        _fail(err)
    except KeyboardInterrupt:
        _interrupted()
    typer.echo(render(summary, title="train"))
    if summary_json:
        write_json(summary_json, summary.as_dict())


@app.command()
def tune(config: ConfOpt, set_: SetOpt = None, name: NameOpt = None, summary_json: SummaryOpt = None) -> None:
    """Run a Ray Tune sweep; each trial trains on train.workers workers; register the best model."""
    try:
        cfg = config_mod.load(config, set_)
        from pipeline.summary import render, write_json
        from pipeline.tuning import run_sweep

        summary = run_sweep(cfg, name=name)
    except PipelineError as err:
        _fail(err)
    except KeyboardInterrupt:
        _interrupted()
    typer.echo(render(summary, title="tune"))
    if summary_json:
        write_json(summary_json, summary.as_dict())


@app.command()
def smoke(summary_json: SummaryOpt = None) -> None:
    """End to end on the built-in adding problem: Parquet -> Ray Data -> 2-worker training -> 2-trial sweep -> MLflow."""
    start = time.monotonic()
    try:
        cfg = config_mod.load(config_mod.bundled_config("smoke.yaml"))
        from pipeline import cluster
        from pipeline.ingest import load_splits
        from pipeline.summary import render, write_json
        from pipeline.training import run_training
        from pipeline.tuning import run_sweep

        cluster.connect()
        splits = load_splits(cfg.data)
        trained = run_training(cfg, splits=splits)
        swept = run_sweep(cfg, splits=splits)
    except PipelineError as err:
        _fail(err)
    except KeyboardInterrupt:
        _interrupted()
    typer.echo(render(trained, title="train"))
    typer.echo(render(swept, title="tune"))
    typer.echo(f"smoke finished in {time.monotonic() - start:.0f} s")
    if summary_json:
        write_json(summary_json, swept.as_dict() | {"train": trained.as_dict(), "wall_time_s": time.monotonic() - start})


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
