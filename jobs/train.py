"""Ray job entrypoint: one training run.

    ray job submit --address "$RAY_ADDRESS" --working-dir . -- python jobs/train.py -c conf/smoke.yaml

Takes the same flags as `lstmpipe train`; exits with its exit code.
"""

import sys

from pipeline.cli.main import run_command

if __name__ == "__main__":
    sys.exit(run_command(["train", *sys.argv[1:]]))
