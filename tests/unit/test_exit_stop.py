"""A training thread still running when its process exits must not abort the process.

Without ExitStop, Python finalizes while a daemon thread is inside `torch.stack` (GIL released);
the thread's `pthread_exit` on taking the GIL back unwinds through a noexcept destructor and the
process aborts ("terminate called without an active exception", exit 134): what Ray's terminate
handler printed as a stack trace when a trial's worker was shut down mid-epoch.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from pipeline.train.exit_stop import ExitStop

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time, torch
    from pipeline.train.exit_stop import ExitStop

    torch.set_num_threads(1)
    xs = [torch.randn(64, 20, 8) for _ in range(64)]
    guarded = sys.argv[1] == "guarded"

    def loop():  # a training loop: batches collated by torch.stack, the GIL released inside
        if not guarded:
            while True:
                torch.stack(xs)
        with ExitStop() as exiting:
            while not exiting.requested:
                torch.stack(xs)

    threading.Thread(target=loop, daemon=True).start()  # as Ray Train runs train_loop_per_worker
    time.sleep(0.3)
    sys.exit(0)  # the actor exits while the loop trains
    """
)


def _exit_while_training(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120)


def test_a_loop_under_exit_stop_leaves_before_finalization():
    for _ in range(3):
        done = _exit_while_training("guarded")
        assert done.returncode == 0, done.stderr
        assert "terminate" not in done.stderr


def test_the_unguarded_loop_aborts_the_process_here():
    """The failure ExitStop prevents, reproduced on this platform (skipped where finalization differs)."""
    done = _exit_while_training("unguarded")
    if done.returncode == 0:
        pytest.skip("this Python/torch build does not abort a daemon thread at finalization")
    assert done.returncode != 0


def test_exit_waits_only_a_bounded_time_for_a_stuck_loop():
    stop = ExitStop(wait_s=0.2)
    with stop:
        start = time.perf_counter()
        stop._at_exit()  # the loop never checks: the hook gives up after wait_s
        assert time.perf_counter() - start < 2
        assert stop.requested
