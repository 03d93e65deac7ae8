"""`forecast`: long-format CSV with two series and a covariate -> windows in Ray Data -> 2 workers."""

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import load_served, post, served_over_http, train_and_serve

from pipeline import config
from pipeline.data.ingest import load_splits
from pipeline.train.driver import run_training


def _long_csv(path):
    t = np.arange(120)
    frames = []
    for k, (level, amp) in enumerate([(100.0, 10.0), (50.0, 5.0)]):
        season = amp * np.sin(2 * np.pi * t / 12)
        frames.append(
            pd.DataFrame(
                {
                    "date": t,
                    "store": f"s{k}",
                    "sales": level + season + 0.1 * t,
                    "promo": (t % 7 == 0).astype(float),
                }
            )
        )
    pd.concat(frames).sample(frac=1.0, random_state=0).to_csv(path, index=False)  # rows in any order


def test_forecast_from_long_csv(ray_session, tiny_raw, tmp_path, mlflow_client, serve_port):
    """Two stores' long rows in any order, each store's target scaled by its own training period
    (normalize: series); the MLflow model, predict and `lstmpipe serve` give the same forecasts."""
    _long_csv(tmp_path / "sales.csv")
    raw = {
        **tiny_raw,
        "task": "forecast",
        "data": {
            "source": str(tmp_path / "sales.csv"),
            "columns": {"time": "date", "target": "sales", "series": "store", "features": ["promo"]},
            "window": {"lookback": 12, "horizon": 3, "season": 12, "normalize": "series"},
            "val_fraction": 0.15,
            "test_fraction": 0.15,
        },
        "train": {**tiny_raw["train"], "epochs": 2},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-forecast"},
    }
    cfg = config.validate(raw)
    splits = load_splits(cfg)
    info = splits.info
    assert (info.input_size, info.output_size, info.max_len) == (2, 3, 12)
    # time cuts at t=84 and t=102: each store's scale comes from its training period (t < 84) only
    for store, (level, amp) in {"s0": (100, 10), "s1": (50, 5)}.items():
        train_sales = level + amp * np.sin(2 * np.pi * np.arange(84) / 12) + 0.1 * np.arange(84)
        assert np.allclose(info.task_info.series_scales[store], [train_sales.mean(), train_sales.std()], atol=1e-6)
    assert (info.input_mean[0], info.input_std[0]) == (0.0, 1.0)  # the target: scaled per series instead
    test = splits.test.to_pandas()
    assert np.allclose(test.query("series == 's1'")["ref"], info.task_info.series_scales["s1"][0])
    # per series: train targets 12..83 -> 70 windows, val 84..101 -> 16, test 102..119 -> 16
    assert info.num_rows == {"train": 140, "val": 32, "test": 32}

    summary = run_training(cfg, name="f-long", splits=splits)
    m = summary.metrics
    for name in ("mae", "rmse", "smape", "mase"):
        assert f"test_{name}" in m and f"baseline_test_{name}" in m
        assert f"baseline_ets_test_{name}" in m and f"baseline_drift_test_{name}" in m
    assert m["baseline_ets_test_mase"] < m["baseline_test_mase"]  # ETS reads the trend seasonal naive misses
    assert m["baseline_test_mase"] > 0 and np.isfinite(m["test_mase"])
    plots = [a.path for a in mlflow_client.list_artifacts(summary.run_id, "plots")]
    assert "plots/forecast_vs_actual.png" in plots

    model = load_served(cfg.tracking.uri, "models:/tiny-forecast/1")
    assert model.input_example.shape == (4, 12, 4)  # target, promo, then the series' mean and std
    forecast = np.asarray(model.predict(model.input_example))
    assert forecast.shape == (4, 3)
    assert 20 < float(np.mean(forecast)) < 150  # data units (sales ~ 50..120), not standardized

    # normalize: revin: the target is standardized per window (its scaler is the identity), the
    # covariate still by the training period's scaler, and the windows carry their mean and std
    revin = config.validate(raw | {"data": raw["data"] | {"window": raw["data"]["window"] | {"normalize": "revin"}}})
    per_window = load_splits(revin)
    assert per_window.info.input_mean[0] == 0.0 and per_window.info.input_std[0] == 1.0
    assert per_window.info.input_mean[1] == info.input_mean[1]
    test = per_window.test.to_pandas()
    assert {"ref", "ref_scale"} <= set(test.columns) and (test["ref"] > 40).all() and (test["ref_scale"] > 1).all()
    x0 = np.stack([np.stack(v)[:, 0] for v in test["x"]])  # (W, L) the target, standardized per window
    assert np.allclose(x0.mean(axis=1), 0, atol=1e-4) and np.allclose(x0.std(axis=1), 1, atol=1e-3)

    # `lstmpipe serve`: store s0's windows, sent as rows and as a stream, get predict's forecasts
    from pipeline.serve.inputs import DataChoice
    from pipeline.serve.predict import predict

    predict(
        "models:/tiny-forecast/1",
        DataChoice(str(tmp_path / "sales.csv")),
        out=tmp_path / "p",
        tracking_uri=cfg.tracking.uri,
    )
    pred = pd.read_parquet(tmp_path / "p").query("series == 's0'").sort_values("time")
    expected = np.stack(pred["forecast"])[:40]  # (40, 3): the windows starting at steps 0..39
    series = pd.read_csv(tmp_path / "sales.csv").query("store == 's0'").sort_values("date")[["sales", "promo"]]
    steps = series.to_numpy()  # (120, 2): target, covariate
    from pipeline.train.holdout import with_series_moments

    windows = np.stack([steps[i : i + 12] for i in range(40)]).astype(np.float32)  # (40, 12, 2)
    mean, std = info.task_info.series_scales["s0"]
    by_mlflow = model.predict(with_series_moments(windows, np.full(40, mean), np.full(40, std)))
    assert np.allclose(np.asarray(by_mlflow), expected, atol=1e-3)  # the pt2 model reads s0's moments
    with served_over_http("models:/tiny-forecast/1", cfg.tracking.uri, port=serve_port, route="/sales") as served:
        rows = [{"x": steps[i : i + 12].tolist(), "series": "s0"} for i in range(40)]
        status, got = post(served.url, {"rows": rows})
        assert status == 200 and np.allclose([r["forecast"] for r in got["predictions"]], expected, atol=1e-4)
        status, first = post(served.stream_url, {"stream": "s0", "window": steps[:12].tolist(), "series": "s0"})
        status, rest = post(served.stream_url, {"stream": "s0", "values": steps[12:51].tolist()})
        streamed = [a["forecast"] for a in first["answers"] + rest["answers"]]
        assert status == 200 and np.allclose(streamed, expected, atol=1e-4)
        assert post(served.url, {"rows": [{"x": [[1.0]] * 12, "series": "s0"}]})[1] == {
            "error": "row 0: 'x' has 1 value(s) per step; this model reads 2"
        }
        status, body = post(served.url, {"rows": [{"x": steps[:12].tolist()}]})
        assert status == 400 and "'series' must name one of the 2 series" in body["error"]


def test_gaps_fail_by_default_and_fill_on_request(ray_session, tiny_raw, tmp_path):
    from pipeline.errors import DataError

    _long_csv(tmp_path / "sales.csv")
    frame = pd.read_csv(tmp_path / "sales.csv")
    frame.loc[frame.index[:3], "sales"] = np.nan
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    data = {
        "source": str(tmp_path / "gaps.csv"),
        "columns": {"time": "date", "target": "sales", "series": "store"},
        "window": {"lookback": 12, "horizon": 3, "season": 12},
    }
    with pytest.raises(
        DataError, match=r"gaps.csv: column 'sales' has 3 null value\(s\); drop or fill them \(or set data.missing"
    ):
        load_splits(config.validate({**tiny_raw, "task": "forecast", "data": data}))
    filled = load_splits(config.validate({**tiny_raw, "task": "forecast", "data": {**data, "missing": "ffill"}}))
    assert np.isfinite(filled.info.input_mean[0]) and filled.info.num_rows["train"] > 100


def test_relative_windows_on_a_trend_beyond_the_training_range(ray_session, tiny_raw, tmp_path):
    """A linear trend: test levels lie above all training levels. Relative windows learn the step
    (+1 per time step) and the served model adds the last value back: forecasts in data units. The
    model is probabilistic (Gaussian): the served model returns mean and sigma per step in data
    units, the last value added to the mean only."""
    t = np.arange(300)
    pd.DataFrame({"time": t, "y": 5.0 + 1.0 * t}).to_csv(tmp_path / "trend.csv", index=False)
    raw = {
        **tiny_raw,
        "task": "forecast",
        "data": {"source": str(tmp_path / "trend.csv"), "window": {"lookback": 8, "horizon": 2, "normalize": "last"}},
        "model": {"hidden_size": 8, "likelihood": "gaussian"},
        "train": {**tiny_raw["train"], "epochs": 6, "lr": 0.02},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-trend"},
    }
    trained = train_and_serve(raw, name="f-trend")
    m = trained.summary.metrics
    assert abs(m["baseline_test_mae"] - 1.5) < 1e-3  # the last value: off by 1 and 2
    assert m["test_mae"] < 4.0  # the mean; 6 tiny epochs fit a likelihood less tightly than MSE (0.87 here)
    assert {"test_crps", "test_pinball", "test_coverage_80", "baseline_test_coverage_80"} <= set(m)
    model = trained.served
    x = np.arange(280, 288, dtype=np.float32).reshape(1, 8, 1) + 5.0  # levels 285..292, never seen
    p = np.asarray(model.predict(x)).reshape(1, 2, 2)  # (window, step, (mu, sigma)) in data units
    # 6 tiny epochs leave a few units of error; an absolute-level model could not leave the training range (< 260)
    assert np.allclose(p[..., 0], [[293.0, 294.0]], atol=5.0), p
    assert (0 < p[..., 1]).all() and (p[..., 1] < 10).all(), p  # a spread in data units, not shifted by the level


def test_negative_binomial_forecasts_counts(ray_session, tiny_raw, tmp_path, mlflow_client):
    """Counts (rounded sales): scaled by the training mean only, trained by the NB likelihood on 2
    workers, scored by CRPS and intervals, served as mean and dispersion per step in counts."""
    from pipeline.errors import DataError

    _long_csv(tmp_path / "sales.csv")
    frame = pd.read_csv(tmp_path / "sales.csv")
    frame["sales"] = frame["sales"].round()
    frame.to_csv(tmp_path / "counts.csv", index=False)
    data = {
        "source": str(tmp_path / "counts.csv"),
        "columns": {"time": "date", "target": "sales", "series": "store"},
        "window": {"lookback": 12, "horizon": 3, "season": 12},
        "val_fraction": 0.15,
        "test_fraction": 0.15,
    }
    raw = {
        **tiny_raw,
        "task": "forecast",
        "data": data,
        "model": {"hidden_size": 8, "likelihood": "negative_binomial"},
        "train": {**tiny_raw["train"], "epochs": 2},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-counts"},
    }
    cfg = config.validate(raw)
    splits = load_splits(cfg)
    train_mean = frame[frame["date"] < 84]["sales"].mean()
    assert splits.info.input_mean[0] == 0.0 and splits.info.input_std[0] == pytest.approx(train_mean)
    y = np.stack(splits.test.to_pandas()["y"]) * train_mean  # (W, H) back in counts
    assert np.allclose(y, np.round(y), atol=1e-3) and (y >= 0).all()

    summary = run_training(cfg, name="f-counts", splits=splits)
    m = summary.metrics
    assert {"test_crps", "test_coverage_80", "baseline_test_crps", "test_mase"} <= set(m)
    assert np.isfinite(m["test_crps"]) and 0 <= m["test_coverage_95"] <= 1
    served = load_served(cfg.tracking.uri, "models:/tiny-counts/1")
    params = np.asarray(served.predict(served.input_example)).reshape(4, 3, 2)  # (B, H, mu/alpha)
    assert 20 < params[..., 0].mean() < 150 and (params[..., 1] > 0).all()  # mean in counts

    not_counts = config.validate(raw | {"data": data | {"source": str(tmp_path / "sales.csv")}})
    with pytest.raises(DataError, match="not counts"):
        load_splits(not_counts)


def _backtest_raw(tiny_raw, tmp_path) -> dict:
    _long_csv(tmp_path / "sales.csv")
    return {
        **tiny_raw,
        "task": "forecast",
        "data": {
            "source": str(tmp_path / "sales.csv"),
            "columns": {"time": "date", "target": "sales", "series": "store"},
            "window": {"lookback": 12, "horizon": 3, "season": 12},
            "val_fraction": 0.15,
            "test_fraction": 0.15,
        },
        "train": {**tiny_raw["train"], "workers": 1},
        "tracking": {**tiny_raw["tracking"], "experiment": "backtest"},
    }


def _backtest_runs(mlflow_client, name: str):
    from pipeline.track import PARENT_TAG

    exp = mlflow_client.get_experiment_by_name("backtest")
    parent = next(r for r in mlflow_client.search_runs([exp.experiment_id]) if r.info.run_name == name)
    nested = f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
    return parent, mlflow_client.search_runs([exp.experiment_id], filter_string=nested)


def test_backtest_refits_one_model_per_origin_under_one_parent_run(ray_session, tiny_raw, tmp_path, mlflow_client):
    """`lstmpipe backtest --folds 2 --step 6 --refit` on the long CSV: fold 0's origin 6 steps earlier (its
    data ends at t=113), each fold a 1-worker Tune trial with its own child run and test metrics, the
    parent run with the table and each metric's mean and std over the folds; no model registered."""
    from pipeline.cli.main import run_command

    raw = _backtest_raw(tiny_raw, tmp_path)
    # 114 steps: train targets 12..78, val 79..95, test 96..113, whole horizons inside each (rows at
    # t >= 114 would add test windows)
    window = raw["data"]["window"] | {"origin_shift": 6}
    shifted = load_splits(config.validate(raw | {"data": raw["data"] | {"window": window}}))
    assert shifted.info.num_rows == {"train": 2 * 65, "val": 2 * 15, "test": 2 * 16}

    (tmp_path / "bt.yaml").write_text(yaml.safe_dump(raw))
    argv = ["backtest", "-c", str(tmp_path / "bt.yaml"), "--folds", "2", "--step", "6", "--refit", "--name", "bt"]
    assert run_command(argv) == 0
    parent, children = _backtest_runs(mlflow_client, "bt")
    assert parent.data.tags["lstmpipe.kind"] == "backtest" and parent.info.status == "FINISHED"
    assert parent.data.tags["lstmpipe.backtest_fits"] == "each_fold"
    assert {c.data.tags["lstmpipe.kind"] for c in children} == {"trial"}  # a Tune trial per origin
    assert sorted(c.data.params["data.window.origin_shift"] for c in children) == ["0", "6"]
    mases = [c.data.metrics["test_mase"] for c in children]
    assert all(c.info.status == "FINISHED" and "baseline_test_mase" in c.data.metrics for c in children)
    m = parent.data.metrics
    assert m["folds"] == 2 and m["test_mase"] == pytest.approx(np.mean(mases))
    ets = [c.data.metrics["baseline_ets_test_mase"] for c in children]  # every baseline, per fold and on average
    assert m["baseline_ets_test_mase"] == pytest.approx(np.mean(ets)) and "folds_baseline_drift_test_mase_std" in m
    assert m["folds_test_mase_std"] == pytest.approx(np.std(mases, ddof=1))
    table = pd.read_csv(mlflow_client.download_artifacts(parent.info.run_id, "report/folds.csv", str(tmp_path)))
    assert table["origin_shift"].tolist() == [6, 0] and np.allclose(sorted(table["test_mase"]), sorted(mases))
    ours = {parent.info.run_id, *(c.info.run_id for c in children)}
    assert not [v for v in mlflow_client.search_model_versions() if v.run_id in ours]  # nothing registered


def test_backtest_without_refit_tests_the_first_origins_model_at_every_origin(
    ray_session, tiny_raw, tmp_path, mlflow_client
):
    """`lstmpipe backtest --folds 2 --step 6` (no --refit): one Tune trial fits fold 0 (origin 6
    steps back); fold 1 is that model on fold 1's own test windows, scaled with the model's training
    scaler, logged as a nested run tagged with the trial's run; the parent averages both folds."""
    from dataclasses import replace

    from pipeline.cli.main import run_command
    from pipeline.tune.backtest import MODEL_RUN_TAG, origin_test

    raw = _backtest_raw(tiny_raw, tmp_path)
    (tmp_path / "bt.yaml").write_text(yaml.safe_dump(raw))
    assert (
        run_command(["backtest", "-c", str(tmp_path / "bt.yaml"), "--folds", "2", "--step", "6", "--name", "once"]) == 0
    )
    parent, children = _backtest_runs(mlflow_client, "once")
    assert parent.data.tags["lstmpipe.backtest_fits"] == "once" and parent.info.status == "FINISHED"
    by_shift = {c.data.params["data.window.origin_shift"]: c for c in children}
    assert sorted(by_shift) == ["0", "6"] and len(children) == 2  # one fit, one later origin
    fit, later = by_shift["6"], by_shift["0"]
    assert fit.data.tags["lstmpipe.kind"] == "trial" and later.data.tags["lstmpipe.kind"] == "evaluate"
    assert later.data.tags[MODEL_RUN_TAG] == fit.info.run_id and later.info.status == "FINISHED"
    own = load_splits(config.validate(raw))  # fold 1's own split: the windows its test scores
    assert later.data.metrics["test_windows"] == own.info.num_rows["test"]
    assert "baseline_ets_test_mase" in later.data.metrics
    mases = [fit.data.metrics["test_mase"], later.data.metrics["test_mase"]]
    assert parent.data.metrics["test_mase"] == pytest.approx(np.mean(mases)) and parent.data.metrics["folds"] == 2

    # a later origin's windows take the fitted model's scaler, not their own training period's
    def targets(ds, mean: float, std: float) -> np.ndarray:  # every test target in data units, sorted
        return np.sort(
            np.concatenate([np.stack(b["y"]) for b in ds.iter_batches(batch_format="numpy")]) * std + mean, axis=None
        )

    theirs = origin_test(config.validate(raw).data, info=replace(own.info, input_mean=[80.0], input_std=[20.0]))
    assert theirs.count() == own.info.num_rows["test"]
    ours = targets(own.test, own.info.input_mean[0], own.info.input_std[0])
    assert np.allclose(targets(theirs, 80.0, 20.0), ours, atol=1e-3)
    assert not np.allclose(targets(theirs, own.info.input_mean[0], own.info.input_std[0]), ours, atol=1e-3)


def test_covariates_reach_the_model_and_the_served_model_reads_them_as_predict_does(
    ray_session, tiny_raw, tmp_path, mlflow_client
):
    """store_sales (2 stores, 120 days) with a static, a static categorical (one-hot over the training
    regions), two future and a calendar feature. A window built by hand from the raw rows (future
    channels read `horizon` steps ahead: step t holds the promotion, holiday and weekday of t + 7)
    gets from the MLflow model the forecast `lstmpipe predict` wrote for the same origin."""
    from pipeline.data.sources.store_sales import StoreSalesOptions, generate
    from pipeline.serve.inputs import DataChoice
    from pipeline.serve.predict import predict

    lookback, horizon = 14, 7
    raw = {
        **tiny_raw,
        "task": "forecast",
        "data": {
            **tiny_raw["data"],
            "source": "store_sales",
            "options": {"stores": 2, "days": 120},
            "columns": {
                "series": "store",
                "time": "date",
                "target": "sales",
                "static_features": ["size"],
                "static_categories": ["region"],
                "future_features": ["promo", "holiday"],
            },
            "calendar": ["dayofweek"],
            "window": {"lookback": lookback, "horizon": horizon, "season": 7},
            "val_fraction": 0.15,
            "test_fraction": 0.15,
        },
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-covariates"},
    }
    cfg = config.validate(raw)
    splits = load_splits(cfg)
    every = generate(StoreSalesOptions(stores=2, days=120)).to_pandas()
    regions = splits.info.task_info.categories["region"]
    assert regions == sorted(set(every["region"])) and len(regions) == 2  # one channel per training region
    assert splits.info.input_size == 7 and splits.info.max_len == lookback
    summary = run_training(cfg, name="f-covariates", splits=splits)
    assert np.isfinite(summary.metrics["test_mase"]) and "baseline_ets_test_mase" in summary.metrics

    predict("models:/tiny-covariates/1", DataChoice("store_sales"), out=tmp_path / "p", tracking_uri=cfg.tracking.uri)
    pred = pd.read_parquet(tmp_path / "p").query("series == 'store_000'").set_index("time")
    rows = every.query("store == 'store_000'").sort_values("date").reset_index(drop=True)
    ahead = rows.shift(-horizon)  # the future channels: each step holds the value `horizon` steps later
    one_hot = [(rows["region"] == name).astype(float) for name in regions]
    channels = np.stack(
        [rows["sales"], rows["size"], *one_hot, ahead["promo"], ahead["holiday"], ahead["date"].dt.dayofweek], axis=1
    )  # (T, 7)
    origins = range(0, 120 - lookback - horizon + 1, 9)
    windows = np.stack([channels[i : i + lookback] for i in origins]).astype(np.float32)  # (W, L, 7)
    served = np.asarray(load_served(cfg.tracking.uri, "models:/tiny-covariates/1").predict(windows))  # (W, H)
    expected = np.stack([pred.loc[rows["date"][i + lookback], "forecast"] for i in origins])
    assert served.shape == (len(windows), horizon) and np.allclose(served, expected, atol=1e-3)
