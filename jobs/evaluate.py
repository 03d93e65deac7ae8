"""Ray job entrypoint: evaluate a logged model on a dataset (the task's test metrics and baselines).

    ray job submit --address "$RAY_ADDRESS" --working-dir . -- \
        python jobs/evaluate.py --model models:/smoke@champion --data adding --log

Takes the same flags as `lstmpipe evaluate`; exits with its exit code.
"""

import sys

from pipeline.cli.main import run_command

if __name__ == "__main__":
    sys.exit(run_command(["evaluate", *sys.argv[1:]]))
