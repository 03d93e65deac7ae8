"""A multi-node Ray cluster and an MLflow tracking server on 127.0.0.1: `lstmpipe cluster up|down|status`.

For development and for the tests: a Ray head and N worker nodes, each its own raylet started by
`ray start --block` in its own process group, with token authentication on and the dashboard (the
Jobs API) bound to 127.0.0.1; and `mlflow server` (SQLite backend store, --serve-artifacts with a
local artifact root) on 127.0.0.1. The nodes run with this project's venv first on PATH, so a
submitted job's `python` is ours. Every pid goes to STATE_DIR/cluster.json, and `down` stops exactly
those process groups, nothing else on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.cluster import mlflow_auth, mlflow_server
from pipeline.errors import RunStateError
from pipeline.owner import start_ticks
from pipeline.ray_compat import RAYLET_START_TIMEOUT

STATE_FILE = "cluster.json"
BIN = Path(sys.executable).parent
# A worker node whose raylet missed Ray's fixed 30 s registration window (a loaded machine) is started
# again, up to this many times in all; any other failure is raised at once.
NODE_START_ATTEMPTS = 3


@dataclass(frozen=True)
class Proc:
    role: str  # "head", "worker-1", ..., "mlflow"
    pid: int
    log: str
    started: str = ""  # its start time (pipeline.owner.start_ticks): a reused pid is not this process


@dataclass(frozen=True)
class LocalCluster:
    state_dir: str
    gcs_address: str  # 127.0.0.1:PORT, what `ray start --address` joins
    dashboard_url: str  # the Jobs API: RAY_ADDRESS for `lstmpipe submit` and `ray job`
    tracking_uri: str
    token_path: str
    nodes: int
    ray_temp_dir: str  # one Ray temp dir per node below it (see _ray_start)
    procs: list[Proc] = field(default_factory=list)
    auth: str = "none"  # the MLflow server's: "none" or "basic" (mlflow_auth.py)

    def client_env(self) -> dict[str, str]:
        """What a shell needs to submit jobs to this cluster and read its MLflow server."""
        return {
            "RAY_ADDRESS": self.dashboard_url,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": self.token_path,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
        } | ({"MLFLOW_TRACKING_USERNAME": mlflow_auth.ADMIN} if self.auth == "basic" else {})

    def password_path(self) -> Path | None:
        return Path(self.state_dir) / "mlflow_password" if self.auth == "basic" else None


@dataclass(frozen=True)
class ClusterStatus:
    cluster: LocalCluster
    alive: dict[str, bool]  # role -> process alive
    nodes_alive: int
    mlflow_healthy: bool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def up(
    state_dir: Path,
    *,
    workers: int = 1,
    cpus_per_node: int = 1,
    dashboard_port: int = 8265,
    mlflow_port: int = 5000,
    auth: mlflow_auth.Auth = "none",
    timeout_s: float = 120.0,
) -> LocalCluster:
    state_dir = state_dir.resolve()
    if (existing := read(state_dir)) is not None and any(_alive(p.pid) for p in existing.procs):
        raise RunStateError(
            f"a local cluster from {state_dir} is already up; stop it with `lstmpipe cluster down --state-dir "
            f"{state_dir}`"
        )
    for port, flag in ((dashboard_port, "--dashboard-port"), (mlflow_port, "--mlflow-port")):
        if not _port_free(port):
            raise RunStateError(f"port {port} on 127.0.0.1 is in use; pick another with {flag}")
    state_dir.mkdir(parents=True, exist_ok=True)
    token_path = state_dir / "auth_token"
    write_token(token_path)
    env = _node_env(token_path)
    mlflow_env = mlflow_server.server_env(env)
    if auth == "basic":
        files = mlflow_auth.write_auth(state_dir)
        mlflow_env |= files.server_env()
        # the nodes log as the admin: a job's driver and rank 0 read these from their node's environment
        env |= {"MLFLOW_TRACKING_USERNAME": mlflow_auth.ADMIN, "MLFLOW_TRACKING_PASSWORD": files.password.read_text()}
    gcs = f"127.0.0.1:{free_port()}"
    # Short (Ray's socket paths must stay under 108 bytes) and outside the state dir.
    ray_temp = Path(tempfile.mkdtemp(prefix="lstmpipe-"))
    cluster = LocalCluster(
        state_dir=str(state_dir),
        gcs_address=gcs,
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        tracking_uri=f"http://127.0.0.1:{mlflow_port}",
        token_path=str(token_path),
        nodes=1 + workers,
        ray_temp_dir=str(ray_temp),
        auth=auth,
    )
    procs: list[Proc] = []
    try:
        procs.append(
            _spawn(
                "head",
                _ray_start(
                    [
                        "--head",
                        f"--port={gcs.split(':')[1]}",
                        "--dashboard-host=127.0.0.1",
                        f"--dashboard-port={dashboard_port}",
                        "--include-dashboard=true",
                    ],
                    cpus_per_node,
                    temp_dir=ray_temp / "node0",
                ),
                env=env,
                state_dir=state_dir,
            )
        )
        _wait(lambda: _nodes_alive(cluster) >= 1, procs, what="the Ray head", timeout_s=timeout_s)
        server = mlflow_server.command(BIN, state_dir=state_dir, port=mlflow_port, auth=auth)
        procs.append(_spawn("mlflow", server, env=mlflow_env, state_dir=state_dir))
        for i in range(1, workers + 1):
            # The custom resource names the node's role, so a node id maps back to the process group to stop.
            role = f"worker-{i}"
            command = _ray_start(
                [f"--address={gcs}", f"--resources={json.dumps({role_resource(role): 1})}"],
                cpus_per_node,
                temp_dir=ray_temp / f"node{i}",
            )
            procs.append(_start_worker(role, command, cluster=cluster, procs=procs, env=env, timeout_s=timeout_s))
        _wait(
            lambda: _nodes_alive(cluster) >= cluster.nodes,
            procs,
            what=f"{cluster.nodes} Ray nodes",
            timeout_s=timeout_s,
        )
        _wait(lambda: mlflow_server.healthy(cluster.tracking_uri), procs, what="the MLflow server", timeout_s=timeout_s)
    except BaseException:
        _stop(procs)
        shutil.rmtree(ray_temp, ignore_errors=True)
        raise
    cluster = LocalCluster(**{**asdict(cluster), "procs": procs})
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(cluster), indent=2))
    return cluster


def down(state_dir: Path) -> LocalCluster:
    cluster = read(state_dir.resolve())
    if cluster is None:
        raise RunStateError(f"no local cluster state in {state_dir.resolve()}; nothing to stop")
    _stop(cluster.procs)
    shutil.rmtree(cluster.ray_temp_dir, ignore_errors=True)
    (Path(cluster.state_dir) / STATE_FILE).unlink()
    return cluster


def status(state_dir: Path) -> ClusterStatus:
    cluster = read(state_dir.resolve())
    if cluster is None:
        raise RunStateError(f"no local cluster state in {state_dir.resolve()}; start one with `lstmpipe cluster up`")
    return ClusterStatus(
        cluster=cluster,
        alive={p.role: _alive(p.pid) for p in cluster.procs},
        nodes_alive=_nodes_alive(cluster),
        mlflow_healthy=mlflow_server.healthy(cluster.tracking_uri),
    )


def read(state_dir: Path) -> LocalCluster | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        cluster = LocalCluster(**{**raw, "procs": [Proc(**p) for p in raw["procs"]]})
        if not Path(cluster.token_path).is_file():
            raise FileNotFoundError(cluster.token_path)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise RunStateError(
            f"{path} is not a local cluster's state (unreadable, incomplete or its token file is gone); stop what is "
            f"left by hand (`ray stop`) and remove {state_dir}, then `lstmpipe cluster up` again"
        ) from err
    return cluster


def _node_env(token_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    return env | {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_path),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # a job's `python` is this venv's
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def _ray_start(args: list[str], cpus: int, *, temp_dir: Path) -> list[str]:
    """`ray start --block`: stays in the foreground as the parent of the node's processes.
    Several raylets share this host, so every per-node port is picked free, and each node gets its
    own temp dir: in a shared one, a node unpacking a job's working_dir would replace the directory
    the job's driver runs in on another node."""
    ports = {
        flag: free_port()
        for flag in (
            "--node-manager-port",
            "--object-manager-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--metrics-export-port",
            "--runtime-env-agent-port",
        )
    }
    return [
        str(BIN / "ray"),
        "start",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--num-cpus={cpus}",
        "--num-gpus=0",
        "--min-worker-port=0",
        "--max-worker-port=0",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        *args,
        *(f"{flag}={port}" for flag, port in ports.items()),
    ]


def _start_worker(
    role: str, command: list[str], *, cluster: LocalCluster, procs: list[Proc], env: dict[str, str], timeout_s: float
) -> Proc:
    """One worker node, joined before the next starts (nodes starting together on a busy machine can
    miss Ray's fixed 30 s raylet registration window); a node that timed out in that window is
    started again, NODE_START_ATTEMPTS times in all."""
    state_dir, joined = Path(cluster.state_dir), len(procs) - 1  # the head and the nodes so far (not mlflow)
    for attempt in range(1, NODE_START_ATTEMPTS + 1):
        proc = _spawn(role, command, env=env, state_dir=state_dir)
        try:
            _wait(
                lambda: _nodes_alive(cluster) >= joined + 1,
                [*procs, proc],
                what=f"Ray node {role}",
                timeout_s=timeout_s,
            )
            return proc
        except RunStateError:
            log = Path(proc.log).read_text(errors="replace")
            if attempt == NODE_START_ATTEMPTS or RAYLET_START_TIMEOUT not in log:
                raise
            _stop([proc])
    raise AssertionError("unreachable")


def _spawn(role: str, cmd: list[str], *, env: dict[str, str], state_dir: Path) -> Proc:
    log = state_dir / f"{role}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )  # its own process group: `down` stops exactly it
    return Proc(role=role, pid=proc.pid, log=str(log), started=start_ticks(proc.pid) or "")


def _wait(ready, procs: list[Proc], *, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        for p in procs:
            if not _alive(p.pid):
                tail = Path(p.log).read_text(errors="replace").strip().splitlines()[-3:]
                raise RunStateError(f"{p.role} exited while waiting for {what}; see {p.log}: {' | '.join(tail)}")
        time.sleep(1.0)
    raise RunStateError(f"{what} did not come up within {timeout_s:.0f} s; see the logs in {Path(procs[0].log).parent}")


def _stop(procs: list[Proc], *, grace_s: float = 10.0) -> None:
    """SIGTERM the worker nodes' process groups, then the head's and MLflow's; SIGKILL what stays."""
    procs = [p for p in procs if _is_ours(p)]  # a pid the system gave to another process is left alone
    workers = [p for p in procs if p.role.startswith("worker")]
    for wave in (workers, [p for p in procs if p not in workers]):
        for p in wave:
            _signal_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(_alive(p.pid) for p in wave) and time.monotonic() < deadline:
            time.sleep(0.2)
        for p in wave:
            _signal_group(p.pid, signal.SIGKILL)


def _is_ours(proc: Proc) -> bool:
    """The stored pid is still the process `cluster up` started (same start time), not a reuse."""
    now = start_ticks(proc.pid)
    return now is not None and (not proc.started or now == proc.started or "?" in (now, proc.started))


def write_token(path: Path) -> None:
    """A fresh 256-bit token, in a file only its owner can read from the moment it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that already existed keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # started with start_new_session: the group id is the pid
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and "zombie" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return next(
            line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:")
        ).lower()
    except (OSError, StopIteration):
        return ""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def role_resource(role: str) -> str:
    return f"lstmpipe_{role.replace('-', '_')}"


def _nodes_alive(cluster: LocalCluster) -> int:
    """ALIVE nodes, from the dashboard's state API (authenticated with the cluster's token)."""
    token = Path(cluster.token_path).read_text().strip()
    request = urllib.request.Request(
        f"{cluster.dashboard_url}/api/v0/nodes?limit=1000", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return 0
    nodes = body.get("data", {}).get("result", {}).get("result", [])
    return sum(1 for n in nodes if n.get("state") == "ALIVE")
