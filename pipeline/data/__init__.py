"""Data: built-in sources -> Parquet -> Ray Data (read, split, scale, window) -> worker batches."""
