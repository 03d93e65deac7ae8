"""`lstmpipe submit` and `lstmpipe jobs`: run a command as a Ray job through the cluster's Jobs API.

The config is validated here, before anything is uploaded. The job gets the project's code and
configs and the local files it reads (an allow-list, see `upload`), the resolved config and the
tracking URI through its runtime environment, and runs `python jobs/<command>.py`.
Credentials are never put in the runtime environment (Ray shows it in the dashboard): the nodes'
own environment carries MLFLOW_TRACKING_USERNAME/PASSWORD (see infra/k8s).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from pipeline import config as config_mod
from pipeline import ray_compat
from pipeline.cluster import upload
from pipeline.cluster.connect import worker_runtime_env
from pipeline.errors import ConfigError, PipelineError, RunStateError
from pipeline.redaction import has_secret, redact
from pipeline.track.store import check_reachable, resolve_uri

Command = Literal["train", "tune", "evaluate"]
Follow = Literal["follow", "detach"]
CONFIG_ENV = config_mod.CONFIG_ENV
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 130}


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    status: str  # a Ray JobStatus name; PENDING/RUNNING when not followed
    exit_code: int


def address_or_env(address: str | None) -> str:
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ConfigError(
            "no Ray cluster address: pass --address http://HEAD:8265 or set RAY_ADDRESS (e.g. from `lstmpipe cluster "
            "up`)"
        )
    return address


def job_client(address: str | None):
    """Ray's JobSubmissionClient, with token authentication on (the token from RAY_AUTH_TOKEN(_PATH) or ~/.ray)."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    from ray.job_submission import JobSubmissionClient

    url = address_or_env(address)
    try:
        return JobSubmissionClient(url)
    except (ConnectionError, RuntimeError) as err:
        raise RunStateError(
            f"cannot reach the Ray Jobs API at {url} ({_first_line(err)}); check --address/RAY_ADDRESS and "
            "RAY_AUTH_TOKEN_PATH"
        ) from err


def needed_files(cfg: config_mod.Config, args: list[str], *, workdir: Path) -> list[Path]:
    """Local files the job reads: a file source of the config, and arguments that name a path here
    (`--data my.parquet`, `--model runs/r/epoch_0009`)."""
    candidates = [] if cfg.data.is_builtin or "://" in cfg.data.source else [cfg.data.source]
    candidates += [a.split("=", 1)[-1] for a in args if not a.startswith("-") or "=" in a]
    return [Path(c) for c in candidates if c and "://" not in c and (workdir / c).exists()]


@dataclass(frozen=True)
class JobRequest:
    """What `submit_job` is sent: the entrypoint, the runtime env (without working_dir, which is the
    staged upload, packaged by Ray and replaced by a gcs:// URI), and the upload's plan. Nothing in
    it names a path of this machine."""

    entrypoint: str
    runtime_env: dict
    metadata: dict[str, str]
    upload: upload.Upload


def job_request(
    command: Command,
    cfg: config_mod.Config,
    *,
    config_name: str,
    overrides: list[str],
    args: list[str],
    workdir: Path,
    tracking_uri: str,
) -> JobRequest:
    """The job for `command` on `cfg`, refused (ConfigError) if its env or entrypoint would carry a credential."""
    workdir = workdir.resolve()
    plan = upload.plan_upload(workdir, needed=needed_files(cfg, args, workdir=workdir))
    runtime_env = worker_runtime_env()
    env_vars = {"MLFLOW_TRACKING_URI": tracking_uri, **runtime_env["env_vars"]}
    if config_name or command != "evaluate":
        env_vars[CONFIG_ENV] = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
        args = ["-c", f"env:{CONFIG_ENV}", *args]
    else:  # evaluate without -c takes the model's own data section; --set edits it, in the job
        args = [*(f"--set={o}" for o in overrides), *args]
    # jobs/<command>.py in a clone of this project; any directory works where the nodes have it installed
    program = f"jobs/{command}.py" if (workdir / "jobs" / f"{command}.py").is_file() else f"-m pipeline.cli {command}"
    entrypoint = " ".join(["python", program, *(shlex.quote(a) for a in args)])
    _refuse_secrets(entrypoint, env_vars)
    runtime_env["env_vars"] = env_vars
    metadata = {"lstmpipe.command": command, "lstmpipe.config": config_name}
    return JobRequest(entrypoint=entrypoint, runtime_env=runtime_env, metadata=metadata, upload=plan)


def submit(
    command: Command,
    config_path: Path | None,
    overrides: list[str],
    *,
    address: str | None,
    args: list[str],
    workdir: Path,
    follow: Follow,
    submission_id: str | None = None,
) -> JobOutcome:
    cfg = config_mod.load(config_path, overrides)  # bad config fails here, before any upload
    uri = resolve_uri(cfg.tracking)
    if not uri.startswith(("http://", "https://", "databricks")):
        raise ConfigError(
            f"tracking URI {uri} is a file on this machine, which a job on the cluster cannot write; "
            "set MLFLOW_TRACKING_URI (or tracking.uri) to a tracking server, e.g. the one `lstmpipe cluster up` starts"
        )
    check_reachable(uri)
    storage = cfg.train.storage_path
    if command != "evaluate" and "://" not in storage and not storage.startswith(("/", "~")):
        raise ConfigError(
            f"train.storage_path '{storage}' is relative, so the job would keep its checkpoints in its temporary "
            "working directory on the cluster; set it to shared storage, e.g. --set "
            "train.storage_path=s3://BUCKET/runs "
            "(or an absolute path every node sees)"
        )
    request = job_request(
        command,
        cfg,
        config_name=config_path.name if config_path else "",
        overrides=overrides,
        args=args,
        workdir=workdir,
        tracking_uri=uri,
    )
    client = job_client(address)
    print(f"uploading {request.upload.describe()}", file=sys.stderr)
    with upload.staged(request.upload) as staging:
        runtime_env = request.runtime_env | ({"working_dir": str(staging)} if staging else {})
        job_id = client.submit_job(
            entrypoint=request.entrypoint,
            runtime_env=runtime_env,
            submission_id=submission_id,
            metadata=request.metadata,
        )
    print(f"submitted {job_id}: {request.entrypoint}", file=sys.stderr)
    if follow == "detach":
        return JobOutcome(job_id=job_id, status=str(client.get_job_status(job_id).value), exit_code=0)
    return follow_job(client, job_id)


def follow_job(client, job_id: str) -> JobOutcome:
    """Stream the job's logs until it ends; exit 0 on SUCCEEDED, 1 on FAILED, 130 on STOPPED."""

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    try:
        asyncio.run(tail())
        status = wait_terminal(client, job_id)
    except KeyboardInterrupt:
        print(
            f"\nstopped following; job {job_id} keeps running: `lstmpipe jobs stop {job_id}` ends it", file=sys.stderr
        )
        raise
    return JobOutcome(job_id=job_id, status=status, exit_code=EXIT_CODES[status])


def wait_terminal(client, job_id: str, *, timeout_s: float = 60.0) -> str:
    """The log stream ends with the job; its status may take a moment to follow."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def stop(client, job_id: str) -> JobOutcome:
    _known(client, job_id)
    client.stop_job(job_id)
    return JobOutcome(job_id=job_id, status=wait_terminal(client, job_id, timeout_s=30), exit_code=0)


def _known(client, job_id: str):
    try:
        return client.get_job_info(job_id)
    except RuntimeError as err:
        if ray_compat.job_not_found(err):
            raise RunStateError(f"no job {job_id} on this cluster; `lstmpipe jobs list` shows the jobs") from err
        raise PipelineError(f"the Jobs API failed for {job_id}: {_first_line(err)}") from err


def info(client, job_id: str):
    return _known(client, job_id)


def _refuse_secrets(entrypoint: str, env_vars: dict[str, str]) -> None:
    """A job's entrypoint and runtime env are readable by anyone with Jobs API access (`ray job list`)."""
    for where, text in {"the entrypoint": entrypoint, **{f"env var {k}": v for k, v in env_vars.items()}}.items():
        if has_secret(text):
            raise ConfigError(
                f"{where} of this job would carry a credential ({redact(text)[:200]}), readable by anyone with Jobs "
                "API "
                "access; give the cluster its credentials through the nodes' environment instead "
                "(MLFLOW_TRACKING_USERNAME/PASSWORD, AWS_* from a Kubernetes Secret, see infra/k8s)"
            )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
