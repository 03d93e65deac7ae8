"""`lstmpipe serve`: a trained model on Ray Serve (pipeline.serve.deployment), until Ctrl-C."""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated

import typer

from pipeline.cli.options import ModelOpt, TrackingOpt, user_errors
from pipeline.errors import ConfigError


def serve(
    model: ModelOpt,
    route: Annotated[str, typer.Option("--route", help="HTTP path of the model; streams at ROUTE/stream.")] = "/model",
    replicas: Annotated[
        int, typer.Option("--replicas", min=1, help="Copies of the batch endpoint (Serve's num_replicas).")
    ] = 1,
    max_replicas: Annotated[
        int | None,
        typer.Option(
            "--max-replicas",
            min=1,
            help="Autoscale the batch endpoint between --replicas and this many (Serve's autoscaling_config, "
            "by ongoing requests per replica).",
        ),
    ] = None,
    replica_cpus: Annotated[
        float, typer.Option("--replica-cpus", min=0.01, help="CPUs Ray reserves for each replica.")
    ] = 1.0,
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster to deploy on (default RAY_ADDRESS, else a local Ray).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address Serve's HTTP proxies listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of Serve's HTTP proxies.")] = 8000,
    max_rows: Annotated[int, typer.Option("--max-rows", min=1, help="Rows one request may send (413 above).")] = 1024,
    max_streams: Annotated[
        int, typer.Option("--max-streams", min=1, help="Streams held; the least recently used is dropped.")
    ] = 10_000,
    stream_ttl_s: Annotated[
        float, typer.Option("--stream-ttl-s", min=1.0, help="A stream idle this long is dropped.")
    ] = 3600.0,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Serve a model over HTTP JSON on Ray Serve: POST {"rows": [...]} to ROUTE (what `lstmpipe
    predict` answers, per row; GET ROUTE says what to send); forecast and anomaly models also stream
    at ROUTE/stream ({"stream": ID, "window": [...]}, then {"stream": ID, "values": [...]}).

    Scaling out: on a cluster (--address or RAY_ADDRESS) Ray places the --replicas copies of the
    batch endpoint on any node with a free CPU and runs an HTTP proxy per node (--host 0.0.0.0 to
    reach them from outside); --max-replicas lets Serve add and remove copies with the load. Rows of
    concurrent requests are answered in one model call (Serve's dynamic batching). A stream's state
    lives in the one stream replica (bounded by --max-streams and --stream-ttl-s). Ctrl-C removes
    the applications.
    """
    with user_errors():
        from pipeline.cli.main import _tracking_uri
        from pipeline.serve.deployment import ServeOptions, deploy
        from pipeline.serve.loading import load
        from pipeline.serve.streams import StreamLimits

        if max_replicas is not None and max_replicas < replicas:
            raise ConfigError(f"--max-replicas {max_replicas} is below --replicas {replicas}; raise it or drop it")
        trained = load(model, tracking_uri=_tracking_uri(tracking_uri))
        options = ServeOptions(
            route=route,
            replicas=replicas,
            max_replicas=max_replicas,
            max_rows=max_rows,
            replica_cpus=replica_cpus,
            streams=StreamLimits(max_streams=max_streams, ttl_s=stream_ttl_s),
        )
        if address:
            os.environ["RAY_ADDRESS"] = address
        from pipeline.cluster.connect import connect

        connect()
        served = deploy(trained, options=options, http_host=host, http_port=port)
    typer.echo(f"serving {model} ({trained.info.task}) at {served.url}")
    if served.stream_url:
        typer.echo(f"streaming at {served.stream_url}")
    typer.echo("Ctrl-C to stop")
    sys.stdout.flush()  # a log file or pipe sees the addresses now, not when the server stops
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        from ray import serve as ray_serve

        for name in served.apps:
            ray_serve.delete(name)
        typer.echo("stopped")
