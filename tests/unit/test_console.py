"""Quiet by default: the set-up chatter is dropped, Ray's and MLflow's warnings are kept; --verbose keeps all."""

import logging
import os

import pytest

from pipeline import console


@pytest.fixture
def fresh_loggers():
    from pipeline import ray_compat

    names = (*console.CHATTY, console.TOKEN_NOTICE_LOGGER, ray_compat.PG_CLEANER_LOGGER)
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


def test_ray_workers_drop_the_cleaners_notice_after_a_stopped_trial_and_keep_its_other_warnings(
    fresh_loggers, monkeypatch
):
    from pipeline import ray_compat

    monkeypatch.setenv(ray_compat.RAY_DATA_LOGGING_ENV, "kept")  # the user's own: left as it is
    monkeypatch.delenv(console.LOG_ENV, raising=False)
    ray_compat.setup_process()
    ray_compat.setup_process()  # idempotent
    logger = ray_compat.PG_CLEANER_LOGGER
    assert len(logging.getLogger(logger).filters) == 1
    notice = "Detected that the Ray Train controller actor (6b0f65) is dead. Cleaning up placement group = [...]"
    assert not _passes(logger, logging.WARNING, notice)
    assert _passes(logger, logging.WARNING, "Failed to clean up placement group: boom")
    logging.getLogger(logger).filters = []
    monkeypatch.setenv(console.LOG_ENV, "debug")
    ray_compat.setup_process()
    assert _passes(logger, logging.WARNING, notice)
    assert os.environ[ray_compat.RAY_DATA_LOGGING_ENV] == "kept"
