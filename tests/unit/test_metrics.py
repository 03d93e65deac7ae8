"""Loss accumulation and its reduction across workers (real gloo process group, no Ray)."""

import math
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pipeline.train.reductions import MeanAccumulator, reduce_means, reduce_throughput


def test_local_mean():
    acc = MeanAccumulator()
    acc.add(torch.tensor(6.0), 3)
    acc.add(torch.tensor(4.0), 1)
    assert acc.mean == 2.5
    assert reduce_means({"loss": acc}) == {"loss": 2.5}
    assert math.isnan(MeanAccumulator().mean)
    assert reduce_throughput(40, 2.0) == {"train_seq_per_s": 20.0, "train_epoch_s": 2.0}


def _worker(rank: int, port: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    # Unequal shards: rank 0 has 1 sample of loss 1, rank 1 has 3 samples of loss 3 each.
    acc = MeanAccumulator()
    acc.add(torch.tensor(1.0 if rank == 0 else 9.0), 1 if rank == 0 else 3)
    # Rank 0 trains 10 sequences in 1 s, rank 1 30 in 2 s: the epoch took 2 s for 40 sequences.
    speed = reduce_throughput(10 if rank == 0 else 30, 1.0 if rank == 0 else 2.0)
    out.put((rank, (reduce_means({"val_loss": acc})["val_loss"], speed)))
    dist.destroy_process_group()


def test_reduction_weights_by_count_across_ranks():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    # global mean = (1 + 9) / (1 + 3) = 2.5 on both ranks, not the mean of means (1 + 3) / 2 = 2
    speed = {"train_seq_per_s": 20.0, "train_epoch_s": 2.0}
    assert results == {0: (2.5, speed), 1: (2.5, speed)}


def test_accuracy_and_macro_f1_by_hand():
    import numpy as np

    from pipeline.tasks.classify import accuracy, macro_f1

    y = np.array([0, 0, 1, 1, 2])
    y_hat = np.array([0, 1, 1, 1, 0])
    assert accuracy(y_hat, y) == 3 / 5
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 2 fp 1 fn 0 -> 0.8; class 2: tp 0 fn 1 -> 0
    assert abs(macro_f1(y_hat, y, num_classes=3) - (0.5 + 0.8 + 0.0) / 3) < 1e-12
