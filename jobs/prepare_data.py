"""Ray job entrypoint: read, check and split a config's data on the cluster (built-in sources are
written to Parquet under data.cache_dir once), so training jobs start from a checked dataset.

    ray job submit --address "$RAY_ADDRESS" --working-dir . -- \
        python jobs/prepare_data.py -c conf/experiments/chorales.yaml

Takes the same flags as `lstmpipe data prepare`; exits with its exit code.
"""

import sys

from pipeline.cli.main import run_command

if __name__ == "__main__":
    sys.exit(run_command(["data", "prepare", *sys.argv[1:]]))
