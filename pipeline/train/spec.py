"""What the driver hands every training worker: the run's config, its data and who logs what.

Its own module, without torch: Ray Train's controller unpickles the train loop's config (it travels
in the run's context) and so imports the module a `WorkerSpec` comes from; from `pipeline.train.worker`
that cost each controller a torch import (~1.5 s of CPU before it starts the worker group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import ray.data
    import ray.train

# who logs each epoch to MLflow: rank 0 as it trains; a Tune trial's sweep driver as Tune receives the
# epoch (pipeline.tune.epochs); `lstmpipe train`'s driver as it follows the run's controller
# (pipeline.train.live). The drivers have MLflow loaded already: rank 0 then does not import it.
EpochLogger = Literal["rank0", "sweep", "driver"]
# where a report carries the run's tags (world size, worker nodes, restored_from_epoch) to that driver
RUN_TAGS_KEY = "lstmpipe.run_tags"


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, its data included; built by the driver."""

    task: str
    model: dict[str, Any]
    train: dict[str, Any]
    info: dict[str, Any]  # DataInfo of the prepared splits
    config: dict[str, Any]  # the whole config, saved in each checkpoint
    config_hash: str
    run_id: str | None
    tracking_uri: str
    train_split: ray.data.Dataset  # materialized on the driver; every worker reads all of it (whole_split)
    val_split: ray.data.Dataset
    telemetry_epochs: tuple[int, ...] = ()  # epochs whose gates, states and gradient flow rank 0 records
    probe_size: int = 32
    system_metrics_s: float | None = None  # tracking.system_metrics_s: each node's local rank 0 samples its node
    warm_start: ray.train.Checkpoint | None = None  # PBT: another trial's checkpoint this run starts from
    epochs_logged_by: EpochLogger = "rank0"

    def as_loop_config(self) -> dict[str, Any]:
        return {"spec": self}
