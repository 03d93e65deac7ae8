"""Host memory of a training process: memory the loop frees stays in the process for the next batch.

Every training step allocates and frees the same few megabytes (activations kept for backward,
gradients, the collated batch). glibc's malloc may hand freed memory back to the kernel: it unmaps
chunks above its mmap threshold and trims the free top of a heap above its trim threshold, both
adjusted on the fly. In a Ray Train worker the loop runs in a thread of its own, whose malloc arena
(an mmap'd heap) was seen trimmed and refilled every step in some runs and not in others: 120,000
minor page faults a second and 4.4 s of system time instead of 6,000 and 0.4 s, each faulted page
zeroed by the kernel, and the worker at 0.6-0.75x of a bare loop for the whole run or until the
pattern changed (docs/performance.md, "the slow mode"; `python -m benchmarks.slowmode`).

`keep_freed_memory` fixes both thresholds, as PyTorch's caching allocators do on their own devices:
freed memory is reused, the process keeps its peak working set (what training needs anyway), and
chunks above 32 MB (glibc's ceiling for the mmap threshold) are still mapped per use.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
TRIM_THRESHOLD_BYTES = 1 << 30  # trim a heap only when over 1 GiB of its top is free
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's maximum on 64-bit (HEAP_MAX_SIZE / 2)


def keep_freed_memory() -> bool:
    """Fix glibc's trim and mmap thresholds for this process; False where the C library has no
    `mallopt` (not glibc: macOS, musl), which leaves the process as it was."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    )
