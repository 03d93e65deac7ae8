"""`tune`: a sweep of TorchTrainer trials, one MLflow parent run with nested child runs, champion alias."""

import numpy as np
import pytest
from helpers import load_served

from pipeline import config
from pipeline.tune.sweep import run_sweep


def test_sweep_tracks_parent_children_and_champion(tiny_raw, splits, mlflow_client):
    raw = {
        **tiny_raw,
        "tune": {
            "num_samples": 1,
            "search": "grid",
            "scheduler": "asha",
            "trial_workers": 1,
            "space": {"model.hidden_size": {"choice": [4, 8]}, "model.cell": {"choice": ["lstm", "cifg"]}},
        },
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-sweep", "promote": {"must_beat": ["champion"]}},
    }
    summary = run_sweep(config.validate(raw), name="s-basic", splits=splits)
    assert summary.promotion.startswith("promoted to @champion")  # a sweep's champion passes the same gate

    assert summary.status == "FINISHED"
    assert set(summary.best_config) == {"model.hidden_size", "model.cell"}
    parent = mlflow_client.get_run(summary.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["lstmpipe.kind"] == "sweep"
    assert len(summary.child_run_ids) == 4  # the grid: 2 cells x 2 sizes
    for child_id in summary.child_run_ids:
        child = mlflow_client.get_run(child_id)
        assert child.data.tags["mlflow.parentRunId"] == summary.run_id
        assert child.info.status == "FINISHED"  # also when ASHA stopped it (tagged stopped_early)
        assert child.data.params["train.workers"] == "1"
        steps = [m.step for m in mlflow_client.get_metric_history(child_id, "val_loss")]
        assert steps and sorted(steps) == list(range(len(steps)))  # logged by the sweep driver, each once
        assert not {"training_iteration", "time_total_s", "timestamp", "done", "pid"} & set(child.data.metrics)
        # the worker's tags from the trial's last checkpoint (set by the sweep driver where ASHA stopped the trial)
        assert child.data.tags["lstmpipe.world_size"] == "1" and child.data.tags["lstmpipe.worker_nodes"]
    assert "test_mse" in parent.data.metrics
    # the parent's learning curves come from the best trial's epochs; the report compares the trials
    plots = {a.path: a.file_size for a in mlflow_client.list_artifacts(summary.run_id, "plots")}
    assert {"plots/learning_curves.png", "plots/metric_by_cell.png", "plots/importance.png"} == set(plots)
    assert min(plots.values()) > 1000
    reports = {a.path: a.file_size for a in mlflow_client.list_artifacts(summary.run_id, "report")}
    assert {"report/trials.csv", "report/trials.md", "report/importance.json"} == set(reports) and min(
        reports.values()
    ) > 20
    table = mlflow_client.download_artifacts(
        summary.run_id, "report/trials.csv", str(tiny_raw["train"]["storage_path"])
    )
    import pandas as pd

    trials = pd.read_csv(table)
    assert len(trials) == 4 and set(trials["model.cell"]) == {"lstm", "cifg"} and "best_val_mse" in trials
    # each trial's Ray Train run is kept inside the sweep's directory
    assert summary.checkpoint.startswith(f"{tiny_raw['train']['storage_path']}/s-basic/trials/s-basic-")

    version = mlflow_client.get_model_version_by_alias("tiny-sweep", "champion")
    model = load_served(tiny_raw["tracking"]["uri"], "models:/tiny-sweep@champion")
    assert str(version.version) == "1"
    assert np.asarray(model.predict(model.input_example)).shape == (4, 1)


def test_optuna_search_over_data_variants_tests_every_trial(tiny_raw, mlflow_client):
    """TPE over lr and a data setting: each data variant is prepared before the trials, every trial's
    child run carries its test metrics, and the report pivots them by cell and data variant. Each
    trial also stops early (no improvement can beat min_delta 1000): after epoch 2 of 3."""
    stopping = {"patience": 1, "min_delta": 1000.0}
    raw = {
        **tiny_raw,
        "train": {**tiny_raw["train"], "epochs": 3, "schedule": "onecycle", "early_stopping": stopping},
        "tune": {
            "num_samples": 2,
            "search": "optuna",
            "seed": 0,
            "scheduler": "fifo",
            "trial_workers": 1,
            "solved_below": 0.05,
            "space": {
                "train.lr": {"loguniform": [0.001, 0.05]},
                "model.cell": {"choice": ["lstm"]},
                "data.options.seq_len": {"choice": [6, 10]},
            },
        },
        "telemetry": {"enabled": True, "epochs": [1], "probe_size": 4},
    }
    summary = run_sweep(config.validate(raw), name="s-optuna")
    assert summary.status == "FINISHED" and len(summary.child_run_ids) == 2
    assert 0.001 <= summary.best_config["train.lr"] <= 0.05
    trials = [mlflow_client.get_run(c) for c in summary.child_run_ids]
    assert len({t.data.params["train.lr"] for t in trials}) == 2  # TPE proposed two values
    assert summary.metrics["stopped_epoch"] == 2 and summary.metrics["max_epochs"] == 3
    for t in trials:  # early stopping ended each trial, which tested its model and closed its own run
        assert t.info.status == "FINISHED" and t.data.tags["lstmpipe.stopped_early_after_epoch"] == "2"
        assert "lstmpipe.stopped_early" not in t.data.tags  # the scheduler's tag: it stopped none
    for t in trials:  # each trained on its own variant
        assert t.data.params["data.options.seq_len"] in {"6", "10"} and {"test_mse", "baseline_test_mse"} <= set(
            t.data.metrics
        )
    pivot = mlflow_client.download_artifacts(
        summary.run_id, "report/cells_by_data.md", str(tiny_raw["train"]["storage_path"])
    )
    text = open(pivot).read()
    assert text.startswith("| model.cell |") and "| lstm |" in text and "| (baseline) |" in text
    assert "plots/cells_by_data.png" in {a.path for a in mlflow_client.list_artifacts(summary.run_id, "plots")}
    # telemetry: each trial recorded its epoch 1; the parent compares the cells' gradient flow
    for t in trials:
        assert [a.path for a in mlflow_client.list_artifacts(t.info.run_id, "telemetry")] == [
            "telemetry/epoch_0001.parquet"
        ]
    plots = {a.path: a.file_size for a in mlflow_client.list_artifacts(summary.run_id, "plots")}
    assert plots["plots/telemetry_by_cell.png"] > 5000


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(ray_session, tiny_raw, tmp_path, mlflow_client):
    """Kill a sweep's driver (SIGKILL) after its first trial finished; `tune --resume` restores it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    raw = {
        **tiny_raw,
        "train": {**tiny_raw["train"], "epochs": 2, "storage_path": str(tmp_path / "runs")},
        "tune": {
            "num_samples": 1,
            "search": "grid",
            "scheduler": "fifo",
            "trial_workers": 1,
            "max_concurrent": 1,
            "space": {"model.hidden_size": {"choice": [4, 6]}},
        },
        "tracking": {**tiny_raw["tracking"], "experiment": "it-resume"},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "pipeline.cli", "tune", "-c", str(tmp_path / "sweep.yaml"), "--name", "s-resume"]
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    exp = None
    deadline = time.time() + 240
    while time.time() < deadline:  # wait for the first finished trial
        exp = exp or mlflow_client.get_experiment_by_name("it-resume")
        finished = exp and [
            r
            for r in mlflow_client.search_runs([exp.experiment_id], "tags.`lstmpipe.kind` = 'trial'")
            if r.info.status == "FINISHED"
        ]
        if finished:
            break
        time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert finished, proc.stderr.read().decode()[-2000:]
    done_trial = finished[0].data.tags["lstmpipe.trial_id"]

    from pipeline.tune.sweep import run_sweep

    summary = run_sweep(config.validate(raw), name="s-resume", resume=True)
    assert summary.status == "FINISHED"
    trials = mlflow_client.search_runs([exp.experiment_id], "tags.`lstmpipe.kind` = 'trial'")
    assert len(trials) == 2 and len({t.data.tags["lstmpipe.trial_id"] for t in trials}) == 2  # no duplicate child runs
    kept = next(t for t in trials if t.data.tags["lstmpipe.trial_id"] == done_trial)
    assert "lstmpipe.resumed" not in kept.data.tags  # the finished trial did not run again
    assert sorted(m.step for m in mlflow_client.get_metric_history(kept.info.run_id, "val_loss")) == [0, 1]
    assert mlflow_client.get_run(summary.run_id).data.tags["lstmpipe.resumed"] == "true"


def test_pbt_clones_the_better_trials_checkpoint_into_the_poorer(tiny_raw, splits, mlflow_client):
    """Two trials, synchronous PBT after epoch 2 of 3: the poorer trial continues from the better
    trial's epoch-1 checkpoint (its next checkpoint's history is the donor's) with a mutated rate and
    a decay clipped to tune.space; the champion is the best checkpoint Tune kept."""
    import glob
    import json

    raw = {
        **tiny_raw,
        "train": {**tiny_raw["train"], "epochs": 3, "optimizer": "adamw"},
        "tune": {
            "num_samples": 1,
            "search": "grid",
            "scheduler": "pbt",
            "trial_workers": 1,
            "pbt": {"perturbation_interval": 2, "rounds": "sync", "resample_probability": 0.0},
            "space": {"train.lr": {"choice": [0.0001, 0.03]}, "train.weight_decay": {"uniform": [0.001, 0.01]}},
        },
    }
    summary = run_sweep(config.validate(raw), name="s-pbt", splits=splits)
    assert summary.status == "FINISHED" and len(summary.child_run_ids) == 2
    runs = {c: mlflow_client.get_run(c) for c in summary.child_run_ids}
    assert all(r.info.status == "FINISHED" for r in runs.values())
    clones = [
        (c, other)
        for c, r in runs.items()
        for other in runs
        if other != c and r.data.tags.get("lstmpipe.pbt.generation") == f"epoch 1 of run {other}"
    ]
    assert len(clones) == 1, {c: r.data.tags.get("lstmpipe.pbt.generation") for c, r in runs.items()}
    clone, donor = clones[0]
    lrs = mlflow_client.get_metric_history(clone, "hp/train.lr")
    assert [m.step for m in sorted(lrs, key=lambda m: m.step)] == [0, 2]  # a new rate from epoch 2 on
    assert {m.value for m in lrs} <= {0.0001, 0.03}
    for m in mlflow_client.get_metric_history(clone, "hp/train.weight_decay"):
        assert 0.001 <= m.value <= 0.01  # x0.8 / x1.2, clipped to the space
    # the clone's new Ray Train run starts from the donor's weights: its history is the donor's
    trial_id = runs[clone].data.tags["lstmpipe.trial_id"]
    storage = tiny_raw["train"]["storage_path"]
    (meta_path,) = glob.glob(f"{storage}/s-pbt/trials/s-pbt-{trial_id}-g*/epoch_0002/meta.json")
    history = json.load(open(meta_path))["history"]
    donor_val = {m.step: m.value for m in mlflow_client.get_metric_history(donor, "val_loss")}
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert history[1]["val_loss"] == pytest.approx(donor_val[1])
    assert summary.best_config["train.lr"] in {0.0001, 0.03}
    assert "test_mse" in mlflow_client.get_run(summary.run_id).data.metrics
