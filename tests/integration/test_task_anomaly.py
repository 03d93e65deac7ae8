"""`anomaly`: labelled synthetic sensor series -> a Gaussian forecaster -> steps scored by the values'
negative log-likelihood (data.anomaly_score: nll) -> threshold on val -> flags. The point model's
absolute-error score is the same path without the distribution (tests/unit/test_anomaly.py)."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from helpers import post, served_over_http

from pipeline import config
from pipeline.data.ingest import load_splits
from pipeline.serve.evaluate import evaluate
from pipeline.serve.inputs import DataChoice
from pipeline.serve.predict import predict
from pipeline.train.driver import run_training


def test_anomaly_flags_scores_and_predict(ray_session, tiny_raw, tmp_path, mlflow_client, serve_port):
    raw = {
        **tiny_raw,
        "task": "anomaly",
        "data": {
            "source": "sensor_anomalies",
            "options": {"num_series": 2, "length": 1200, "anomalies_per_1000": 4},
            "columns": {"series": "series", "time": "time", "target": "value", "label": "label"},
            "window": {"lookback": 24, "horizon": 12},
            "val_fraction": 0.2,
            "test_fraction": 0.2,
            "cache_dir": tiny_raw["data"]["cache_dir"],
            "anomaly_score": "nll",
        },
        "model": {"hidden_size": 16, "likelihood": "gaussian"},
        "train": {**tiny_raw["train"], "epochs": 3, "lr": 0.01},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-anomaly"},
    }
    cfg = config.validate(raw)
    splits = load_splits(cfg)
    assert splits.info.num_rows["test"] == 2 * (240 - 12 + 1)  # windows with all 12 targets in the test period
    assert splits.info.output_size == 2 * 12  # (mu, sigma) per horizon step
    summary = run_training(cfg, name="a-sensors", splits=splits)
    m = summary.metrics
    for name in ("auroc", "precision", "recall", "f1"):
        assert f"test_{name}" in m and f"baseline_test_{name}" in m
    assert m["test_auroc"] > m["baseline_test_auroc"]  # the forecasts' NLL beats the raw z-score
    artifacts = {a.path: a.file_size for a in mlflow_client.list_artifacts(summary.run_id)}
    assert artifacts["test_anomaly.parquet"] > 0
    assert "plots/anomaly_flags.png" in [a.path for a in mlflow_client.list_artifacts(summary.run_id, "plots")]
    flags = pq.read_table(
        mlflow_client.download_artifacts(summary.run_id, "test_anomaly.parquet", str(tmp_path))
    ).to_pandas()
    assert {"series", "time", "value", "forecast", "forecasts", "score", "flag", "label"} <= set(
        flags.columns
    ) and flags["flag"].any()
    assert len(flags) == 2 * 240 and flags["forecasts"].max() == 12  # every test step, scored by up to 12 forecasts

    # predict on the user's own long CSV without labels: flags with the threshold chosen at training
    data = pd.read_parquet(cfg.data.cache_dir + "/sensor_anomalies")
    data[data["series"] == "sensor_0"].drop(columns="label").to_csv(tmp_path / "new.csv", index=False)
    rows = predict(
        "models:/tiny-anomaly/1",
        DataChoice(source=str(tmp_path / "new.csv")),
        out=tmp_path / "flags",
        tracking_uri=cfg.tracking.uri,
    )
    out = pd.read_parquet(tmp_path / "flags")
    assert rows == len(out) == 1200 - 24 and "label" not in out.columns
    assert out["time"].tolist() == list(range(24, 1200))  # in the rows' order
    assert np.allclose(out["value"], data[data["series"] == "sensor_0"]["value"].to_numpy()[24:], atol=1e-4)
    ev = evaluate("models:/tiny-anomaly/1", DataChoice(source=str(tmp_path / "new.csv")), tracking_uri=cfg.tracking.uri)
    assert set(ev.metrics) == {"test_flagged_fraction", "baseline_test_flagged_fraction"}

    # `lstmpipe serve`: the same series streamed value by value (in requests of 1 and of 40 values)
    # gets predict's score and flag for every step, without resending the window
    values = data[data["series"] == "sensor_0"]["value"].to_numpy()[:300]
    with served_over_http("models:/tiny-anomaly/1", cfg.tracking.uri, port=serve_port, route="/anomaly") as served:
        status, first = post(served.stream_url, {"stream": "sensor_0", "window": values[:24].tolist()})
        assert status == 200 and len(first["answers"][0]["forecast"]) == 12
        answers = []
        for chunk in [values[24:25], *np.array_split(values[25:], 7)]:
            status, got = post(served.stream_url, {"stream": "sensor_0", "values": chunk.tolist()})
            assert status == 200, got
            answers += got["answers"]
        streamed = pd.DataFrame(answers).assign(time=lambda d: d["step"] + 24).set_index("time")
        expected = out.set_index("time").loc[24 : 300 - 12]  # steps every forecast covering them reached
        assert np.allclose(streamed.loc[expected.index, "score"], expected["score"], rtol=1e-4, atol=1e-5)
        assert (streamed.loc[expected.index, "flag"].to_numpy() == expected["flag"].to_numpy()).all()
        assert (streamed.loc[expected.index, "forecasts"].to_numpy() == expected["forecasts"].to_numpy()).all()
        # bad requests: 4xx with one sentence, and the replicas keep answering
        assert post(served.stream_url, {"stream": "other", "values": [1.0]})[0] == 404
        assert post(served.url, {"rows": [{"x": [1.0] * 23}]}) == (
            400,
            {"error": "row 0: 'x' has 23 steps; this model reads windows of 24 (lookback)"},
        )
        assert post(served.url, {"rows": [{"x": [1.0] * 24}] * 65})[0] == 413
        assert post(served.url, None, raw=b'{"rows": [{"x": [NaN')[0] == 400
        assert post(served.url, None, raw=b'{"rows": [{"x": [' + b"NaN," * 23 + b"1]}]}")[0] == 400
        status, ok = post(served.url, {"rows": [{"x": values[:24].tolist(), "y": values[24:27].tolist()}]})
        assert status == 200 and len(ok["predictions"][0]["score"]) == 3
