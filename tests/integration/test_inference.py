"""predict and evaluate round-trip on a registered model, by URI, through the CLI."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import own_output

from pipeline import config
from pipeline.train.driver import run_training


@pytest.fixture(scope="module")
def registered(ray_session, tiny_raw):
    promote = {"must_beat": ["champion"]}  # the promotion gate: the first version has no champion to beat
    raw = {**tiny_raw, "tracking": {**tiny_raw["tracking"], "register_as": "tiny-adding", "promote": promote}}
    cfg = config.validate(raw)
    summary = run_training(cfg, name="i-adding")
    return cfg, summary


def _cli(*args, cwd, env):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_evaluate_and_predict_by_registered_name(registered, tmp_path, join_env, mlflow_client):
    cfg, summary = registered
    uri = cfg.tracking.uri
    out = _cli(
        "evaluate",
        "-m",
        "models:/tiny-adding/1",
        "-d",
        "adding",
        "--set",
        f"data.cache_dir={cfg.data.cache_dir}",
        "--set",
        "data.options={seq_len: 8, num_sequences: 300}",
        "--tracking-uri",
        uri,
        "--log",
        "--summary-json",
        str(tmp_path / "e.json"),
        cwd=tmp_path,
        env=join_env,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(result["metrics"]) == {"test_mse", "baseline_test_mse"}
    logged = mlflow_client.get_run(result["run_id"])
    assert logged.data.tags["lstmpipe.model_uri"] == "models:/tiny-adding/1" and logged.info.status == "FINISHED"
    assert logged.data.metrics["test_mse"] == pytest.approx(result["metrics"]["test_mse"])

    # the user's own rows, without a target: predictions only, in the rows' order
    rng = np.random.default_rng(1)
    x = np.stack([rng.uniform(size=(50, 8)), np.zeros((50, 8))], axis=2)
    x[:, 0, 1] = x[:, 3, 1] = 1.0
    pq.write_table(pa.table({"x": x.tolist()}), tmp_path / "new.parquet")
    out = _cli(
        "predict",
        "-m",
        f"runs:/{summary.run_id}/model",
        "-d",
        str(tmp_path / "new.parquet"),
        "-o",
        str(tmp_path / "pred"),
        "--tracking-uri",
        uri,
        cwd=tmp_path,
        env=join_env,
    )
    assert out.returncode == 0, out.stderr
    pred = pd.read_parquet(tmp_path / "pred")
    assert list(pred.columns) == ["prediction"] and len(pred) == 50

    from pipeline.serve.loading import load

    model = load(summary.checkpoint, tracking_uri=uri).model
    import torch

    with torch.no_grad():
        expected = model(torch.tensor(x, dtype=torch.float32))[:, 0].numpy()
    assert np.allclose(pred["prediction"], expected, atol=1e-5)


def test_predict_sends_weights_past_rays_inline_limit_by_reference(registered, tmp_path, join_env):
    """Weights over Ray's 100 KB inline limit (an LSTM(128): 270 KB) reach the predict actors through
    the object store by reference; passed by value, they made Ray print a core_worker.cc error line
    about actor constructor arguments in the object store on every `predict` of such a model."""
    import dataclasses

    from pipeline.config import ModelConfig
    from pipeline.model.sequence_model import model_for
    from pipeline.tasks import DataInfo
    from pipeline.train import checkpoint

    cfg, summary = registered
    meta = checkpoint.load_meta(summary.checkpoint)
    bigger = {**meta.config, "model": {**meta.config["model"], "hidden_size": 128}}
    model = model_for(ModelConfig.model_validate(bigger["model"]), DataInfo.from_dict(meta.info))
    assert sum(p.numel() * 4 for p in model.parameters()) > 100 * 1024
    (tmp_path / "big").mkdir()
    checkpoint.save(tmp_path / "big", model=model, optimizer=None, meta=dataclasses.replace(meta, config=bigger))
    pq.write_table(pa.table({"x": np.zeros((20, 8, 2)).tolist()}), tmp_path / "rows.parquet")
    args = ["-d", str(tmp_path / "rows.parquet"), "-o", str(tmp_path / "pred"), "--tracking-uri", cfg.tracking.uri]
    out = _cli("predict", "-m", str(tmp_path / "big"), *args, cwd=tmp_path, env=join_env)
    assert out.returncode == 0, out.stderr
    assert len(pd.read_parquet(tmp_path / "pred")) == 20
    assert "core_worker" not in out.stderr and "object store" not in out.stderr, out.stderr[-2000:]


def test_the_promotion_gate_gives_the_first_version_the_champion_alias(registered, mlflow_client):
    from pipeline.track.summary import render

    _, summary = registered
    assert summary.promotion.startswith("promoted to @champion: test_mse") and "(no champion yet)" in summary.promotion
    assert str(mlflow_client.get_model_version_by_alias("tiny-adding", "champion").version) == "1"
    assert mlflow_client.get_run(summary.run_id).data.tags["lstmpipe.promotion"] == summary.promotion
    assert summary.promotion in render(summary, title="train").splitlines()
    run = mlflow_client.get_run(summary.run_id)
    assert run.inputs.dataset_inputs  # the data it was tested on
    # MLflow 3's model-centric view: the tested checkpoint's logged model holds its test metrics
    ranked = mlflow_client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string="metrics.test_mse > 0",
        order_by=[{"field_name": "metrics.test_mse", "ascending": True}],
    )
    mine = next(m for m in ranked if m.source_run_id == summary.run_id)
    assert {m.key: m.value for m in mine.metrics}["test_mse"] == pytest.approx(summary.metrics["test_mse"])


def test_bad_model_uri_and_missing_target_exit_2(registered, tmp_path, join_env):
    cfg, _ = registered
    out = _cli(
        "evaluate",
        "-m",
        "models:/no-such-model/1",
        "-d",
        "adding",
        "--tracking-uri",
        cfg.tracking.uri,
        cwd=tmp_path,
        env=join_env,
    )
    assert (
        out.returncode == 2
        and "cannot load model models:/no-such-model/1" in out.stderr
        and "Traceback" not in own_output(out.stderr)
    )
    pq.write_table(pa.table({"x": [[[0.5, 1.0]] * 8]}), tmp_path / "nolabel.parquet")
    out = _cli(
        "evaluate",
        "-m",
        "models:/tiny-adding/1",
        "-d",
        str(tmp_path / "nolabel.parquet"),
        "--tracking-uri",
        cfg.tracking.uri,
        cwd=tmp_path,
        env=join_env,
    )
    assert out.returncode == 2 and "evaluate needs the target column 'y'" in out.stderr


def test_explain_one_sequence_through_the_cli(registered, tmp_path, join_env):
    cfg, _ = registered
    out = _cli(
        "explain",
        "-m",
        "models:/tiny-adding/1",
        "-d",
        "adding",
        "--row",
        "3",
        "-o",
        str(tmp_path / "ex"),
        "--set",
        f"data.cache_dir={cfg.data.cache_dir}",
        "--set",
        "data.options={seq_len: 8, num_sequences: 300}",
        "--tracking-uri",
        cfg.tracking.uri,
        cwd=tmp_path,
        env=join_env,
    )
    assert out.returncode == 0, out.stderr
    assert (
        "input gate opened most at steps" in out.stdout and "forget gate" in out.stdout and "dloss/dh_t" in out.stdout
    )
    files = {p.name: p.stat().st_size for p in (tmp_path / "ex").iterdir()}
    for kind in ("gate_heatmaps", "gate_bands", "state_norms", "gradient_flow"):
        assert files[f"row_3_{kind}.png"] > 5000
    table = pq.read_table(tmp_path / "ex" / "telemetry.parquet")
    assert set(table.column("t").to_pylist()) == set(range(8)) and "grad_norm" in table.column("quantity").to_pylist()
    assert (tmp_path / "ex" / "reading.md").read_text().count("\n- ") >= 3

    bad = _cli(
        "explain",
        "-m",
        "models:/tiny-adding/1",
        "-d",
        "adding",
        "--row",
        "100000",
        "-o",
        str(tmp_path / "ex2"),
        "--set",
        f"data.cache_dir={cfg.data.cache_dir}",
        "--set",
        "data.options={seq_len: 8, num_sequences: 300}",
        "--tracking-uri",
        cfg.tracking.uri,
        cwd=tmp_path,
        env=join_env,
    )
    assert bad.returncode == 2 and "pick --row 0..299" in bad.stderr and "Traceback" not in own_output(bad.stderr)


def test_mlflow_models_serve_answers_invocations(registered, tmp_path):
    """`mlflow models serve -m models:/NAME/1 --env-manager local`: MLflow's own scoring server takes
    the registered model, and /invocations answers what the served model computes in-process."""
    import os
    import socket
    import time
    import urllib.request
    from pathlib import Path

    from helpers import load_served

    cfg, _ = registered
    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = str(Path(sys.executable).parent)  # the server execs uvicorn from this environment
    env = {**os.environ, "MLFLOW_TRACKING_URI": cfg.tracking.uri, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    server = subprocess.Popen(
        [
            os.path.join(bin_dir, "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/tiny-adding/1",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the uvicorn it starts goes with it
    )
    try:
        x = np.random.default_rng(0).random((3, 8, 2), dtype=np.float32)
        body = json.dumps({"inputs": x.tolist()}).encode()
        deadline, answer = time.monotonic() + 120, None
        while answer is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
                )
                answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
            except OSError:
                assert server.poll() is None, server.stderr.read()[-2000:]
                assert time.monotonic() < deadline, "mlflow models serve did not answer within 120 s"
                time.sleep(1)
        expected = np.asarray(load_served(cfg.tracking.uri, "models:/tiny-adding/1").predict(x))
        assert np.allclose(np.asarray(answer["predictions"]), expected, atol=1e-5)
    finally:
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
