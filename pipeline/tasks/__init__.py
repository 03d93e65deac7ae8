"""Tasks: what a sequence means and how a model of it is trained and judged.

Every task turns the user's rows into the same prepared form, one sequence per row:
  x: list<list<float32>>   time steps x features (lengths may differ between rows);
                           generate: list<int64> token ids, or list<list<float32>> 0/1 frames
  y: float | list<float>   (regression, forecast, anomaly) or int64 class id (classify);
                           generate has no y: the target is the sequence's next step
and supplies its loss terms (for the worker loop), its test metrics with a naive baseline on the
same split and its plots (for the driver), its config rules (`check`, run at validation) and what
it keeps about the data (its own `TaskInfo`, inside `DataInfo`). The worker loop, Ray Train, Tune
and MLflow code are shared. A new task is one module with a `TASK` and one line in `TASKS`.

Importing a task module is light (no Ray, no torch at import): config validation runs its rules.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pipeline.data.tokenize import TextInfo

if TYPE_CHECKING:
    import numpy as np
    import ray.data
    import torch
    from matplotlib.figure import Figure

    from pipeline.config import Config

# float: value(s) per sequence; class: a class id; tokens/frames: the next step of the sequence itself
# sequence: a token sequence of its own length (translate: the target text's ids)
# labels: a label sequence shorter than the input, aligned by CTC (transcribe)
TargetKind = Literal["float", "class", "tokens", "frames", "sequence", "labels"]
Layout = Literal["rows", "series"]  # one row per sequence, or long format: one row per series and time step
# each is pipeline.tasks.<name>
TASKS = ("regression", "classify", "forecast", "generate", "anomaly", "translate", "transcribe")


@dataclass
class TaskInfo:
    """What one task keeps about its data besides the shared fields (each task subclasses it)."""


@dataclass(frozen=True)
class OutputUnits:
    """How the served model turns standardized outputs back into the data's units: out * scale + shift,
    then for forecasts relative to their window (* the window's scale) + the window's reference."""

    scale: list[float]
    shift: list[float]
    reference: Literal["none", "last", "revin", "series"] = "none"  # last: the last value; revin: the window's mean
    # and std; series: the series' training mean and std (the last two input channels of the served model)
    located: list[bool] | None = None  # outputs the reference is added to (locations, not spreads); None: all
    scaled: list[bool] | None = None  # outputs the window's scale multiplies (revin; not shape parameters); None: all


@dataclass
class DataInfo:
    """What the model and its users need to know about the prepared data; saved with the model."""

    task: str
    input_size: int
    output_size: int
    target: TargetKind
    max_len: int
    num_rows: dict[str, int] = field(default_factory=dict)
    input_mean: list[float] | None = None  # per feature, over the training split's time steps
    input_std: list[float] | None = None
    task_info: TaskInfo = field(default_factory=TaskInfo)  # the task's own, e.g. ClassifyInfo
    text: TextInfo | None = None  # text inputs: x holds token ids, input_size is the vocabulary's size

    @property
    def tokens_in(self) -> bool:
        """Inputs are token ids (embedded by the model), not values (standardized)."""
        return self.text is not None

    @property
    def embedded(self) -> bool:
        """The model embeds token ids: text inputs, and generate's token sequences."""
        return self.tokens_in or self.target == "tokens"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        info_type = get_task(data["task"]).info_type
        shared = {f.name for f in dataclasses.fields(cls)} - {"task_info", "text"}
        own = data.get("task_info")
        if own is None:  # written before task infos existed: the task's fields sit beside the shared ones
            own = {f.name: data[f.name] for f in dataclasses.fields(info_type) if f.name in data}
        text = TextInfo(**data["text"]) if data.get("text") else None
        return cls(**{k: v for k, v in data.items() if k in shared}, task_info=info_type(**own), text=text)

    def with_task_info(self, **changes: Any) -> DataInfo:
        """A copy with some of the task's own values replaced (e.g. thresholds chosen on validation)."""
        return dataclasses.replace(self, task_info=dataclasses.replace(self.task_info, **changes))


@dataclass(frozen=True)
class Prepared:
    train: ray.data.Dataset
    val: ray.data.Dataset
    test: ray.data.Dataset
    info: DataInfo


def no_plots(predictions: dict[str, np.ndarray], info: DataInfo) -> dict[str, Figure]:
    return {}


def no_rules(cfg: Config) -> None:
    return None


@dataclass(frozen=True)
class Task:
    name: str
    layout: Layout
    info_type: type[TaskInfo]
    prepare: Callable[..., Prepared]  # (ds, data_cfg, *, path[, model_cfg]) -> Prepared
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
    # the task's config rules (raise ValueError naming the key and the fix); run at validation
    check: Callable[[Config], None] = no_rules
    # (test predictions, info) -> the task's pictures of them, keyed by file name
    plots: Callable[[dict[str, np.ndarray], DataInfo], dict[str, Figure]] = no_plots
    # (val predictions, info) -> info with values chosen on validation data (anomaly: thresholds)
    calibrate: Callable[[dict[str, np.ndarray], DataInfo], DataInfo] | None = None
    # (test predictions, info) -> a per-row table logged with the run (anomaly: the flags)
    export: Callable[[dict[str, np.ndarray], DataInfo], Any] | None = None
    # (predict's output dataset, info) -> the final rows, when outputs of one row span batches
    combine: Callable[[ray.data.Dataset, DataInfo], ray.data.Dataset] | None = None
    # info -> how the served model returns its outputs in the data's units (forecast, anomaly)
    output_units: Callable[[DataInfo], OutputUnits] | None = None
    # (model, Arrow rows, *, info, model_cfg) -> outputs of a model that decodes (translate's beam
    # search) instead of answering in one forward pass: test, evaluate and predict call it per batch
    decode: Callable[..., dict[str, Any]] | None = None
    # (model, a validation batch, *, info) -> (hypotheses, references) as texts, decoded greedily on
    # the workers every epoch, gathered, and scored by `text_scores` into val_* metrics (translate)
    val_texts: Callable[..., tuple[list[str], list[str]]] | None = None
    text_scores: Callable[[list[str], list[str]], dict[str, float]] | None = None
    # further loss terms some data reports (generate: accuracy for token data, not for frames)
    extra_val_metrics: tuple[str, ...] = ()
    higher_is_better: tuple[str, ...] = ()  # metrics (without val_/test_) a sweep maximizes
    # model keys that prepare reads (it then takes model_cfg=): transcribe's model.subsample decides which
    # transcripts fit their frames, forecast's model.likelihood the outputs; a sweep prepares data per value
    prepare_reads: tuple[str, ...] = ()
    # info -> keyword arguments of loss_terms that the data decides (forecast: the likelihood)
    loss_options: Callable[[DataInfo], dict[str, Any]] | None = None

    @property
    def reported_metrics(self) -> list[str]:
        """What every epoch reports to Ray Train/Tune and MLflow (besides `epoch`)."""
        losses = ["train_loss", "val_loss", f"val_{self.val_metric}"] + [f"val_{m}" for m in self.extra_val_metrics]
        return losses + ["train_seq_per_s", "train_epoch_s"]  # throughput over all workers, training time

    def loss(
        self, train_cfg: Any, info: DataInfo | None = None
    ) -> Callable[[torch.Tensor, torch.Tensor], dict[str, tuple[torch.Tensor, int]]]:
        """The loss terms with the training config's options (label smoothing, for translate) and the
        data's (a probabilistic forecast's likelihood)."""
        options = dict(self.loss_options(info)) if self.loss_options is not None and info is not None else {}
        if train_cfg is not None and train_cfg.label_smoothing:
            options["label_smoothing"] = train_cfg.label_smoothing
        return functools.partial(self.loss_terms, **options) if options else self.loss_terms

    def metric_mode(self, metric: str) -> Literal["min", "max"]:
        """Whether a sweep should maximize `metric` (throughput, accuracy-like) or minimize it (losses)."""
        name = metric.removeprefix("val_").removeprefix("test_")
        return "max" if name in self.higher_is_better or metric == "train_seq_per_s" else "min"


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task '{name}'; use one of {', '.join(TASKS)}")
    return importlib.import_module(f"pipeline.tasks.{name}").TASK
