"""Submitting jobs, without a cluster: what gets uploaded, what is refused before anything is sent."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cluster import connect as cluster
from pipeline.cluster import submit as submission
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
LSTMPIPE = [sys.executable, "-m", "pipeline.cli"]


def make_tree(root: Path, files: dict[str, int]) -> None:
    for rel, size in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x" * size)


def test_upload_leaves_out_venvs_stores_data_and_checkpoints(tmp_path):
    make_tree(
        tmp_path,
        {
            "pipeline/a.py": 10,
            "pipeline/data/ingest.py": 4,  # the package's data step, not the datasets' cache
            "pipeline/train/runs.py": 2,
            "conf/x.yaml": 5,
            "jobs/train.py": 7,
            ".venv/lib/torch.so": 1000,
            ".git/objects/x": 100,
            "mlruns/1/meta.yaml": 50,
            "mlflow.db": 500,
            "data/adding/x.parquet": 300,
            "runs/r/ckpt.pt": 400,
            "pkg/__pycache__/a.pyc": 30,
            "my_cache/big.parquet": 900,
        },
    )
    plan = submission.upload_plan(tmp_path, extra_excludes=["/my_cache"])
    assert (plan.files, plan.bytes) == (5, 28)
    assert {"/.venv", "/mlruns", "/mlflow.db", "/data", "/runs", "/my_cache"} <= set(plan.excludes)


def test_excludes_read_as_ray_reads_them(tmp_path):
    """What upload_plan counts is what Ray uploads: its own packaging, with the same excludes."""
    from ray._private.runtime_env.packaging import _dir_travel
    from ray._private.runtime_env.packaging import _get_excludes as ray_excludes

    make_tree(
        tmp_path,
        {
            "pipeline/data/ingest.py": 4,
            "data/adding/x.parquet": 300,
            "runs/r/a.json": 3,
            "conf/x.yaml": 5,
            "pkg/__pycache__/a.pyc": 30,
        },
    )
    uploaded = []
    keep = lambda p: p.is_file() and uploaded.append(p.relative_to(tmp_path).as_posix())
    _dir_travel(tmp_path, [ray_excludes(tmp_path, submission.EXCLUDES)], keep, include_gitignore=True)
    plan = submission.upload_plan(tmp_path, extra_excludes=[])
    assert sorted(uploaded) == ["conf/x.yaml", "pipeline/data/ingest.py"] and plan.files == 2


def test_upload_over_the_limit_is_refused_naming_the_largest_file(tmp_path, monkeypatch):
    monkeypatch.setattr(submission, "MAX_UPLOAD_MB", 1)
    make_tree(tmp_path, {"conf/x.yaml": 10, "scratch/huge.bin": 3 * 2**20})
    with pytest.raises(ConfigError, match=r"would upload 3 MB \(limit 1 MB\).*scratch/huge.bin"):
        submission.upload_plan(tmp_path, extra_excludes=[])


def test_config_dirs_inside_the_working_directory_are_excluded(tmp_path, monkeypatch):
    from pipeline import config

    monkeypatch.chdir(tmp_path)
    cfg = config.validate({"data": {"cache_dir": "cache/d"}, "train": {"storage_path": str(tmp_path / "ckpts")}})
    assert submission._relative_dirs(cfg, tmp_path) == ["/cache/d", "/ckpts"]
    cfg = config.validate({"train": {"storage_path": "s3://bucket/runs"}, "data": {"cache_dir": "/elsewhere"}})
    assert submission._relative_dirs(cfg, tmp_path) == []


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
        config_given=True,
        overrides=[],
        args=["--name", "r1"],
        workdir=tmp_path,
        tracking_uri="http://mlflow.internal:5000",
    )
    env = request.runtime_env
    assert env["worker_process_setup_hook"] == "pipeline.ray_compat.setup_process"
    assert env["working_dir"] == str(tmp_path)  # uploaded by Ray, replaced by a gcs:// URI
    shipped = [request.entrypoint, *env["env_vars"].values()]
    for local in (str(tmp_path), str(ROOT), sys.prefix, os.path.expanduser("~")):
        assert not [text for text in shipped if local in text], local
    assert "RAY_DATA_LOGGING_CONFIG" not in env["env_vars"]
    assert request.entrypoint == "python jobs/train.py -c env:LSTMPIPE_CONFIG --name r1"
