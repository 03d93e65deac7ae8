"""Submitting jobs, without a cluster: what gets uploaded, what is refused before anything is sent."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cluster import connect as cluster
from pipeline.cluster import submit as submission
from pipeline.cluster import upload
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
LSTMPIPE = [sys.executable, "-m", "pipeline.cli"]


def make_tree(root: Path, files: dict[str, int]) -> None:
    for rel, size in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x" * size)


CODE = {"pipeline/a.py": 10, "pipeline/data/ingest.py": 4, "jobs/train.py": 7, "conf/x.yaml": 5, "pyproject.toml": 3}
# every kind of secret a working directory was seen to hold; the local cluster's state dir is .lstmpipe
PLANTED = [
    ".env",
    ".aws/credentials",
    ".ssh/id_rsa",
    ".netrc",
    ".git-credentials",
    "service-account.json",
    "results.sqlite",
    "mlflow.db",
    ".lstmpipe/auth_token",
    ".lstmpipe/cluster.json",
]


def test_only_the_projects_code_and_configs_are_uploaded(tmp_path):
    make_tree(
        tmp_path,
        {
            **CODE,
            **dict.fromkeys(PLANTED, 40),
            ".venv/lib/torch.so": 1000,
            ".git/objects/x": 100,
            "mlruns/1/meta.yaml": 50,
            "data/adding/x.parquet": 300,
            "runs/r/ckpt.pt": 400,
            "notes/todo.md": 9,
            "pipeline/__pycache__/a.cpython-311.pyc": 30,
        },
    )
    plan = upload.plan_upload(tmp_path, needed=[])
    assert plan.paths == tuple(sorted(CODE)) and plan.bytes == sum(CODE.values())
    assert plan.describe() == f"5 files, 0.0 MB from {tmp_path}"


@pytest.mark.parametrize("secret", PLANTED + ["conf/.env.prod", "jobs/deploy.pem", "conf/kubeconfig"])
def test_a_credential_inside_the_uploaded_folders_is_refused_by_name(tmp_path, secret):
    make_tree(tmp_path, {**CODE, f"conf/{secret}" if not secret.startswith(("conf/", "jobs/")) else secret: 40})
    with pytest.raises(ConfigError, match=r"look like credentials \(.*" + Path(secret).name.replace(".", r"\.")):
        upload.plan_upload(tmp_path, needed=[])


@pytest.mark.parametrize(
    "name, text",
    [
        ("conf/prod.yaml", "tracking:\n  password: hunter22\n"),
        ("conf/prod.yaml", "tracking: {uri: 'https://alice:s3cr3t@mlflow.example.com'}\n"),
        ("conf/keys.json", '{"aws": {"secret_access_key": "abc/def+ghi"}}'),
        ("conf/hosts.txt", "postgresql://mlflow:pa55word@db:5432/mlflow\n"),
    ],
)
def test_a_config_file_with_a_secret_in_its_text_is_refused(tmp_path, name, text):
    make_tree(tmp_path, CODE)
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=f"look like credentials \\({name}"):
        upload.plan_upload(tmp_path, needed=[])


def test_gitignore_and_rayignore_are_honoured_at_every_level(tmp_path):
    make_tree(tmp_path, {**CODE, "conf/local/mine.yaml": 4, "pipeline/scratch.py": 2, "jobs/big.npy": 9})
    (tmp_path / ".gitignore").write_text("conf/local/\n")
    (tmp_path / ".rayignore").write_text("*.npy\n")
    (tmp_path / "pipeline" / ".gitignore").write_text("scratch.py\n")
    plan = upload.plan_upload(tmp_path, needed=[])
    assert set(plan.paths) == set(CODE) | {"pipeline/.gitignore"}


def test_the_files_a_job_reads_go_along_even_when_ignored(tmp_path):
    """A config's file source and a path argument (--data, --model) are uploaded; others stay here."""
    from pipeline import config

    make_tree(
        tmp_path,
        {**CODE, "mydata/train.parquet": 20, "runs/r/epoch_0009/model.pt": 30, "runs/r/epoch_0009/meta.json": 2},
    )
    (tmp_path / ".gitignore").write_text("mydata/\nruns/\n")
    cfg = config.validate({"data": {"source": "mydata/train.parquet"}})
    needed = submission.needed_files(cfg, ["--model", "runs/r/epoch_0009", "--data=nothere.csv"], workdir=tmp_path)
    assert needed == [Path("mydata/train.parquet"), Path("runs/r/epoch_0009")]
    plan = upload.plan_upload(tmp_path, needed=[*needed, Path("/etc/hostname")])
    assert set(plan.paths) == set(CODE) | {
        "mydata/train.parquet",
        "runs/r/epoch_0009/model.pt",
        "runs/r/epoch_0009/meta.json",
    }


def test_what_ray_packages_is_exactly_the_plan(tmp_path):
    """The staged folder holds the planned files and nothing else, and Ray's own packaging (which
    reads .gitignore files) takes all of them."""
    from ray._private.runtime_env.packaging import _dir_travel

    make_tree(tmp_path, {**CODE, ".env": 5, "data/x.parquet": 9})
    (tmp_path / "conf" / ".gitignore").write_text("*.tmp\n")
    plan = upload.plan_upload(tmp_path, needed=[])
    with upload.staged(plan) as staging:
        packaged = []
        keep = lambda p: p.is_file() and packaged.append(p.relative_to(staging).as_posix())
        _dir_travel(staging, [], keep, include_gitignore=True)
    assert sorted(packaged) == list(plan.paths) and not staging.exists()
    with upload.staged(upload.plan_upload(tmp_path / "data", needed=[])) as nothing:
        assert nothing is None


def test_upload_over_the_limit_is_refused_naming_the_largest_file(tmp_path, monkeypatch):
    monkeypatch.setattr(upload, "MAX_UPLOAD_MB", 1)
    make_tree(tmp_path, {"conf/x.yaml": 10, "conf/huge.bin": 3 * 2**20})
    with pytest.raises(ConfigError, match=r"would upload 3 MB from .* \(limit 1 MB\).*conf/huge.bin"):
        upload.plan_upload(tmp_path, needed=[])


MOUNTS = """\
/dev/sda1 / ext4 rw 0 0
nas:/export /mnt/shared nfs4 rw 0 0
tmpfs /tmp tmpfs rw 0 0
"""


@pytest.mark.parametrize(
    "storage, hosts, ok",
    [
        ("/home/u/runs", ["10.0.0.1", "10.0.0.1"], True),  # one host: its disk is shared by its nodes
        ("/home/u/runs", ["10.0.0.1", "10.0.0.2"], False),  # two hosts, node-local disk
        ("/tmp/runs", ["10.0.0.1", "10.0.0.2"], False),
        ("/mnt/shared/runs", ["10.0.0.1", "10.0.0.2"], True),  # NFS
        ("s3://bucket/runs", ["10.0.0.1", "10.0.0.2"], True),
        ("file:///home/u/runs", ["10.0.0.1", "10.0.0.2"], False),
    ],
)
def test_multi_host_runs_need_shared_storage(storage, hosts, ok):
    if ok:
        cluster.check_shared_storage(storage, hosts=hosts, mounts=MOUNTS)
    else:
        with pytest.raises(
            ConfigError, match=r"train.storage_path .* node-local .* 2 hosts \(10.0.0.1, 10.0.0.2\).*s3://"
        ):
            cluster.check_shared_storage(storage, hosts=hosts, mounts=MOUNTS)


def run_cli(*args, env_extra=None, cwd=ROOT):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "MLFLOW_"))} | (env_extra or {})
    return subprocess.run([*LSTMPIPE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_submit_fails_before_any_upload():
    bad_key = run_cli(
        "submit", "train", "-c", "conf/smoke.yaml", "--set", "model.hiden_size=3", "--address", "http://127.0.0.1:9"
    )
    assert bad_key.returncode == 2 and "did you mean 'model.hidden_size'" in bad_key.stderr
    no_address = run_cli(
        "submit", "train", "-c", "conf/smoke.yaml", env_extra={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    )
    assert no_address.returncode == 2
    assert "unreachable" in no_address.stderr or "no Ray cluster address" in no_address.stderr
    no_conf = run_cli("submit", "tune", "--address", "http://127.0.0.1:9")
    assert no_conf.returncode == 2 and "needs --config" in no_conf.stderr
    for r in (bad_key, no_address, no_conf):
        assert "Traceback" not in r.stderr


def test_cluster_commands_without_a_cluster_say_so(tmp_path):
    for command in ("status", "down"):
        r = run_cli("cluster", command, "--state-dir", str(tmp_path / "none"))
        assert r.returncode == 2 and "no local cluster state" in r.stderr and "Traceback" not in r.stderr


def test_a_jobs_env_and_entrypoint_name_no_path_of_this_machine(tmp_path, monkeypatch):
    """What a remote cluster's nodes receive must resolve there: the config travels as text, Ray Data's
    logging config as the module path of a setup hook each node resolves itself."""
    from pipeline import config

    monkeypatch.delenv("RAY_DATA_LOGGING_CONFIG", raising=False)
    make_tree(tmp_path, {"jobs/train.py": 10, "pipeline/__init__.py": 1, "conf/x.yaml": 5})
    cfg = config.validate({"train": {"storage_path": "s3://bucket/runs"}})
    request = submission.job_request(
        "train",
        cfg,
        config_name="x.yaml",
        overrides=[],
        args=["--name", "r1"],
        workdir=tmp_path,
        tracking_uri="http://mlflow.internal:5000",
    )
    env = request.runtime_env
    assert env["worker_process_setup_hook"] == "pipeline.ray_compat.setup_process"
    assert "working_dir" not in env  # the staged upload is added at submit, then Ray's gcs:// URI replaces it
    assert request.metadata == {"lstmpipe.command": "train", "lstmpipe.config": "x.yaml"}
    shipped = [request.entrypoint, *env["env_vars"].values(), *request.metadata.values()]
    for local in (str(tmp_path), str(ROOT), sys.prefix, os.path.expanduser("~")):
        assert not [text for text in shipped if local in text], local
    assert "RAY_DATA_LOGGING_CONFIG" not in env["env_vars"]
    assert request.entrypoint == "python jobs/train.py -c env:LSTMPIPE_CONFIG --name r1"


@pytest.mark.parametrize(
    "uri",
    [
        "https://ghp_abcdefghijklmnopqrstuvwx12@mlflow.example.com",  # a token as the URI's user
        "https://alice:p@ss@mlflow.example.com",  # a password holding "@"
        "https://AKIAXYZ:wJalr/K7MDENG+bPx@mlflow.example.com",  # a secret holding "/"
        "https://mlflow.example.com/?sig=abc123",
    ],
)
def test_a_job_whose_env_would_carry_a_credential_is_refused(tmp_path, uri):
    from pipeline import config

    make_tree(tmp_path, CODE)
    cfg = config.validate({"train": {"storage_path": "s3://bucket/runs"}})
    with pytest.raises(ConfigError, match="env var MLFLOW_TRACKING_URI of this job would carry a credential"):
        submission.job_request(
            "train", cfg, config_name="x.yaml", overrides=[], args=[], workdir=tmp_path, tracking_uri=uri
        )


def test_cluster_down_signals_only_the_processes_it_started(tmp_path):
    """A pid in cluster.json that the system has since given to another process is left alone."""
    from pipeline.cluster import local
    from pipeline.owner import start_ticks

    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        reused = local.Proc(role="head", pid=other.pid, log="x", started=str(int(start_ticks(other.pid)) - 5))
        local._stop([reused], grace_s=0.5)
        assert other.poll() is None  # not the process `cluster up` started: untouched
        local._stop([local.Proc(role="head", pid=other.pid, log="x", started=start_ticks(other.pid))], grace_s=5)
        assert not local._alive(other.pid)  # ours: stopped
    finally:
        other.kill()
        other.wait()


def test_the_clusters_token_file_is_private_from_its_creation(tmp_path, monkeypatch):
    from pipeline.cluster import local

    created = []
    real_open = os.open
    monkeypatch.setattr(
        local.os, "open", lambda p, flags, mode=0o777: created.append(mode) or real_open(p, flags, mode)
    )
    old = tmp_path / "auth_token"
    old.write_text("old")
    old.chmod(0o644)
    local.write_token(old)
    assert created == [0o600] and old.stat().st_mode & 0o777 == 0o600 and len(old.read_text()) == 64


def test_this_repository_uploads_without_looking_like_credentials():
    """What `lstmpipe submit` would upload from this checkout (conf/ included) passes the credential
    check: a comment such as `... one token: ...` in a shipped config reads as a secret."""
    repo = Path(__file__).resolve().parents[2]
    plan = upload.plan_upload(repo, needed=[])
    assert "conf/experiments/ui_strings_fr.yaml" in plan.paths


def _node_start(tmp_path, monkeypatch, *, failures: list[str]):
    """`_start_worker` with `ray start` replaced: attempt i writes failures[i] to its log and exits
    (a node that never registers), the attempt after the last failure joins."""
    from pipeline.cluster import local

    spawned, stopped = [], []

    def spawn(role, cmd, *, env, state_dir):
        log = tmp_path / f"{role}-{len(spawned)}.log"
        log.write_text(failures[len(spawned)] if len(spawned) < len(failures) else "started")
        spawned.append(log)
        return local.Proc(role=role, pid=10_000 + len(spawned), log=str(log))

    def wait(ready, procs, *, what, timeout_s):
        if Path(procs[-1].log).read_text() != "started":
            raise local.RunStateError(f"{procs[-1].role} exited while waiting for {what}")

    monkeypatch.setattr(local, "_spawn", spawn)
    monkeypatch.setattr(local, "_wait", wait)
    monkeypatch.setattr(local, "_stop", stopped.extend)
    blank = dict.fromkeys(("gcs_address", "dashboard_url", "tracking_uri", "token_path", "ray_temp_dir"), "")
    cluster = local.LocalCluster(state_dir=str(tmp_path), nodes=3, **blank)
    head = local.Proc(role="head", pid=1, log="head.log")
    start = lambda: local._start_worker("worker-1", ["ray"], cluster=cluster, procs=[head], env={}, timeout_s=1)
    return start, spawned, stopped


def test_a_node_that_missed_rays_registration_window_is_started_again(tmp_path, monkeypatch):
    from pipeline.cluster import local
    from pipeline.ray_compat import RAYLET_START_TIMEOUT

    missed = f"Exception: {RAYLET_START_TIMEOUT}. This could happen because ..."
    start, spawned, stopped = _node_start(tmp_path, monkeypatch, failures=[missed] * (local.NODE_START_ATTEMPTS - 1))
    proc = start()
    assert len(spawned) == local.NODE_START_ATTEMPTS and Path(proc.log).read_text() == "started"
    assert len(stopped) == local.NODE_START_ATTEMPTS - 1  # each attempt that missed the window was stopped

    start, spawned, _ = _node_start(tmp_path, monkeypatch, failures=[missed] * local.NODE_START_ATTEMPTS)
    with pytest.raises(local.RunStateError, match="exited while waiting"):
        start()
    assert len(spawned) == local.NODE_START_ATTEMPTS  # then it gives up


def test_a_node_that_failed_for_another_reason_is_not_started_again(tmp_path, monkeypatch):
    from pipeline.cluster import local

    start, spawned, _ = _node_start(tmp_path, monkeypatch, failures=["ValueError: bad --num-cpus"])
    with pytest.raises(local.RunStateError):
        start()
    assert len(spawned) == 1
