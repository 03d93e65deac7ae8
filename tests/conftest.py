import os

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole integration suite (starting Ray costs seconds here)."""
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    from pipeline import cluster

    cluster.connect()
    yield ray
    ray.shutdown()
