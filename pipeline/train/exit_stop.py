"""Stop the training loop before the worker's interpreter finalizes.

Ray Train runs `train_loop_per_worker` in a daemon thread of the worker actor. When the actor exits
while that thread still trains (a Tune trial stopped by its scheduler, a run aborted, a worker
group torn down), Python finalizes with the thread inside a torch call that released the GIL
(`torch.stack` collating a batch, a matmul). On taking the GIL back it finds the interpreter
finalizing and calls `pthread_exit`, whose forced unwind crosses pybind11's noexcept
`gil_scoped_release` destructor: `std::terminate`, an abort, and Ray's C++ terminate handler
printing a stack trace on the user's console (cf. ray-project/ray#49547, pytorch/pytorch#116709).

`ExitStop` registers an `atexit` hook for the life of the loop. Python runs atexit hooks before it
marks itself finalizing; the hook asks the loop to stop and waits (a bounded time) for it to leave,
which it does at its next batch. A loop blocked elsewhere (a collective whose peer died) is not
waited for past `wait_s`, and the process exits as it did before.
"""

from __future__ import annotations

import atexit
import threading
from types import TracebackType

EXIT_WAIT_S = 2.0  # at most this long the exiting process waits for the loop to reach its next batch


class ExitStop:
    """`with ExitStop() as exiting:` ... `if exiting.requested: return` between batches."""

    def __init__(self, *, wait_s: float = EXIT_WAIT_S) -> None:
        self._wait_s = wait_s
        self._stop = threading.Event()
        self._left = threading.Event()

    @property
    def requested(self) -> bool:
        """True once the process has begun to exit: the loop should return now."""
        return self._stop.is_set()

    def __enter__(self) -> ExitStop:
        atexit.register(self._at_exit)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._left.set()
        atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        self._stop.set()
        self._left.wait(self._wait_s)  # releases the GIL: the loop runs to its next check and leaves
