"""One typed config schema for the whole pipeline.

Each component owns its section (`data`, `model`, `train`, `tune`, `tracking`, `telemetry`: one
module each) and receives only that section; the tasks own their rules (`Task.check`). Configs come
from YAML in `conf/`, overridden with `--set a.b=c`; every error names the key, the value and the
fix, and is raised before Ray starts. `reference` renders docs/configuration.md from the schema.
"""

from pipeline.config.data import ColumnsConfig, DataConfig, WindowConfig
from pipeline.config.loading import (
    CONFIG_ENV,
    apply_overrides,
    bundled_config,
    describe_validation_error,
    load,
    parse_override,
    read_yaml,
    validate,
)
from pipeline.config.model import LSTM_VARIANTS, ModelConfig
from pipeline.config.root import ALL_KEYS, SECTIONS, TUNABLE_KEYS, Config, flatten
from pipeline.config.tracking import TelemetryConfig, TrackingConfig
from pipeline.config.train import TrainConfig
from pipeline.config.tune import PBT_MUTABLE, PbtConfig, SpaceSpec, TuneConfig
from pipeline.data.sources import SOURCES
from pipeline.errors import ConfigError

__all__ = [
    "ALL_KEYS",
    "CONFIG_ENV",
    "LSTM_VARIANTS",
    "PBT_MUTABLE",
    "SECTIONS",
    "SOURCES",
    "TUNABLE_KEYS",
    "ColumnsConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "PbtConfig",
    "SpaceSpec",
    "TelemetryConfig",
    "TrackingConfig",
    "TrainConfig",
    "TuneConfig",
    "WindowConfig",
    "apply_overrides",
    "bundled_config",
    "describe_validation_error",
    "flatten",
    "load",
    "parse_override",
    "read_yaml",
    "validate",
]
