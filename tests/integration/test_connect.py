"""A Ray instance of our own: every worker gets our setup hook and settings without a runtime env."""

import os
import sys
import time

import ray

from pipeline import ray_compat


@ray.remote(num_cpus=0)
def worker_state() -> dict:
    return {
        "hook_ran": getattr(sys.unraisablehook, "lstmpipe_quiet", False),  # set by ray_compat.setup_process
        "runtime_env": ray.get_runtime_context().get_runtime_env_string(),
        "poll": os.environ.get(ray_compat.HEALTH_CHECK_INTERVAL_ENV),
        "preemption_watcher": os.environ.get(ray_compat.PREEMPTION_WATCHER_ENV),
        "ray_address": os.environ.get("RAY_ADDRESS"),
    }


def test_local_workers_run_our_hook_and_settings_with_no_runtime_env(ray_session, monkeypatch):
    monkeypatch.delenv("LSTMPIPE_LOG", raising=False)
    state = ray.get(worker_state.remote(), timeout=120)
    own = ray_session.get_runtime_context().gcs_address
    assert state == {
        "hook_ran": True,
        "runtime_env": "{}",
        "poll": "0.05",
        "preemption_watcher": "0",
        "ray_address": own,  # the State API asks this instance, not whichever Ray started last on the machine
    }
    # the driver's own environment is as it was: the settings were for Ray's processes
    assert ray_compat.SETUP_HOOK_ENV not in os.environ and ray_compat.PREEMPTION_WATCHER_ENV not in os.environ


def test_our_raylet_keeps_more_idle_workers(ray_session):
    """The raylet of a Ray this process started keeps one idle worker per CPU, not Ray's -1
    (ray_compat.WORKERS_SOFT_LIMIT_ENV): Ray Data's task workers are not killed and started again around
    every training run. Read from the raylet's own environment, where Ray reads it."""
    import psutil

    (raylet,) = [p for p in psutil.Process().children(recursive=True) if p.name() == "raylet"]
    assert raylet.environ()[ray_compat.WORKERS_SOFT_LIMIT_ENV] == str(os.cpu_count())
    assert ray_compat.WORKERS_SOFT_LIMIT_ENV not in os.environ  # the driver's environment is as it was


def test_our_log_monitor_looks_for_new_files_twice_a_second(ray_session, capfd):
    """The log monitor of a Ray this process started globs its logs directory every 0.5 s, not on every
    pass (ray_compat.LOG_MONITOR_GLOB_BACKOFF_ENV), read from its own environment and module; and a
    worker's printed line still reaches the driver's log stream."""
    import psutil
    from ray._private import log_monitor

    def command(process) -> str:
        try:
            return " ".join(process.cmdline())
        except psutil.Error:  # gone, or a zombie its parent has not reaped yet
            return ""

    (monitor,) = [p for p in psutil.Process().children(recursive=True) if "log_monitor.py" in command(p)]
    assert monitor.environ()[ray_compat.LOG_MONITOR_GLOB_BACKOFF_ENV] == "0"
    assert hasattr(log_monitor, ray_compat.LOG_MONITOR_GLOB_BACKOFF_ENV)  # the name Ray reads
    assert ray_compat.LOG_MONITOR_GLOB_BACKOFF_ENV not in os.environ

    @ray.remote(num_cpus=0)
    class Printer:  # a new worker process: its log files are new to the monitor
        def say(self, text):
            print(text, flush=True)

    printer = Printer.remote()
    ray.get(printer.say.remote("lstmpipe-log-monitor-marker"))
    seen, deadline = "", time.monotonic() + 30
    while "lstmpipe-log-monitor-marker" not in seen and time.monotonic() < deadline:
        time.sleep(0.2)
        seen += capfd.readouterr().out
    ray.kill(printer)
    assert "lstmpipe-log-monitor-marker" in seen


def test_a_dead_actors_placement_group_is_freed_and_the_drivers_kept(ray_session):
    """What a sweep does for a trial Tune stopped (ray_compat.placement): the group an actor created
    (a Train controller's, for its workers) is removed once that actor is dead, within the check
    interval; a group the driver created (Tune's, for a trial actor) and a live actor's stay."""
    import time

    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

    from pipeline.ray_compat.placement import freeing_dead_actors_groups

    @ray.remote(num_cpus=0)
    class Controller:
        def create(self):
            pg = placement_group([{"CPU": 0.01}])
            ray.get(pg.ready(), timeout=60)
            return pg

    drivers = placement_group([{"CPU": 0.01}])
    ray.get(drivers.ready(), timeout=60)
    dead, live = Controller.remote(), Controller.remote()
    orphan, kept = ray.get(dead.create.remote(), timeout=60), ray.get(live.create.remote(), timeout=60)
    try:
        with freeing_dead_actors_groups(interval_s=0.2):
            time.sleep(0.6)
            assert placement_group_table(orphan)["state"] == "CREATED"  # its creator still lives
            ray.kill(dead)
            deadline = time.monotonic() + 30
            while placement_group_table(orphan)["state"] != "REMOVED" and time.monotonic() < deadline:
                time.sleep(0.2)
        assert placement_group_table(orphan)["state"] == "REMOVED"
        assert placement_group_table(drivers)["state"] == placement_group_table(kept)["state"] == "CREATED"
    finally:
        ray.kill(live)
        remove_placement_group(drivers)
        remove_placement_group(kept)
