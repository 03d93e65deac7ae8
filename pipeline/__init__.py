"""lstm-pipeline: Parquet -> Ray Data -> Ray Train LSTM workers -> Ray Tune -> MLflow."""

import os
from pathlib import Path

# Ray Data reads its logging config once, when first imported, in every process: point it at ours
# (console at WARNING) before anything imports ray.data. Users can still set their own.
os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(Path(__file__).parent / "cluster" / "ray_data_logging.yaml"))
