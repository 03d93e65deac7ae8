"""lstm-pipeline: Parquet -> Ray Data -> Ray Train LSTM workers -> Ray Tune -> MLflow.

Importing it changes nothing: no environment variable, no library setting (tests/unit/test_imports.py).
"""
