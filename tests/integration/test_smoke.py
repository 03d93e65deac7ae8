"""`lstmpipe smoke` end to end, as a newcomer runs it: no arguments, a fresh working directory, its
own Ray instance, and a console with nothing on it that the product did not write."""

import json
import os
import re
import subprocess
import sys

from mlflow.tracking import MlflowClient

# stderr lines a clean smoke run may print besides its own: none. A line here needs a reason.
STDERR_ALLOWED: tuple[re.Pattern, ...] = ()
# What the product itself writes to stderr (none of it in a clean run): errors and notices.
OWN_STDERR = re.compile(r"^(error: |marked \d+ run\(s\) )")


def test_smoke_runs_the_whole_path_and_prints_only_its_own_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LSTMPIPE_LOG")}
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "smoke", "--summary-json", "summary.json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env | {"RAY_ADDRESS": ""},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    foreign = [
        line
        for line in out.stderr.splitlines()
        if line.strip() and not OWN_STDERR.match(line) and not any(p.search(line) for p in STDERR_ALLOWED)
    ]
    assert not foreign, "stderr lines the product did not write:\n" + "\n".join(foreign[:20])
    # stdout: the product's lines, Tune's trial table, and every epoch line of every run, none folded
    assert "(raylet)" not in out.stdout and "repeated" not in out.stdout, out.stdout[-3000:]
    epochs: dict[str, list[int]] = {}
    for name, epoch in re.findall(r"\[([\w-]+)\] epoch (\d+)/5  train_loss=", out.stdout):
        epochs.setdefault(name, []).append(int(epoch))
    assert len(epochs) == 3 and all(sorted(e) == list(range(1, len(e) + 1)) for e in epochs.values()), epochs

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    assert list((tmp_path / "data" / "adding").glob("*.parquet"))
    assert set(summary["best_config"]) == {"model.hidden_size", "model.cell"}
    assert len(summary["child_run_ids"]) == 2
    assert summary["registered_model"] == "smoke/1"
    for part in (summary, summary["train"]):
        m = part["metrics"]
        assert {"val_loss", "val_mse", "test_mse", "baseline_test_mse"} <= set(m)
    # the 2-worker training run learns the adding problem well past the baseline
    assert summary["train"]["metrics"]["test_mse"] < 0.5 * summary["train"]["metrics"]["baseline_test_mse"]
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db" in out.stdout
    assert set(summary["train"]["phase_s"]) == {"start", "data", "fit", "finish"}

    client = MlflowClient(summary["tracking_uri"])
    train = client.get_run(summary["train"]["run_id"])
    assert train.data.tags["lstmpipe.world_size"] == "2" and epochs[train.info.run_name] == [1, 2, 3, 4, 5]
    assert client.get_model_version_by_alias("smoke", "champion")
    for run_id in summary["child_run_ids"]:
        # a trial that trained every epoch ran to its own end (tested, closed, no error); one ASHA
        # stopped at a rung is closed by the sweep, tagged
        trial = client.get_run(run_id)
        assert trial.info.status == "FINISHED", trial.data.tags
        if len(epochs[trial.info.run_name]) == 5:
            assert "test_mse" in trial.data.metrics and "lstmpipe.error" not in trial.data.tags, trial.data.tags
        else:
            assert trial.data.tags.get("lstmpipe.stopped_early") == "true"
