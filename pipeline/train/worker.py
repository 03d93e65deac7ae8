"""The training loop every Ray Train worker runs: shard -> batches -> LSTM -> metrics -> report.

Read it top to bottom. Each worker streams its own shard of the train/val datasets; DDP (gloo on
CPU, NCCL on GPU) averages gradients; losses are all-reduced so all ranks report the same numbers;
rank 0 writes the checkpoint and logs the epoch to MLflow (in a Tune trial the sweep driver logs it).
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import ray
import ray.data
import ray.train
import ray.train.torch
import torch
from torch import nn

from pipeline import ray_compat
from pipeline.config import ModelConfig, TrainConfig
from pipeline.data.batches import ShardCache, TrainBatches, model_args, strided_batches, to_device, whole_split
from pipeline.model.sequence_model import model_for
from pipeline.tasks import DataInfo, get_task
from pipeline.telemetry.record import probe_batch, record
from pipeline.train import checkpoint
from pipeline.train.exit_stop import ExitStop
from pipeline.train.host_memory import keep_freed_memory
from pipeline.train.precision import mixed_precision
from pipeline.train.recipe import load_optimizer_state, lr_at, optimizer_for, stop_rule
from pipeline.train.reductions import MeanAccumulator, gather_lists, reduce_means, reduce_throughput
from pipeline.train.spec import RUN_TAGS_KEY, WorkerSpec


def _rank0_logger(spec: WorkerSpec, *, restored: Restored):
    """Rank 0's MLflow logger, where rank 0 logs. mlflow is imported here, in rank 0 only: importing it
    costs every other worker (and Ray's controller, which loads this module) seconds of CPU at start-up.
    Where a driver logs the epochs (a sweep's, `lstmpipe train`'s: `epochs_logged_by`), rank 0 opens it
    only for what the driver cannot log: the epochs of a checkpoint the run starts from, and telemetry."""
    if not spec.run_id:
        return None
    if spec.epochs_logged_by != "rank0" and not restored.start_epoch and not spec.telemetry_epochs:
        return None  # ~1.5 s of imports and the SQLite store spared on each run's critical path
    from pipeline.track import RunLogger, TrackedRun

    return RunLogger(TrackedRun(spec.tracking_uri, spec.run_id))


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    with ExitStop() as exiting:  # the loop leaves before the worker's interpreter finalizes (exit_stop)
        _train(loop_config["spec"], exiting=exiting)


def _train(spec: WorkerSpec, *, exiting: ExitStop) -> None:
    ray_compat.quiet_train_report_lines()  # one line per epoch comes from EpochProgress instead
    keep_freed_memory()  # every step's freed activations reused, not faulted in again (host_memory)
    model_cfg, train_cfg = ModelConfig(**spec.model), TrainConfig(**spec.train)
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.manual_seed(train_cfg.seed + rank)
    if not train_cfg.use_gpu:
        torch.set_num_threads(1)  # one core per worker: more threads only fight the other workers

    info = DataInfo.from_dict(spec.info)
    task = get_task(spec.task)
    raw_model = model_for(model_cfg, info)
    optimizer = optimizer_for(raw_model, train_cfg)  # adam, adamw or sgd; no decay on biases (recipe)
    restored = _restore(raw_model, optimizer, spec=spec)
    model = ray.train.torch.prepare_model(raw_model)  # DDP-wrapped, on this worker's device
    device = ray.train.torch.get_device()
    amp = mixed_precision(train_cfg.precision, device=device)
    loss_terms = task.loss(train_cfg, info)  # with the config's and the data's options (label smoothing, likelihood)

    # Training batches in a new order every epoch, from (train.seed, epoch): the whole split is read
    # by every worker and kept in memory if it fits; each worker trains on its own rows of the epoch.
    # Validation: this worker's rows of the split (every world-th), collated, kept after the first epoch if they fit.
    pin = device.type == "cuda"
    train_batches = TrainBatches(
        whole_split(spec.train_split, name="train"),
        info=info,
        batch_size=train_cfg.batch_size,
        seed=train_cfg.seed,
        rank=rank,
        world=ctx.get_world_size(),
        budget_mb=train_cfg.shard_cache_mb,
        pin_memory=pin,
        batching=train_cfg.batching,
    )
    val_split = whole_split(spec.val_split, name="val")  # the whole split; this worker's rows are strided out
    val_batches = ShardCache(
        lambda: strided_batches(
            val_split, info=info, batch_size=1024, rank=rank, world=ctx.get_world_size(), pin_memory=pin
        ),
        budget_mb=train_cfg.shard_cache_mb,
    )
    nodes = _worker_nodes(ctx.get_world_size())  # a collective: every rank calls it
    run_tags = {"lstmpipe.world_size": str(ctx.get_world_size()), "lstmpipe.worker_nodes": ",".join(nodes)}
    if restored.start_epoch:
        run_tags["lstmpipe.restored_from_epoch"] = str(restored.start_epoch - 1)
    logger = _rank0_logger(spec, restored=restored) if rank == 0 else None
    system = _node_monitor(spec, ctx)
    if logger is not None:
        logger.set_tags(run_tags)  # also in every checkpoint: the driver sets them where rank 0 does not log
        logger.log_history(restored.history)  # epochs a failed attempt trained but could not log

    history = list(restored.history)
    rule = stop_rule(train_cfg, mode_of=task.metric_mode)  # early stopping, from the history alone
    probe = None  # the first validation sequences of rank 0: the fixed telemetry probe
    for epoch in range(restored.start_epoch, train_cfg.epochs):
        if rule is not None and rule.reached(history):  # every rank holds the same reduced history
            break
        lr = lr_at(epoch, history, train_cfg)  # the schedule's rate for this epoch (recipe)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        acc = defaultdict(MeanAccumulator)
        start = time.perf_counter()
        for batch in train_batches.epoch(epoch):
            if exiting.requested:
                return
            batch = to_device(batch, device)
            with amp.autocast():
                pred = model(*model_args(batch))  # x: (B, T, C), lengths: (B,) [, y_in] -> pred: (B, O)
                loss_sum, n = loss_terms(pred.float(), batch["y"])["loss"]
            amp.step(loss_sum / n, model=model, optimizer=optimizer, grad_clip=train_cfg.grad_clip)
            acc["train_loss"].add(loss_sum, n)
        speed = reduce_throughput(acc["train_loss"].count, time.perf_counter() - start)

        model.eval()
        with torch.no_grad(), amp.autocast():
            for batch in val_batches:
                if exiting.requested:
                    return
                batch = to_device(batch, device)
                if probe is None and logger is not None and spec.telemetry_epochs:
                    probe = probe_batch(batch, size=spec.probe_size)
                for name, (total, n) in loss_terms(model(*model_args(batch)).float(), batch["y"]).items():
                    acc[f"val_{name}"].add(total, n)

        metrics = reduce_means(dict(acc)) | speed | {"epoch": epoch, "lr": lr}
        if task.val_texts is not None:  # decoded outputs scored over the whole split (BLEU, chrF)
            metrics |= _decoded_scores(raw_model, val_batches, task=task, info=info, device=device)
        recorded = None
        if probe is not None and epoch in spec.telemetry_epochs:
            recorded = record(raw_model, probe, loss=lambda p, y: loss_terms(p.float(), y)["loss"][0], epoch=epoch)
            metrics["telemetry_s"] = recorded.seconds
        history.append(metrics)
        _report(metrics, spec=spec, rank=rank, state=(raw_model, optimizer), history=history, tags=run_tags)
        if logger is not None and spec.epochs_logged_by == "rank0":
            logger.log_epoch(metrics, epoch=epoch)  # buffered if the tracking server is away
        if logger is not None and recorded is not None:
            logger.log_artifacts(
                tables={f"epoch_{epoch:04d}.parquet": recorded.table}, figures=recorded.figures, folder="telemetry"
            )
    if logger is not None:
        logger.flush()
    if system is not None:
        system.finish()


def _node_monitor(spec: WorkerSpec, ctx):
    """Each node's local rank 0 samples its node's system metrics into the run (tracking.system_metrics_s)."""
    if not spec.run_id or spec.system_metrics_s is None or ctx.get_local_rank() != 0:
        return None
    from pipeline.track.system import start_system_metrics

    return start_system_metrics(
        spec.tracking_uri, spec.run_id, node=f"node_{ctx.get_node_rank()}", interval_s=spec.system_metrics_s
    )


def _decoded_scores(model: nn.Module, batches, *, task, info: DataInfo, device) -> dict[str, float]:
    """This worker's validation rows decoded greedily, every worker's texts gathered, then scored:
    the same corpus-level numbers on every rank."""
    hyps, refs = [], []
    with torch.no_grad():
        for batch in batches:
            h, r = task.val_texts(model, to_device(batch, device), info=info)
            hyps += h
            refs += r
    model.train()
    scores = task.text_scores(gather_lists(hyps), gather_lists(refs))
    return {f"val_{name}": value for name, value in scores.items()}


def _worker_nodes(world_size: int) -> list[str]:
    """The Ray node id of every rank, in rank order (all_gather over the DDP process group)."""
    node = ray.get_runtime_context().get_node_id()
    if world_size == 1 or not torch.distributed.is_initialized():
        return [node]
    nodes: list[str | None] = [None] * world_size
    torch.distributed.all_gather_object(nodes, node)
    return [str(n) for n in nodes]


@dataclass(frozen=True)
class Restored:
    start_epoch: int
    history: list[dict[str, float]]  # metrics of the epochs before start_epoch


def _restore(model: nn.Module, optimizer: torch.optim.Optimizer, *, spec: WorkerSpec) -> Restored:
    """Load the latest checkpoint Ray Train registered for this run (after a worker failure or a
    --resume), verified against its manifest and checked to be this run's (run id, config hash);
    else the checkpoint PBT cloned into this trial (`spec.warm_start`: another trial's, same shapes)."""
    ckpt = ray.train.get_checkpoint()
    if ckpt is None and spec.warm_start is None:
        return Restored(start_epoch=0, history=[])
    with (ckpt or spec.warm_start).as_directory() as directory:
        state = checkpoint.load(directory)
    if ckpt is not None:
        checkpoint.check_belongs(state.meta, run_id=spec.run_id, config_hash=spec.config_hash, where=ckpt.path)
    model.load_state_dict(state.model)
    if state.optimizer is not None:
        load_optimizer_state(optimizer, state.optimizer)  # keeps this run's decay (PBT may have mutated it)
    return Restored(start_epoch=state.meta.epoch + 1, history=state.meta.history)


def _report(
    metrics: dict[str, float],
    *,
    spec: WorkerSpec,
    rank: int,
    state: tuple[nn.Module, torch.optim.Optimizer],
    history: list[dict[str, float]],
    tags: dict[str, str],
) -> None:
    """Report the epoch to Ray Train; rank 0 attaches the checkpoint (every rank must call report)."""
    raw_model, optimizer = state
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = None
        if rank == 0:
            meta = checkpoint.CheckpointMeta(
                epoch=metrics["epoch"],
                config_hash=spec.config_hash,
                run_id=spec.run_id,
                metrics=metrics,
                config=spec.config,
                info=spec.info,
                history=history,
                tags=tags,
            )
            checkpoint.save(tmp, model=raw_model, optimizer=optimizer, meta=meta)
            ckpt = ray.train.Checkpoint.from_directory(tmp)
        # `lstmpipe train`'s driver sets the run's tags from the report (pipeline.train.live)
        reported = metrics | ({RUN_TAGS_KEY: tags} if spec.epochs_logged_by == "driver" else {})
        ray.train.report(reported, checkpoint=ckpt, checkpoint_dir_name=f"epoch_{metrics['epoch']:04d}")
