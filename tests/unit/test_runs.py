"""Run names and the state file guarding --resume."""

import pytest

from pipeline.errors import RunStateError
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
