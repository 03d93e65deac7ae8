"""anomaly: threshold choice on validation data and detection metrics against hand-computed values."""

import numpy as np
import pytest

from pipeline.tasks import DataInfo, anomaly
from pipeline.tasks.anomaly import AnomalyInfo, best_f1_threshold, calibrate, detection_metrics, flags_table


def test_best_f1_threshold_separates_when_it_can():
    score = np.array([0.1, 0.2, 0.9, 0.3, 0.8])
    labels = np.array([0, 0, 1, 0, 1])
    t = best_f1_threshold(score, labels)
    assert 0.3 < t < 0.8
    assert detection_metrics(score, labels, threshold=t) == {"auroc": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_detection_metrics_by_hand():
    score = np.array([0.9, 0.8, 0.7, 0.1])
    labels = np.array([1, 0, 1, 0])
    m = detection_metrics(score, labels, threshold=0.75)  # flags 0.9 (TP) and 0.8 (FP); misses 0.7
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["auroc"] == pytest.approx(0.75)  # 3 of 4 (pos, neg) pairs ranked right


def _out(pred, y, label=None):
    out = {
        "pred": np.asarray(pred, float)[:, None],
        "y": np.asarray(y, float)[:, None],
        "series": np.array(["a"] * len(y)),
        "time": np.arange(len(y)),
        "pos": np.arange(len(y)),
    }
    if label is not None:
        out["label"] = np.asarray(label, float)[:, None]
    return out


def test_calibrate_by_labels_or_by_quantile():
    info = DataInfo(
        task="anomaly",
        input_size=1,
        output_size=1,
        target="float",
        max_len=4,
        task_info=AnomalyInfo(scaler={"mean": [10.0], "std": [2.0]}, flag_quantile=0.5),
    )
    val = _out(pred=[0, 0, 0, 0], y=[0.1, 3.0, 0.2, 0.1], label=[0, 1, 0, 0])
    assert 0.2 < calibrate(val, info).task_info.threshold < 3.0
    unlabelled = {k: v for k, v in val.items() if k != "label"}
    assert calibrate(unlabelled, info).task_info.threshold == pytest.approx(0.15)  # the median score
    cal = calibrate(val, info)
    test = _out(pred=[0, 0, 0], y=[0.1, 5.0, -0.1], label=[0, 1, 0])
    m = anomaly.test_metrics(test, cal)
    assert m["test_f1"] == 1.0 and {"baseline_test_auroc", "test_precision", "test_recall"} <= set(m)
    flags = flags_table(test, cal).to_pydict()
    assert flags["flag"] == [False, True, False] and flags["value"] == pytest.approx([10.2, 20.0, 9.8])


def test_a_step_is_scored_by_every_forecast_covering_it():
    """Horizon 2: step 1 is forecast by window 0 (2 ahead) and window 1 (1 ahead); its score is the mean."""
    out = {
        "pred": np.array([[0.0, 1.0], [3.0, 0.0]]),
        "y": np.array([[0.0, 2.0], [2.0, 0.5]]),
        "series": np.array(["a", "a"]),
        "time": np.array([[10, 11], [11, 12]]),
        "pos": np.array([[0, 1], [1, 2]]),
    }
    info = DataInfo(
        task="anomaly",
        input_size=1,
        output_size=2,
        target="float",
        max_len=4,
        task_info=AnomalyInfo(scaler={"mean": [0.0] * 2, "std": [1.0] * 2}, flag_quantile=0.5),
    )
    steps = anomaly.scored(out, info)
    assert steps["time"].tolist() == [10, 11, 12] and steps["forecasts"].tolist() == [1, 2, 1]
    assert steps["score"].tolist() == [0.0, 1.0, 0.5] and steps["baseline_score"].tolist() == [0.0, 2.0, 0.5]


def test_nll_scores_a_step_against_the_spread_the_model_expected():
    """data.anomaly_score nll: the same miss (|error| 2) scores high where the model expected a narrow
    spread and low where it expected a wide one; the error score cannot tell them apart. The point
    forecast (the mean) is what the flags table reports."""
    import math

    out = {
        "pred": np.array([[0.0, 0.1], [0.0, 4.0]]),  # (W, H * (mu, sigma)), H = 1
        "y": np.array([[2.0], [2.0]]),
        "series": np.array(["a", "a"]),
        "time": np.array([[0], [1]]),
        "pos": np.array([[0], [1]]),
    }
    own = {"scaler": {"mean": [0.0], "std": [1.0]}, "flag_quantile": 0.5, "likelihood": "gaussian"}
    info = {
        score: DataInfo(
            task="anomaly",
            input_size=1,
            output_size=2,
            target="float",
            max_len=4,
            task_info=AnomalyInfo(**own, score=score),
        )
        for score in ("error", "nll")
    }
    by_nll, by_error = anomaly.scored(out, info["nll"]), anomaly.scored(out, info["error"])
    gauss = [0.5 * math.log(2 * math.pi) + math.log(s) + 0.5 * (2.0 / s) ** 2 for s in (0.1, 4.0)]
    assert by_nll["score"].tolist() == pytest.approx(gauss, rel=1e-5) and gauss[0] > 50 * gauss[1]
    assert by_error["score"].tolist() == [2.0, 2.0] and by_nll["pred"].tolist() == [0.0, 0.0]


def test_anomaly_score_rules():
    from pipeline.config import ConfigError, validate

    base = {"task": "anomaly", "data": {"source": "sensor_anomalies", "window": {"lookback": 8}}}
    with pytest.raises(ConfigError, match="data.anomaly_score nll needs a predictive distribution"):
        validate(base | {"data": base["data"] | {"anomaly_score": "nll"}})
    with pytest.raises(ConfigError, match="anomaly takes gaussian or student_t"):
        validate(base | {"model": {"likelihood": "quantile"}})
    ok = validate(base | {"data": base["data"] | {"anomaly_score": "nll"}, "model": {"likelihood": "student_t"}})
    assert ok.data.anomaly_score == "nll"
    with pytest.raises(ConfigError, match="data.anomaly_score and data.columns.label are only for task: anomaly"):
        validate({"task": "forecast", "data": {"source": "airline", "anomaly_score": "error"}})
