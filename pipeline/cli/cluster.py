"""`lstmpipe submit`, `lstmpipe jobs ...` and `lstmpipe cluster up|down|status`: working with a Ray cluster."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.options import SetOpt, user_errors

AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="The cluster's Jobs API, e.g. http://127.0.0.1:8265; default RAY_ADDRESS."),
]
StateDirOpt = Annotated[
    Path, typer.Option("--state-dir", help="Where the local cluster keeps its pids, token, logs and MLflow store.")
]
DEFAULT_STATE_DIR = Path(".lstmpipe/cluster")


class SubmitCommand(StrEnum):
    train = "train"
    tune = "tune"
    evaluate = "evaluate"


def submit(
    ctx: typer.Context,
    command: Annotated[SubmitCommand, typer.Argument(help="The lstmpipe command the job runs.")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config (evaluate: optional data config).")
    ] = None,
    set_: SetOpt = None,
    address: AddressOpt = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return once the job is submitted instead of following its logs.")
    ] = False,
    submission_id: Annotated[str | None, typer.Option("--submission-id", help="The job id; default: Ray's.")] = None,
) -> None:
    """Run train/tune/evaluate as a Ray job: uploads this directory, follows the logs, exits with the job's status.

    Further flags go to the command itself, e.g. `lstmpipe submit train -c conf/smoke.yaml --name run-1`
    or `lstmpipe submit evaluate --model models:/smoke@champion --data adding`.
    """
    with user_errors():
        from pipeline.cluster import submit as submission

        if command is not SubmitCommand.evaluate and config is None:
            from pipeline.errors import ConfigError

            raise ConfigError(f"`lstmpipe submit {command.value}` needs --config/-c CONF")
        outcome = submission.submit(
            command.value,
            config,
            list(set_ or []),
            address=address,
            args=list(ctx.args),
            workdir=Path.cwd(),
            follow="detach" if no_wait else "follow",
            submission_id=submission_id,
        )
    typer.echo(f"job {outcome.job_id}: {outcome.status}")
    raise typer.Exit(outcome.exit_code)


jobs_app = typer.Typer(help="Ray jobs on a cluster (its Jobs API at --address or RAY_ADDRESS).", no_args_is_help=True)


@jobs_app.command("list")
def jobs_list(address: AddressOpt = None) -> None:
    """Every job: id, status, entrypoint."""
    with user_errors():
        from pipeline.cluster import submit as submission

        jobs = submission.job_client(address).list_jobs()
    for job in sorted(jobs, key=lambda j: j.start_time or 0):
        typer.echo(f"{job.submission_id or job.job_id:<28} {job.status.value:<10} {job.entrypoint}")


@jobs_app.command("status")
def jobs_status(job_id: str, address: AddressOpt = None) -> None:
    """One job's status and message; exits 0 when it SUCCEEDED or is still going, 1 FAILED, 130 STOPPED."""
    with user_errors():
        from pipeline.cluster import submit as submission

        job = submission.info(submission.job_client(address), job_id)
    status = job.status.value
    typer.echo(f"{job_id}: {status}{' - ' + job.message if job.message else ''}")
    raise typer.Exit(submission.EXIT_CODES.get(status, 0))


@jobs_app.command("logs")
def jobs_logs(
    job_id: str,
    address: AddressOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the job ends.")] = False,
) -> None:
    """A job's driver logs."""
    with user_errors():
        from pipeline.cluster import submit as submission

        client = submission.job_client(address)
        submission.info(client, job_id)
        if follow:
            raise typer.Exit(submission.follow_job(client, job_id).exit_code)
        typer.echo(client.get_job_logs(job_id), nl=False)


@jobs_app.command("stop")
def jobs_stop(job_id: str, address: AddressOpt = None) -> None:
    """Stop a running job (its runs end KILLED in MLflow)."""
    with user_errors():
        from pipeline.cluster import submit as submission

        outcome = submission.stop(submission.job_client(address), job_id)
    typer.echo(f"{job_id}: {outcome.status}")


class MlflowAuth(StrEnum):
    none = "none"
    basic = "basic"


cluster_app = typer.Typer(
    help="A Ray cluster (head + worker nodes) and an MLflow server on 127.0.0.1, for development.", no_args_is_help=True
)


@cluster_app.command("up")
def cluster_up(
    workers: Annotated[int, typer.Option("--workers", min=0, help="Worker nodes besides the head.")] = 1,
    cpus_per_node: Annotated[int, typer.Option("--cpus-per-node", min=1)] = 1,
    dashboard_port: Annotated[int, typer.Option("--dashboard-port", min=1024, max=65535)] = 8265,
    mlflow_port: Annotated[int, typer.Option("--mlflow-port", min=1024, max=65535)] = 5000,
    auth: Annotated[
        MlflowAuth, typer.Option("--auth", help="basic: MLflow's basic-auth app (admin password in the state dir)")
    ] = MlflowAuth.none,
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
) -> None:
    """Start the cluster and the MLflow server; print the environment a shell needs to use them."""
    with user_errors():
        from pipeline.cluster import local as devcluster

        cluster = devcluster.up(
            state_dir,
            workers=workers,
            cpus_per_node=cpus_per_node,
            dashboard_port=dashboard_port,
            mlflow_port=mlflow_port,
            auth=MlflowAuth(auth).value,
        )
    typer.echo(f"# {cluster.nodes} Ray nodes, Jobs API {cluster.dashboard_url}, MLflow {cluster.tracking_uri}")
    if cluster.auth == "none":
        typer.echo(
            "# the MLflow server has no authentication: anyone who can reach 127.0.0.1 here can read and write it"
            " (on a shared machine: --auth basic, or infra/)"
        )
    for key, value in cluster.client_env().items():
        typer.echo(f"export {key}={value}")
    if (password := cluster.password_path()) is not None:  # never printed itself: read from its 0600 file
        typer.echo(f'export MLFLOW_TRACKING_PASSWORD="$(cat {password})"')


@cluster_app.command("down")
def cluster_down(state_dir: StateDirOpt = DEFAULT_STATE_DIR) -> None:
    """Stop exactly the processes `up` started (by pid); the MLflow store and logs stay in the state dir."""
    with user_errors():
        from pipeline.cluster import local as devcluster

        cluster = devcluster.down(state_dir)
    typer.echo(f"stopped {len(cluster.procs)} processes ({', '.join(p.role for p in cluster.procs)})")


@cluster_app.command("status")
def cluster_status(state_dir: StateDirOpt = DEFAULT_STATE_DIR) -> None:
    """Which processes are alive, how many Ray nodes the head sees, whether MLflow answers; exit 1 if any is down."""
    with user_errors():
        from pipeline.cluster import local as devcluster

        st = devcluster.status(state_dir)
    for role, alive in st.alive.items():
        typer.echo(f"{role:<10} {'alive' if alive else 'DEAD'}")
    typer.echo(f"ray nodes  {st.nodes_alive}/{st.cluster.nodes} alive at {st.cluster.dashboard_url}")
    typer.echo(f"mlflow     {'healthy' if st.mlflow_healthy else 'DOWN'} at {st.cluster.tracking_uri}")
    healthy = all(st.alive.values()) and st.nodes_alive == st.cluster.nodes and st.mlflow_healthy
    raise typer.Exit(0 if healthy else 1)
