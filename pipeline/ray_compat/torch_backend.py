"""Ray Train's torch backend without torch in the controller.

`TorchTrainer` sends its `TorchConfig` to the run's TrainController (in the run context and in two
default callbacks), and `ray.train.torch.config`, where that class lives, imports torch at the top:
every controller imported torch (measured: ~1.5 s of CPU, before it starts the worker group, on the
critical path of every run and Tune trial) only to call functions that run on the workers.
`WorkerTorchConfig` is the same configuration in a module without torch; its backend does what Ray's
`_TorchBackend` does (Ray 2.60, CPU and GPU; TPUs are not ours), and every function it runs on the
workers is Ray's own, looked up there (`_in_torch_config`). Imports no Ray and no torch at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ray.train.backend import Backend, BackendConfig


def _in_torch_config(function: str, /, **kwargs: Any) -> Any:
    """On a worker: Ray's own function of that name in ray.train.torch.config (the worker has torch)."""
    from ray.train.torch import config

    return getattr(config, function)(**kwargs)


def _set_master(*, addr: str, port: int) -> None:
    """On a worker: where rank 0's TCPStore listens (init_method "env", as Ray's backend sets it)."""
    os.environ["MASTER_ADDR"] = addr
    os.environ["MASTER_PORT"] = str(port)


class WorkerTorchBackend(Backend):
    """Ray's `_TorchBackend` (ray.train.torch.config, Ray 2.60) for a V2 worker group on CPUs or GPUs."""

    share_cuda_visible_devices: bool = True

    def on_start(self, worker_group, backend_config: WorkerTorchConfig) -> None:
        import ray
        from ray.train._internal.utils import get_address_and_port

        backend = backend_config.backend
        if backend is None:
            backend = "nccl" if worker_group.get_resources_per_worker().get("GPU", 0) > 0 else "gloo"
        if backend not in ("gloo", "nccl"):
            raise ValueError(f"torch backend {backend!r}: this controller sets up gloo or nccl only")
        addr, port = worker_group.execute_single(0, get_address_and_port)
        if backend_config.init_method == "env":
            worker_group.execute(_set_master, addr=addr, port=port)
            url = "env://"
        elif backend_config.init_method == "tcp":
            url = f"tcp://{addr}:{port}"
        else:
            raise ValueError(f"torch init_method {backend_config.init_method!r}: 'env' or 'tcp'")
        worker_group.execute(_in_torch_config, "_set_torch_distributed_env_vars")  # RANK, LOCAL_RANK, ...
        world = len(worker_group)
        ray.get(
            [
                worker_group.execute_single_async(
                    rank,
                    _in_torch_config,
                    "_setup_torch_process_group",
                    backend=backend,
                    world_rank=rank,
                    world_size=world,
                    init_method=url,
                    timeout_s=backend_config.timeout_s,
                )
                for rank in range(world)
            ]
        )

    def on_shutdown(self, worker_group, backend_config: WorkerTorchConfig) -> None:
        import logging

        import ray
        from ray._private import ray_constants
        from ray.exceptions import GetTimeoutError
        from ray.train.constants import (
            DEFAULT_TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S,
            TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S,
        )

        futures = worker_group.execute_async(
            _in_torch_config, "_shutdown_torch", destroy_process_group=len(worker_group) > 1
        )
        timeout_s = ray_constants.env_integer(
            TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S, DEFAULT_TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S
        )
        try:
            ray.get(futures, timeout=timeout_s)
        except GetTimeoutError:
            logging.getLogger(__name__).warning("Torch process group shutdown timed out after %s seconds", timeout_s)


@dataclass
class WorkerTorchConfig(BackendConfig):
    """`ray.train.torch.TorchConfig`'s fields and defaults, for `TorchTrainer(torch_config=...)`."""

    backend: str | None = None
    init_method: str = "env"
    timeout_s: int = 1800

    @property
    def backend_cls(self):
        return WorkerTorchBackend

    @property
    def train_func_context(self):
        """Wraps the train function on the driver, entered on the workers: Ray's own."""
        from ray.train.torch.config import TorchConfigContextManager

        return TorchConfigContextManager

    @property
    def framework(self):
        from ray.train.v2._internal.util import TrainingFramework

        return TrainingFramework.TORCH

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "init_method": self.init_method, "timeout_s": self.timeout_s}
