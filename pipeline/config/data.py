"""`data`: where the sequences come from, which columns hold what, how they are split and windowed."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from pipeline.config.base import Section, suggest
from pipeline.data.sources import SOURCES


class ColumnsConfig(Section):
    """Which of the user's columns hold what: one row per sequence (regression, classify, generate),
    or one row per series and time step (forecast, anomaly)."""

    sequence: str = Field(
        "x",
        description=(
            "list of time steps (each a list of features or one number); generate: also a string or list of int tokens"
        ),
    )
    target: str = Field(
        "y", description="value(s) to predict, the class label, or the series' value (forecast, anomaly)"
    )
    time: str = Field("time", description="forecast, anomaly: the time column (numbers or timestamps)")
    series: str | None = Field(None, description="forecast, anomaly: the series id column, for many series")
    features: list[str] = Field(
        default_factory=list,
        description="forecast, anomaly: extra input columns known up to each step (past covariates)",
    )
    static_features: list[str] = Field(
        default_factory=list,
        description="forecast: numeric columns constant within each series (a store's size): channels at every step",
    )
    static_categories: list[str] = Field(
        default_factory=list,
        description=(
            "forecast: categorical columns constant within each series (a store's region): one-hot channels over the "
            "training categories (an unseen one is all zeros), which the first layer's input weights embed"
        ),
    )
    future_features: list[str] = Field(
        default_factory=list,
        description=(
            "forecast: numeric columns known in advance (planned promotions, prices, holidays); the channel at "
            "lookback step t holds the value at t + horizon, so the last `horizon` steps carry the forecast period's"
        ),
    )
    label: str | None = Field(None, description="anomaly: 0/1 column marking anomalous steps (optional)")
    group: str | None = Field(
        None,
        description="transcribe: a column whose values split the test metrics (e.g. held-out fonts or voices)",
    )
    baselines: list[str] = Field(
        default_factory=list,
        description=(
            "transcribe: columns holding other recognizers' transcripts of the same rows (e.g. pocketsphinx), "
            "scored on the test split as baseline_<column>_test_*"
        ),
    )
    source: str | None = Field(
        None, description="translate: the source-language text column ('source'); the target text is `target`"
    )


class WindowConfig(Section):
    lookback: int = Field(24, ge=1, description="input steps per window")
    horizon: int = Field(1, ge=1, description="steps forecast at once")
    season: int = Field(1, ge=1, description="seasonal-naive period (12 for monthly data with a yearly cycle)")
    normalize: Literal["none", "last", "revin", "series"] = Field(
        "none",
        description=(
            "forecast: last: inputs and targets relative to each window's last value (trending series: prices, "
            "CO2); revin: standardized by each window's own mean and std, reversed on the outputs (RevIN; many "
            "series of different scales); series: standardized by each series' own mean and std over its training "
            "part (saved with the model; predict and serve look them up by the series id)"
        ),
    )

    origin_shift: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description=(
            "the last N time steps (distinct timestamps) are left out before the time split: the forecast "
            "origin moves N steps back (`lstmpipe backtest` sets it per fold)"
        ),
    )

    @model_validator(mode="after")
    def _season_fits(self) -> WindowConfig:
        if self.season > self.lookback:
            raise ValueError(
                f"season {self.season} is longer than lookback {self.lookback}; the baseline needs a full season of "
                "history"
            )
        return self


class TextConfig(Section):
    """The sequence column holds text: fitted on the training split, tokenized in Ray Data
    (pipeline/data/tokenize.py); ids 0 and 1 are <pad> and <unk>."""

    tokenizer: Literal["char", "word", "bpe"] = Field(
        "word", description="char: every character; word: words and punctuation; bpe: byte-pair merges (HF tokenizers)"
    )
    vocab_size: int = Field(
        20000, ge=4, le=1_000_000, description="most frequent tokens of the training split kept (<pad>, <unk> included)"
    )
    lowercase: bool = Field(True, description="lowercase before tokenizing (after NFKC normalization)")
    max_tokens: int = Field(
        256, ge=1, le=100_000, description="longer texts keep their first max_tokens tokens (counted in the run)"
    )
    keep_whole: list[str] = Field(
        default_factory=list,
        description=(
            "regular expressions: each distinct match in the training texts is one token, never split "
            "(e.g. placeholders '%\\(\\w+\\)[sd]')"
        ),
    )

    @field_validator("keep_whole")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"'{pattern}' is not a regular expression ({err}); fix or remove it") from err
        return patterns


class AudioConfig(Section):
    """The sequence column holds audio (WAV bytes or file paths): decoded, resampled and turned into
    log-mel frames in Ray Data (pipeline/data/audio.py), and the same way by the served model."""

    sample_rate: int = Field(16000, ge=4000, le=192_000, description="Hz the audio is resampled to")
    num_mel_bins: int = Field(80, ge=8, le=512, description="log-mel filterbank channels per frame")
    frame_length_ms: float = Field(25.0, gt=0, le=200, description="window of each frame")
    frame_shift_ms: float = Field(10.0, gt=0, le=200, description="step between frames")
    upsample: Literal["refuse", "allow"] = Field(
        "refuse", description="audio sampled below sample_rate: refused (its top mel bins would be empty) or upsampled"
    )


class DataConfig(Section):
    source: str = Field("adding", description="built-in dataset name, or a path/URI to Parquet or CSV")
    options: dict[str, Any] = Field(
        default_factory=dict, validate_default=True, description="built-in dataset parameters"
    )
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of the rows (forecast, anomaly: of the time steps) for validation"
    )
    test_fraction: float = Field(
        0.1, gt=0, lt=1, description="share for the test split, after validation in time for series tasks"
    )
    split_seed: int = Field(0, description="seed of the random row split (row-per-sequence tasks)")
    split_column: str | None = Field(None, description="column of train/val/test labels: a predefined split")
    window: WindowConfig | None = Field(None, description="forecast, anomaly: windows of the series")
    text: TextConfig | None = Field(
        None,
        description=(
            "classify: the sequence column is text; translate: source and target texts, each side its own "
            "tokenizer (built-in text sources set it)"
        ),
    )
    audio: AudioConfig | None = Field(
        None, description="transcribe: the sequence column holds WAV audio (built-in audio sources set it)"
    )
    missing: Literal["error", "drop", "ffill", "zero"] = Field(
        "error",
        description=(
            "forecast, anomaly: null/NaN/inf values fail (error), or are dropped, forward-filled or zeroed per series; "
            "transcribe: transcripts too long for their frames fail (error) or are dropped and counted (drop)"
        ),
    )
    anomaly_quantile: float | None = Field(
        None,
        gt=0,
        lt=1,
        description=(
            "anomaly without labels: flag steps scoring above this quantile of validation scores (default 0.99)"
        ),
    )
    anomaly_score: Literal["error", "nll"] | None = Field(
        None,
        description=(
            "anomaly: score a step by the forecasts' absolute error (error, the default) or by their negative "
            "log-likelihood of the value (nll; needs model.likelihood gaussian or student_t)"
        ),
    )
    calendar: list[Literal["month", "quarter", "dayofweek", "dayofmonth", "dayofyear", "hour", "minute"]] = Field(
        default_factory=list,
        description=(
            "forecast: numbers of a timestamp time column as future features (channel calendar_<name>, e.g. month "
            "1-12, dayofweek 0-6 from Monday), each read at t + horizon as data.columns.future_features"
        ),
    )
    input_scaling: Literal["standard", "none"] = Field(
        "standard", description="standardize each input feature by the training split"
    )
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
    def _text_sources_are_text(self) -> DataConfig:
        source = SOURCES.get(self.source)
        if source is not None and source.text and self.text is None:
            self.text = TextConfig(tokenizer=source.tokenizer)
        if source is not None and source.audio and self.audio is None:
            self.audio = AudioConfig(sample_rate=int(self.options.get("sample_rate", 16000)))
        return self

    @model_validator(mode="after")
    def _fractions(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        return self

    @model_validator(mode="after")
    def _columns_once(self) -> DataConfig:
        c = self.columns
        named = [
            ("target", c.target), ("time", c.time), ("series", c.series),
            *(("features", n) for n in c.features),
            *(("static_features", n) for n in c.static_features),
            *(("static_categories", n) for n in c.static_categories),
            *(("future_features", n) for n in c.future_features),
        ]  # fmt: skip
        seen: dict[str, str] = {}
        for key, name in named:
            if name is not None and name in seen:
                raise ValueError(
                    f"column '{name}' is named by data.columns.{seen[name]} and data.columns.{key}; "
                    "a column has one role: keep one"
                )
            if name is not None:
                seen[name] = key
        return self

    @property
    def is_builtin(self) -> bool:
        return self.source in SOURCES

    @property
    def led_columns(self) -> list[str]:
        """Input channels read `horizon` steps ahead: future features, then calendar numbers."""
        return [*self.columns.future_features, *(f"calendar_{name}" for name in self.calendar)]

    @property
    def input_columns(self) -> list[str]:
        """A forecast window's numeric channels in order: the target, past, static, then future
        covariates (the one-hot channels of static_categories go before the future ones)."""
        c = self.columns
        return [c.target, *c.features, *c.static_features, *self.led_columns]


def describe_options_error(err: ValidationError, options_model: type[BaseModel]) -> str:
    e = err.errors()[0]
    key = "data.options." + ".".join(str(p) for p in e["loc"])
    if e["type"] == "extra_forbidden":
        valid = [f"data.options.{name}" for name in options_model.model_fields]
        return f"unknown key '{key}'{suggest(key, valid) or f'; valid keys: {valid}'}"
    return f"'{key}' = {e.get('input')!r}: {e['msg']}"
