"""Which actors Ray Train and Tune start for a run of ours, and in what: the default callbacks (and
their actor processes) a run leaves out, and the runtime envs left out on a Ray of our own so that
the controller, the workers and the trial actors start on idle pooled workers. Imports no Ray at
import time (pipeline.ray_compat, the package this module is in, runs first in every Ray worker process)."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

# Ray Train's default callbacks that a run of ours can leave out. Ray 2.60 adds each unconditionally
# in `DataParallelTrainer._create_default_callbacks` (no flag), so the list it returns is filtered.
# - placement_group_cleaner: one detached actor process per run that polls the dashboard's State API
#   every second, and whose stop at the end of the run waits for that poll. A driver's run's placement
#   group goes with the driver's job; a Tune trial's, whose controller dies with the trial, is freed
#   by the sweep driver instead (pipeline.ray_compat.placement).
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


# How a Ray Train controller paces its poll of the workers. Ray's TrainController polls every
# RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (ours: ray_compat.HEALTH_CHECK_INTERVAL_S, 0.05 s, so that short
# epochs are not stretched to the poll) for the whole run, and each poll is an actor call into every
# worker, handled in the process that trains. Measured on B2's workload (2 workers on 2 cores, epochs
# of ~0.7 s, fresh processes alternated with plain torch DDP): 0.05 s gave 6,860-7,442 sequences/s
# (0.85x of DDP), 1.0 s 7,763-8,278 (0.95x; training time only: each report then waited for the
# poll). Paced as below (every ~0.18 s there), old and new commit alternated: 0.87x -> 0.91x of DDP;
# `--only B1,B2` after it: 0.94x and 1.10x in two runs (0.86x before). Our controller starts at the
# variable's interval and, once a worker has reported twice, polls at a quarter of the time between
# its reports, never more seldom than once a second (or the variable's value, if higher): a report is
# still taken long before the next one is due, and a run ends at most a quarter of an epoch (1 s)
# after its last report.
POLL_SHARE_OF_REPORT_GAP = 0.25
POLL_CEILING_S = 1.0


@dataclass
class PollPace:
    """The controller's poll interval, from the gaps between each worker's reports."""

    floor_s: float  # the interval a run starts with (RAY_TRAIN_HEALTH_CHECK_INTERVAL_S)
    interval_s: float
    last_report_s: dict[int, float] = field(default_factory=dict)  # world rank -> when its report was taken

    @classmethod
    def starting_at(cls, interval_s: float) -> PollPace:
        return cls(floor_s=interval_s, interval_s=interval_s)

    def reports_taken(self, ranks: list[int], *, now: float) -> float:
        """The interval after a poll that took reports from `ranks` at monotonic time `now`."""
        gaps = [now - self.last_report_s[rank] for rank in ranks if rank in self.last_report_s]
        self.last_report_s |= dict.fromkeys(ranks, now)
        if gaps:
            paced = min(min(gaps) * POLL_SHARE_OF_REPORT_GAP, POLL_CEILING_S)
            self.interval_s = max(self.floor_s, paced)
        return self.interval_s


# The runtime envs our controller and its workers get: "inherited" on a Ray of our own (none: the
# node's environment already holds what they would carry, so they start on idle pooled workers),
# "ray_train" elsewhere (what Ray Train gives them).
ControllerEnv = Literal["inherited", "ray_train"]


@functools.cache
def _controller_cls(env: ControllerEnv):
    """Ray Train's TrainController with the poll paced by the reports (PollPace) and, with
    `inherited`, a worker group that leaves out the env vars every worker inherits anyway."""
    from ray.train.v2._internal.execution.controller import TrainController
    from ray.train.v2._internal.execution.worker_group import WorkerGroup

    class PooledWorkerGroup(WorkerGroup):
        @staticmethod
        def _get_worker_runtime_env(custom_runtime_env):
            runtime_env = dict(WorkerGroup._get_worker_runtime_env(custom_runtime_env))
            # this controller runs without a runtime env: its environment is its node's, the workers'
            env_vars = {k: v for k, v in runtime_env.pop("env_vars", {}).items() if os.environ.get(k) != v}
            return runtime_env | ({"env_vars": env_vars} if env_vars else {})

    class PacedTrainController(TrainController):
        worker_group_cls = PooledWorkerGroup if env == "inherited" else WorkerGroup

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._poll_pace = PollPace.starting_at(self._health_check_interval_s)
            self._rank0_reports: list[dict] = []  # every report rank 0 made, restarted groups' included

        async def _poll_workers(self):
            status = await super()._poll_workers()
            ranks = [rank for rank, worker in status.worker_statuses.items() if worker.training_report is not None]
            if ranks:
                self._health_check_interval_s = self._poll_pace.reports_taken(ranks, now=time.monotonic())
            if 0 in ranks:
                self._rank0_reports.append(dict(status.worker_statuses[0].training_report.metrics))
            return status

        def rank0_reports(self, since: int) -> list[dict]:
            """Rank 0's reports after the first `since` (the driver follows the run: follow_reports)."""
            return self._rank0_reports[since:]

    # the name users see in the console's "(TrainController pid=...)" prefix and Ray's dashboard
    PacedTrainController.__name__ = PacedTrainController.__qualname__ = TrainController.__name__
    return PacedTrainController


# How often a driver that follows its run (`use_our_controller(on_reports=...)`) asks the controller for
# rank 0's new reports: an epoch reaches MLflow at most this long after the controller took it.
FOLLOW_POLL_S = 0.5


def use_our_controller(trainer, *, env: ControllerEnv, on_reports: Callable[[list[dict]], None] | None = None) -> None:
    """This trainer's runs get our controller (_controller_cls). With `inherited` (a Ray of our own)
    it, its synchronization actor and its workers start without a runtime env, on the idle workers
    Ray pools when there are some; with `ray_train` they get the runtime envs Ray Train gives them.
    `on_reports`: called in the driver with rank 0's new reports while the run goes on (follow_reports)."""
    import ray
    from ray.train.v2.api import data_parallel_trainer as ray_trainer

    options = {}
    if env == "ray_train":  # as DataParallelTrainer._initialize_and_run_controller
        env_vars = ray_trainer.get_env_vars_to_propagate()
        env_vars.setdefault(
            ray_trainer.RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_ENV_VAR,
            ray_trainer.DEFAULT_RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_VALUE,
        )
        options["runtime_env"] = {"env_vars": env_vars}

    def run_controller(**controller_init_kwargs):
        node = {ray._raylet.RAY_NODE_ID_KEY: ray.get_runtime_context().get_node_id()}
        controller_cls = ray.remote(num_cpus=0, label_selector=node, **options)(_controller_cls(env))
        controller = controller_cls.remote(**controller_init_kwargs)
        if threading.current_thread() is threading.main_thread():  # not in a Tune trial's thread
            trainer._register_sigint_handler(controller)
        follow_reports(controller, controller.run.remote(), on_reports=on_reports)
        return ray.get(controller.get_result.remote())

    trainer._initialize_and_run_controller = run_controller


def follow_reports(controller, done, *, on_reports: Callable[[list[dict]], None] | None) -> None:
    """Wait for the controller's run (`done`), handing rank 0's new reports to `on_reports` every
    FOLLOW_POLL_S, and once more after the run ended; the run's own error, if any, is raised last."""
    import ray

    taken = 0
    while on_reports is not None:
        ended = bool(ray.wait([done], timeout=FOLLOW_POLL_S)[0])
        try:
            reports = ray.get(controller.rank0_reports.remote(taken))
        except ray.exceptions.RayActorError:
            break  # the controller died: its run's ref says why
        taken += len(reports)
        if reports:
            on_reports(reports)
        if ended:
            break
    ray.get(done)


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
