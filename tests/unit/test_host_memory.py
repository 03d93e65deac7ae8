"""The training loop's freed host memory stays in the process (pipeline.train.host_memory): a heap
emptied and refilled in a thread of its own (as Ray Train runs the loop) faults no page back in."""

import subprocess
import sys
import textwrap

import pytest

# A fresh process: 24 MB in 1 MB chunks malloc'd, written and freed, three rounds, in a new thread;
# the minor page faults of each round. glibc's defaults unmap or trim what is freed, so every
# round faults all 6,144 pages in again.
ROUNDS = textwrap.dedent(
    """
    import ctypes, json, resource, sys, threading
    from pipeline.train.host_memory import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "keep" else None
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    faults = []
    def rounds():
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            chunks = [libc.malloc(1 << 20) for _ in range(24)]
            for c in chunks:
                libc.memset(c, 1, 1 << 20)
            for c in chunks:
                libc.free(c)
            faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    thread = threading.Thread(target=rounds)
    thread.start()
    thread.join()
    print(json.dumps({"applied": applied, "faults": faults}))
    """
)


def _rounds(mode: str) -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    plain, kept = _rounds("plain"), _rounds("keep")
    assert kept["applied"] is True
    assert min(plain["faults"][1:]) > 5000  # glibc's default: every round faults its pages in again
    assert max(kept["faults"][1:]) < 100  # kept: the second and third rounds reuse the same pages
