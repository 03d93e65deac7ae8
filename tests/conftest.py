import os
from pathlib import Path

import mlflow
import pytest

from pipeline import config

# `make test` runs two pytest-xdist workers with `--dist loadfile --no-loadscope-reorder`: each worker
# takes the next whole module when it runs out, in the order below, and each starts a Ray instance of
# its own the first time one of its modules needs one (the `ray_session` fixture). Longest first
# (seconds of `make test` here, 2026-12-06, both workers busy: forecast 270, cluster 240, tune 195,
# smoke 180, train 135, inference, failures, text ~95, classify 85, anomaly 70, generate 45), so the
# two workers finish together; the unit modules, seconds each, fill in at the end.
LONGEST_FIRST = (
    "test_forecast.py",
    "test_cluster.py",
    "test_tune.py",
    "test_smoke.py",
    "test_train.py",
    "test_inference.py",
    "test_failures.py",
    "test_text.py",
    "test_classify.py",
    "test_task_anomaly.py",
    "test_task_generate.py",
    "test_mlflow_auth.py",
    "test_bad_input.py",
)


def run_order(path: Path) -> tuple[int, int]:
    """Where a module's tests go in the run: the long modules in LONGEST_FIRST's order, then the other
    integration and reliability modules, then the unit modules."""
    if path.name in LONGEST_FIRST:
        return 0, LONGEST_FIRST.index(path.name)
    return (2 if path.parent.name == "unit" else 1), 0


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Longest modules first (a stable sort keeps each module's own order of tests)."""
    items.sort(key=lambda item: run_order(Path(str(item.path))))


@pytest.fixture(autouse=True)
def no_tracking_uri_leaks():
    """A test that points MLflow's global tracking URI somewhere (mlflow.set_tracking_uri also exports
    $MLFLOW_TRACKING_URI) must put it back: the next run in the process would silently log there.
    Load served models with helpers.load_served."""
    before = os.environ.get("MLFLOW_TRACKING_URI"), mlflow.get_tracking_uri()
    yield
    assert (os.environ.get("MLFLOW_TRACKING_URI"), mlflow.get_tracking_uri()) == before, (
        "the test left MLflow's tracking URI changed"
    )


@pytest.fixture(scope="session", autouse=True)
def migrated_once(tmp_path_factory):
    """A new SQLite store in this process is a copy of one migrated store (SQLite's backup API).

    MLflow creates a new store's tables by running its ~60 schema migrations, ~1.5 CPU s each time:
    ~45 CPU s of `make test`'s in-process stores. Each pytest process migrates one store at its start;
    the copy has the same tables and alembic version (tests/unit/test_migrated_store.py compares them
    with a store MLflow migrates). Subprocesses (the CLI, `mlflow server`, `lstmpipe smoke`) still
    migrate their own new stores."""
    import functools
    import sqlite3

    import sqlalchemy
    from mlflow.store.db import utils as db_utils
    from mlflow.store.model_registry import sqlalchemy_store as registry_store

    migrate = db_utils._initialize_tables
    template = tmp_path_factory.mktemp("mlflow-migrated") / "mlflow.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{template}")
    migrate(engine)
    engine.dispose()

    @functools.wraps(migrate)
    def copy_of_migrated(engine):
        if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
            return migrate(engine)
        raw = engine.raw_connection()
        try:
            with sqlite3.connect(template) as source:
                source.backup(raw.driver_connection)
        finally:
            raw.close()

    patch = pytest.MonkeyPatch()
    patch.setattr(db_utils, "_initialize_tables", copy_of_migrated)
    patch.setattr(registry_store, "_initialize_tables", copy_of_migrated)
    yield template
    patch.undo()


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole integration suite (starting Ray costs seconds here)."""
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    from pipeline.cluster.connect import connect

    connect()
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def serve_port(ray_session):
    """Ray Serve on the session's Ray instance, its HTTP proxy on a free loopback port (`lstmpipe serve`
    tests deploy their applications there and delete them)."""
    import socket

    from ray import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": "WARNING"})
    yield port
    serve.shutdown()


@pytest.fixture(scope="session")
def join_env(ray_session):
    """The environment for a CLI subprocess that joins the session's Ray instead of starting its own
    (15-20 s saved per call on 2 cores; the session's auth token is found the way a user's shell finds it).
    Tests of a first run, of a crash that takes Ray down, or of failing before Ray starts keep RAY_ADDRESS=''."""
    return {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def tiny_raw(workdir):
    """A config small enough for seconds per run: 8 steps, 300 sequences, 8 hidden units."""
    return {
        "data": {
            "source": "adding",
            "options": {"seq_len": 8, "num_sequences": 300},
            "cache_dir": str(workdir / "data"),
        },
        "model": {"hidden_size": 8},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "workers": 2, "storage_path": str(workdir / "runs")},
        "tracking": {"uri": f"sqlite:///{workdir}/mlflow.db", "experiment": "it"},
    }


@pytest.fixture(scope="module")
def tiny_cfg(tiny_raw):
    return config.validate(tiny_raw)


@pytest.fixture(scope="module")
def splits(ray_session, tiny_cfg):
    from pipeline.data.ingest import load_splits

    return load_splits(tiny_cfg)


@pytest.fixture(scope="module")
def mlflow_client(tiny_cfg):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tiny_cfg.tracking.uri)
