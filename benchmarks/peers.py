"""B12: our LSTM beside the LSTMs forecasting users compare it with, on the same series, the same test
windows and the same metric code: Nixtla's neuralforecast (`LSTM`) and darts (`BlockRNNModel(model="LSTM")`).

Each side gets what our shipped config gives ours (lookback, horizon, hidden size, epochs, batch size,
learning rate) and runs in a fresh process, so its wall time holds imports, data, training and the test
forecasts: ours is `lstmpipe train -c conf/experiments/<set>.yaml` on 1 worker (Ray, MLflow, the model
export included); the peers train on every step before the test period (ours on the training period,
the validation period choosing its checkpoint) with their own recommended scaling, then forecast every
test window from its origin without refitting (neuralforecast's `cross_validation(refit=False)`,
darts' `historical_forecasts(retrain=False)`). All forecasts are scored by
`pipeline.data.windows.forecast_metrics` against the windows `cut_windows` cuts from our own time
split, with our MASE scales.

The peers are a `benchmarks` extra (`pip install -e .[benchmarks]`; `make bench` installs it), never a
runtime dependency.

    .venv/bin/python -m benchmarks.peers <side> <set> <seed> <out.json>   # one peer run (what B12 spawns)
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
SETS = ("co2", "airline", "sunspots", "m1_yearly")  # conf/experiments/<set>.yaml
SIDES = ("lstmpipe", "neuralforecast", "darts")


@dataclass(frozen=True)
class Problem:
    """One set as our shipped config poses it."""

    name: str
    source: str  # data.source
    lookback: int
    horizon: int
    season: int
    hidden: int
    epochs: int
    batch_size: int
    lr: float
    val_fraction: float
    test_fraction: float


def problem(name: str) -> Problem:
    from pipeline.config import load

    cfg = load(ROOT / "conf" / "experiments" / f"{name}.yaml")
    w = cfg.data.window
    return Problem(
        name=name,
        source=cfg.data.source,
        lookback=w.lookback,
        horizon=w.horizon,
        season=w.season,
        hidden=cfg.model.hidden_size,
        epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size,
        lr=cfg.train.lr,
        val_fraction=cfg.data.val_fraction,
        test_fraction=cfg.data.test_fraction,
    )


@dataclass(frozen=True)
class Series:
    """Every series of a set in time order, with our split of each step."""

    values: dict[str, np.ndarray]  # series id -> (T,) values
    splits: dict[str, np.ndarray]  # series id -> (T,) "train" / "val" / "test"


def series_of(p: Problem) -> Series:
    """The built-in source's long table, split by our global time cuts (pipeline.data.windows)."""
    from pipeline.data.sources import SOURCES
    from pipeline.data.windows import split_labels, time_cuts

    source = SOURCES[p.source]
    table = source.generate(source.options_model()).to_pandas()
    if "series" not in table:
        table["series"] = "0"
    val_start, test_start = time_cuts(
        np.sort(table["time"].unique()), val_fraction=p.val_fraction, test_fraction=p.test_fraction
    )
    values, splits = {}, {}
    for name, group in table.sort_values("time").groupby("series", sort=True):
        values[str(name)] = group["y"].to_numpy(np.float64)
        splits[str(name)] = split_labels(group["time"].to_numpy(), val_start=val_start, test_start=test_start)
    return Series(values=values, splits=splits)


def test_windows(p: Problem, data: Series) -> dict[tuple[str, int], tuple[np.ndarray, float]]:
    """(series, position of the first target) -> (its H values, its MASE scale): our test windows."""
    from pipeline.data.windows import cut_windows, mase_scale

    out = {}
    for name, values in data.values.items():
        splits = data.splits[name]
        win = cut_windows(
            values[:, None],
            values,
            splits,
            lookback=p.lookback,
            horizon=p.horizon,
            at_target={"pos": np.arange(len(values))},
        )
        scale = mase_scale(values, splits, season=p.season)
        for y, split, pos in zip(win["y"], win["split"], win["at_target"]["pos"], strict=True):
            if split == "test":
                out[name, int(pos)] = (np.asarray(y, np.float64), scale)
    return out


def score(p: Problem, data: Series, forecasts: dict[tuple[str, int], list[float]]) -> dict[str, float]:
    """A side's forecasts of our test windows -> forecast_metrics (a missing window is an error)."""
    from pipeline.data.windows import forecast_metrics

    windows = test_windows(p, data)
    missing = [key for key in windows if key not in forecasts]
    if missing:
        raise RuntimeError(f"{p.name}: {len(missing)} of {len(windows)} test windows not forecast, e.g. {missing[0]}")
    keys = sorted(windows)
    y = np.stack([windows[k][0] for k in keys])  # (W, H)
    pred = np.stack([np.asarray(forecasts[k], np.float64) for k in keys])  # (W, H)
    scale = np.array([windows[k][1] for k in keys])  # (W,)
    return forecast_metrics(pred, y, scale=scale) | {"windows": len(keys)}


def train_windows(p: Problem, data: Series) -> int:
    """How many windows our model trains on (targets in the training period): the peers' step budget."""
    trains = (int((splits == "train").sum()) for splits in data.splits.values())
    return sum(max(0, n - p.lookback - p.horizon + 1) for n in trains)


# -- the peers, each in a fresh process ------------------------------------------------------------
def _before_test(data: Series) -> dict[str, int]:
    """Series id -> how many of its steps come before the test period."""
    return {name: int((splits != "test").sum()) for name, splits in data.splits.items()}


def _test_steps(data: Series) -> int:
    """The steps of the test period, the same in every series (the peers forecast from a position
    counted from each series' end: our sets' series all end at the test period's end)."""
    steps = {int((splits == "test").sum()) for splits in data.splits.values()}
    if len(steps) != 1:
        raise RuntimeError(f"series hold {sorted(steps)} test steps; the peers need one test period length")
    return steps.pop()


def _trainer_kwargs() -> dict:
    return {
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "logger": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
    }


def neuralforecast_forecasts(p: Problem, data: Series, *, seed: int) -> dict[tuple[str, int], list[float]]:
    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    frame = pd.concat(
        pd.DataFrame({"unique_id": name, "ds": np.arange(len(v)), "y": v}) for name, v in data.values.items()
    )
    steps = p.epochs * math.ceil(train_windows(p, data) / p.batch_size)  # our optimizer steps on 1 worker
    model = LSTM(
        h=p.horizon,
        input_size=p.lookback,
        encoder_hidden_size=p.hidden,
        encoder_n_layers=1,
        decoder_hidden_size=p.hidden,
        max_steps=steps,
        learning_rate=p.lr,
        windows_batch_size=p.batch_size,
        random_seed=seed,
        **_trainer_kwargs(),
    )
    cv = NeuralForecast(models=[model], freq=1).cross_validation(
        df=frame, test_size=_test_steps(data), step_size=1, n_windows=None, refit=False
    )
    out: dict[tuple[str, int], list[float]] = {}
    for (name, cutoff), rows in cv.sort_values("ds").groupby(["unique_id", "cutoff"]):
        out[str(name), int(cutoff) + 1] = rows["LSTM"].tolist()
    return out


def darts_forecasts(p: Problem, data: Series, *, seed: int) -> dict[tuple[str, int], list[float]]:
    from darts import TimeSeries
    from darts.dataprocessing.transformers import Scaler
    from darts.models import BlockRNNModel

    before = _before_test(data)
    names = [n for n in data.values if before[n] > 0]
    full = [TimeSeries.from_values(data.values[n].astype(np.float32)) for n in names]
    scaler = Scaler()  # darts' default: min-max per series, fitted on the steps before the test period
    scaler.fit([s[: before[n]] for s, n in zip(full, names, strict=True)])
    trainable = [i for i, n in enumerate(names) if before[n] >= p.lookback + p.horizon]
    train = scaler.transform([full[i][: before[names[i]]] for i in trainable], series_idx=trainable)
    model = BlockRNNModel(
        model="LSTM",
        input_chunk_length=p.lookback,
        output_chunk_length=p.horizon,
        hidden_dim=p.hidden,
        n_rnn_layers=1,
        n_epochs=p.epochs,
        batch_size=p.batch_size,
        optimizer_kwargs={"lr": p.lr},
        random_state=seed,
        pl_trainer_kwargs=_trainer_kwargs(),
    )
    model.fit(train, verbose=False)
    scored = [i for i, n in enumerate(names) if before[n] >= p.lookback]
    forecasts = model.historical_forecasts(
        scaler.transform([full[i] for i in scored], series_idx=scored),
        start=-_test_steps(data),  # every series' first test step, counted from its end
        start_format="position",
        forecast_horizon=p.horizon,
        stride=1,
        retrain=False,
        last_points_only=False,
        overlap_end=False,
        verbose=False,
    )
    out: dict[tuple[str, int], list[float]] = {}
    for i, per_origin in zip(scored, forecasts, strict=True):
        levels = scaler.inverse_transform(per_origin, series_idx=[i] * len(per_origin))
        for forecast in levels:
            out[names[i], int(forecast.start_time())] = forecast.values().ravel().astype(np.float64).tolist()
    return out


PEERS = {"neuralforecast": neuralforecast_forecasts, "darts": darts_forecasts}


def _peer_main(side: str, name: str, seed: int, out: str) -> None:
    """One peer run (a fresh process): its forecasts of the set's test windows, as JSON."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for logger in ("lightning", "pytorch_lightning", "lightning.pytorch", "darts", "neuralforecast"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    p = problem(name)
    forecasts = PEERS[side](p, series_of(p), seed=seed)
    Path(out).write_text(json.dumps([[n, pos, f] for (n, pos), f in forecasts.items()]))


# -- the comparison (what `make bench` runs) --------------------------------------------------------
def run_side(side: str, name: str, *, seed: int, workdir: Path) -> dict[str, float]:
    """One side on one set and seed in a fresh process: its test metrics (our code) and wall time."""
    p = problem(name)
    out = workdir / f"{side}-{name}-{seed}.json"
    started = time.perf_counter()
    if side == "lstmpipe":
        sets = [
            "train.workers=1",
            f"train.seed={seed}",
            f"tracking.uri=sqlite:///{workdir}/peers.db",
            f"train.storage_path={workdir}/runs",
            f"data.cache_dir={workdir}/data",
        ]
        command = [sys.executable, "-m", "pipeline.cli", "train", "-c", str(ROOT / "conf/experiments" / f"{name}.yaml")]
        command += [arg for s in sets for arg in ("--set", s)] + ["--name", f"peers-{name}-{seed}", "--summary-json"]
        command += [str(out)]
    else:
        command = [sys.executable, "-m", "benchmarks.peers", side, name, str(seed), str(out)]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{side} on {name} (seed {seed}) failed: {done.stderr[-2000:]}")
    if side == "lstmpipe":
        metrics = json.loads(out.read_text())["metrics"]
        return {"mase": metrics["test_mase"], "windows": metrics["test_windows"], "wall_s": wall}
    forecasts = {(n, pos): f for n, pos, f in json.loads(out.read_text())}
    got = score(p, series_of(p), forecasts)
    return {"mase": got["mase"], "windows": got["windows"], "wall_s": wall}


def compare(*, workdir: str, seeds: tuple[int, ...] = (0, 1, 2), sets: tuple[str, ...] = SETS) -> dict:
    """Every side on every set and seed, interleaved (seed by seed, the three sides one after another),
    so drift in a shared machine hits all three alike: {set: {side: [per-seed results]}}."""
    work = Path(workdir) / "peers"
    work.mkdir(parents=True, exist_ok=True)
    got: dict[str, dict[str, list[dict[str, float]]]] = {name: {side: [] for side in SIDES} for name in sets}
    for seed in seeds:
        for name in sets:
            for side in SIDES:
                got[name][side].append(run_side(side, name, seed=seed, workdir=work))
                print(f"B12 {name} {side} seed {seed}: {got[name][side][-1]}", flush=True)
    return got


if __name__ == "__main__":
    _peer_main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
