import os
from pathlib import Path

import mlflow
import pytest

from pipeline import config

RAY_SUITES = ("integration", "reliability")
# Integration modules that start servers of their own (a 3-node Ray cluster, an MLflow server, the
# smoke command's own Ray instance) and never the session's Ray instance: they run beside the Ray
# suites, not after them.
OWN_SERVERS = ("test_cluster.py", "test_mlflow_auth.py", "test_smoke.py")


def xdist_group_of(path: Path) -> str:
    """The Ray suites' group is the longest (~13 of the 15 minutes): everything else, the unit tests
    included, runs in the other worker, beside it, so nothing waits behind the Ray group."""
    if path.parent.name in RAY_SUITES and path.name not in OWN_SERVERS:
        return "ray"
    return "servers"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under `pytest -n 2 --dist loadgroup` (make test): the tests that use the session's Ray
    instance run in one xdist worker, one after another on that instance; the tests with servers of
    their own and the unit tests (no Ray) run in the other worker, beside them."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(Path(str(item.path)))))


def pytest_collection_finish(session):
    """Fail at once if the grouping did not take (each xdist worker would start its own Ray on the same
    cores): pytest 9.2 silently breaks it (pytest-dev/pytest-xdist#1386), hence pytest<9.2."""
    if getattr(session.config.option, "loadgroup", False):
        loose = [i.nodeid for i in session.items if "@" not in i.nodeid]
        if loose:
            raise pytest.UsageError(f"--dist loadgroup did not group {loose[0]} with the Ray suites; use pytest<9.2")


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
