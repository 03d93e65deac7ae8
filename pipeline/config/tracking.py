"""`tracking` (the MLflow store, experiment and registry) and `telemetry` (what rank 0 records)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Section


class TrackingConfig(Section):
    uri: str | None = Field(None, description="MLflow tracking URI; default MLFLOW_TRACKING_URI or sqlite:///mlflow.db")
    experiment: str = Field("lstm-pipeline", max_length=500, description="MLflow experiment")
    register_as: str | None = Field(
        None,
        max_length=256,
        description="train: register the model under this name; tune: the champion's name (default: the experiment's)",
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
