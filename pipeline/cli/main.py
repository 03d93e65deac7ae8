"""`lstmpipe`: the command line. Parses flags and config, calls the pipeline, sets the exit code.

Exit codes: 0 success; 2 bad config, bad data or a run that cannot start/resume; 1 training failed;
130 interrupted.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from pipeline import config as config_mod
from pipeline.cli.cluster import cluster_app, jobs_app, submit
from pipeline.cli.options import DEBUG_ENV, ConfOpt, ModelOpt, NameOpt, SetOpt, SummaryOpt, TrackingOpt, user_errors
from pipeline.cli.serve import serve
from pipeline.console import LOG_ENV, quiet_libraries

app = typer.Typer(
    name="lstmpipe",
    help="Train, tune and track LSTM sequence models on Ray, with MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, print its whole traceback and causes (or LSTMPIPE_DEBUG=1).")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", help="Also show Ray's and MLflow's INFO lines and set-up notices (or LSTMPIPE_LOG=debug)."
        ),
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"  # this command and the processes it starts
    if verbose:
        os.environ[LOG_ENV] = "debug"
    quiet_libraries()  # before anything opens an MLflow store or starts Ray


def _report(summary, *, title: str, summary_json: Path | None, extra: dict | None = None) -> None:
    from pipeline.track.summary import render, write_json

    typer.echo(render(summary, title=title))
    if summary_json:
        write_json(summary_json, summary.as_dict() | (extra or {}))


@app.command()
def train(
    config: ConfOpt,
    set_: SetOpt = None,
    name: NameOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue run --name from its last checkpoint, same MLflow run.")
    ] = False,
    summary_json: SummaryOpt = None,
) -> None:
    """Train one model on train.workers Ray Train workers and log it to MLflow."""
    with user_errors():
        if resume and not name:
            raise config_mod.ConfigError("--resume needs --name NAME of the run to continue")
        cfg = config_mod.load(config, set_)
        from pipeline.train.driver import run_training  # heavy imports only after the config is valid

        summary = run_training(cfg, name=name, resume=resume)
    _report(summary, title="train", summary_json=summary_json)


@app.command()
def tune(
    config: ConfOpt,
    set_: SetOpt = None,
    name: NameOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Restore the interrupted sweep --name: finished trials are kept.")
    ] = False,
    summary_json: SummaryOpt = None,
) -> None:
    """Run a Ray Tune sweep; each trial trains on train.workers workers; register the best model."""
    with user_errors():
        if resume and not name:
            raise config_mod.ConfigError("--resume needs --name NAME of the sweep to continue")
        cfg = config_mod.load(config, set_)
        from pipeline.tune.sweep import run_sweep

        summary = run_sweep(cfg, name=name, resume=resume)
    _report(summary, title="tune", summary_json=summary_json)


@app.command()
def backtest(
    config: ConfOpt,
    step: Annotated[int, typer.Option("--step", min=1, help="Time steps between two forecast origins.")],
    folds: Annotated[int, typer.Option("--folds", min=2, help="Forecast origins (folds), STEP time steps apart.")] = 3,
    refit: Annotated[
        bool, typer.Option("--refit", help="Train a model per origin (Tune trials side by side), not one for all.")
    ] = False,
    set_: SetOpt = None,
    name: NameOpt = None,
    summary_json: SummaryOpt = None,
) -> None:
    """Rolling-origin backtest of a forecaster: the first origin's model tested at every origin (or,
    with --refit, one model per origin), test metrics per fold and their mean and std, under one
    MLflow run; registers nothing."""
    with user_errors():
        cfg = config_mod.load(config, set_)
        from pipeline.tune.backtest import backtest_config, run_backtest

        fits = "each_fold" if refit else "once"
        backtest_config(cfg, folds=folds, step=step, fits=fits)  # refused before Ray starts
        summary = run_backtest(cfg, folds=folds, step=step, fits=fits, name=name)
    _report(summary, title="backtest", summary_json=summary_json)


def _tracking_uri(uri: str | None) -> str:
    from pipeline.track.store import resolve_uri

    return resolve_uri(config_mod.TrackingConfig(uri=uri))


@app.command()
def generate(
    model: ModelOpt,
    length: Annotated[int, typer.Option("--length", "-n", min=1, help="Steps to generate after the prime.")],
    out: Annotated[Path, typer.Option("--out", "-o", help=".txt (tokens), .mid (88-key piano rolls) or .parquet.")],
    temperature: Annotated[
        float, typer.Option("--temperature", "-t", min=1e-3, help="Below 1: safer; above 1: wilder.")
    ] = 1.0,
    top_k: Annotated[
        int | None, typer.Option("--top-k", min=1, help="Sample only among the k likeliest tokens/keys.")
    ] = None,
    prime: Annotated[
        str | None, typer.Option("--prime", help="Text (or space-separated ints) to start from; token models.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Sample a new sequence from a model trained with task: generate (text or MIDI)."""
    with user_errors():
        from pipeline.serve.sampling import GenerateOptions, run_generate

        opts = GenerateOptions(length=length, temperature=temperature, top_k=top_k, prime=prime, seed=seed)
        path = run_generate(model, opts, out=out, tracking_uri=_tracking_uri(tracking_uri))
    typer.echo(f"wrote {path}")


DataOpt = Annotated[
    str, typer.Option("--data", "-d", help="Built-in dataset name, or Parquet/CSV file, directory or URI.")
]
DataConfOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Take the data section (columns, window) from this YAML instead of the model's."
    ),
]


@app.command()
def predict(
    model: ModelOpt,
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write Parquet files to.")],
    config: DataConfOpt = None,
    set_: SetOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Batch inference with Ray Data (the model loaded once per actor); writes Parquet in the data's units."""
    with user_errors():
        from pipeline.serve.inputs import DataChoice
        from pipeline.serve.predict import predict as run_predict

        choice = DataChoice(source=data, config=config, overrides=tuple(set_ or ()))
        rows = run_predict(model, choice, out=out, tracking_uri=_tracking_uri(tracking_uri))
    typer.echo(f"wrote {rows} rows to {out}")


@app.command()
def translate(
    model: ModelOpt,
    texts: Annotated[list[str] | None, typer.Argument(help="Sentences to translate (or --file).")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="A UTF-8 text file: one sentence per line.")] = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Translate sentences with a translate model (beam search, on this machine, no Ray): one line each."""
    with user_errors():
        from pipeline.serve.loading import load
        from pipeline.serve.text import answer, read_lines

        given = list(texts or []) + (read_lines(file) if file is not None else [])
        trained = load(model, tracking_uri=_tracking_uri(tracking_uri))
        if trained.info.task != "translate":
            raise config_mod.ConfigError(
                f"--model {model} is a {trained.info.task} model; translate takes a translate model"
            )
        out = answer(trained, given)
    for line in out["translation"]:
        typer.echo(line)


@app.command()
def evaluate(
    model: ModelOpt,
    data: DataOpt,
    config: DataConfOpt = None,
    set_: SetOpt = None,
    log: Annotated[
        bool, typer.Option("--log", help="Also log the metrics as a new MLflow run in the model's experiment.")
    ] = False,
    tracking_uri: TrackingOpt = None,
    summary_json: SummaryOpt = None,
) -> None:
    """The task's test metrics and naive baselines over all rows of --data."""
    with user_errors():
        from pipeline.serve.evaluate import evaluate as run_evaluate
        from pipeline.serve.inputs import DataChoice

        choice = DataChoice(source=data, config=config, overrides=tuple(set_ or ()))
        result = run_evaluate(model, choice, tracking_uri=_tracking_uri(tracking_uri), log="mlflow" if log else "none")
    for name, value in result.metrics.items():
        typer.echo(f"{name:<32} {value:.4f}")
    if result.run_id:
        typer.echo(f"logged to mlflow run {result.run_id}")
    if summary_json:
        import json

        summary_json.write_text(json.dumps({"metrics": result.metrics, "run_id": result.run_id}, indent=2))


@app.command()
def explain(
    model: ModelOpt,
    data: DataOpt,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for telemetry.parquet, the plots and reading.md.")
    ] = Path("explain"),
    row: Annotated[
        int,
        typer.Option(
            "--row",
            min=0,
            help="Which sequence: a row of the data as prepared for the model (a window for forecast/anomaly).",
        ),
    ] = 0,
    config: DataConfOpt = None,
    set_: SetOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Look inside a trained model on one sequence: gates, cell and hidden state, gradient flow through time."""
    with user_errors():
        from pipeline.serve.explain import explain as run_explain
        from pipeline.serve.inputs import DataChoice

        choice = DataChoice(source=data, config=config, overrides=tuple(set_ or ()))
        result = run_explain(model, choice, row=row, out=out, tracking_uri=_tracking_uri(tracking_uri))
    for line in result.reading:
        typer.echo(line)
    typer.echo(f"wrote {', '.join(result.files)} to {result.out}")


data_app = typer.Typer(help="Built-in datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list() -> None:
    """The built-in datasets (data.source): name, task, size, what they are. All ship inside PyPI packages."""
    from pipeline.data.sources import SOURCES

    for src in SOURCES.values():
        typer.echo(f"{src.name:<16} {src.task:<11} {src.size}\n{'':<28} {src.description}")


@data_app.command("prepare")
def data_prepare(config: ConfOpt, set_: SetOpt = None) -> None:
    """Read, check and split the configured data with Ray Data (built-in sources are written to Parquet once)."""
    with user_errors():
        cfg = config_mod.load(config, set_)
        from pipeline.cluster.connect import connect
        from pipeline.data.ingest import load_splits

        connect()
        splits = load_splits(cfg)
    rows = ", ".join(f"{split} {n}" for split, n in splits.info.num_rows.items())
    typer.echo(f"{cfg.data.source} ({cfg.task}): {rows} rows")


runs_app = typer.Typer(help="MLflow runs the pipeline opened.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("reconcile")
def runs_reconcile(
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", help="MLflow experiment to check.")
    ] = "lstm-pipeline",
    tracking_uri: TrackingOpt = None,
) -> None:
    """Mark runs left RUNNING by a driver that died on this host (e.g. SIGKILL) as KILLED."""
    with user_errors():
        from pipeline.track.reconcile import reconcile
        from pipeline.track.store import check_reachable

        uri = _tracking_uri(tracking_uri)
        check_reachable(uri)
        done = reconcile(uri, experiment)
    for run_id in done.killed:
        typer.echo(f"{run_id} KILLED (its driver is gone)")
    if done.unknown:
        typer.echo(
            f"{len(done.unknown)} RUNNING run(s) belong to processes on other hosts; run this there to check them"
        )
    if not done.killed and not done.unknown:
        typer.echo(f"no RUNNING runs left behind in '{experiment}'")


@app.command()
def smoke(summary_json: SummaryOpt = None) -> None:
    """End to end on the built-in adding problem: Parquet -> Ray Data -> 2-worker training -> 2-trial sweep."""
    start = time.monotonic()
    with user_errors():
        cfg = config_mod.load(config_mod.bundled_config("smoke.yaml"))
        from pipeline.cluster.connect import connect
        from pipeline.data.ingest import load_splits
        from pipeline.train.driver import run_training
        from pipeline.tune.sweep import run_sweep

        connect()
        splits = load_splits(cfg)  # read and split once, for the training run and the sweep
        trained = run_training(cfg, splits=splits)
        swept = run_sweep(cfg, splits=splits)
    _report(trained, title="train", summary_json=None)
    wall = time.monotonic() - start
    _report(swept, title="tune", summary_json=summary_json, extra={"train": trained.as_dict(), "wall_time_s": wall})
    typer.echo(f"smoke finished in {wall:.0f} s")


app.command()(serve)
app.add_typer(cluster_app, name="cluster")
app.add_typer(jobs_app, name="jobs")
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(submit)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_command(argv: list[str]) -> int:
    """Run one `lstmpipe` command in-process and return its exit code (for jobs/*.py).

    SIGTERM (`ray job stop`, `kill`, Kubernetes) is handled like Ctrl-C: the command's MLflow runs
    end KILLED and the exit code is 130."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        app(argv, prog_name="lstmpipe")  # standalone: usage errors print and exit 2
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def main() -> None:
    code = run_command(sys.argv[1:])
    # The command is done: the ~800,000 objects torch, Ray and MLflow hold need no cycle collection on
    # the way out. Python's finalization collected them for ~2 s after the summary here (B9: 4.3 s
    # from the summary to the exit, 2.1 s frozen); Ray's shutdown and every atexit hook still run.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    main()
