"""One typed config schema for the whole pipeline.

Each component owns its section (`data`, `model`, `train`, `tune`, `tracking`) and receives only
that section. Configs come from YAML in `conf/`, overridden with `--set a.b=c`; every error names
the key, the value and the fix, and is raised before Ray starts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, field_validator, model_validator

from pipeline.config.base import Section, suggest
from pipeline.config.data import DataConfig, WindowConfig
from pipeline.config.model import ModelConfig
from pipeline.config.tracking import TelemetryConfig, TrackingConfig
from pipeline.config.train import TrainConfig
from pipeline.config.tune import TuneConfig
from pipeline.data.sources import SOURCES


class Config(Section):
    task: Literal["regression", "classify", "forecast", "generate", "anomaly", "translate", "transcribe"] = Field(
        "regression", description="what a sequence means: pipeline/tasks/<task>.py (docs/tasks-and-data.md)"
    )
    data: DataConfig = Field(
        default_factory=DataConfig,
        description=(
            "Where the sequences come from (a built-in dataset or your Parquet/CSV), which columns hold "
            "what, how they are split, scaled and (forecast, anomaly) windowed."
        ),
    )
    model: ModelConfig = Field(
        default_factory=ModelConfig,
        description=(
            "The recurrent stack (`pipeline/model/`): cell, size, layers, directions, and a linear head on its output."
        ),
    )
    train: TrainConfig = Field(
        default_factory=TrainConfig,
        description="The Ray Train run: Adam, batches, workers, precision, checkpoints, failures.",
    )
    tune: TuneConfig = Field(
        default_factory=TuneConfig,
        description=(
            "`lstmpipe tune`: the search space, searcher, scheduler and objective; each trial is a `train` "
            "run of its own."
        ),
    )
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig,
        description=(
            "MLflow: where runs go, the experiment, the registered name, how long to wait for a server that went away."
        ),
    )
    telemetry: TelemetryConfig = Field(
        default_factory=TelemetryConfig,
        description="Gates, states and gradient flow through time, recorded by rank 0 (docs/telemetry.md).",
    )

    @field_validator("tune")
    @classmethod
    def _space_keys_exist(cls, tune: TuneConfig) -> TuneConfig:
        for key in tune.space:
            if key.split(".")[0] in ("tune", "tracking", "telemetry"):
                raise ValueError(f"tune.space cannot search '{key}'; search model or train keys")
            if key.split(".")[0] == "data":
                if key not in ALL_KEYS and not key.startswith("data.options."):
                    raise ValueError(f"tune.space key '{key}' is not a config key{suggest(key, ALL_KEYS)}")
                if tune.space[key].choice is None:
                    raise ValueError(
                        f"tune.space['{key}'] must be a choice list: the sweep prepares each data variant once, "
                        "before the trials, so it cannot sample data settings from a range"
                    )
                continue
            if key not in TUNABLE_KEYS:
                raise ValueError(f"tune.space key '{key}' is not a config key{suggest(key, TUNABLE_KEYS)}")
        return tune

    @model_validator(mode="after")
    def _task_rules(self) -> Config:
        """The source fits the task, and the task's own rules (`Task.check`) hold."""
        from pipeline.tasks import get_task

        source = SOURCES.get(self.data.source)
        if source is not None and source.task != self.task:
            raise ValueError(f"data.source '{source.name}' is a {source.task} dataset; set task: {source.task}")
        task = get_task(self.task)
        if task.layout == "series" and self.data.window is None:
            self.data.window = WindowConfig()
        task.check(self)
        val_metrics = [m for m in task.reported_metrics if m.startswith("val_")]
        if self.train.checkpoint_metric not in val_metrics:
            metric = self.train.checkpoint_metric
            hint = suggest(metric, val_metrics) or f"; use one of {', '.join(val_metrics)}"
            raise ValueError(f"train.checkpoint_metric '{metric}' is not a validation metric of task {self.task}{hint}")
        stopping = self.train.early_stopping
        if stopping is not None and stopping.metric is not None and stopping.metric not in val_metrics:
            hint = suggest(stopping.metric, val_metrics) or f"; use one of {', '.join(val_metrics)}"
            raise ValueError(
                f"train.early_stopping.metric '{stopping.metric}' is not a validation metric of task {self.task}{hint}"
            )
        late = [e for e in self.telemetry.epochs or [] if not 0 <= e < self.train.epochs]
        if late:
            raise ValueError(
                f"telemetry.epochs {late} are outside 0..{self.train.epochs - 1} (train.epochs={self.train.epochs}); "
                "pick epochs the run trains"
            )
        return self

    @model_validator(mode="after")
    def _pbt_fits_epochs(self) -> Config:
        if self.tune.scheduler == "pbt" and self.tune.pbt_settings().perturbation_interval >= self.train.epochs:
            interval = self.tune.pbt_settings().perturbation_interval
            raise ValueError(
                f"tune.pbt.perturbation_interval {interval} is not below train.epochs {self.train.epochs}, so no trial "
                "would ever be perturbed; lower it or train more epochs"
            )
        return self

    def telemetry_epochs(self) -> list[int]:
        """The epochs whose telemetry is recorded: telemetry.epochs, else the first and the last."""
        if not self.telemetry.enabled:
            return []
        return sorted(set(self.telemetry.epochs if self.telemetry.epochs is not None else [0, self.train.epochs - 1]))

    def hash(self) -> str:
        """Identity of a run's configuration; what may change on resume is left out."""
        data = self.model_dump(mode="json")
        data["train"].pop("epochs")
        data.pop("tracking")
        data.pop("telemetry")  # what is observed may change on resume
        data.pop("tune")
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """Dotted keys -> values, e.g. {"model.hidden_size": 64}, for MLflow params."""
        return flatten(self.model_dump(mode="json"))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "space":
            out.update(flatten(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        # a section, or an optional one (WindowConfig | None)
        ann = next(
            (
                a
                for a in (field.annotation, *get_args(field.annotation))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        if ann is not None:
            keys += _leaf_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


ALL_KEYS = _leaf_keys(Config)
SECTIONS = sorted({k.split(".")[0] for k in ALL_KEYS})
TUNABLE_KEYS = [k for k in ALL_KEYS if k.split(".")[0] in ("model", "train")]
