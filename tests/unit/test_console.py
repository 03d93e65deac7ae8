"""Quiet by default: the set-up chatter is dropped, Ray's and MLflow's warnings are kept; --verbose keeps all."""

import contextlib
import io
import logging
import os

import pytest

from pipeline import console


@pytest.fixture
def fresh_loggers():
    from pipeline import ray_compat

    teardown = [logger for logger, _ in ray_compat.TEARDOWN_NOTICES]
    names = (*console.CHATTY, console.TOKEN_NOTICE_LOGGER, *teardown)
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).filters)) for n in names}
    yield
    for n, (level, filters) in saved.items():
        logging.getLogger(n).setLevel(level)
        logging.getLogger(n).filters = filters


def _passes(logger: str, level: int, message: str) -> bool:
    log = logging.getLogger(logger)
    record = log.makeRecord(logger, level, __file__, 1, message, (), None)
    return log.isEnabledFor(level) and log.filter(record)


def test_quiet_drops_the_chatter_and_keeps_warnings(fresh_loggers, monkeypatch):
    monkeypatch.delenv(console.LOG_ENV, raising=False)
    console.quiet_libraries()
    console.quiet_libraries()  # idempotent
    assert len(logging.getLogger(console.TOKEN_NOTICE_LOGGER).filters) == 1
    assert not _passes("mlflow.store.db.utils", logging.INFO, "Creating initial MLflow database tables...")
    assert _passes("mlflow.store.db.utils", logging.WARNING, "the store is read-only")
    enabled = "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out."
    assert not _passes(console.TOKEN_NOTICE_LOGGER, logging.WARNING, enabled)
    disabled = "Token authentication is disabled for this Ray cluster. Anyone with network access ..."
    assert _passes(console.TOKEN_NOTICE_LOGGER, logging.WARNING, disabled)
    assert console.ray_log_level() == logging.WARNING


def test_verbose_keeps_everything(fresh_loggers, monkeypatch):
    monkeypatch.setenv(console.LOG_ENV, "debug")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.NOTSET)
    logging.getLogger(console.TOKEN_NOTICE_LOGGER).filters = []
    console.quiet_libraries()
    assert console.verbose() and console.ray_log_level() == logging.INFO
    assert logging.getLogger("mlflow.store.db.utils").level == logging.NOTSET
    assert not logging.getLogger(console.TOKEN_NOTICE_LOGGER).filters


def test_the_cli_flag_turns_verbose_on(monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli.main import app

    monkeypatch.setenv(console.LOG_ENV, "")  # recorded, so the flag's setting is undone after the test
    result = CliRunner().invoke(app, ["--verbose", "train", "--help"])
    assert result.exit_code == 0 and console.verbose()


def test_process_setup_is_idempotent_and_keeps_the_users_ray_data_logging(fresh_loggers, monkeypatch):
    from pipeline import ray_compat

    monkeypatch.setenv(ray_compat.RAY_DATA_LOGGING_ENV, "kept")  # the user's own: left as it is
    monkeypatch.delenv(console.LOG_ENV, raising=False)
    ray_compat.setup_process()
    ray_compat.setup_process()  # idempotent
    for logger, _ in ray_compat.TEARDOWN_NOTICES:
        assert len(logging.getLogger(logger).filters) == 1
    assert os.environ[ray_compat.RAY_DATA_LOGGING_ENV] == "kept"


def test_ray_workers_drop_the_backend_teardown_warning_of_a_stopped_trial(fresh_loggers, monkeypatch):
    """Ray Train's warning, with its traceback, when a stopped trial's worker is gone before the
    controller's graceful shutdown; the logger's other warnings stay, and --verbose keeps it."""
    from ray.exceptions import RayActorError
    from ray.train.v2._internal.callbacks import backend_setup

    from pipeline import ray_compat

    class FailingBackend:
        def on_shutdown(self, group, config):
            raise RayActorError()

    monkeypatch.delenv(console.LOG_ENV, raising=False)
    ray_compat.setup_process()
    callback = backend_setup.BackendSetupCallback.__new__(backend_setup.BackendSetupCallback)
    callback._backend, callback._backend_config = FailingBackend(), None
    caught = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = caught.append
    log = logging.getLogger(backend_setup.__name__)
    log.addHandler(handler)
    try:
        callback.before_execution_group_shutdown(None)  # what Ray Train's controller runs
        log.warning("Backend setup failed: boom")
        assert [r.getMessage() for r in caught] == ["Backend setup failed: boom"]
        log.filters = []
        monkeypatch.setenv(console.LOG_ENV, "debug")
        ray_compat.setup_process()
        callback.before_execution_group_shutdown(None)
        assert caught[-1].getMessage().startswith("Graceful shutdown of backend failed") and caught[-1].exc_info
    finally:
        log.removeHandler(handler)


def test_two_trials_epoch_lines_are_never_folded_into_a_repeated_line():
    from ray._private import ray_logging

    from pipeline import ray_compat
    from pipeline.train.progress import EpochProgress

    dedup = ray_logging.LogDeduplicator(5, None, None, _timesource=lambda: 0.0)
    ray_compat.never_deduplicate(console.EPOCH_LINE)  # the driver's own two deduplicators
    dedup.allow_re = ray_logging.stdout_deduplicator.allow_re
    lines = []
    for pid, trial in ((11, "sweep-a_00000"), (12, "sweep-a_00001")):
        progress = EpochProgress(name=trial, epochs=5)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            progress.after_report(None, [{"epoch": 0, "train_loss": 0.1, "val_loss": 0.2}], None)
        batch = {"ip": "1.2.3.4", "pid": pid, "lines": [out.getvalue().strip()]}
        lines += [line for b in dedup.deduplicate(batch) for line in b["lines"]]
    assert lines == [
        "[sweep-a_00000] epoch 1/5  train_loss=0.1000  val_loss=0.2000",
        "[sweep-a_00001] epoch 1/5  train_loss=0.1000  val_loss=0.2000",
    ]
    plain = ray_logging.LogDeduplicator(5, None, None, _timesource=lambda: 0.0)  # without: the second is folded
    folded = [
        line for p in (11, 12) for b in plain.deduplicate({"pid": p, "lines": [lines[p - 11]]}) for line in b["lines"]
    ]
    assert folded == lines[:1]


def test_the_raylets_startup_count_is_dropped_and_its_other_lines_kept():
    from ray._private import ray_logging

    from pipeline import ray_compat

    ray_compat.drop_forwarded(console.RAYLET_STARTUP_WARNING)
    ray_compat.drop_forwarded(console.RAYLET_STARTUP_WARNING)  # idempotent
    dedup = ray_logging.LogDeduplicator(5, None, None, _timesource=lambda: 0.0)
    dedup.skip_re = ray_logging.stdout_deduplicator.skip_re
    count = (
        "WARNING: 8 PYTHON worker processes have been started on node: 7a9c with address: 192.0.2.2, which is "
        "4x the maximum expected startup concurrency (2)."
    )
    oom = "(raylet) Task was killed due to the node running low on memory."
    kept = [line for b in dedup.deduplicate({"pid": "raylet", "lines": [count, oom]}) for line in b["lines"]]
    assert kept == [oom]
