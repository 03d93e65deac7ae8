"""`train`: the optimizer, the Ray Train workers, precision, checkpoints and failures."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config.base import Section
from pipeline.data.sources.options import SEED_MAX


class TrainConfig(Section):
    epochs: int = Field(
        10,
        ge=1,
        le=100_000,
        description=(
            "passes over the training split, each in a new order (from seed and epoch); the only key "
            "--resume may change"
        ),
    )
    batch_size: int = Field(64, ge=1, le=1_000_000, description="sequences per batch, per worker")
    batching: Literal["shuffled", "by_length"] = Field(
        "shuffled",
        description=(
            "by_length: batches of sequences of similar length (each pool of 50 batches of the epoch's order sorted "
            "by length, the batches shuffled), so ragged data pads less"
        ),
    )
    lr: float = Field(1e-3, gt=0, le=10, description="Adam's learning rate")
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="classify, translate: share of each target's probability spread evenly over all classes/tokens",
    )
    grad_clip: float | None = Field(1.0, gt=0, le=1e6, description="max gradient norm; null disables")
    workers: int = Field(2, ge=1, le=1024, description="Ray Train workers (data-parallel, DDP)")
    use_gpu: bool = Field(
        False,
        description="one GPU per worker: NCCL instead of gloo, cuDNN's LSTM, pinned batches copied asynchronously",
    )
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32", description="torch.amp autocast: bf16, fp16 (with a GradScaler), auto (bf16 where supported, else fp16)"
    )
    shard_cache_mb: float = Field(
        1024,
        ge=0,
        le=1_048_576,
        description="each worker keeps the training split's rows (and its validation shard) in memory after "
        "the first epoch if each fits this many MB; 0 streams every epoch",
    )
    seed: int = Field(
        0,
        ge=0,
        le=SEED_MAX,
        description="seeds the weights (plus the worker's rank) and the order of the training sequences in every epoch",
    )
    storage_path: str = Field("runs", description="Ray Train run state and checkpoints")
    max_failures: int = Field(
        0,
        ge=-1,
        le=1000,
        description="worker-group restarts from the last checkpoint after a worker or node dies (-1: unlimited)",
    )
    checkpoints_to_keep: int = Field(2, ge=1, le=1000, description="best checkpoints kept, by train.checkpoint_metric")
    checkpoint_metric: str = Field(
        "val_loss",
        max_length=64,
        description=(
            "the validation metric that picks the best checkpoint (kept, tested, logged): val_loss, or the task's "
            "own, e.g. val_accuracy or val_chrf; maximized or minimized as the task says"
        ),
    )

    @model_validator(mode="after")
    def _fp16_needs_gpu(self) -> TrainConfig:
        if self.precision == "fp16" and not self.use_gpu:
            raise ValueError(
                "train.precision=fp16 needs train.use_gpu=true (CPU LSTM kernels have no float16); use bf16 or auto "
                "on CPU"
            )
        return self
