"""`lstmpipe serve`: a trained model as a Ray Serve application, over HTTP JSON.

Two Serve applications per model, on the local Ray instance or the cluster at RAY_ADDRESS:

- `ROUTE` (`--replicas` replicas): POST `{"rows": [...]}` -> `{"predictions": [...]}`, one answer
  row per row (`pipeline.serve.online`); rows of concurrent requests are answered in one model call
  (Serve's `@serve.batch`). GET describes the model and what to send.
- `ROUTE/stream` (forecast and anomaly models; one replica, since a stream's state lives in the
  replica that holds it): POST `{"stream": ID, "window": [...]}` then `{"stream": ID, "values": [...]}`
  (`pipeline.serve.streams`).

The driver loads the model once (from MLflow or a checkpoint directory) and hands its weights,
config and data info to the replicas; each replica builds the model once. A bad request gets HTTP
4xx with one sentence; the replica keeps serving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline import ray_compat
from pipeline.console import verbose
from pipeline.serve.loading import Trained
from pipeline.serve.online import BadRequest, OnlineModel, kind_of
from pipeline.serve.streams import StreamLimits, Streams

MAX_BODY_BYTES = 32 * 2**20


@dataclass(frozen=True)
class ServeOptions:
    route: str = "/model"
    replicas: int = 1
    max_replicas: int | None = None  # autoscale between replicas and this
    max_rows: int = 1024  # rows in one request (413 above)
    max_batch_size: int = 64  # requests answered in one model call (@serve.batch)
    batch_wait_s: float = 0.002
    streams: StreamLimits = StreamLimits()
    replica_cpus: float = 1.0


@dataclass(frozen=True)
class Served:
    url: str  # the batch endpoint
    stream_url: str | None  # the streaming endpoint (forecast and anomaly models)
    apps: tuple[str, ...]  # the Serve application names (serve.delete(name) removes one)


def _payload(trained: Trained) -> dict[str, Any]:
    return {
        "state": trained.model.state_dict(),
        "config": trained.config.model_dump(mode="json"),
        "info": trained.info.as_dict(),
    }


def _rebuild(payload: dict[str, Any]) -> Trained:
    from pathlib import Path

    from pipeline.config import Config
    from pipeline.model.sequence_model import model_for
    from pipeline.tasks import DataInfo

    info, cfg = DataInfo.from_dict(payload["info"]), Config.model_validate(payload["config"])
    model = model_for(cfg.model, info)
    model.load_state_dict(payload["state"])
    return Trained(model=model.eval(), info=info, config=cfg, directory=Path("."))


def _response(body: Any, status: int = 200):
    from starlette.responses import JSONResponse

    return JSONResponse(body, status_code=status)


async def _json(request) -> Any:
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_BODY_BYTES:
        raise BadRequest(f"the request body is {size} bytes, more than {MAX_BODY_BYTES}; split it", status=413)
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"the request body is over {MAX_BODY_BYTES} bytes; split it", status=413)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequest(f"the request body is not JSON ({str(err)[:80]}); send application/json") from err


def deployments(options: ServeOptions):
    """The two Serve deployment classes, built here so that importing this module imports no Serve."""
    from ray import serve

    @serve.deployment(
        name="batch",
        ray_actor_options={"num_cpus": options.replica_cpus},
        max_ongoing_requests=options.max_batch_size,  # so that a batch can fill
    )
    class BatchServer:
        def __init__(self, payload: dict[str, Any]):
            self.online = OnlineModel(_rebuild(payload))

        async def __call__(self, request):
            if request.method == "GET":
                return _response(describe(self.online, options))
            try:
                items = self.online.parse(await _json(request), max_rows=options.max_rows)
                result = await self.answer_batch(items)
            except BadRequest as err:
                return _response({"error": str(err)}, err.status)
            if isinstance(result, BadRequest):
                return _response({"error": str(result)}, result.status)
            return _response({"predictions": result})

        @serve.batch(max_batch_size=options.max_batch_size, batch_wait_timeout_s=options.batch_wait_s)
        async def answer_batch(self, requests: list[list]) -> list:
            """Concurrent requests' rows in one model call; a request whose rows the model refuses
            (a transcript character, ...) is answered alone so the others still get theirs."""
            try:
                rows = self.online.answer([item for items in requests for item in items])
            except BadRequest:
                return [self._alone(items) for items in requests]
            out, start = [], 0
            for items in requests:
                out.append(rows[start : start + len(items)])
                start += len(items)
            return out

        def _alone(self, items: list):
            try:
                return self.online.answer(items)
            except BadRequest as err:
                return err

    @serve.deployment(name="stream", num_replicas=1, ray_actor_options={"num_cpus": options.replica_cpus})
    class StreamServer:
        def __init__(self, payload: dict[str, Any]):
            self.streams = Streams(OnlineModel(_rebuild(payload)), limits=options.streams)

        async def __call__(self, request):
            if request.method == "GET":
                held = self.streams
                return _response({"streams": len(held.held), "evicted": held.evicted, "bytes": held.bytes_held()})
            try:
                return _response(self.streams.update(await _json(request)))
            except BadRequest as err:
                return _response({"error": str(err)}, err.status)

    return BatchServer, StreamServer


def describe(online: OnlineModel, options: ServeOptions) -> dict[str, Any]:
    info = online.info
    out = {"task": info.task, "send": f'{{"rows": [{online.row_example()}, ...]}}', "max_rows": options.max_rows}
    if online.kind == "windows":
        out |= {"lookback": info.max_len, "horizon": len(info.task_info.scaler["std"])}
        out["values_per_step"] = info.input_size
        out["stream"] = f"{options.route.rstrip('/')}/stream"
    return out


def deploy(trained: Trained, *, options: ServeOptions, http_host: str = "127.0.0.1", http_port: int = 8000) -> Served:
    """Start Serve (if not running) and deploy the model's applications; returns their URLs."""
    from ray import serve

    kind_of(trained)  # refuses a model Serve cannot answer, before anything starts
    logs = {"log_level": "INFO" if verbose() else "WARNING"}  # Serve logs every request at INFO
    serve.start(http_options={"host": http_host, "port": http_port}, logging_config=logs)
    batch_cls, stream_cls = deployments(options)
    payload = _payload(trained)
    route = "/" + options.route.strip("/")
    name = route.strip("/").replace("/", "-") or "model"
    scaling = (
        {"num_replicas": options.replicas}
        if options.max_replicas is None
        else {
            "num_replicas": None,
            "autoscaling_config": {"min_replicas": options.replicas, "max_replicas": options.max_replicas},
        }
    )
    serve.run(batch_cls.options(**scaling).bind(payload), name=name, route_prefix=route, logging_config=logs)
    apps, stream_url = (name,), None
    base = f"http://{http_host}:{ray_compat.serve_http_port(http_port)}"  # a running Serve keeps its port
    if kind_of(trained) == "windows":
        stream_route = f"{route.rstrip('/')}/stream"
        serve.run(stream_cls.bind(payload), name=f"{name}-stream", route_prefix=stream_route, logging_config=logs)
        apps, stream_url = (name, f"{name}-stream"), f"{base}{route.rstrip('/')}/stream"
    return Served(url=f"{base}{route}", stream_url=stream_url, apps=apps)
