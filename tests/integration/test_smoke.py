"""`lstmpipe smoke` end to end, with no arguments, in a fresh working directory."""

import json

from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipeline.cli.main import app


def test_smoke_runs_the_whole_path(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app, ["smoke", "--summary-json", "summary.json"])
    assert result.exit_code == 0, result.output

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
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db" in result.output

    client = MlflowClient(summary["tracking_uri"])
    assert client.get_run(summary["train"]["run_id"]).data.tags["lstmpipe.world_size"] == "2"
    assert client.get_model_version_by_alias("smoke", "champion")
