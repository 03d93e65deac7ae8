"""`train`: the optimizer, the Ray Train workers, precision, checkpoints and failures."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config.base import Section
from pipeline.data.sources.options import SEED_MAX


class EarlyStoppingConfig(Section):
    """Stop when the validation metric no longer improves; the best checkpoint is still the one tested."""

    patience: int = Field(5, ge=1, le=100_000, description="epochs without an improvement before the run stops")
    min_delta: float = Field(
        0.0, ge=0, le=1e9, description="an epoch improves only if it beats the best so far by more than this"
    )
    metric: str | None = Field(
        None,
        max_length=64,
        description="the validation metric watched (val_loss, or the task's own); null: train.checkpoint_metric",
    )


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
    optimizer: Literal["adam", "adamw", "sgd"] = Field(
        "adam", description="adam, adamw (decoupled weight decay), or sgd (with train.momentum)"
    )
    lr: float = Field(1e-3, gt=0, le=10, description="the peak learning rate (the schedule's top)")
    weight_decay: float = Field(
        0.0,
        ge=0,
        le=10,
        description="adamw, sgd: weight decay of the weight matrices and embeddings (never biases or norms)",
    )
    momentum: float | None = Field(None, ge=0, lt=1, description="sgd's momentum; null: 0.9")
    schedule: Literal["constant", "cosine", "onecycle", "plateau"] = Field(
        "constant",
        description=(
            "the learning rate per epoch after warmup: constant; cosine (down to lr/100 over the remaining epochs); "
            "onecycle (up from lr/25 to lr over the warmup, or over 30% of the epochs without one, then cosine "
            "down to lr/10^4); plateau (times train.plateau_factor after train.plateau_patience epochs without a "
            "better val_loss)"
        ),
    )
    warmup_epochs: int = Field(
        0, ge=0, le=100_000, description="epochs of linear warmup to train.lr (onecycle: its rising part)"
    )
    plateau_factor: float | None = Field(None, gt=0, lt=1, description="schedule plateau: the cut; null: 0.5")
    plateau_patience: int | None = Field(
        None, ge=0, le=100_000, description="schedule plateau: epochs without a better val_loss before a cut; null: 2"
    )
    early_stopping: EarlyStoppingConfig | None = Field(
        None, description="stop when the validation metric stops improving; null: train every epoch"
    )
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
    def _recipe_keys_read(self) -> TrainConfig:
        """Each optimizer and schedule key is refused where the chosen optimizer or schedule ignores it."""
        if self.weight_decay and self.optimizer == "adam":
            raise ValueError(
                "train.weight_decay is not applied by train.optimizer=adam (its L2 penalty is not decoupled); "
                "set train.optimizer: adamw"
            )
        if self.momentum is not None and self.optimizer != "sgd":
            raise ValueError(f"train.momentum is sgd's and train.optimizer is {self.optimizer}; remove it")
        plateau = [k for k in ("plateau_factor", "plateau_patience") if getattr(self, k) is not None]
        if plateau and self.schedule != "plateau":
            raise ValueError(
                f"train.{plateau[0]} is read by train.schedule=plateau only; remove it or set train.schedule: plateau"
            )
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"train.warmup_epochs={self.warmup_epochs} leaves no epoch after warmup (train.epochs={self.epochs}); "
                "lower it"
            )
        return self

    @model_validator(mode="after")
    def _fp16_needs_gpu(self) -> TrainConfig:
        if self.precision == "fp16" and not self.use_gpu:
            raise ValueError(
                "train.precision=fp16 needs train.use_gpu=true (CPU LSTM kernels have no float16); use bf16 or auto "
                "on CPU"
            )
        return self
