"""The test session's copies of one migrated MLflow store (conftest.migrated_once) are what MLflow's
own migrations make of a new store: the same tables, columns, constraints, indexes and alembic version."""

import sqlite3

import sqlalchemy
from mlflow.store.db import utils as db_utils
from mlflow.tracking import MlflowClient


def schema(path) -> tuple[list[tuple], list[tuple]]:
    """Every table's and index's definition, and the alembic version. MLflow's migrations write the
    `runs` table's constraints in either order from one run to the next: each definition is compared
    as its set of lines."""
    with sqlite3.connect(path) as db:
        objects = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        version = db.execute("SELECT version_num FROM alembic_version").fetchall()
    return [(*o[:3], sorted(line.strip().rstrip(",") for line in (o[3] or "").splitlines())) for o in objects], version


def test_a_copied_store_is_the_store_mlflows_migrations_make(tmp_path):
    assert db_utils._initialize_tables.__wrapped__ is not db_utils._initialize_tables  # the session's copy is on
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/migrated.db")
    db_utils._initialize_tables.__wrapped__(engine)  # MLflow's migrations
    engine.dispose()
    client = MlflowClient(f"sqlite:///{tmp_path}/copied.db")  # a new store, as every test opens one
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "m", 1.0)
    assert client.get_metric_history(run.info.run_id, "m")[0].value == 1.0
    migrated, copied = schema(tmp_path / "migrated.db"), schema(tmp_path / "copied.db")
    assert copied == migrated and len(migrated[0]) > 40 and migrated[1]
