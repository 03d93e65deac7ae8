"""The life of a tracked run, the same for `lstmpipe train` and `lstmpipe tune`.

    with run_lifecycle(cfg, kind="train", name=name, resume=resume, config_hash=cfg.hash()) as life:
        splits = load_splits(cfg)          # bad data fails here: nothing is logged yet
        run = life.open()                  # the MLflow run: started, or reopened on resume
        ...                                # train; the block's outcome ends the run

Before the block: the tracking server answers, the name is claimed for this process (released when
the block ends) and checked with the storage and the data (`check_start`),
runs a dead driver left RUNNING are reconciled while Ray is connected and has the resources. `open` starts
the MLflow run (params, config, owner, kind) and writes the run state beside the checkpoints, or on
resume reopens the same run. Leaving the block ends the run FINISHED, KILLED (Ctrl-C, SIGTERM; a
sweep's running trials too) or FAILED.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from pipeline.cluster.connect import available, check_storage, connect
from pipeline.config import Config
from pipeline.data.fingerprint import source_fingerprint
from pipeline.errors import ConfigError
from pipeline.owner import owner
from pipeline.track import KIND_TAG, SweepRun, TrackedRun, check_reachable, resolve_uri
from pipeline.track.reconcile import OWNER_TAG, reconcile_and_report
from pipeline.train.run_state import (
    RunState,
    check_name,
    check_start,
    check_writable,
    claim,
    resolve_storage,
    unique_name,
    write_state,
)

Kind = Literal["train", "tune", "backtest"]
RUN_KIND = {"train": "train", "tune": "sweep", "backtest": "backtest"}  # the lstmpipe.kind tag of the MLflow run
RESUMED_TAG = "lstmpipe.resumed"


def check_resources(cfg: Config) -> None:
    """The connected cluster can run this config: enough CPUs/GPUs, and storage every node sees."""
    check_storage(resolve_storage(cfg.train.storage_path))
    kind, need = ("GPU", cfg.train.workers) if cfg.train.use_gpu else ("CPU", cfg.train.workers)
    have = available(kind)
    if have < need:
        raise ConfigError(
            f"train.workers={cfg.train.workers} needs {need} {kind}s but the Ray cluster has {have:g}; "
            f"lower train.workers{' or set train.use_gpu=false' if kind == 'GPU' else ''}"
        )


@dataclass
class Lifecycle:
    cfg: Config
    kind: Kind
    uri: str
    name: str
    storage: str
    config_hash: str
    data: dict[str, str]  # the source's fingerprint, stored in the run state
    previous: RunState | None  # the run state of the run being resumed
    run: TrackedRun | None = None  # once open

    def open(self) -> TrackedRun:
        """Start the MLflow run (or reopen it, resuming) and tie it to the run directory."""
        cls = TrackedRun if self.kind == "train" else SweepRun  # a backtest's folds are trials
        tags = {OWNER_TAG: owner()}
        if self.previous is None:
            self.run = cls.start(
                self.uri,
                experiment=self.cfg.tracking.experiment,
                run_name=self.name,
                params=self.cfg.flat(),
                tags=tags | {KIND_TAG: RUN_KIND[self.kind]},
            )
            self.run.log_config(self.cfg.model_dump(mode="json"))
            write_state(
                self.storage,
                self.name,
                RunState(run_id=self.run.run_id, config_hash=self.config_hash, kind=self.kind, data=self.data),
            )
        else:
            self.run = cls(self.uri, self.previous.run_id)
            self.run.reopen(tags=tags | {RESUMED_TAG: "true", "lstmpipe.resumed_to_epochs": str(self.cfg.train.epochs)})
        return self.run

    def resume_hint(self) -> str:
        """What logs the rest of an interrupted run: resuming it, or (a backtest has no resume) a new one."""
        if self.kind == "backtest":
            return "a new `lstmpipe backtest` (a backtest does not resume)"
        return f"`lstmpipe {self.kind} --name {self.name} --resume`"


@contextmanager
def run_lifecycle(cfg: Config, *, kind: Kind, name: str | None, resume: bool, config_hash: str) -> Iterator[Lifecycle]:
    uri = resolve_uri(cfg.tracking)
    check_reachable(uri)
    name = name or unique_name(kind)
    check_name(name)
    storage = resolve_storage(cfg.train.storage_path)
    check_writable(storage)
    held = claim(storage, name)  # before any work: a second process of this name is refused
    try:
        data = source_fingerprint(cfg.data)
        previous = check_start(storage, name, kind=kind, resume=resume, config_hash=config_hash, data=data)
        # The tracking store is opened (a new SQLite store creates its tables: ~2 s here) while Ray
        # starts: the driver mostly waits on Ray's processes then, and a core is idle.
        with ThreadPoolExecutor(1, thread_name_prefix="lstmpipe-tracking") as pool:
            reconciled = pool.submit(reconcile_and_report, uri, cfg.tracking.experiment)
            connect()
            reconciled.result()
        check_resources(cfg)
        life = Lifecycle(
            cfg=cfg,
            kind=kind,
            uri=uri,
            name=name,
            storage=storage,
            config_hash=config_hash,
            data=data,
            previous=previous,
        )
        yield from _tracked(life)
    finally:
        held.release()


def _tracked(life: Lifecycle) -> Iterator[Lifecycle]:
    """The block's outcome ends the MLflow run: FINISHED, KILLED or FAILED."""
    try:
        yield life
    except KeyboardInterrupt:
        _end(life.run, "KILLED")
        raise
    except BaseException:
        _end(life.run, "FAILED")
        raise
    if life.run is not None:
        life.run.end("FINISHED")


def _end(run: TrackedRun | None, status: Literal["KILLED", "FAILED"]) -> None:
    if run is None:
        return  # failed before the run was opened (bad data, no resources): nothing was logged
    if isinstance(run, SweepRun) and status == "KILLED":
        try:
            run.end_running_children(status)
        except Exception:  # noqa: BLE001  (a server that is down: reconcile closes them later)
            pass
    run.end_if_reachable(status)
