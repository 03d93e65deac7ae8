"""Connecting to Ray: join RAY_ADDRESS if set, else start a local instance (token auth stays on)."""

from __future__ import annotations

import logging
import os

import ray
import ray.data

QUIET_ENV = {
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    "RAY_DATA_LOGGING_CONFIG": os.environ["RAY_DATA_LOGGING_CONFIG"],  # set in pipeline/__init__.py
}


def connect() -> None:
    if ray.is_initialized():
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    # Bad data fails in several Ray Data blocks at once: the first failure is raised as one DataError
    # sentence; its siblings would otherwise be logged as "Unhandled error" tracebacks on exit.
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    ray.init(
        address=os.environ.get("RAY_ADDRESS") or None,
        runtime_env={"env_vars": QUIET_ENV},
        logging_level=logging.WARNING,
    )
    # The splits are small, materialized once: per-split progress bars in every worker would bury
    # the per-epoch lines (EpochProgress). Ray Data's console logging is quieted by
    # ray_data_logging.yaml (see pipeline/__init__.py).
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def available(resource: str) -> float:
    return float(ray.cluster_resources().get(resource, 0.0))
