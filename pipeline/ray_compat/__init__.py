"""Everything that depends on Ray's internals or on the text of Ray's messages, in one place.

Ray 2.60 is pinned; each function here is tested against it (tests/unit/test_ray_compat.py and the
integration tests), so an upgrade that changes one of them fails there, not in a
user's run. Exception types and `.cause` come first; message text only where Ray keeps nothing else.
Importing this module imports no Ray: `setup_process` runs first thing in every Ray worker process.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import re
import sys
from dataclasses import dataclass

# Ray runs this in every worker process of our drivers and jobs before any task
# (runtime_env["worker_process_setup_hook"]): a module path, which each node resolves itself.
SETUP_HOOK = "pipeline.ray_compat.setup_process"
# Where Ray passes that hook to a worker (ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR): its
# default_worker.py imports and runs the module path found there before the worker's first task.
SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"
RAY_DATA_LOGGING_ENV = "RAY_DATA_LOGGING_CONFIG"
# read by the Train V2 controller (ray.train.v2._internal.constants.ENABLE_PREEMPTION_WATCHER_ENV_VAR)
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"
# read by the Train V2 controller (HEALTH_CHECK_INTERVAL_S_ENV_VAR): the controller polls its workers,
# and takes in their `ray.train.report`s, once per interval. A worker's next report waits for the
# previous one to be taken, so every epoch shorter than the interval is stretched to it, and a run
# ends up to one interval after its last epoch. At Ray's default (2 s), smoke's 5 epochs of ~0.8 s
# reported 2.0 s apart. At 0.25 s (ours until 2026-12-06) airline.yaml's 100 epochs of ~0.03 s still
# took 25 s: fit 34.0 s, 13.5 s at 0.05 (11.1 s at 0.02), the same model and test MASE. The poll's
# price on long epochs (B1's workload, 3 runs per setting alternated): 1 worker 4,098 against 4,119
# sequences/s at 0.25 (-0.5%), 2 workers 5,841 against 6,043 (-3%), inside the runs' spread (+-4%);
# against 1 s the 20 polls a second cost 2 workers ~10% (0.85x against 0.95x of DDP, ray_compat.actors):
# the interval is where a run starts, and our controller then paces the poll by the workers' reports
# (ray_compat.actors.PollPace).
HEALTH_CHECK_INTERVAL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
HEALTH_CHECK_INTERVAL_S = 0.05
# read by the raylet (RayConfig num_workers_soft_limit): how many idle worker processes it keeps;
# beyond that, idle workers are killed after a second. Ray's default, -1, documented as "the available
# number of CPUs", kept too few here: around every training run idle workers went and new ones were
# started (each a Python process importing Ray) for the next burst of tasks; which raylet rule reads
# -1 that way was not traced (a micro-test with plain tasks and actors did not show it). Measured with a
# tiny 2-worker run after a fresh data preparation, cycle after cycle on one Ray (2 cores, 8 cycles
# per setting, alternated): -1: 20.1 busy CPU s and 13.7 s per cycle, 2.7 CPU s of them in idle
# workers; the node's CPUs (2): 17.5 CPU s and 11.9 s, 1.0 in idle workers; 8: 18.0 and 12.4 s.
WORKERS_SOFT_LIMIT_ENV = "RAY_num_workers_soft_limit"
# read by Ray's log monitor (ray._private.log_monitor), which tails every worker's log files for the
# drivers: below this many files it globs the logs directory for new ones on every pass (10 a second),
# above it every LOG_NAME_UPDATE_INTERVAL_S (0.5 s). The files of dead workers stay until it has 200
# open, so a long-lived local Ray globs hundreds of names ten times a second: the test session's two
# instances' log monitors took 53 CPU s of a `make test`. At 0 it always globs every 0.5 s (a new
# worker's first lines reach the driver up to 0.5 s later; nothing is lost). 200 dead actors' files,
# then 30 s idle: 0.61 CPU s at Ray's default (1000), 0.25 at 0, 0.20 with no dead files at all.
LOG_MONITOR_GLOB_BACKOFF_ENV = "RAY_LOG_MONITOR_MANY_FILES_THRESHOLD"


def ray_data_logging_config() -> str:
    """Our Ray Data logging config (console at CRITICAL), as a path on this node."""
    return str(importlib.resources.files("pipeline") / "ray_data_logging.yaml")


# Ray's State API finds its cluster through RAY_ADDRESS, else through /tmp/ray/ray_current_cluster: the
# Ray instance started last on this machine. With two side by side (two `lstmpipe` commands, each with
# its own local Ray; the test suite's two workers) that file names the other instance, and once that
# one is gone, a dead one. Seen in `make test` when Ray Train's PlacementGroupCleaner still asked it
# whether a trial's controller lived (ray_compat.placement replaced it): two finished trials' groups
# held both CPUs and the next sweep waited for ever. Each worker of ours names its own cluster, for
# whatever of Ray's or a user's code asks the State API there.
RAY_ADDRESS_ENV = "RAY_ADDRESS"


def _state_api_on_own_cluster() -> None:
    ray = sys.modules.get("ray")
    if ray is None or RAY_ADDRESS_ENV in os.environ or not ray.is_initialized():
        return  # the driver (setup_process runs before its ray.init), or a user's own address
    if ray._private.worker.global_worker.mode == ray.WORKER_MODE:
        os.environ[RAY_ADDRESS_ENV] = ray.get_runtime_context().gcs_address


# A PBT trial reports a checkpoint to Tune every epoch, and restarts from one at every clone and
# every time-slice: Tune logs each at INFO in the trial's process, beside our epoch line.
PBT_NOTICES = (
    ("ray.train._internal.storage", "Checkpoint successfully created at"),
    ("ray.tune.trainable.trainable", "Restored on "),
)


# When Tune stops a trial (its scheduler, or the sweep's end), the trial's controller and workers go
# down together; a worker gone before the controller's graceful shutdown reaches it makes Ray Train
# log this warning with a traceback, "expected if one of the workers has crashed" (seen in `make
# test`'s smoke run on 2026-12-06, after ASHA stopped a trial). A worker that crashes during a run
# fails the run, or restarts it, in the product's own words (`pipeline.train.driver.describe_failure`).
TEARDOWN_NOTICES = (("ray.train.v2._internal.callbacks.backend_setup", "Graceful shutdown of backend failed"),)


# The raylet ends a worker process it is done with (an actor Tune stopped, a job's workers when its
# driver leaves) with SIGTERM, then SIGKILL after a grace period. Ray's handler for it, installed by
# `Worker.main_loop` after this hook, raises SystemExit wherever the main thread is. Where that is a
# finalizer (a `__del__`, a weakref callback such as WeakSet's `_remove`), Python cannot raise there:
# it prints "Exception ignored in: ..." with the traceback and goes on, and Ray forwards those nine
# lines to the driver's console (seen once in `make test`'s smoke run, from a stopped trial's
# process). Nothing is lost or changed by dropping them: the exit is the one Ray asked for, and the
# unraisable is ignored either way. Quiet, that one is logged at DEBUG; every other unraisable is
# printed as before.
SIGTERM_HANDLER = "sigterm_handler"
SIGTERM_HANDLER_FILE = os.path.join("ray", "_private", "worker.py")


def _raised_by_ray_sigterm(args: sys.UnraisableHookArgs) -> bool:
    if args.exc_type is not SystemExit:
        return False
    tb = args.exc_traceback
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == SIGTERM_HANDLER and code.co_filename.endswith(SIGTERM_HANDLER_FILE):
            return True
        tb = tb.tb_next
    return False


def _quiet_sigterm_in_finalizers() -> None:
    previous = sys.unraisablehook
    if getattr(previous, "lstmpipe_quiet", False):
        return

    def hook(args: sys.UnraisableHookArgs) -> None:
        if _raised_by_ray_sigterm(args):
            logging.getLogger(__name__).debug("SIGTERM from Ray during a finalizer: %s", args.err_msg)
            return
        previous(args)

    hook.lstmpipe_quiet = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def setup_process() -> None:
    """Every Ray worker process of ours (and the driver), before any task: the State API pointed at
    the worker's own cluster, the quiet console, and Ray Data's logging pointed at our config,
    resolved where this process runs (unless the user set their own). Ray Data reads the variable
    at `import ray.data` and again whenever a worker starts on a dataset, so setting it before the
    first task is enough; a process that already imported ray.data (the driver) is reconfigured at
    once."""
    from pipeline.console import drop_line, verbose

    _state_api_on_own_cluster()
    if not verbose():
        _quiet_sigterm_in_finalizers()
        for logger, notice in (*PBT_NOTICES, *TEARDOWN_NOTICES):
            drop_line(logger, notice)
    if RAY_DATA_LOGGING_ENV in os.environ:
        return
    os.environ[RAY_DATA_LOGGING_ENV] = ray_data_logging_config()
    if "ray.data" in sys.modules:
        from ray.data._internal.logging import configure_logging

        configure_logging()


def in_ray_job() -> bool:
    """This process is the driver of a job submitted through the Jobs API."""
    from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

    return RAY_JOB_CONFIG_JSON_ENV_VAR in os.environ


def quiet_train_report_lines() -> None:
    """Ray 2.60 logs every `ray.train.report` at INFO through a logger named after its source file,
    which RunConfig's logging_config does not reach; our EpochProgress prints one line per epoch."""
    from ray.train.v2._internal.execution import context

    logging.getLogger(context.__file__).setLevel(logging.WARNING)


@dataclass(frozen=True)
class DeadWorker:
    pid: str | None
    ip: str | None


_ACTOR_FIELD = {key: re.compile(rf"^\s*{key}: (\S+)", re.MULTILINE) for key in ("pid", "ip")}


def dead_worker(failure: BaseException) -> DeadWorker | None:
    """A Ray Train worker failure that is the worker process dying (killed, OOM, crash), with its pid
    and node ip when Ray knows them; None for an exception the training code raised. Ray keeps the
    pid and ip only in the ActorDiedError's message."""
    from ray.exceptions import ActorDiedError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

    if isinstance(failure, WorkerHealthCheckFailedError):
        failure = failure.health_check_failure
    if not isinstance(failure, ActorDiedError):
        return None
    found = {key: pattern.search(str(failure)) for key, pattern in _ACTOR_FIELD.items()}
    return DeadWorker(**{key: m.group(1) if m else None for key, m in found.items()})


def job_not_found(err: BaseException) -> bool:
    """The Jobs API's answer for an unknown job: JobSubmissionClient raises a RuntimeError carrying
    the HTTP status in its message (`Request failed with status code 404: ...`)."""
    return isinstance(err, RuntimeError) and str(err).startswith("Request failed with status code 404")


def remote_exception_message(err: BaseException, exc_type: type[BaseException]) -> str | None:
    """The message of an `exc_type` raised inside a Ray task. Ray Data re-raises it as
    RayTaskError(UserCodeException), and the original object is not kept (not in `.cause`, not in
    `__cause__`): only the remote traceback's text names it, after the causes it was raised from."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, exc_type):
            return str(err)
        seen.add(id(err))
        pattern = re.compile(rf"{re.escape(exc_type.__module__)}\.{exc_type.__name__}: (.+)")
        found = pattern.findall(str(err))
        if found:  # a chained traceback prints the causes first: the raised one is the last
            return found[-1].strip()
        err = getattr(err, "cause", None) or err.__cause__
    return None


def _add_pattern(current: re.Pattern | None, pattern: str) -> re.Pattern:
    own = current.pattern if current is not None else None
    if own is not None and pattern in own:
        return current
    return re.compile(f"{own}|{pattern}" if own else pattern)


def drop_forwarded(pattern: str) -> None:
    """Lines matching `pattern` that Ray forwards from its processes to this driver are not printed
    (the deduplicators' skip-list, RAY_DEDUP_LOGS_SKIP_REGEX, extended in place like the allow-list)."""
    from ray._private import ray_logging

    for dedup in (ray_logging.stdout_deduplicator, ray_logging.stderr_deduplicator):
        dedup.skip_re = _add_pattern(dedup.skip_re, pattern)


def never_deduplicate(pattern: str) -> None:
    """Lines matching `pattern` that Ray forwards from worker processes to this driver are printed
    every time. Ray 2.60 folds lines that differ only in numbers, from different processes, within
    5 s into one "[repeated Nx across cluster]" line: two trials' epoch lines are such lines. Its
    allow-list (RAY_DEDUP_LOGS_ALLOW_REGEX) is read when Ray is imported; the driver's two
    deduplicators hold it compiled, so the pattern is added there (Ray's own, if any, is kept)."""
    from ray._private import ray_logging

    for dedup in (ray_logging.stdout_deduplicator, ray_logging.stderr_deduplicator):
        dedup.allow_re = _add_pattern(dedup.allow_re, pattern)


def serve_http_port(default: int) -> int:
    """The port Serve's HTTP proxies listen on. `serve.start` keeps a running Serve's own port (it
    only logs that new http_options are not applied); its controller client holds the real one."""
    try:
        from ray.serve.context import _get_global_client
        from ray.serve.exceptions import RayServeException

        client = _get_global_client()  # after serve.start: the running controller
    except (ImportError, RayServeException):
        return default
    try:
        return int(client.http_config.port)
    except (AttributeError, TypeError, ValueError):
        return default


# What `ray start` prints when its raylet did not register with the GCS within Ray's fixed 30 s
# (ray._private.node.Node.__init__, raylet_start_wait_time_s): a busy machine, not a broken node.
RAYLET_START_TIMEOUT = "The current node timed out during startup"
