"""`tracking` (the MLflow store, experiment and registry) and `telemetry` (what rank 0 records)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Section


class PromoteConfig(Section):
    """The promotion gate: the new model gets the `champion` alias only if it beats these on `metric`."""

    metric: str | None = Field(
        None,
        max_length=64,
        description="the test metric compared (test_<name>); null: test_ and the task's own validation metric",
    )
    must_beat: list[Literal["baseline", "champion"]] = Field(
        ["baseline", "champion"],
        min_length=1,
        max_length=2,
        description=(
            "baseline: the task's naive baseline on the same test split; champion: the model now holding "
            "@champion, tested on the same data and split (else the gate fails)"
        ),
    )
    min_delta: float = Field(0.0, ge=0, le=1e9, description="the new model must beat each by more than this")

    @field_validator("metric")
    @classmethod
    def _test_metric(cls, metric: str | None) -> str | None:
        if metric is not None and not metric.startswith("test_"):
            raise ValueError(f"'{metric}' is not a test metric; name one the summary prints, e.g. test_mse")
        return metric

    @field_validator("must_beat")
    @classmethod
    def _once_each(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError(f"{names} names a rival twice; list baseline and/or champion once each")
        return names


class TrackingConfig(Section):
    uri: str | None = Field(None, description="MLflow tracking URI; default MLFLOW_TRACKING_URI or sqlite:///mlflow.db")
    experiment: str = Field("lstm-pipeline", max_length=500, description="MLflow experiment")
    register_as: str | None = Field(
        None,
        max_length=256,
        description=(
            "train: register the model under this name (with tracking.promote, default: the experiment's); tune: "
            "the champion's name (default: the experiment's)"
        ),
    )
    system_metrics_s: float | None = Field(
        None,
        ge=1,
        le=3600,
        description=(
            "sample CPU, memory, disk and network (GPU too where there is one) every this many seconds on every "
            "node of a training run, logged as system/node_<rank>/...; null: off"
        ),
    )
    promote: PromoteConfig | None = Field(
        None,
        description=(
            "a promotion gate for the registered model (train with register_as, or a sweep's champion): the "
            "`champion` alias only if it beats the baseline and the current champion; null: train sets no alias, "
            "a sweep's champion always gets it"
        ),
    )
    outage_wait_s: float = Field(
        300,
        ge=0,
        le=86_400,
        description="after training, how long to wait for an unreachable tracking server before failing the run",
    )

    @field_validator("experiment")
    @classmethod
    def _experiment_named(cls, name: str) -> str:
        if not name.strip() or name != name.strip():
            raise ValueError("an experiment name must be non-empty, without spaces at its ends")
        return name

    @field_validator("register_as")
    @classmethod
    def _model_name(cls, name: str | None) -> str | None:
        if name is not None and (not name.strip() or name != name.strip() or any(c in name for c in "/:")):
            raise ValueError(
                "an MLflow model name must be non-empty, without '/' or ':' or spaces at its ends, e.g. adding-lstm"
            )
        return name


class TelemetryConfig(Section):
    """Gate activations, cell/hidden-state norms and gradient flow through time on a fixed probe batch
    of validation sequences, logged to the run as a Parquet table and plots (`pipeline.telemetry`)."""

    enabled: bool = Field(
        False,
        description=(
            "record gate activations, state norms and gradient flow through time on a fixed probe of "
            "validation sequences (docs/telemetry.md)"
        ),
    )
    epochs: list[int] | None = Field(None, description="epochs to record (0-based); default the first and the last")
    probe_size: int = Field(32, ge=1, le=100_000, description="validation sequences in the probe batch")

    @model_validator(mode="after")
    def _keys_need_enabled(self) -> TelemetryConfig:
        if not self.enabled and (self.epochs is not None or self.probe_size != 32):
            raise ValueError(
                "telemetry.epochs and telemetry.probe_size are read only with telemetry.enabled: true; set it or "
                "remove them"
            )
        return self
