"""Tasks: what a sequence means and how a model of it is trained and judged.

Every task turns the user's rows into the same prepared form, one sequence per row:
  x: list<list<float32>>   time steps x features (lengths may differ between rows)
  y: float | list<float>   (regression, forecast) or int64 class id (classify)
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

TargetKind = Literal["float", "class"]


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
    target: TargetKind
    prepare: Callable[..., Prepared]  # (ds, data_cfg, *, path) -> Prepared
    # (pred, y) -> {"loss": (sum, count), ...}: summed over the batch, reduced across workers
    loss_terms: Callable[[torch.Tensor, torch.Tensor], dict[str, tuple[torch.Tensor, int]]]
    # ({"pred", "y", extra columns}, info) over the whole test split -> {"test_x", "baseline_test_x"}
    test_metrics: Callable[[dict[str, np.ndarray], DataInfo], dict[str, float]]
    val_metric: str  # the task's own validation metric besides val_loss


def get_task(name: str) -> Task:
    from pipeline.tasks import classify, forecast, regression

    return {"regression": regression.TASK, "classify": classify.TASK, "forecast": forecast.TASK}[name]
