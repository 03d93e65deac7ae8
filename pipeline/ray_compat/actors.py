"""Which actors Ray Train and Tune start for a run of ours, and in what: the default callbacks (and
their actor processes) a run leaves out, and the runtime envs left out on a Ray of our own so that
the controller, the workers and the trial actors start on idle pooled workers. Imports no Ray at
import time (pipeline.ray_compat, the package this module is in, runs first in every Ray worker process)."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from typing import Literal

# Ray Train's default callbacks that a run of ours can leave out. Ray 2.60 adds each unconditionally
# in `DataParallelTrainer._create_default_callbacks` (no flag), so the list it returns is filtered.
# - placement_group_cleaner: one detached actor process per run that polls the dashboard's State API
#   every second, and whose stop at the end of the run waits for that poll. Needed where a run's
#   controller can die without its job (a Tune trial's): `build_trainer`'s owner.
# - datasets: a DatasetManager actor process per run, created even for a trainer without
#   `datasets=`, and the driver's DataContext set in each worker. Our workers get the splits in their
#   spec (`pipeline.data.batches.whole_split`), each with its own DataContext, and call no
#   `ray.train.get_dataset_shard`.
TrainCallback = Literal["placement_group_cleaner", "datasets"]


def without_default_callbacks(trainer, *, leave_out: tuple[TrainCallback, ...]) -> None:
    """Leave the named Ray Train default callbacks (and the actors they start) out of this trainer's runs."""
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    kinds = {"placement_group_cleaner": PlacementGroupCleanerCallback, "datasets": DatasetsCallback}
    dropped = tuple(kinds[name] for name in leave_out)
    default = trainer._create_default_callbacks
    trainer._create_default_callbacks = lambda: [c for c in default() if not isinstance(c, dropped)]


# Ray Train gives its controller a runtime env of its own (the RAY_TRAIN_* variables set in the driver,
# and RAY_WARN_BLOCKING_GET_INSIDE_ASYNC=0), and the controller gives the same to the worker group:
# `DataParallelTrainer._initialize_and_run_controller`, `WorkerGroup._get_worker_runtime_env`. A
# runtime env, however small, keeps an actor off the idle workers Ray pools: a new process is started
# for it through `setup_worker.py` (measured: an actor ready in 0.14 s on an idle pooled worker, 0.73 s
# with one env var). On a Ray of our own, every process inherits those variables from the environment
# the driver had at `ray.init` (connect.worker_runtime_env adds RAY_WARN_BLOCKING_GET_INSIDE_ASYNC=0),
# all on one machine: the runtime envs change nothing there and are left out. On a cluster they stay.
OWN_RAY_ENV = "LSTMPIPE_OWN_RAY"  # in every process of a Ray instance an lstmpipe driver started
WARN_BLOCKING_GET_ENV = "RAY_WARN_BLOCKING_GET_INSIDE_ASYNC"  # Ray Train sets it to "0" for its controller
_started_here = False  # this process started the Ray it runs on (connect, local)


def set_own_ray(started_here: bool) -> None:
    """The driver's connect(): whether it started the local Ray instance it runs on."""
    global _started_here
    _started_here = started_here


def on_own_ray() -> bool:
    """This process runs on a Ray instance that an lstmpipe driver started on this machine: that
    driver, or one of the instance's worker processes."""
    return _started_here or os.environ.get(OWN_RAY_ENV) == "1"


@functools.cache
def _pooled_controller_cls():
    """TrainController whose worker group leaves out the env vars every worker inherits anyway."""
    from ray.train.v2._internal.execution.controller import TrainController
    from ray.train.v2._internal.execution.worker_group import WorkerGroup

    class PooledWorkerGroup(WorkerGroup):
        @staticmethod
        def _get_worker_runtime_env(custom_runtime_env):
            runtime_env = dict(WorkerGroup._get_worker_runtime_env(custom_runtime_env))
            # this controller runs without a runtime env: its environment is its node's, the workers'
            env_vars = {k: v for k, v in runtime_env.pop("env_vars", {}).items() if os.environ.get(k) != v}
            return runtime_env | ({"env_vars": env_vars} if env_vars else {})

    class PooledTrainController(TrainController):
        worker_group_cls = PooledWorkerGroup

    # the name users see in the console's "(TrainController pid=...)" prefix and Ray's dashboard
    PooledTrainController.__name__ = PooledTrainController.__qualname__ = TrainController.__name__
    return PooledTrainController


def train_actors_share_the_worker_pool(trainer) -> None:
    """On a Ray of our own: this trainer's controller, synchronization actor and workers start
    without a runtime env, on the idle workers Ray pools when there are some."""
    import ray

    def run_controller(**controller_init_kwargs):
        node = {ray._raylet.RAY_NODE_ID_KEY: ray.get_runtime_context().get_node_id()}
        controller_cls = ray.remote(num_cpus=0, label_selector=node)(_pooled_controller_cls())
        controller = controller_cls.remote(**controller_init_kwargs)
        if threading.current_thread() is threading.main_thread():  # not in a Tune trial's thread
            trainer._register_sigint_handler(controller)
        ray.get(controller.run.remote())
        return ray.get(controller.get_result.remote())

    trainer._initialize_and_run_controller = run_controller


# Tune does the same for each trial's actor: `_ActorClassCache.get` gives the trainable's actor class
# a runtime env of PL_DISABLE_FORK=1 (for PyTorch Lightning, ray-project/ray#28197) plus the Tune and
# Train variables set in the driver; the trial's controller and workers inherit it. On a Ray of our
# own those are inherited from the node as well (connect.worker_runtime_env adds PL_DISABLE_FORK).
TUNE_DEFAULT_ENV = "PL_DISABLE_FORK"


@contextlib.contextmanager
def tune_trials_share_the_worker_pool() -> Iterator[None]:
    """While a Tuner runs in this process on a Ray of our own: its trial actors start without a
    runtime env (and so the Train actors each trial starts)."""
    if not on_own_ray():
        yield
        return
    import ray
    from ray.tune.execution.class_cache import _ActorClassCache

    ray_get = _ActorClassCache.get

    def get(cache: _ActorClassCache, trainable_cls):
        if trainable_cls not in cache._cache:
            cache._cache[trainable_cls] = ray.remote(trainable_cls)
        return cache._cache[trainable_cls]

    _ActorClassCache.get = get
    try:
        yield
    finally:
        _ActorClassCache.get = ray_get
