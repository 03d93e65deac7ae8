"""System metrics of a training run, per node: CPU, memory, disk, network (and GPU where MLflow's GPU
monitor finds one), sampled by MLflow's `SystemMetricsMonitor` in the process of each node's local
rank 0 and logged to the run as `system/<node>/...` every `tracking.system_metrics_s` seconds."""

from __future__ import annotations

import logging
from typing import Any


def start_system_metrics(tracking_uri: str, run_id: str, *, node: str, interval_s: float) -> Any:
    """A started monitor (call `.finish()` when training ends), or None where MLflow cannot sample."""
    # its INFO lines ("Started monitoring system metrics.") would reach the driver's console
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError:  # psutil missing: MLflow's monitors need it
        return None
    monitor = SystemMetricsMonitor(
        run_id, sampling_interval=interval_s, samples_before_logging=1, node_id=node, tracking_uri=tracking_uri
    )
    monitor.start()
    return monitor
