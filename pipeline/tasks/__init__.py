"""Tasks: what a sequence means and how a model of it is trained and judged.

Every task turns the user's rows into the same prepared form, one sequence per row:
  x: list<list<float32>>   time steps x features (lengths may differ between rows);
                           generate: list<int64> token ids, or list<list<float32>> 0/1 frames
  y: float | list<float>   (regression, forecast, anomaly) or int64 class id (classify);
                           generate has no y: the target is the sequence's next step
and supplies its loss terms (for the worker loop) and its test metrics with a naive baseline on
the same split (for the driver). The worker loop, Ray Train, Tune and MLflow code are shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import ray.data
import torch

# float: value(s) per sequence; class: a class id; tokens/frames: the next step of the sequence itself
TargetKind = Literal["float", "class", "tokens", "frames"]


@dataclass
class DataInfo:
    """What the model and its users need to know about the prepared data; saved with the model."""

    task: str
    input_size: int
    output_size: int
    target: TargetKind
    max_len: int
    num_rows: dict[str, int] = field(default_factory=dict)
    input_mean: list[float] | None = None     # per feature, over the training split's time steps
    input_std: list[float] | None = None
    target_mean: list[float] | None = None    # regression: the predict-the-mean baseline
    classes: list[str] | None = None          # classify: class id -> original label
    majority_class: int | None = None         # classify: the majority-class baseline
    scaler: dict[str, list[float]] | None = None  # forecast: {"mean": [...], "std": [...]} of the target
    season: int | None = None                 # forecast: seasonal-naive period
    mase_scale: float | None = None           # forecast: in-sample seasonal-naive MAE on train
    window_normalize: Literal["none", "last"] | None = None  # forecast: targets relative to the last value
    vocab: list[str] | None = None            # generate (tokens): token id -> the character or integer token
    token_kind: Literal["char", "int"] | None = None
    marginal: list[float] | None = None       # generate: unigram / per-key on-rate over the training split
    first_step: list[float] | None = None     # generate: the same for first steps (where sampling starts)
    flag_quantile: float | None = None        # anomaly: without labels, flag val scores above this quantile
    threshold: float | None = None            # anomaly: score above which a step is flagged (chosen on val)
    baseline_threshold: float | None = None   # anomaly: the z-score baseline's threshold (chosen on val)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        return cls(**data)


@dataclass(frozen=True)
class Prepared:
    train: ray.data.Dataset
    val: ray.data.Dataset
    test: ray.data.Dataset
    info: DataInfo


@dataclass(frozen=True)
class Task:
    name: str
    prepare: Callable[..., Prepared]  # (ds, data_cfg, *, path) -> Prepared
    # (pred, y) -> {"loss": (sum, count), ...}: summed over the batch, reduced across workers
    loss_terms: Callable[[torch.Tensor, torch.Tensor], dict[str, tuple[torch.Tensor, int]]]
    # ({"pred", "y", extra columns}, info) over the whole test split -> {"test_x", "baseline_test_x"}
    test_metrics: Callable[[dict[str, np.ndarray], DataInfo], dict[str, float]]
    val_metric: str  # the task's own validation metric besides val_loss
    # (ds, data_cfg, info, *, path) -> rows as the model takes them, prepared with the trained
    # model's info (classes, vocabulary, scaler) instead of fitting: for predict and evaluate
    inference_rows: Callable[..., ray.data.Dataset]
    # ({"pred", inputs' other columns}, info) -> output columns of `lstmpipe predict`, in data units
    outputs: Callable[[dict[str, np.ndarray], DataInfo], dict[str, Any]]
    # (val predictions, info) -> info with values chosen on validation data (anomaly: thresholds)
    calibrate: Callable[[dict[str, np.ndarray], DataInfo], DataInfo] | None = None
    # (test predictions, info) -> a per-row table logged with the run (anomaly: the flags)
    export: Callable[[dict[str, np.ndarray], DataInfo], Any] | None = None
    # (predict's output dataset, info) -> the final rows, when outputs of one row span batches
    combine: Callable[[ray.data.Dataset, DataInfo], ray.data.Dataset] | None = None
    # further loss terms some data reports (generate: accuracy for token data, not for frames)
    extra_val_metrics: tuple[str, ...] = ()

    @property
    def reported_metrics(self) -> list[str]:
        """What every epoch reports to Ray Train/Tune and MLflow (besides `epoch`)."""
        losses = ["train_loss", "val_loss", f"val_{self.val_metric}"] + [f"val_{m}" for m in self.extra_val_metrics]
        return losses + ["train_seq_per_s", "train_epoch_s"]  # throughput over all workers, training time


def get_task(name: str) -> Task:
    from pipeline.tasks import anomaly, classify, forecast, generate, regression

    tasks = (regression.TASK, classify.TASK, forecast.TASK, generate.TASK, anomaly.TASK)
    return {task.name: task for task in tasks}[name]
