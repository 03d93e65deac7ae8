"""B1 and B2: the pipeline's training step under Ray Train vs a bare PyTorch loop, and scaling.

The bare loop is what a user writes by hand: the same model, optimizer, loss, gradient clipping,
batch size and thread count, on tensors already in memory (the same batches the pipeline's collate
produces, built once). The pipeline's figure is its own `train_seq_per_s`, which every worker
measures over its training loop (Ray Data shard -> collate -> step) each epoch; epoch 0 is
warm-up and is dropped on both sides.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from pipeline import config
from pipeline.data.batches import iter_batches
from pipeline.model.sequence_model import model_for
from pipeline.tasks import DataInfo, Prepared, get_task


@dataclass(frozen=True)
class Workload:
    """The benchmark's model and data: the adding problem, like the long-memory experiment."""

    seq_len: int = 100
    hidden: int = 64
    sequences: int = 6000
    batch_size: int = 64
    epochs: int = 6  # epoch 0 is warm-up

    def config(self, *, workers: int, workdir: str) -> config.Config:
        return config.validate(
            {
                "data": {
                    "source": "adding",
                    "options": {"seq_len": self.seq_len, "num_sequences": self.sequences},
                    "cache_dir": f"{workdir}/data",
                },
                "model": {"cell": "lstm", "hidden_size": self.hidden},
                "train": {
                    "epochs": self.epochs,
                    "batch_size": self.batch_size,
                    "lr": 1e-3,
                    "workers": workers,
                    "storage_path": f"{workdir}/runs",
                },
                "tracking": {"uri": f"sqlite:///{workdir}/mlflow.db", "experiment": "bench"},
            }
        )


def collated(splits: Prepared, *, batch_size: int) -> list[dict[str, torch.Tensor]]:
    """The training split as the batches the pipeline's collate makes, held in memory."""
    return list(iter_batches(splits.train, info=splits.info, batch_size=batch_size))


def bare_epochs(
    cfg: config.Config,
    info: DataInfo,
    batches: list[dict[str, torch.Tensor]],
    *,
    epochs: int,
    rank: int = 0,
    world: int = 1,
) -> list[float]:
    """Sequences/s of a hand-written loop per epoch (every rank's sequences when `world` > 1)."""
    torch.manual_seed(cfg.train.seed)
    torch.set_num_threads(1)
    model = model_for(cfg.model, info)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    task = get_task(cfg.task)
    mine = batches[: len(batches) - len(batches) % world][rank::world]  # equal batch counts: DDP ranks step together
    speeds = []
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for batch in mine:
            pred = model(batch["x"], batch["lengths"])  # (B, T, C) -> (B, O)
            loss_sum, n = task.loss_terms(pred, batch["y"])["loss"]
            optimizer.zero_grad(set_to_none=True)
            (loss_sum / n).backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            optimizer.step()
            seen += len(batch["y"])
        speeds.append(seen * world / (time.perf_counter() - start))
    return speeds


def _rank(rank: int, world: int, port: int, cfg, info, batches, epochs: int, out) -> None:
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    out.put((rank, bare_epochs(cfg, info, batches, epochs=epochs, rank=rank, world=world)))
    if world > 1:
        dist.destroy_process_group()


def spawned_epochs(
    cfg: config.Config, info: DataInfo, batches: list[dict[str, torch.Tensor]], *, epochs: int, world: int
) -> list[float]:
    """The bare loop in fresh processes: 1 (plain PyTorch) or 2 (plain torch DDP, gloo, each rank on
    every other batch); global sequences/s per epoch. Fresh processes, like a user's script, so the
    benchmark's own driver (which runs Ray) stays out of the comparison."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, world, port, cfg, info, batches, epochs, out)) for r in range(world)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=1800) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    return results[0]  # rank 0's figure already counts every rank's sequences


def pipeline_epochs(cfg: config.Config, splits: Prepared) -> list[float]:
    """The pipeline's own `train_seq_per_s` per epoch: TorchTrainer, Ray Data shards, no MLflow."""
    from pipeline.train.driver import build_trainer, fit, worker_spec

    spec = worker_spec(cfg, splits, run_id=None, tracking_uri="")
    with tempfile.TemporaryDirectory() as storage:
        name = f"bench-{cfg.train.workers}w-{time.time_ns()}"
        trainer = build_trainer(cfg, spec=spec, name=name, storage=storage)
        outcome = fit(trainer, cfg)
    return [m["train_seq_per_s"] for m in outcome.history]
