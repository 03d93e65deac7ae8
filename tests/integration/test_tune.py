"""`tune`: a sweep of TorchTrainer trials, one MLflow parent run with nested child runs, champion alias."""

import mlflow
import numpy as np

from pipeline import config
from pipeline.tuning import run_sweep


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
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-sweep"},
    }
    summary = run_sweep(config.validate(raw), name="s-basic", splits=splits)

    assert summary.status == "FINISHED"
    assert set(summary.best_config) == {"model.hidden_size", "model.cell"}
    parent = mlflow_client.get_run(summary.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["lstmpipe.kind"] == "sweep"
    assert len(summary.child_run_ids) == 4                                  # the grid: 2 cells x 2 sizes
    for child_id in summary.child_run_ids:
        child = mlflow_client.get_run(child_id)
        assert child.data.tags["mlflow.parentRunId"] == summary.run_id
        assert child.info.status == "FINISHED"  # also when ASHA stopped it (tagged stopped_early)
        assert child.data.params["train.workers"] == "1"
        steps = [m.step for m in mlflow_client.get_metric_history(child_id, "val_loss")]
        assert steps and sorted(steps) == list(range(len(steps)))
    assert "test_mse" in parent.data.metrics
    # the parent's learning curves come from the best trial's epochs; the report compares the trials
    plots = {a.path: a.file_size for a in mlflow_client.list_artifacts(summary.run_id, "plots")}
    assert {"plots/learning_curves.png", "plots/metric_by_cell.png", "plots/importance.png"} == set(plots)
    assert min(plots.values()) > 1000
    reports = {a.path: a.file_size for a in mlflow_client.list_artifacts(summary.run_id, "report")}
    assert {"report/trials.csv", "report/trials.md", "report/importance.json"} == set(reports) and min(reports.values()) > 20
    table = mlflow_client.download_artifacts(summary.run_id, "report/trials.csv", str(tiny_raw["train"]["storage_path"]))
    import pandas as pd

    trials = pd.read_csv(table)
    assert len(trials) == 4 and set(trials["model.cell"]) == {"lstm", "cifg"} and "best_val_mse" in trials
    # each trial's Ray Train run is kept inside the sweep's directory
    assert summary.checkpoint.startswith(f"{tiny_raw['train']['storage_path']}/s-basic/trials/s-basic-")

    version = mlflow_client.get_model_version_by_alias("tiny-sweep", "champion")
    mlflow.set_tracking_uri(tiny_raw["tracking"]["uri"])
    model = mlflow.pyfunc.load_model("models:/tiny-sweep@champion")
    assert str(version.version) == "1"
    assert np.asarray(model.predict(model.input_example)).shape == (4, 1)


def test_optuna_search_defaults_to_the_task_metric(tiny_raw, splits, mlflow_client):
    raw = {
        **tiny_raw,
        "tune": {"num_samples": 2, "search": "optuna", "seed": 0, "scheduler": "fifo", "trial_workers": 1,
                 "space": {"train.lr": {"loguniform": [0.001, 0.05]}}},
    }
    summary = run_sweep(config.validate(raw), name="s-optuna", splits=splits)
    assert summary.status == "FINISHED" and len(summary.child_run_ids) == 2
    assert 0.001 <= summary.best_config["train.lr"] <= 0.05
    trials = [mlflow_client.get_run(c) for c in summary.child_run_ids]
    assert len({t.data.params["train.lr"] for t in trials}) == 2                 # TPE proposed two values
