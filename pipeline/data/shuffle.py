"""The order in which the training sequences are seen: new every epoch, the same for the same seed.

Epoch e's order is one permutation of all N training sequences, drawn from (train.seed, e); worker r
of W trains on positions r, r+W, r+2W, ... of its first W * (N // W). So every epoch mixes sequences
across the whole split (forecast windows across time and series, not series by series), every
worker takes the same number of sequences (DDP needs the same number of steps on every rank, or
its all-reduce waits forever), the N % W left over are a different few each epoch, and a resumed
run, which knows only the epoch it starts at, sees the same orders as an uninterrupted one.
Pure numpy, no Ray.
"""

from __future__ import annotations

import numpy as np


def epoch_permutation(n: int, *, seed: int, epoch: int) -> np.ndarray:
    """All n sequences in epoch `epoch`'s order: (n,) int64 row indices."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def worker_rows(n: int, *, seed: int, epoch: int, rank: int, world: int) -> np.ndarray:
    """The rows worker `rank` of `world` trains on in `epoch`, in the order it sees them: n // world of them."""
    order = epoch_permutation(n, seed=seed, epoch=epoch)
    return order[: n - n % world][rank::world]


def worker_positions(n: int, *, seed: int, epoch: int, rank: int, world: int) -> np.ndarray:
    """For the streaming path: (n,) int64, each row's place in this worker's order, or -1 for the
    rows other workers train on this epoch."""
    out = np.full(n, -1, dtype=np.int64)
    mine = worker_rows(n, seed=seed, epoch=epoch, rank=rank, world=world)
    out[mine] = np.arange(len(mine))
    return out


POOL_BATCHES = 50  # by_length: batches per pool sorted by length (torchtext's BucketIterator uses 100)


def length_batches(lengths: np.ndarray, *, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Positions 0..n-1 of a worker's order, grouped into batches of similar length: each pool of
    POOL_BATCHES consecutive batches is sorted by length and cut into batches, then all batches are
    shuffled. The number of batches stays ceil(n / batch_size) (DDP ranks step together), a pool
    only mixes rows of nearby order, and every row is in exactly one batch."""
    pool = batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(lengths), pool):
        chunk = start + np.argsort(lengths[start : start + pool], kind="stable")  # (<= pool,) by length
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
