"""Run names and the state file guarding --resume."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, RunStateError
from pipeline.train import run_state as runs


def test_unique_names_differ():
    assert runs.unique_name("train") != runs.unique_name("train")


def test_new_name_starts(tmp_path):
    assert runs.check_start(str(tmp_path), "a", kind="train", resume=False, config_hash="h") is None


def test_existing_name_without_resume_is_refused_with_how_to_resume(tmp_path):
    runs.write_state(str(tmp_path), "a", runs.RunState(run_id="r", config_hash="h", kind="train"))
    with pytest.raises(RunStateError, match="--name a --resume"):
        runs.check_start(str(tmp_path), "a", kind="train", resume=False, config_hash="h")


def test_resume_returns_state(tmp_path):
    runs.write_state(str(tmp_path), "a", runs.RunState(run_id="r", config_hash="h", kind="train"))
    assert runs.check_start(str(tmp_path), "a", kind="train", resume=True, config_hash="h").run_id == "r"


def test_resume_unknown_or_changed_is_refused(tmp_path):
    with pytest.raises(RunStateError, match="no train run"):
        runs.check_start(str(tmp_path), "missing", kind="train", resume=True, config_hash="h")
    runs.write_state(str(tmp_path), "a", runs.RunState(run_id="r", config_hash="h", kind="train"))
    with pytest.raises(RunStateError, match="config changed"):
        runs.check_start(str(tmp_path), "a", kind="train", resume=True, config_hash="other")
    with pytest.raises(RunStateError, match="is a train run"):
        runs.check_start(str(tmp_path), "a", kind="tune", resume=True, config_hash="h")


def test_storage_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runs.resolve_storage("runs") == str(tmp_path / "runs")
    assert runs.resolve_storage("s3://bucket/x") == "s3://bucket/x"


@pytest.mark.parametrize("name", ["../escape", "/abs/run", "a/b", "", ".hidden", "-x", "a..b", "x" * 101, "ä"])
def test_a_name_that_is_not_one_safe_path_segment_is_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="is not a run name"):
        runs.check_start(str(tmp_path), name, kind="train", resume=False, config_hash="h")
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere


def test_a_claimed_name_is_refused_to_a_second_claim_and_a_dead_owners_lock_is_taken_over(tmp_path):
    held = runs.claim(str(tmp_path), "a")
    with pytest.raises(RunStateError, match="run 'a' .* is in use by another process"):
        runs.claim(str(tmp_path), "a")
    held.release()
    assert not (tmp_path / "a" / runs.LOCK_FILE).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "a" / runs.LOCK_FILE).write_text(f"{socket.gethostname()}:{dead.stdout.strip()}:123:abcd")
    runs.claim(str(tmp_path), "a").release()  # its owner is gone: taken over


RACER = """
import sys, time
from pathlib import Path
from pipeline.errors import RunStateError
from pipeline.train import run_state
go, release = Path(sys.argv[2]), Path(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
try:
    held = run_state.claim(sys.argv[1], "race")
except RunStateError as err:
    print("refused", err, flush=True)
else:
    print("claimed", flush=True)
    while not release.exists():  # hold the name until every racer has answered
        time.sleep(0.01)
    held.release()
"""


def _race(runs_dir: Path, tmp: Path, racers: int) -> list[str]:
    """Start `racers` processes, let them claim at once, and return their answers. Nothing here
    depends on timing: each racer says it is ready, and the winner holds the name until all answered."""
    go, release = tmp / "go", tmp / "release"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(runs_dir), str(go), str(release)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(racers)
    ]
    assert [p.stdout.readline().strip() for p in procs] == ["ready"] * racers
    go.touch()
    answers = sorted(p.stdout.readline().split()[0] for p in procs)
    release.touch()
    for p in procs:
        p.communicate(timeout=60)
    return answers


@pytest.mark.parametrize("stale", ["fresh name", "dead owner's lock"])
def test_processes_racing_for_one_name_exactly_one_wins(tmp_path, stale):
    runs_dir = tmp_path / "runs"
    if stale == "dead owner's lock":  # every racer sees a lock to take over: still only one may
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        (runs_dir / "race").mkdir(parents=True)
        (runs_dir / "race" / runs.LOCK_FILE).write_text(f"{socket.gethostname()}:{dead.stdout.strip()}:123:abcd")
    assert _race(runs_dir, tmp_path, racers=6) == ["claimed"] + ["refused"] * 5


def test_a_resume_whose_data_changed_is_refused_naming_what_changed(tmp_path):
    from pipeline.config import DataConfig
    from pipeline.data.fingerprint import source_fingerprint

    data = tmp_path / "d"
    data.mkdir()
    (data / "a.parquet").write_bytes(b"x" * 10)
    (data / "b.parquet").write_bytes(b"y" * 10)
    cfg = DataConfig(source=str(data), columns={"sequence": "s", "target": "t"})
    before = source_fingerprint(cfg)
    assert sorted(before) == ["a.parquet", "b.parquet"]
    runs.write_state(str(tmp_path), "r", runs.RunState(run_id="r", config_hash="h", kind="train", data=before))
    (data / "a.parquet").write_bytes(b"x" * 12)
    (data / "c.parquet").write_bytes(b"z")
    with pytest.raises(RunStateError, match=r"its data changed .*c.parquet added; a.parquet changed \(size 10 -> 12\)"):
        runs.check_start(str(tmp_path), "r", kind="train", resume=True, config_hash="h", data=source_fingerprint(cfg))
    assert runs.check_start(str(tmp_path), "r", kind="train", resume=True, config_hash="h", data=before)
