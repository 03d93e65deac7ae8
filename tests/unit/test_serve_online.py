"""What each `lstmpipe serve` replica runs, without Ray: rows in, the task's columns out; streams
that score and forecast as predict does; bounded stream memory; bad requests as 4xx sentences."""

import numpy as np
import pytest
import torch

from pipeline.config.model import ModelConfig
from pipeline.data.windows import cut_windows
from pipeline.model.sequence_model import model_for
from pipeline.serve.loading import Trained
from pipeline.serve.online import BadRequest, OnlineModel, json_value
from pipeline.serve.streams import StreamLimits, Streams
from pipeline.tasks import DataInfo, anomaly
from pipeline.tasks.anomaly import AnomalyInfo
from pipeline.tasks.classify import ClassifyInfo
from pipeline.tasks.forecast import ForecastInfo

LOOKBACK, HORIZON = 6, 3


def _trained(info: DataInfo, **model) -> Trained:
    torch.manual_seed(0)
    net = model_for(ModelConfig(hidden_size=6, **model), info).eval()
    return Trained(model=net, info=info, config=None, directory=None)


def _anomaly(score: str = "nll") -> OnlineModel:
    own = AnomalyInfo(
        scaler={"mean": [5.0] * HORIZON, "std": [2.0] * HORIZON},
        flag_quantile=0.99,
        threshold=1.5,
        likelihood="gaussian",
        score=score,
    )
    info = DataInfo(
        task="anomaly",
        target="float",
        input_size=1,
        output_size=2 * HORIZON,
        max_len=LOOKBACK,
        input_mean=[5.0],
        input_std=[2.0],
        task_info=own,
    )
    return OnlineModel(_trained(info, likelihood="gaussian"))


def _forecast() -> OnlineModel:
    own = ForecastInfo(
        scaler={"mean": [0.0] * HORIZON, "std": [3.0] * HORIZON},
        season=1,
        window_normalize="last",
        likelihood="gaussian",
    )
    info = DataInfo(
        task="forecast",
        target="float",
        input_size=2,
        output_size=2 * HORIZON,
        max_len=LOOKBACK,
        input_mean=[0.0, 0.5],
        input_std=[3.0, 0.5],
        task_info=own,
    )
    return OnlineModel(_trained(info, likelihood="gaussian"))


def _series(n: int = 40) -> np.ndarray:
    t = np.arange(n)
    values = 5 + 2 * np.sin(t / 3) + np.random.default_rng(0).normal(0, 0.3, n)
    values[25] += 6  # a spike
    return values


@pytest.mark.parametrize("score", ["nll", "error"])
def test_stream_scores_each_value_as_predict_scores_the_series(score):
    """Values sent one request at a time get predict's score (the mean over the forecasts made for
    that step) and flag: the windows of the whole series through anomaly.scored, as predict does."""
    online = _anomaly(score)
    values = _series()
    streams = Streams(online, limits=StreamLimits())
    streams.update({"stream": "s", "window": values[:LOOKBACK].tolist()})
    answers = [streams.update({"stream": "s", "values": [v]})["answers"][0] for v in values[LOOKBACK:]]

    # predict's path: every window of the series, the model on its raw inputs, targets standardized
    win = cut_windows(
        values[:, None],
        values,
        np.array(["test"] * len(values), dtype=object),
        lookback=LOOKBACK,
        horizon=HORIZON,
        at_target={"pos": np.arange(len(values)), "time": np.arange(len(values))},
        at="all",
    )
    with torch.no_grad():
        pred = online.model(torch.from_numpy(win["x"])).numpy()
    out = {"pred": pred, "y": (win["y"] - 5.0) / 2.0, "series": np.zeros(len(pred))} | win["at_target"]
    steps = anomaly.scored(out, online.info).set_index("pos")
    compared = 0
    for a in answers:
        pos = LOOKBACK + a["step"]
        if pos > len(values) - HORIZON:  # predict's last steps lack the windows whose targets run past the end
            continue
        row = steps.loc[pos]
        assert a["score"] == pytest.approx(row["score"], rel=1e-5, abs=1e-6)
        assert a["forecasts"] == row["forecasts"] and a["flag"] == (row["score"] > 1.5)
        compared += 1
    assert compared == len(values) - LOOKBACK - HORIZON + 1
    assert answers[25 - LOOKBACK]["flag"]  # the spike


def test_stream_forecasts_equal_the_batch_endpoint_on_the_same_windows():
    online = _forecast()
    x = np.stack([_series(), (np.arange(40) % 7 == 0).astype(float)], axis=1)  # (T, 2): target, a feature
    streams = Streams(online, limits=StreamLimits())
    first = streams.update({"stream": "s", "window": x[:LOOKBACK].tolist()})["answers"]
    rest = streams.update({"stream": "s", "values": x[LOOKBACK:].tolist()})["answers"]
    batch = online.answer(online.parse({"rows": [{"x": x[i : i + LOOKBACK].tolist()} for i in range(35)]}, max_rows=64))
    streamed = first + rest[:34]
    assert set(batch[0]) == {"forecast", "mu", "sigma"}
    for b, s in zip(batch, streamed, strict=True):
        assert np.allclose(b["forecast"], s["forecast"], atol=1e-5) and np.allclose(b["sigma"], s["sigma"], atol=1e-5)
    assert 0 < np.mean(batch[0]["forecast"]) < 12  # data units: relative to the window's last value, scaled back


def test_streams_are_bounded_least_recently_used_first_and_by_idle_time():
    online, now = _anomaly(), [0.0]
    streams = Streams(online, limits=StreamLimits(max_streams=2, ttl_s=10), clock=lambda: now[0])
    window = _series()[:LOOKBACK].tolist()
    for name in ("a", "b"):
        streams.update({"stream": name, "window": window})
    streams.update({"stream": "a", "values": [5.0]})  # a is now the most recently used
    streams.update({"stream": "c", "window": window})  # full: b goes
    assert list(streams.held) == ["a", "c"] and streams.evicted == 1
    with pytest.raises(BadRequest, match="stream 'b' is not held.*resend its last 6 steps as 'window'") as err:
        streams.update({"stream": "b", "values": [5.0]})
    assert err.value.status == 404
    per_stream = streams.bytes_held() / 2
    assert 0 < per_stream < 1000  # the window and up to horizon pending forecasts
    now[0] = 10.5  # c idle past the TTL, a too
    with pytest.raises(BadRequest, match="stream 'a' is not held"):
        streams.update({"stream": "a", "values": [5.0]})
    assert not streams.held and streams.evicted == 3
    again = streams.update({"stream": "a", "window": window, "values": [5.0, 6.0]})  # resent: served again
    assert [a["step"] for a in again["answers"]] == [0, 1]


@pytest.mark.parametrize(
    ("body", "message", "status"),
    [
        ({"stream": "s", "values": [[1.0, 2.0]]}, "has 2 value\\(s\\) per step; this model reads 1", 400),
        ({"stream": "s", "window": [1.0, 2.0]}, "'window' has 2 steps; send at least the last 6", 400),
        ({"stream": "s", "window": [1.0] * 5 + [float("nan")]}, "non-finite value at step 5", 400),
        ({"stream": "s", "values": [1.0] * 1001}, "more than 1000; send them in parts", 413),
        ({"stream": "s", "value": [1.0]}, "unknown field 'value'", 400),
        ({"values": [1.0]}, 'send {"stream": ID', 400),
        ({"stream": "", "values": [1.0]}, "1 to 200 characters", 400),
        ({"stream": "s"}, "send 'values'", 400),
        ({"stream": "s", "values": [True]}, "list of numbers", 400),
    ],
)
def test_bad_stream_requests_are_4xx_sentences(body, message, status):
    streams = Streams(_anomaly(), limits=StreamLimits())
    streams.update({"stream": "s", "window": [1.0] * LOOKBACK})
    with pytest.raises(BadRequest, match=message) as err:
        streams.update(body)
    assert err.value.status == status


@pytest.mark.parametrize(
    ("body", "message", "status"),
    [
        ({"inputs": [1]}, 'send {"rows": \\[...\\]}', 400),
        ({"rows": []}, "non-empty list of rows", 400),
        ({"rows": [{"x": [1.0] * LOOKBACK}] * 9}, "9 rows in one request, more than this server takes \\(8\\)", 413),
        ({"rows": [{"x": [1.0] * 4}]}, "row 0: 'x' has 4 steps; this model reads windows of 6", 400),
        ({"rows": [{"x": [1.0] * LOOKBACK, "y": [1.0] * 4}]}, "'y' has 4 values; this model forecasts 3", 400),
        ({"rows": [{"x": [1.0] * LOOKBACK, "z": 1}]}, "row 0: unknown field 'z'", 400),
        ({"rows": [{"x": [[1.0], [2.0, 3.0]] + [[1.0]] * 4}]}, "not a \\(steps, values\\) list", 400),
        ({"rows": ["text"]}, "row 0: expected an object with 'x'", 400),
    ],
)
def test_bad_batch_requests_are_4xx_sentences(body, message, status):
    online = _anomaly()
    with pytest.raises(BadRequest, match=message) as err:
        online.parse(body, max_rows=8)
    assert err.value.status == status


def test_anomaly_rows_with_the_values_that_followed_are_scored_and_flagged():
    online = _anomaly("error")
    values = _series()
    rows = [{"x": values[:LOOKBACK].tolist(), "y": values[LOOKBACK : LOOKBACK + 2].tolist()}, {"x": [5.0] * LOOKBACK}]
    first, second = online.answer(online.parse({"rows": rows}, max_rows=8))
    assert len(first["score"]) == 2 and first["flag"] == [s > 1.5 for s in first["score"]]
    assert second["score"] is None and len(second["forecast"]) == HORIZON


def test_classify_sequences_of_any_length_answer_a_class_and_its_probability():
    own = ClassifyInfo(classes=["down", "up"], majority_class=0)
    info = DataInfo(
        task="classify",
        target="class",
        input_size=2,
        output_size=2,
        max_len=10,
        input_mean=[0, 0],
        input_std=[1, 1],
        task_info=own,
    )
    online = OnlineModel(_trained(info))
    seqs = [np.random.default_rng(k).normal(size=(n, 2)) for k, n in enumerate((3, 7))]
    answers = online.answer(online.parse({"rows": [{"x": s.tolist()} for s in seqs]}, max_rows=8))
    for s, a in zip(seqs, answers, strict=True):
        with torch.no_grad():
            prob = torch.softmax(online.model(torch.tensor(s[None], dtype=torch.float32)), dim=-1)[0]
        assert a["predicted"] == ["down", "up"][int(prob.argmax())] and a["probability"] == pytest.approx(
            float(prob.max()), rel=1e-5
        )


def test_json_values_have_no_nan():
    assert json_value(np.array([1.0, np.nan])) == [1.0, None] and json_value(np.float32(2.5)) == 2.5


def _by_series() -> OnlineModel:
    own = ForecastInfo(
        scaler={"mean": [0.0] * HORIZON, "std": [1.0] * HORIZON},
        season=1,
        window_normalize="series",
        series_scales={"small": [5.0, 2.0], "large": [5000.0, 2000.0]},
    )
    info = DataInfo(
        task="forecast",
        target="float",
        input_size=1,
        output_size=HORIZON,
        max_len=LOOKBACK,
        input_mean=[0.0],
        input_std=[1.0],
        task_info=own,
    )
    return OnlineModel(_trained(info))


def test_a_model_scaled_per_series_answers_each_window_by_its_series_moments():
    """normalize series: a row (and a stream) names its series; the window is scaled by that series'
    training moments, so a series 1000 times larger gets a forecast 1000 times larger; a row without
    a series, or with one the model never saw, is a 400 naming the field."""
    online = _by_series()
    x = _series()[:LOOKBACK]
    rows = [{"x": x.tolist(), "series": "small"}, {"x": (1000 * x).tolist(), "series": "large"}]
    small, large = online.answer(online.parse({"rows": rows}, max_rows=8))
    assert np.allclose(np.asarray(large["forecast"]), 1000 * np.asarray(small["forecast"]), rtol=1e-4)
    streams = Streams(online, limits=StreamLimits())
    (streamed,) = streams.update({"stream": "s", "window": (1000 * x).tolist(), "series": "large"})["answers"]
    assert np.allclose(streamed["forecast"], large["forecast"], rtol=1e-5)
    for row in ({"x": x.tolist()}, {"x": x.tolist(), "series": "medium"}):
        with pytest.raises(BadRequest, match="'series' must name one of the 2 series"):
            online.parse({"rows": [row]}, max_rows=8)
    with pytest.raises(BadRequest, match="unknown field 'series'"):  # a model not scaled per series
        _forecast().parse({"rows": [{"x": np.zeros((LOOKBACK, 2)).tolist(), "series": "a"}]}, max_rows=8)
