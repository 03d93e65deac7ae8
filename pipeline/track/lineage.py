"""Dataset lineage: what a training run read, as an MLflow dataset input (the run's "Datasets" in the UI).

One input per run, context `training`: the source (a file or folder URI, or the built-in and its
parameters), a digest of it, the prepared splits' columns and Arrow types, and their sizes (rows or
windows per split) as its profile. The digest is of the source's fingerprint
(`pipeline.data.fingerprint`: each file's size and modification time, or a built-in's parameters), so
two runs on different data show different digests without reading every byte again.
"""

from __future__ import annotations

import hashlib
import json
import time

from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException

from pipeline.data.fingerprint import DataLineage
from pipeline.redaction import redact
from pipeline.track.run import TrackedRun

CONTEXT_TAG = "mlflow.data.context"  # MLflow's own tag: how the run used the dataset


def digest(lineage: DataLineage) -> str:
    return hashlib.sha256(json.dumps(lineage.fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def dataset_entity(lineage: DataLineage) -> Dataset:
    """The MLflow dataset entity for `lineage` (credentials in a URI redacted)."""
    if lineage.uri is None:
        source_type, source = "code", {"tags": {"lstmpipe.builtin": lineage.name, **lineage.fingerprint}}
    else:
        source_type, source = (
            "local" if "://" not in lineage.uri else lineage.uri.split("://")[0],
            {"uri": redact(lineage.uri)},
        )
    schema = {"mlflow_colspec": [{"name": name, "type": kind} for name, kind in lineage.columns.items()]}
    return Dataset(
        name=redact(lineage.name),
        digest=digest(lineage),
        source_type=source_type,
        source=json.dumps(source),
        schema=json.dumps(schema),
        profile=json.dumps({"split_sizes": lineage.split_sizes, "files": len(lineage.fingerprint)}),
    )


def log_lineage(run: TrackedRun, lineage: DataLineage, *, context: str = "training", tries: int = 3) -> None:
    """The run's dataset input (one per run: logging it again with the same digest changes nothing).

    MLflow's SQL store looks the dataset up and inserts it when missing; two runs logging the same
    dataset at once (a sweep's trials starting side by side) can both miss it, and the second insert
    fails on the table's unique key. The row exists then: the call is made again, and links it."""
    entity = dataset_entity(lineage)
    for attempt in range(tries):
        try:
            run.client.log_inputs(run.run_id, datasets=[DatasetInput(entity, tags=[InputTag(CONTEXT_TAG, context)])])
            return
        except MlflowException as err:
            if attempt == tries - 1 or not lost_insert_race(err):
                raise
            time.sleep(0.1 * (attempt + 1))


def lost_insert_race(err: MlflowException) -> bool:
    """The store refused a row another writer had just inserted (SQLite, PostgreSQL, MySQL wording)."""
    text = str(err).lower()
    return "unique constraint" in text or "duplicate key" in text or "duplicate entry" in text
