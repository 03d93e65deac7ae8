"""Each shim over Ray's internals and message text, against the pinned Ray (no Ray instance needed).
A Ray upgrade that changes one of them fails here, not in a user's run."""

import importlib.metadata
import logging
import os
import subprocess
import sys

import pytest

from pipeline import ray_compat
from pipeline.errors import DataError
from pipeline.ray_compat import actors as ray_actors


def test_ray_is_the_pinned_version():
    assert importlib.metadata.version("ray").startswith("2.60.")


def test_a_dead_worker_is_told_apart_from_a_worker_that_raised():
    from ray.core.generated.common_pb2 import ActorDiedErrorContext
    from ray.exceptions import ActorDiedError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

    died = ActorDiedError(
        ActorDiedErrorContext(
            pid=4242,
            node_ip_address="10.1.2.3",
            class_name="RayTrainWorker",
            actor_id=os.urandom(16),
            error_message="killed",
        )
    )
    found = ray_compat.dead_worker(WorkerHealthCheckFailedError("health check failed", failure=died))
    assert (found.pid, found.ip) == ("4242", "10.1.2.3")
    assert ray_compat.dead_worker(died) == found
    assert ray_compat.dead_worker(ValueError("a bug in the loop")) is None


def test_an_unknown_job_is_recognized_from_the_jobs_api_error():
    from ray.dashboard.modules.dashboard_sdk import SubmissionClient

    class Response:
        status_code, text = 404, "Job no-such-job does not exist"

    with pytest.raises(RuntimeError) as missing:
        SubmissionClient._raise_error(None, Response())  # what JobSubmissionClient raises
    assert ray_compat.job_not_found(missing.value)
    Response.status_code = 500
    with pytest.raises(RuntimeError) as broken:
        SubmissionClient._raise_error(None, Response())
    assert not ray_compat.job_not_found(broken.value)


def test_a_remote_exception_is_found_by_type_first_then_in_the_remote_traceback():
    assert ray_compat.remote_exception_message(DataError("column 'x' is bad"), DataError) == "column 'x' is bad"
    remote = RuntimeError("Traceback ...\npipeline.errors.DataError: column 'y' has 3 null value(s)\n")
    assert ray_compat.remote_exception_message(remote, DataError) == "column 'y' has 3 null value(s)"
    chained = RuntimeError(  # raise ... from err: the cause first, then the error raised from it
        "pipeline.errors.DataError: column 'y' has 3 null value(s)\n\nThe above exception was the direct cause of the "
        "following exception:\n\npipeline.errors.DataError: column 'y' has 3 null value(s) (or set data.missing)\n"
    )
    assert ray_compat.remote_exception_message(chained, DataError).endswith("(or set data.missing)")
    assert ray_compat.remote_exception_message(ValueError("unrelated"), DataError) is None


def test_the_train_report_logger_is_found_by_its_file_name():
    from ray.train.v2._internal.execution import context

    ray_compat.quiet_train_report_lines()
    assert logging.getLogger(context.__file__).level == logging.WARNING


def test_in_ray_job_reads_the_variable_ray_gives_a_job_driver(monkeypatch):
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert not ray_compat.in_ray_job()
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    assert ray_compat.in_ray_job()


def test_setup_process_points_ray_data_at_a_config_this_node_resolves():
    """In a fresh process (as a Ray worker runs the hook): the variable names a file inside the
    installed package, and Ray Data configures its console handler from it at CRITICAL."""
    probe = (
        "import os, logging; from pipeline import ray_compat; ray_compat.setup_process(); "
        "import ray.data; h = [h for h in logging.getLogger('ray.data').handlers if h.name == 'console'][0]; "
        "print(os.environ['RAY_DATA_LOGGING_CONFIG']); print(logging.getLevelName(h.level))"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_DATA_LOGGING_CONFIG"}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    path, level = out.stdout.split()
    assert os.path.isfile(path) and path.endswith("pipeline/ray_data_logging.yaml") and level == "CRITICAL"
    mine = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env=env | {"RAY_DATA_LOGGING_CONFIG": path + ".mine"},
        check=False,
    )
    assert ".mine" in mine.stderr  # a user's own config is kept (and read)


def test_setup_hook_is_a_module_path_not_a_file_path():
    module, _, func = ray_compat.SETUP_HOOK.rpartition(".")
    assert (
        "/" not in ray_compat.SETUP_HOOK and getattr(importlib.import_module(module), func) is ray_compat.setup_process
    )


def test_the_controller_reads_the_poll_interval_we_set_and_ray_propagates_it():
    from ray.train.v2._internal import constants

    assert constants.HEALTH_CHECK_INTERVAL_S_ENV_VAR == ray_compat.HEALTH_CHECK_INTERVAL_ENV
    assert constants.HEALTH_CHECK_INTERVAL_S_ENV_VAR in constants.ENV_VARS_TO_PROPAGATE
    assert constants.DEFAULT_HEALTH_CHECK_INTERVAL_S == 2.0  # what a run waits per epoch without ours
    assert constants.ENABLE_PREEMPTION_WATCHER_ENV_VAR == ray_compat.PREEMPTION_WATCHER_ENV


def test_every_worker_of_ours_gets_the_short_poll_unless_the_user_set_one(monkeypatch):
    from pipeline.cluster.connect import worker_runtime_env

    monkeypatch.delenv(ray_compat.HEALTH_CHECK_INTERVAL_ENV, raising=False)
    env = worker_runtime_env(local=True)["env_vars"]
    assert env[ray_compat.HEALTH_CHECK_INTERVAL_ENV] == "0.05" and env[ray_compat.PREEMPTION_WATCHER_ENV] == "0"
    assert env[ray_compat.WORKERS_SOFT_LIMIT_ENV] == str(os.cpu_count())  # a raylet this process starts
    assert env[ray_compat.LOG_MONITOR_GLOB_BACKOFF_ENV] == "0"  # and its log monitor
    monkeypatch.setenv(ray_compat.HEALTH_CHECK_INTERVAL_ENV, "1.5")
    env = worker_runtime_env()["env_vars"]
    assert env[ray_compat.HEALTH_CHECK_INTERVAL_ENV] == "1.5" and ray_compat.PREEMPTION_WATCHER_ENV not in env
    assert ray_compat.WORKERS_SOFT_LIMIT_ENV not in env  # a job's env on a cluster: its raylets run already
    assert ray_compat.LOG_MONITOR_GLOB_BACKOFF_ENV not in env


@pytest.mark.parametrize(
    "leave_out", [("placement_group_cleaner",), ("datasets",), ("datasets", "placement_group_cleaner")]
)
def test_a_trainer_can_run_without_ray_trains_default_callbacks(leave_out):
    import ray.train
    import ray.train.torch
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    def trainer():
        return ray.train.torch.TorchTrainer(
            lambda config: None,
            scaling_config=ray.train.ScalingConfig(num_workers=1),
            run_config=ray.train.RunConfig(name="x", storage_path="/tmp/lstmpipe-unused"),
        )

    named = {"placement_group_cleaner": PlacementGroupCleanerCallback, "datasets": DatasetsCallback}
    full, without = trainer(), trainer()
    ray_actors.without_default_callbacks(without, leave_out=leave_out)
    kinds = [type(c) for c in full._create_default_callbacks()]
    assert {PlacementGroupCleanerCallback, DatasetsCallback} <= set(kinds)
    assert [type(c) for c in without._create_default_callbacks()] == [
        k for k in kinds if k not in {named[n] for n in leave_out}
    ]


def test_the_parquet_reader_flag_exists_and_is_restored():
    import ray.data

    from pipeline.data import ingest

    ctx = ray.data.DataContext.get_current()
    before = ctx.use_datasource_v2
    with ingest._parquet_reader_v1():
        assert ctx.use_datasource_v2 is False
    assert ctx.use_datasource_v2 == before


def test_no_run_starts_rays_placement_group_cleaner_or_dataset_manager(monkeypatch):
    """A Tune trial's placement group is freed by the sweep driver (ray_compat.placement)."""
    from types import SimpleNamespace

    from pipeline import config
    from pipeline.train import driver

    calls = []
    monkeypatch.setattr(driver.ray.train.torch, "TorchTrainer", lambda *a, **k: SimpleNamespace(kwargs=k))
    monkeypatch.setattr(
        driver.ray_actors, "without_default_callbacks", lambda t, leave_out: calls.append((t, leave_out))
    )
    cfg = config.validate({"data": {"source": "adding"}})
    spec = SimpleNamespace(as_loop_config=dict)
    trainer = driver.build_trainer(cfg, spec=spec, name="n", storage="/tmp/s")
    assert calls == [(trainer, ("datasets", "placement_group_cleaner"))]
    assert "datasets" not in trainer.kwargs  # the splits travel in the workers' spec (whole_split)


def test_a_local_ray_inherits_our_settings_and_the_driver_keeps_its_environment(monkeypatch):
    from pipeline.cluster.connect import inherited_by_ray, worker_runtime_env

    monkeypatch.delenv(ray_compat.SETUP_HOOK_ENV, raising=False)
    monkeypatch.delenv(ray_compat.PREEMPTION_WATCHER_ENV, raising=False)
    monkeypatch.setenv(ray_compat.HEALTH_CHECK_INTERVAL_ENV, "1.5")  # a user's own value
    with inherited_by_ray(worker_runtime_env(local=True)):
        during = dict(os.environ)
    assert during[ray_compat.SETUP_HOOK_ENV] == ray_compat.SETUP_HOOK
    assert during[ray_compat.PREEMPTION_WATCHER_ENV] == "0" and during[ray_compat.HEALTH_CHECK_INTERVAL_ENV] == "1.5"
    assert ray_compat.SETUP_HOOK_ENV not in os.environ and ray_compat.PREEMPTION_WATCHER_ENV not in os.environ
    assert os.environ[ray_compat.HEALTH_CHECK_INTERVAL_ENV] == "1.5"


def test_ray_passes_a_module_setup_hook_in_the_variable_we_set():
    from ray._private import ray_constants

    assert ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR == ray_compat.SETUP_HOOK_ENV


def test_ray_start_says_so_when_its_raylet_misses_the_registration_window():
    """`cluster up` starts a node again only on this message (pipeline.cluster.local._start_worker)."""
    import inspect

    from ray._private.node import Node

    assert ray_compat.RAYLET_START_TIMEOUT in inspect.getsource(Node.__init__)


# A Ray worker's main loop, with a task loop in which the raylet's SIGTERM lands inside a weakref
# callback (as it did in a stopped trial's process), and, after it, a finalizer that fails on its own.
_SIGTERM_IN_A_FINALIZER = """
import os, signal, sys, time, weakref
from types import SimpleNamespace
from pipeline.ray_compat import setup_process
setup_process()
from ray._private.worker import Worker

class Thing:
    pass

def task_loop():
    def sigterm_arrives(_ref):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # Ray's handler runs here, inside the callback

    def fails(_ref):
        raise ValueError("a finalizer's own error")

    for callback in (sigterm_arrives, fails):
        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing
    print("went on", flush=True)

Worker.main_loop(SimpleNamespace(core_worker=SimpleNamespace(run_task_loop=task_loop)))
"""


@pytest.mark.parametrize("log", ["", "debug"])
def test_rays_sigterm_inside_a_finalizer_prints_nothing_unless_verbose(log):
    """Ray's real SIGTERM handler (`Worker.main_loop` installs it after our setup hook): quiet, its
    SystemExit inside a finalizer prints nothing; another finalizer's error, and --verbose, still do."""
    env = {**os.environ, "LSTMPIPE_LOG": log}
    out = subprocess.run(
        [sys.executable, "-c", _SIGTERM_IN_A_FINALIZER], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0 and out.stdout == "went on\n", out.stderr
    assert "ValueError: a finalizer's own error" in out.stderr
    assert ("in sigterm_handler" in out.stderr) == (log == "debug"), out.stderr
    assert ("SystemExit" in out.stderr) == (log == "debug"), out.stderr


@pytest.mark.parametrize("own", [True, False])
def test_only_a_ray_of_our_own_runs_train_actors_without_runtime_envs(monkeypatch, own):
    from types import SimpleNamespace

    from pipeline import config
    from pipeline.train import driver

    ours = []
    monkeypatch.setattr(driver.ray.train.torch, "TorchTrainer", lambda *a, **k: SimpleNamespace(kwargs=k))
    monkeypatch.setattr(driver.ray_actors, "without_default_callbacks", lambda t, leave_out: None)
    monkeypatch.setattr(driver.ray_actors, "use_our_controller", lambda t, env, on_reports: ours.append((t, env)))
    monkeypatch.setattr(ray_actors, "_started_here", False)
    monkeypatch.setenv(ray_actors.OWN_RAY_ENV, "1" if own else "")
    cfg = config.validate({"data": {"source": "adding"}})
    trainer = driver.build_trainer(cfg, spec=SimpleNamespace(as_loop_config=dict), name="n", storage="/tmp/s")
    assert ours == [(trainer, "inherited" if own else "ray_train")]  # our controller either way


def test_a_ray_of_our_own_is_known_to_its_driver_and_its_workers(monkeypatch):
    from pipeline.cluster.connect import worker_runtime_env

    monkeypatch.delenv(ray_actors.OWN_RAY_ENV, raising=False)
    monkeypatch.setattr(ray_actors, "_started_here", False)
    assert not ray_actors.on_own_ray()
    ray_actors.set_own_ray(True)  # the driver that started it (connect)
    assert ray_actors.on_own_ray()
    local, cluster = worker_runtime_env(local=True)["env_vars"], worker_runtime_env()["env_vars"]
    # every process of a local instance inherits the marker and the variable Ray Train gives its controller
    assert local[ray_actors.OWN_RAY_ENV] == "1" and local[ray_actors.WARN_BLOCKING_GET_ENV] == "0"
    assert ray_actors.OWN_RAY_ENV not in cluster and ray_actors.WARN_BLOCKING_GET_ENV not in cluster


def test_the_pooled_controller_is_ray_trains_own_with_a_worker_group_that_drops_inherited_variables(monkeypatch):
    from ray.train.v2._internal.constants import ENV_VARS_TO_PROPAGATE
    from ray.train.v2._internal.execution.controller import TrainController
    from ray.train.v2._internal.execution.worker_group import WorkerGroup

    cls = ray_actors._controller_cls("inherited")
    assert issubclass(cls, TrainController) and cls.__name__ == "TrainController"
    assert ray_actors._controller_cls("ray_train").worker_group_cls is WorkerGroup  # on a cluster, Ray's own
    assert {ray_compat.HEALTH_CHECK_INTERVAL_ENV, ray_actors.WARN_BLOCKING_GET_ENV} <= ENV_VARS_TO_PROPAGATE
    monkeypatch.setenv(ray_compat.HEALTH_CHECK_INTERVAL_ENV, "0.05")  # the controller's, inherited from its node
    get = cls.worker_group_cls._get_worker_runtime_env
    assert get({}) == {}  # nothing to set: the workers start on idle pooled workers
    assert get({"env_vars": {"MINE": "1"}}) == {"env_vars": {"MINE": "1"}}  # a user's own worker runtime env stays
    assert get({"env_vars": {ray_compat.HEALTH_CHECK_INTERVAL_ENV: "1"}})["env_vars"] == {
        ray_compat.HEALTH_CHECK_INTERVAL_ENV: "1"
    }


def test_the_poll_slows_to_a_quarter_of_the_gap_between_a_workers_reports():
    pace = ray_actors.PollPace.starting_at(0.05)
    assert pace.reports_taken([0], now=10.0) == 0.05  # one report: no gap yet
    assert pace.reports_taken([1], now=10.05) == 0.05  # rank 1's first, one poll later: still no gap
    assert pace.reports_taken([0], now=11.6) == pytest.approx(0.4)  # epochs of 1.6 s
    assert pace.reports_taken([1, 0], now=13.2) == pytest.approx(0.4)  # each rank against its own last report
    assert pace.reports_taken([0], now=113.2) == 1.0  # long epochs: once a second at most
    assert pace.reports_taken([0], now=113.3) == 0.05  # short ones again: never under where it started
    slow = ray_actors.PollPace.starting_at(1.5)  # a user's own RAY_TRAIN_HEALTH_CHECK_INTERVAL_S above the ceiling
    slow.reports_taken([0], now=0.0)
    assert slow.reports_taken([0], now=20.0) == 1.5


def test_our_controller_paces_its_poll_by_the_reports_it_takes(monkeypatch):
    import asyncio
    from types import SimpleNamespace

    from ray.train.v2._internal.execution.worker_group.poll import WorkerGroupPollStatus, WorkerStatus

    def report(epoch):
        return SimpleNamespace(metrics={"epoch": epoch, "val_loss": 1.0 / (epoch + 1)}, checkpoint=None)

    polls = iter([(10.0, report(0)), (10.05, None), (12.0, report(1)), (12.05, None)])  # (when, rank 0's report)
    now = [0.0]

    def poll_status(timeout):
        now[0], report = next(polls)
        return WorkerGroupPollStatus({0: WorkerStatus(running=True, training_report=report), 1: WorkerStatus(True)})

    monkeypatch.setattr(ray_actors.time, "monotonic", lambda: now[0])
    controller = object.__new__(ray_actors._controller_cls("inherited"))  # Ray's __init__ needs a run context
    controller._worker_group = SimpleNamespace(poll_status=poll_status)
    controller._health_check_interval_s = 0.05
    controller._poll_pace = ray_actors.PollPace.starting_at(0.05)
    controller._rank0_reports = []
    seen = []
    for _ in range(4):
        controller._latest_poll_time = float("-inf")  # Ray's wait between polls is not under test
        asyncio.run(controller._poll_workers())
        seen.append(controller._health_check_interval_s)
    assert seen == [0.05, 0.05, pytest.approx(0.5), pytest.approx(0.5)]  # reports 2 s apart: polled every 0.5 s
    # and it keeps rank 0's reports for a driver that follows the run (follow_reports), each once
    assert [r["epoch"] for r in controller.rank0_reports(0)] == [0, 1]
    assert [r["epoch"] for r in controller.rank0_reports(1)] == [1] and controller.rank0_reports(2) == []


@pytest.mark.parametrize("own", [True, False])
def test_tune_trial_actors_start_without_a_runtime_env_only_on_a_ray_of_our_own(monkeypatch, own):
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS, _ActorClassCache

    from pipeline.cluster.connect import worker_runtime_env

    class Trainable:
        pass

    monkeypatch.setattr(ray_actors, "_started_here", own)
    monkeypatch.delenv(ray_actors.OWN_RAY_ENV, raising=False)
    with ray_actors.tune_trials_share_the_worker_pool():
        during = _ActorClassCache().get(Trainable)._default_options.get("runtime_env")
    after = _ActorClassCache().get(Trainable)._default_options.get("runtime_env")
    assert after["env_vars"][ray_actors.TUNE_DEFAULT_ENV] == "1"  # Ray's own again
    assert (during is None) == own and (during == after or own)
    # what Tune would have set reaches the trials from the node instead
    assert DEFAULT_ENV_VARS.items() <= worker_runtime_env(local=True)["env_vars"].items()


CONTROLLER_UNPICKLES = """
import pickle, sys
pickle.loads(sys.stdin.buffer.read())
print(sorted(m for m in ("torch", "pipeline.train.worker", "mlflow") if m in sys.modules))
"""


def test_what_a_run_hands_its_train_controller_unpickles_without_torch(tmp_path):
    """The run context (the workers' spec inside it), the backend config and every callback a run's
    TrainController receives, unpickled in a fresh process as the controller does: no torch import
    there (~1.5 s of CPU before the worker group starts, ray_compat.torch_backend)."""
    import subprocess
    import sys

    import ray.cloudpickle

    from pipeline import config
    from pipeline.ray_compat.torch_backend import WorkerTorchBackend, WorkerTorchConfig
    from pipeline.train import driver
    from pipeline.train.spec import WorkerSpec

    cfg = config.validate({"data": {"source": "adding"}})
    spec = WorkerSpec(
        **{k: {} for k in ("model", "train", "info", "config")},
        task="forecast",
        config_hash="h",
        run_id="r",
        tracking_uri="sqlite:///m.db",
        train_split=None,
        val_split=None,
    )
    trainer = driver.build_trainer(cfg, spec=spec, name="n", storage=str(tmp_path))
    assert isinstance(trainer.train_run_context.backend_config, WorkerTorchConfig)
    assert trainer.train_run_context.backend_config.backend == "gloo"  # TorchTrainer picks it, as for TorchConfig
    assert WorkerTorchBackend.share_cuda_visible_devices  # as Ray's _TorchBackend: GPU workers of a node see each other
    handed = (trainer.train_run_context, trainer._create_default_callbacks(), trainer.run_config.callbacks)
    blob = ray.cloudpickle.dumps(handed)
    out = subprocess.run(
        [sys.executable, "-c", CONTROLLER_UNPICKLES], input=blob, capture_output=True, timeout=120, check=True
    )
    assert out.stdout.decode().split("\n")[0] == "[]", out.stderr.decode()[-2000:]


def test_the_workers_torch_config_is_ray_trains_own_without_torch():
    from dataclasses import fields

    from ray.train.torch.config import TorchConfig, TorchConfigContextManager

    from pipeline.ray_compat.torch_backend import WorkerTorchConfig

    ours, rays = WorkerTorchConfig(), TorchConfig()
    assert [(f.name, f.default) for f in fields(ours)] == [(f.name, f.default) for f in fields(rays)]
    assert ours.to_dict() == rays.to_dict() and ours.framework == rays.framework
    assert ours.train_func_context is TorchConfigContextManager


def test_only_this_jobs_groups_whose_creating_actor_died_are_orphans():
    """ray_compat.placement on the GCS's own messages: a driver's group (no creating actor: Tune's,
    for a trial actor), a live actor's, another job's, a detached one and one already removed stay."""
    from ray.core.generated import gcs_pb2

    from pipeline.ray_compat.placement import NIL_ACTOR_ID, orphans

    job, other_job = bytes.fromhex("01000000"), bytes.fromhex("02000000")
    actor = b"\x01" * 12 + job

    def group(name: str, **fields) -> gcs_pb2.PlacementGroupTableData:
        base = {"placement_group_id": name.encode().ljust(18, b"\0"), "creator_job_id": job}
        created = gcs_pb2.PlacementGroupTableData.CREATED
        base |= {"creator_actor_id": actor, "creator_actor_dead": True, "state": created}
        return gcs_pb2.PlacementGroupTableData(**(base | fields))

    tables = [
        group("orphan"),
        group("pending", state=gcs_pb2.PlacementGroupTableData.PENDING),
        group("driver", creator_actor_id=NIL_ACTOR_ID),
        group("live", creator_actor_dead=False),
        group("other job", creator_job_id=other_job),
        group("detached", is_detached=True),
        group("removed", state=gcs_pb2.PlacementGroupTableData.REMOVED),
    ]
    found = [pg_id.rstrip(b"\0").decode() for pg_id in orphans(tables, job_id=job.hex())]
    assert found == ["orphan", "pending"]


def test_rays_nil_actor_id_is_what_we_take_for_a_group_without_creating_actor():
    import ray

    from pipeline.ray_compat.placement import NIL_ACTOR_ID

    assert ray.ActorID.nil().binary() == NIL_ACTOR_ID
