"""What reaches the console: the product's own lines by default, the libraries' chatter with --verbose.

Quiet (the default) drops the lines a user cannot act on: MLflow's INFO lines about
creating and migrating its SQLite tables (every new store), Ray's notice that token
authentication is on (its default, kept on; the warning that it is *off* still shows), and, in
every Ray worker of ours (`pipeline.ray_compat.setup_process`), Ray Train's PlacementGroupCleaner
saying it cleaned up after a trial the Tune scheduler stopped; on the driver, the raylet's count of
worker processes starting at once (RAYLET_STARTUP_WARNING). Lines Ray forwards from its processes
are never folded when they are epoch lines (EPOCH_LINE). Ray's other warnings and errors (a dead
node, an OOM kill) keep reaching the console. `--verbose` or LSTMPIPE_LOG=debug keeps everything, Ray's INFO lines too.
"""

from __future__ import annotations

import logging
import os

LOG_ENV = "LSTMPIPE_LOG"
# Loggers whose INFO lines are set up chatter, not news: MLflow's store creation and its migrations.
CHATTY = ("mlflow.store.db.utils", "alembic.runtime.migration", "alembic", "mlflow.pyfunc", "ray.serve")
TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster"
# The raylet's warning that "N PYTHON worker processes have been started ..., which is Kx the maximum
# expected startup concurrency". It counts processes starting at once, and the limit it compares with
# is the number of CPUs: every Ray Train run starts its controller, a synchronization actor and a
# dataset manager (zero-CPU actors, each a process) besides its workers, and a Tune trial adds its own
# actor and a placement group cleaner, so two trials starting together on 2 cores pass 4x. What a
# run does not need is gone (docs/performance.md: PreemptionWatcher, SplitCoordinators, FooterReaders,
# the cleaner outside Tune); the warning about the rest says nothing a user can act on, so the quiet
# console drops it. A worker that dies, an OOM kill or a lost node are other lines and still show.
RAYLET_STARTUP_WARNING = r"PYTHON worker processes have been started on node"
# What each epoch's line (pipeline.train.progress) holds after its run name: Ray forwards it from the
# Train controller, and never folds it into a "repeated Nx" line (ray_compat.never_deduplicate).
EPOCH_LINE = r"\] epoch \d+/\d+  train_loss="


def verbose() -> bool:
    """`--verbose` or LSTMPIPE_LOG=debug (this command and the processes it starts)."""
    return os.environ.get(LOG_ENV, "").strip().lower() in ("debug", "verbose", "info")


def ray_log_level() -> int:
    return logging.INFO if verbose() else logging.WARNING


class _DropLine(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def drop_line(logger: str, prefix: str) -> None:
    """Drop the records of `logger` whose message starts with `prefix` (idempotent)."""
    log = logging.getLogger(logger)
    if not any(isinstance(f, _DropLine) and f.prefix == prefix for f in log.filters):
        log.addFilter(_DropLine(prefix))


def quiet_libraries() -> None:
    """The quiet default for this process (idempotent); nothing when verbose."""
    if verbose():
        return
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    drop_line(TOKEN_NOTICE_LOGGER, TOKEN_NOTICE)
