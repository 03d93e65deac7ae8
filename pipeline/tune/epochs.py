"""Each trial's epochs logged to its MLflow child run by the sweep driver, as Tune receives them.

A trial's rank 0 would otherwise import MLflow and open the tracking store itself (~1.2 s of a
trial's fixed cost, on its critical path: docs/performance.md, B5); the sweep driver has both
loaded already, and every epoch reaches it: Train's controller hands rank 0's report to
`TuneReportCallback`, Tune to this callback.
The callback only queues each epoch: a thread of its own talks to the store, so Tune's loop never
waits on MLflow (on a loaded machine a synchronous log took 1.6 s, and Tune printed its "may be a
performance bottleneck" warnings). The logging policy is rank 0's (`pipeline.track.RunLogger`):
buffered through an outage, an epoch a restarted worker group trains again is not logged twice
(tagged `lstmpipe.rerun_epochs`), and what is still queued or buffered when the trials end is sent
before the sweep goes on (`finish`). A trial's rank 0 still logs the epochs of a checkpoint its run
starts from and its telemetry; the workers' tags reach the run from its last checkpoint (set by the
trial when it finishes, by `SweepRun.close_trials` when the scheduler stopped it).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import ray.tune
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY
from ray.tune.result import AUTO_RESULT_KEYS, DONE, EXPERIMENT_TAG, SHOULD_CHECKPOINT, TRIAL_ID

from pipeline.track import RunLogger, SweepRun
from pipeline.track.epochs import fast_http, is_outage

TUNE_KEYS = frozenset((*AUTO_RESULT_KEYS, DONE, EXPERIMENT_TAG, SHOULD_CHECKPOINT, TRIAL_ID, CHECKPOINT_PATH_KEY))


def epoch_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """What the trial's workers reported for the epoch, without what Tune and Train added to the result."""
    return {k: v for k, v in result.items() if k not in TUNE_KEYS}


class TrialEpochs(ray.tune.Callback):
    """Logs the trials' epochs under `parent`; with None (the trials' rank 0 logs them) nothing."""

    def __init__(self, parent: SweepRun | None):
        self.parent: SweepRun | None = parent
        self._loggers: dict[str, RunLogger] = {}
        self._unsent: dict[str, list[dict[str, Any]]] = {}  # epochs of a trial whose run was not found yet
        self._queue: queue.SimpleQueue[tuple[str, dict[str, Any]] | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if self.parent is None or "epoch" not in result:
            return
        if self._sender is None:
            self._sender = threading.Thread(target=self._send_queued, name="lstmpipe-trial-epochs", daemon=True)
            self._sender.start()
        self._queue.put((trial.trial_id, epoch_metrics(result)))

    def finish(self, *, wait_s: float, poll_s: float = 5.0) -> bool:
        """Send what is queued or an outage left buffered, retrying for up to `wait_s`; False if the server
        stayed away."""
        if self._sender is not None:
            self._queue.put(None)  # after every epoch Tune gave us
            self._sender.join()
            self._sender = None
            self._take(self._queued())  # what a sender that died of an error left (its error comes again below)
        deadline = time.monotonic() + wait_s
        while not all([self._send(trial_id) for trial_id in {*self._unsent, *self._loggers}]):  # each trial tried
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    def _send_queued(self) -> None:
        """The sender thread: take every epoch queued so far, then try each trial that has one once (an
        outage costs each round a few seconds per trial, however many epochs wait), until `finish`."""
        while True:
            batch = [self._queue.get(), *self._queued()]
            for trial_id in self._take(batch):
                self._send(trial_id)
            if None in batch:
                return

    def _queued(self) -> list[tuple[str, dict[str, Any]] | None]:
        items = []
        while not self._queue.empty():
            items.append(self._queue.get())
        return items

    def _take(self, items: list[tuple[str, dict[str, Any]] | None]) -> set[str]:
        """Move queued epochs to their trials' unsent lists; the trials they belong to."""
        for trial_id, metrics in (item for item in items if item is not None):
            self._unsent.setdefault(trial_id, []).append(metrics)
        return {item[0] for item in items if item is not None}

    def _send(self, trial_id: str) -> bool:
        """Log the trial's epochs not sent yet (buffered by its RunLogger while the server is away)."""
        logger = self._loggers.get(trial_id)
        if logger is None:
            try:
                with fast_http():  # a few seconds, not MLflow's minutes of retries, per round
                    found = self.parent.trial(trial_id) if self.parent is not None else None
            except Exception as err:
                if not is_outage(err):
                    raise
                return False
            if found is None:  # the trial opens its child run before it trains: not yet, or a restored copy
                return not self._unsent.get(trial_id)
            logger = self._loggers[trial_id] = RunLogger(found.run)
        for metrics in self._unsent.pop(trial_id, []):
            logger.queue_epoch(metrics, epoch=int(metrics["epoch"]))
        return logger.flush()

    # Tune pickles its RunConfig, this callback included, into the sweep's directory (tuner.pkl) and a
    # restored sweep unpickles it: no tracking URI goes there, and a restored copy logs nothing (the
    # trials of a restored sweep log their epochs from rank 0: `SweepContext.epochs_logged_by`).
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(None)
