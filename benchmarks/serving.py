"""B11: `lstmpipe serve` under load, on loopback: the batch endpoint at 1 and 2 replicas (alternated,
A B A B, on the same Serve application scaled in place) and the streaming endpoint with 100 streams.

The model is a forecast model of the co2 experiment's shape (LSTM 32, lookback 36, horizon 12,
Gaussian head) with untrained weights: the work per request does not depend on the weights. Client
threads (keep-alive HTTP sessions) send one-window requests for a fixed time; reported: requests/s,
p50 and p99 latency, and the bytes each stream holds on the server (its window and the forecasts
waiting for their values).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np

LOOKBACK, HORIZON, CLIENTS, SECONDS = 36, 12, 8, 6.0


def forecast_model():
    import torch

    from pipeline.config import validate
    from pipeline.model.sequence_model import model_for
    from pipeline.serve.loading import Trained
    from pipeline.tasks import DataInfo
    from pipeline.tasks.forecast import ForecastInfo

    cfg = validate(
        {
            "task": "forecast",
            "data": {"source": "co2", "window": {"lookback": LOOKBACK, "horizon": HORIZON, "season": 12}},
            "model": {"hidden_size": 32, "likelihood": "gaussian"},
        }
    )
    own = ForecastInfo(scaler={"mean": [350.0] * HORIZON, "std": [10.0] * HORIZON}, season=12, likelihood="gaussian")
    info = DataInfo(
        task="forecast",
        target="float",
        input_size=1,
        output_size=2 * HORIZON,
        max_len=LOOKBACK,
        input_mean=[350.0],
        input_std=[10.0],
        task_info=own,
    )
    torch.manual_seed(0)
    return Trained(model=model_for(cfg.model, info).eval(), info=info, config=cfg, directory=Path("."))


def _load(url: str, bodies, *, seconds: float, clients: int) -> dict[str, float]:
    """`clients` threads POST bodies (a callable: thread, i -> JSON) for `seconds`; requests/s, p50, p99."""
    import requests

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        with requests.Session() as session:
            i = 0
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                answer = session.post(url, json=bodies(k, i), timeout=30)
                latencies[k].append(time.perf_counter() - t0)
                errors[k] += answer.status_code != 200
                i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    all_ms = np.concatenate([np.asarray(v) for v in latencies]) * 1000
    return {
        "rps": len(all_ms) / wall,
        "p50_ms": float(np.percentile(all_ms, 50)),
        "p99_ms": float(np.percentile(all_ms, 99)),
        "errors": float(sum(errors)),
    }


def measure(*, rounds: int = 2) -> dict:
    """Deploy on the connected Ray, measure, delete. Needs Ray connected (Serve starts on it)."""
    import requests
    from ray import serve

    from pipeline.serve.deployment import ServeOptions, deploy

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    trained = forecast_model()
    rng = np.random.default_rng(0)
    windows = (350 + 10 * rng.standard_normal((64, LOOKBACK))).tolist()

    def one_window(k: int, i: int) -> dict:
        return {"rows": [{"x": windows[(k * 7 + i) % 64]}]}

    out: dict = {"batch": {1: [], 2: []}}
    served = None
    for _ in range(rounds):
        for replicas in (1, 2):  # scaled in place: A B A B
            options = ServeOptions(route="/b11", replicas=replicas, replica_cpus=0.5)
            served = deploy(trained, options=options, http_port=port)
            _load(served.url, one_window, seconds=1.0, clients=CLIENTS)  # warm: every replica has answered
            out["batch"][replicas].append(_load(served.url, one_window, seconds=SECONDS, clients=CLIENTS))
    streams = 100
    for k in range(streams):
        requests.post(served.stream_url, json={"stream": f"s{k}", "window": windows[k % 64]}, timeout=30)

    def one_value(k: int, i: int) -> dict:
        return {"stream": f"s{(k + CLIENTS * i) % streams}", "values": [350 + (31 * i + k) % 20 / 10]}

    out["stream"] = _load(served.stream_url, one_value, seconds=SECONDS, clients=CLIENTS)
    held = requests.get(served.stream_url, timeout=30).json()
    out["bytes_per_stream"] = held["bytes"] / max(held["streams"], 1)
    out["streams"] = held["streams"]
    for app in served.apps:
        serve.delete(app)
    serve.shutdown()
    return out
