"""One typed config schema for the whole pipeline.

Each component owns its section (`data`, `model`, `train`, `tune`, `tracking`) and receives only
that section. Configs come from YAML in `conf/`, overridden with `--set a.b=c`; every error names
the key, the value and the fix, and is raised before Ray starts.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from pipeline.errors import ConfigError
from pipeline.data.sources import SOURCES


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnsConfig(Section):
    """Which of the user's columns hold what: one row per sequence (regression, classify, generate),
    or one row per series and time step (forecast, anomaly)."""

    sequence: str = Field("x", description="list of time steps (each a list of features or one number); generate: also a string or list of int tokens")
    target: str = Field("y", description="value(s) to predict, the class label, or the series' value (forecast, anomaly)")
    time: str = Field("time", description="forecast, anomaly: the time column (numbers or timestamps)")
    series: str | None = Field(None, description="forecast, anomaly: the series id column, for many series")
    features: list[str] = Field(default_factory=list, description="forecast, anomaly: extra input columns (covariates)")
    label: str | None = Field(None, description="anomaly: 0/1 column marking anomalous steps (optional)")


class WindowConfig(Section):
    lookback: int = Field(24, ge=1, description="input steps per window")
    horizon: int = Field(1, ge=1, description="steps forecast at once")
    season: int = Field(1, ge=1, description="seasonal-naive period (12 for monthly data with a yearly cycle)")
    normalize: Literal["none", "last"] = Field(
        "none", description="forecast: inputs and targets relative to each window's last value (trending series: prices, CO2)"
    )

    @model_validator(mode="after")
    def _season_fits(self) -> WindowConfig:
        if self.season > self.lookback:
            raise ValueError(f"season {self.season} is longer than lookback {self.lookback}; the baseline needs a full season of history")
        return self


class DataConfig(Section):
    source: str = Field("adding", description="built-in dataset name, or a path/URI to Parquet or CSV")
    options: dict[str, Any] = Field(default_factory=dict, validate_default=True, description="built-in dataset parameters")
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    test_fraction: float = Field(0.1, gt=0, lt=1)
    split_seed: int = 0
    split_column: str | None = Field(None, description="column of train/val/test labels: a predefined split")
    window: WindowConfig | None = Field(None, description="forecast, anomaly: windows of the series")
    missing: Literal["error", "drop", "ffill", "zero"] = Field(
        "error", description="forecast, anomaly: null/NaN/inf values fail (error), or are dropped, forward-filled or zeroed per series"
    )
    anomaly_quantile: float | None = Field(
        None, gt=0, lt=1, description="anomaly without labels: flag steps scoring above this quantile of validation scores (default 0.99)"
    )
    input_scaling: Literal["standard", "none"] = Field("standard", description="standardize each input feature by the training split")
    cache_dir: str = Field("data", description="where built-in datasets are written as Parquet")

    @field_validator("options")
    @classmethod
    def _source_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        source = SOURCES.get(info.data.get("source", ""))
        if source is None:
            if options:
                raise ValueError(f"options are only for built-in sources ({', '.join(SOURCES)})")
            return options
        try:
            return source.options_model.model_validate(options).model_dump()
        except ValidationError as err:
            raise ValueError(describe_options_error(err, source.options_model)) from err

    @model_validator(mode="after")
    def _fractions(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        return self

    @property
    def is_builtin(self) -> bool:
        return self.source in SOURCES


LSTM_VARIANTS = ("peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr")  # Greff et al. 2017


class ModelConfig(Section):
    cell: Literal["lstm", "gru", "rnn", "peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr"] = Field(
        "lstm", description="lstm: torch's fused LSTM (Greff's NP); gru; rnn (tanh); or a Greff variant (pipeline/cells.py)"
    )
    hidden_size: int = Field(64, ge=1)
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1, description="between stacked layers")
    bidirectional: bool = Field(False, description="a second direction reads each sequence backwards (not for generate)")
    proj_size: int = Field(0, ge=0, description="lstm only: LSTMP projection of the output, smaller than hidden_size; 0 = none")
    forget_bias: float | None = Field(None, description="LSTM cells: initial forget-gate bias (default 1.0, Jozefowicz et al. 2015)")

    @model_validator(mode="after")
    def _cell_options(self) -> ModelConfig:
        if self.proj_size and self.cell != "lstm":
            raise ValueError(f"model.proj_size is for cell: lstm (cell is {self.cell}); remove it or set model.cell: lstm")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"model.proj_size {self.proj_size} must be smaller than model.hidden_size {self.hidden_size}")
        if self.forget_bias is not None and self.cell in ("gru", "rnn"):
            raise ValueError(f"model.forget_bias is for LSTM cells; a {self.cell} has no forget gate: remove it")
        if self.forget_bias is not None and self.cell in ("nfg", "cifg"):
            raise ValueError(f"model.forget_bias does not apply to {self.cell}, which has no forget gate of its own: remove it")
        if self.dropout > 0 and self.num_layers == 1:
            raise ValueError(
                f"model.dropout {self.dropout:g} applies between stacked layers and model.num_layers is 1; "
                "set model.num_layers: 2 (or more) or remove model.dropout"
            )
        return self

    @property
    def lstm_forget_bias(self) -> float:
        return 1.0 if self.forget_bias is None else self.forget_bias


class TrainConfig(Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm; null disables")
    workers: int = Field(2, ge=1)
    use_gpu: bool = False
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32", description="torch.amp autocast: bf16, fp16 (with a GradScaler), auto (bf16 where supported, else fp16)"
    )
    shard_cache_mb: float = Field(
        1024, ge=0, description="each worker keeps the training split's rows (and its validation shard) in memory after "
        "the first epoch if each fits this many MB; 0 streams every epoch"
    )
    seed: int = 0
    storage_path: str = Field("runs", description="Ray Train run state and checkpoints")
    max_failures: int = Field(0, ge=-1)
    checkpoints_to_keep: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _fp16_needs_gpu(self) -> TrainConfig:
        if self.precision == "fp16" and not self.use_gpu:
            raise ValueError("train.precision=fp16 needs train.use_gpu=true (CPU LSTM kernels have no float16); use bf16 or auto on CPU")
        return self


class SpaceSpec(Section):
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SpaceSpec:
        given = [k for k in ("choice", "uniform", "loguniform", "randint") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of choice, uniform, loguniform, randint")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        for kind in ("uniform", "loguniform", "randint"):
            bounds = getattr(self, kind)
            if bounds is not None and not bounds[0] < bounds[1]:
                raise ValueError(f"{kind} needs [low, high] with low < high, got {list(bounds)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform bounds must be positive")
        return self

    def candidate_values(self) -> list[Any]:
        """Values that must each form a valid config (the choices, or the range's ends)."""
        if self.choice is not None:
            return list(self.choice)
        if self.randint is not None:
            return [self.randint[0], self.randint[1] - 1]  # tune.randint's upper bound is exclusive
        return list(self.uniform or self.loguniform or ())


class TuneConfig(Section):
    num_samples: int = Field(2, ge=1)
    max_concurrent: int = Field(0, ge=0, description="0 = as many trials as the cluster's CPUs/GPUs fit")
    trial_workers: int | None = Field(None, ge=1, description="Ray Train workers per trial; default train.workers")
    search: Literal["random", "grid", "optuna"] = Field(
        "random", description="random sampling; grid: every combination of the choice lists (x num_samples), ranges sampled per trial; optuna: TPE"
    )
    scheduler: Literal["asha", "fifo"] = "asha"
    grace_period: int = Field(1, ge=1, description="ASHA: epochs before a trial can be stopped")
    reduction_factor: int = Field(2, ge=2, description="ASHA: keep 1/reduction_factor per rung")
    metric: str | None = Field(None, description="what the sweep optimizes; default the task's validation metric")
    mode: Literal["min", "max"] | None = Field(None, description="default: max for accuracy, else min")
    seed: int = Field(0, description="seed of the search: random and grid sampling (Tune's variant generator), optuna's TPE")
    solved_below: float | None = Field(
        None, gt=0, description="report: the line under which a trial's test metric counts as solved (e.g. 0.01 MSE on the adding problem)"
    )
    space: dict[str, SpaceSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _solved_needs_cells_by_data(self) -> TuneConfig:
        if self.solved_below is not None and ("model.cell" not in self.space or not any(k.startswith("data.") for k in self.space)):
            raise ValueError("tune.solved_below marks the cells-by-data report: search model.cell and a data.* key, or remove it")
        return self

    @model_validator(mode="after")
    def _asha_keys_need_asha(self) -> TuneConfig:
        if self.scheduler == "fifo" and (self.grace_period != 1 or self.reduction_factor != 2):
            raise ValueError(
                "tune.grace_period and tune.reduction_factor are ASHA's and tune.scheduler is fifo; "
                "remove them or set tune.scheduler: asha"
            )
        return self

    @model_validator(mode="after")
    def _grid_needs_choices(self) -> TuneConfig:
        if self.search == "grid" and not any(spec.choice is not None for spec in self.space.values()):
            raise ValueError("tune.search: grid crosses the choice lists of tune.space and there are none; add one or use random")
        return self


class TrackingConfig(Section):
    uri: str | None = Field(None, description="MLflow tracking URI; default MLFLOW_TRACKING_URI or sqlite:///mlflow.db")
    experiment: str = "lstm-pipeline"
    register_as: str | None = None
    outage_wait_s: float = Field(
        300, ge=0, description="after training, how long to wait for an unreachable tracking server before failing the run"
    )


class TelemetryConfig(Section):
    """Gate activations, cell/hidden-state norms and gradient flow through time on a fixed probe batch
    of validation sequences, logged to the run as a Parquet table and plots (`pipeline.telemetry`)."""

    enabled: bool = False
    epochs: list[int] | None = Field(None, description="epochs to record (0-based); default the first and the last")
    probe_size: int = Field(32, ge=1, description="validation sequences in the probe batch")

    @model_validator(mode="after")
    def _keys_need_enabled(self) -> TelemetryConfig:
        if not self.enabled and (self.epochs is not None or self.probe_size != 32):
            raise ValueError("telemetry.epochs and telemetry.probe_size are read only with telemetry.enabled: true; set it or remove them")
        return self


class Config(Section):
    task: Literal["regression", "classify", "forecast", "generate", "anomaly"] = "regression"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)

    @field_validator("tune")
    @classmethod
    def _space_keys_exist(cls, tune: TuneConfig) -> TuneConfig:
        for key in tune.space:
            if key.split(".")[0] in ("tune", "tracking", "telemetry"):
                raise ValueError(f"tune.space cannot search '{key}'; search model or train keys")
            if key.split(".")[0] == "data":
                if key not in ALL_KEYS and not key.startswith("data.options."):
                    raise ValueError(f"tune.space key '{key}' is not a config key{_suggest(key, ALL_KEYS)}")
                if tune.space[key].choice is None:
                    raise ValueError(
                        f"tune.space['{key}'] must be a choice list: the sweep prepares each data variant once, "
                        "before the trials, so it cannot sample data settings from a range"
                    )
                continue
            if key not in TUNABLE_KEYS:
                raise ValueError(f"tune.space key '{key}' is not a config key{_suggest(key, TUNABLE_KEYS)}")
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
        late = [e for e in self.telemetry.epochs or [] if not 0 <= e < self.train.epochs]
        if late:
            raise ValueError(
                f"telemetry.epochs {late} are outside 0..{self.train.epochs - 1} (train.epochs={self.train.epochs}); "
                "pick epochs the run trains"
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
        ann = next((a for a in (field.annotation, *get_args(field.annotation)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if ann is not None:
            keys += _leaf_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


ALL_KEYS = _leaf_keys(Config)
SECTIONS = sorted({k.split(".")[0] for k in ALL_KEYS})
TUNABLE_KEYS = [k for k in ALL_KEYS if k.split(".")[0] in ("model", "train")]


def _suggest(key: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""


def describe_validation_error(err: ValidationError, *, origin: str) -> str:
    """Turn pydantic's report into one sentence per problem, naming the key and the fix."""
    sentences = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        key = ".".join(loc)
        if e["type"] == "extra_forbidden":
            sentences.append(f"unknown config key '{key}' in {origin}{_suggest(key, ALL_KEYS + SECTIONS)}")
            continue
        value = e.get("input")
        msg = e["msg"].removeprefix("Value error, ")
        if isinstance(value, dict):   # a rule across a section's keys: the message names them
            sentences.append(f"invalid config in {origin}: {msg}")
            continue
        sentences.append(f"config key '{key}' = {value!r} in {origin} is invalid: {msg}")
    return "; ".join(sentences)


def describe_options_error(err: ValidationError, options_model: type[BaseModel]) -> str:
    e = err.errors()[0]
    key = "data.options." + ".".join(str(p) for p in e["loc"])
    if e["type"] == "extra_forbidden":
        valid = [f"data.options.{name}" for name in options_model.model_fields]
        return f"unknown key '{key}'{_suggest(key, valid) or f'; valid keys: {valid}'}"
    return f"'{key}' = {e.get('input')!r}: {e['msg']}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """'model.hidden_size=128' -> (['model', 'hidden_size'], 128); values are parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set '{text}' is not of the form key=value, e.g. --set model.hidden_size=128")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `raw` with dotted-key overrides set (from --set strings or a Tune sample)."""
    out = copy.deepcopy(raw)
    pairs = overrides.items() if isinstance(overrides, dict) else [parse_override(o) for o in overrides]
    for path, value in pairs:
        parts = path.split(".") if isinstance(path, str) else path
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: i + 1])
                raise ConfigError(f"cannot set '{'.'.join(parts)}': '{prefix}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def validate(raw: dict[str, Any], *, origin: str = "config") -> Config:
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, origin=origin)) from err
    _check_space_values(cfg, origin=origin)
    return cfg


def _check_space_values(cfg: Config, *, origin: str) -> None:
    """Every value a sweep can sample must itself form a valid config."""
    base = cfg.model_dump(mode="json")
    for key, spec in cfg.tune.space.items():
        for value in spec.candidate_values():
            try:
                Config.model_validate(apply_overrides(base, {key: value}))
            except ValidationError as err:
                detail = describe_validation_error(err, origin=f"tune.space['{key}']")
                raise ConfigError(f"{detail} (searched value {value!r} from {origin})") from err


CONFIG_ENV = "LSTMPIPE_CONFIG"  # `lstmpipe submit` ships the resolved config to its job in this variable


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file, or `env:NAME`: YAML text in environment variable NAME (a submitted job's config)."""
    if str(path).startswith("env:"):
        name = str(path).removeprefix("env:")
        if name not in os.environ:
            raise ConfigError(f"config env:{name} names an unset environment variable; set {name} to the YAML text or pass a file with -c")
        text = os.environ[name]
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing YAML file with -c")
        text = path.read_text()
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML ({err.__class__.__name__}): fix the syntax") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(raw).__name__}")
    return raw


def load(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read YAML (or start from defaults), apply --set overrides, validate."""
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides or [])
    origin = f"{path}" if path is not None else "defaults"
    if overrides:
        origin += " with --set " + " ".join(overrides)
    return validate(raw, origin=origin)


def bundled_config(name: str) -> Path:
    """A config shipped with the project: conf/NAME in a clone, pipeline/bundled_conf/NAME in a wheel."""
    here = Path(__file__).resolve().parent
    for root in (here / "bundled_conf", here.parent / "conf"):
        if (root / name).is_file():
            return root / name
    raise ConfigError(f"bundled config '{name}' was not found next to the pipeline package; reinstall the project")
