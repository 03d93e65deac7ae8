"""Connecting to Ray: join RAY_ADDRESS if set, else start a local instance (token auth stays on)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import ray
import ray.data

QUIET_ENV = {
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    "RAY_DATA_LOGGING_CONFIG": str(Path(__file__).with_name("ray_data_logging.yaml")),
}


def connect() -> None:
    if ray.is_initialized():
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    ray.init(
        address=os.environ.get("RAY_ADDRESS") or None,
        runtime_env={"env_vars": QUIET_ENV},
        logging_level=logging.WARNING,
    )
    ray.data.DataContext.get_current().print_on_execution_start = False


def available(resource: str) -> float:
    return float(ray.cluster_resources().get(resource, 0.0))
