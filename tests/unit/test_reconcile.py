"""Runs left RUNNING by a dead driver are found and marked KILLED; live and foreign ones are left alone."""

import os
import subprocess
import sys

from mlflow.tracking import MlflowClient

from pipeline.owner import owner, owner_alive
from pipeline.track import TrackedRun, reconcile


def test_owner_is_alive_for_this_process_and_dead_for_an_exited_one():
    assert owner_alive(owner()) is True
    done = subprocess.run(
        [sys.executable, "-c", "from pipeline.owner import owner; print(owner())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert owner_alive(done.stdout.strip()) is False
    host, pid, ticks = owner().rsplit(":", 2)
    assert owner_alive(f"{host}:{pid}:{int(ticks) + 1}") is False  # same pid, another process
    assert owner_alive(f"elsewhere:{pid}:{ticks}") is None


def test_reconcile_marks_only_dead_owners_runs_killed(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    dead = subprocess.run(
        [sys.executable, "-c", "from pipeline.owner import owner; print(owner())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ids = {
        label: TrackedRun.start(
            uri, experiment="e", run_name=label, params={}, tags={reconcile.OWNER_TAG: owner}
        ).run_id
        for label, owner in [("dead", dead), ("alive", owner()), ("foreign", f"otherhost:{os.getpid()}:1")]
    }
    done = reconcile.reconcile(uri, "e")
    assert done.killed == [ids["dead"]] and done.unknown == [ids["foreign"]]
    c = MlflowClient(uri)
    assert c.get_run(ids["dead"]).info.status == "KILLED"
    assert "gone" in c.get_run(ids["dead"]).data.tags[reconcile.RECONCILED_TAG]
    assert c.get_run(ids["alive"]).info.status == "RUNNING"
    assert reconcile.reconcile(uri, "no-such-experiment").killed == []


def test_runs_reconcile_command_reports_what_it_marked(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli.main import app

    uri = f"sqlite:///{tmp_path}/m.db"
    dead = subprocess.run(
        [sys.executable, "-c", "from pipeline.owner import owner; print(owner())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    run_id = TrackedRun.start(uri, experiment="e", run_name="r", params={}, tags={reconcile.OWNER_TAG: dead}).run_id
    out = CliRunner().invoke(app, ["runs", "reconcile", "-e", "e", "--tracking-uri", uri])
    assert out.exit_code == 0 and f"{run_id} KILLED" in out.output
    again = CliRunner().invoke(app, ["runs", "reconcile", "-e", "e", "--tracking-uri", uri])
    assert "no RUNNING runs left behind in 'e'" in again.output
