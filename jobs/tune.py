"""Ray job entrypoint: one Tune sweep.

    ray job submit --address "$RAY_ADDRESS" --working-dir . -- python jobs/tune.py -c conf/smoke.yaml

Takes the same flags as `lstmpipe tune`; exits with its exit code.
"""

import sys

from pipeline.cli.main import run_command

if __name__ == "__main__":
    sys.exit(run_command(["tune", *sys.argv[1:]]))
