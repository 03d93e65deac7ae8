"""`lstmpipe smoke` end to end, as a newcomer runs it: no arguments, a fresh working directory, its
own Ray instance, and a console with nothing on it that the product did not write."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

SMOKE_YAML = Path(__file__).parents[2] / "conf" / "smoke.yaml"
# stderr lines a clean smoke run may print besides its own: none. A line here needs a reason.
STDERR_ALLOWED: tuple[re.Pattern, ...] = ()
# What the product itself writes to stderr (none of it in a clean run): errors and notices.
OWN_STDERR = re.compile(r"^(error: |marked \d+ run\(s\) )")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`lstmpipe smoke` once, in a fresh directory: (the finished process, the directory)."""
    tmp_path = tmp_path_factory.mktemp("smoke")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LSTMPIPE_LOG")}
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "smoke", "--summary-json", "summary.json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env | {"RAY_ADDRESS": ""},
    )
    return out, tmp_path


def test_smoke_runs_the_whole_path_and_prints_only_its_own_lines(smoke):
    out, tmp_path = smoke
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


def _gated_run(store_dir, *, env: dict[str, str]) -> str:
    """One more training run in the smoke's store, with what the smoke leaves off: system metrics per
    node and the promotion gate (its own registered model, so the smoke's champion stays); its run id.
    It joins the session's Ray (`env`: join_env); the smoke itself is the first run on its own Ray."""
    sets = ["tracking.system_metrics_s=1", "tracking.promote.must_beat=[baseline]"]
    sets += ["tracking.register_as=ui-gate"]
    args = [arg for item in sets for arg in ("--set", item)]
    env = {k: v for k, v in env.items() if k not in ("MLFLOW_TRACKING_URI", "LSTMPIPE_LOG")}
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "train", "-c", str(SMOKE_YAML), *args, "--name", "ui-gate"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=store_dir,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{store_dir}/mlflow.db")
    experiment = client.get_experiment_by_name("smoke").experiment_id
    (run,) = client.search_runs([experiment], "attributes.run_name = 'ui-gate'")
    return run.info.run_id


def test_the_mlflow_ui_shows_the_runs_their_charts_and_plots(smoke, tmp_path, join_env):
    """The smoke run's store in `mlflow server`, opened in headless Chromium as a user would: the
    sweep's parent run and, expanded, its trial runs; the training run's val_loss chart with one
    point per epoch; a logged PNG plot rendered; the registered model's version with its alias; and,
    on a run with them, the promotion gate's verdict, the dataset, the system metrics of its node and
    the logged model. Screenshots are kept under tmp_path."""
    from browser import browser_missing, chromium, mlflow_server, wait_for

    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium.webdriver.common.by import By

    out, store_dir = smoke
    assert out.returncode == 0, out.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{store_dir}/mlflow.db")
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("lstmpipe.kind") == "sweep")
    trials = [r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    train = next(r for r in runs if r.info.run_name.startswith("train-"))
    epochs = len(client.get_metric_history(train.info.run_id, "val_loss"))
    assert len(trials) == 2 and epochs == 5
    gated = _gated_run(store_dir, env=join_env)
    dataset = client.get_run(gated).inputs.dataset_inputs[0].dataset
    samples = client.get_metric_history(gated, "system/node_0/cpu_utilization_percentage")
    assert len(samples) >= 2, samples  # sampled every second while the 5 epochs trained: a curve, not a dot
    base = f"#/experiments/{experiment.experiment_id}"
    with mlflow_server(store_dir / "mlflow.db", cwd=store_dir) as url, chromium() as page:
        page.get(f"{url}/{base}/runs")
        link = wait_for(page, lambda p: p.find_element(By.LINK_TEXT, parent.info.run_name), what="the sweep's run")
        assert page.find_elements(By.LINK_TEXT, train.info.run_name)
        row = link.find_element(By.XPATH, "./ancestor::*[@role='gridcell'][1]")
        row.find_element(By.TAG_NAME, "button").click()  # expand the parent: its nested trial runs
        wait_for(page, lambda p: all(p.find_elements(By.LINK_TEXT, name) for name in trials), what="the trial runs")
        page.save_screenshot(str(tmp_path / "experiment.png"))

        page.get(f"{url}/{base}/runs/{train.info.run_id}/model-metrics")
        search = "input[placeholder='Search metric charts']"
        wait_for(page, lambda p: p.find_element(By.CSS_SELECTOR, search), what="the metric charts").send_keys(
            "val_loss"
        )
        wait_for(page, lambda p: p.find_elements(By.XPATH, "//*[text()='val_loss']"), what="the val_loss chart")
        points = wait_for(
            page,
            lambda p: len(p.find_elements(By.CSS_SELECTOR, "g.points path.point")) == epochs,
            what=f"{epochs} points (one per epoch) in the val_loss chart",
        )
        assert points
        page.save_screenshot(str(tmp_path / "metrics.png"))

        page.get(f"{url}/{base}/runs/{train.info.run_id}/artifacts/plots/learning_curves.png")
        rendered = "return arguments[0].complete && arguments[0].naturalWidth"
        wait_for(
            page,
            lambda p: [i for i in p.find_elements(By.TAG_NAME, "img") if p.execute_script(rendered, i) > 100],
            what="the learning curves PNG rendered",
        )
        page.save_screenshot(str(tmp_path / "plot.png"))

        page.get(f"{url}/#/models/smoke")  # the registry: the sweep's champion holds the alias
        text = lambda p: p.find_element(By.TAG_NAME, "body").text
        wait_for(page, lambda p: "Version 1" in text(p) and "@ champion" in text(p), what="smoke v1 @ champion")
        page.save_screenshot(str(tmp_path / "model.png"))

        page.get(f"{url}/{base}/runs/{gated}")  # the gate's verdict (a tag), the dataset, the registered version
        wait_for(
            page,
            lambda p: all(s in text(p) for s in ("promoted to @champion", f"{dataset.name} ({dataset.digest})")),
            what="the promotion tag and the run's dataset",
        )
        page.save_screenshot(str(tmp_path / "gate.png"))
        page.get(f"{url}/{base}/runs/{gated}/system-metrics")  # 8 charts of node 0 (rank 0 of the node samples it)
        wait_for(page, lambda p: "system/node_0\n(8)" in text(p), what="8 system metric charts of node_0")
        lines = "path.js-line"  # a chart's curve, drawn once its history loaded (the first row at least)
        wait_for(page, lambda p: len(p.find_elements(By.CSS_SELECTOR, lines)) >= 3, what="the system metric curves")
        page.save_screenshot(str(tmp_path / "system.png"))
        page.get(f"{url}/{base}/models")  # MLflow 3's logged models: the tested checkpoint, linked to its run
        wait_for(page, lambda p: "Ready" in text(p) and "ui-gate" in text(p), what="the logged model of ui-gate")
        page.save_screenshot(str(tmp_path / "logged_models.png"))
    shots = ("experiment", "metrics", "plot", "model", "gate", "system", "logged_models")
    assert all((tmp_path / f"{name}.png").stat().st_size > 10_000 for name in shots)
