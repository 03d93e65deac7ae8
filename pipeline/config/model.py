"""`model`: the recurrent cell, its size and shape, and its initialization."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config.base import Section

LSTM_VARIANTS = ("peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr")  # Greff et al. 2017


class ModelConfig(Section):
    cell: Literal[
        "lstm", "gru", "rnn", "peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr", "slstm", "mlstm"
    ] = Field(
        "lstm",
        description=(
            "lstm: torch's fused LSTM (Greff's NP); gru; rnn (tanh); a Greff variant (model/cells.py); or xLSTM's "
            "slstm or mlstm (model/xlstm.py)"
        ),
    )
    heads: int | None = Field(
        None, ge=1, le=64, description="slstm, mlstm: heads (hidden_size a multiple of them); null: 1"
    )
    hidden_size: int = Field(64, ge=1, le=8192, description="units per layer and direction")
    num_layers: int = Field(1, ge=1, le=16, description="stacked recurrent layers")
    dropout: float = Field(0.0, ge=0, lt=1, description="between stacked layers")
    bidirectional: bool = Field(
        False, description="a second direction reads each sequence backwards (not for generate)"
    )
    proj_size: int = Field(
        0, ge=0, le=8192, description="lstm only: LSTMP projection of the output, smaller than hidden_size; 0 = none"
    )
    pooling: Literal["last", "mean", "max"] = Field(
        "last",
        description="one output per sequence from the last step, or the mean or max over its steps (not generate)",
    )
    embedding_dim: int | None = Field(
        None, ge=1, le=8192, description="text inputs (data.text): size of the token embedding before the stack (64)"
    )
    embedding_dropout: float = Field(
        0.0, ge=0, lt=1, description="text inputs: dropout on the token embeddings while training"
    )
    word_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description=(
            "text inputs: share of the input tokens replaced by <unk> while training (word dropout, Iyyer et al. "
            "2015); translate: the source tokens"
        ),
    )
    attention: Literal["general", "additive"] | None = Field(
        None,
        description=(
            "translate: how a decoder step scores the encoder's steps: Luong's general (h_t W h_s, default) or "
            "Bahdanau's additive (v tanh(W h_s + U h_t))"
        ),
    )
    decoder_hidden_size: int | None = Field(
        None, ge=1, le=8192, description="translate: the decoder LSTM's units (default: model.hidden_size)"
    )
    decoder_layers: int | None = Field(None, ge=1, le=16, description="translate: stacked decoder LSTM layers (1)")
    beam_size: int | None = Field(
        None, ge=1, le=64, description="translate: beam search width when decoding (4; 1 is greedy)"
    )
    length_penalty: float | None = Field(
        None,
        ge=0,
        le=5,
        description="translate: beam scores are log p / ((5 + length) / 6) ** alpha (Wu et al. 2016; 0.6; 0 = none)",
    )
    max_output_tokens: int | None = Field(
        None, ge=1, le=100_000, description="translate: longest output decoded (data.text.max_tokens)"
    )
    subsample: int | None = Field(
        None,
        ge=1,
        le=16,
        description=(
            "transcribe: frames averaged in groups of this many after the first layer, so the upper layers and the "
            "CTC output run at a lower frame rate (needs model.num_layers >= 2; 1 = none)"
        ),
    )
    likelihood: Literal["none", "gaussian", "student_t", "negative_binomial", "quantile"] | None = Field(
        None,
        description=(
            "forecast: none (a point per step, MSE), or a distribution per step trained by its likelihood: gaussian, "
            "student_t, negative_binomial (counts: mean and dispersion), or quantile (pinball loss over "
            "model.quantiles)"
        ),
    )
    quantiles: list[float] | None = Field(
        None,
        min_length=2,
        max_length=99,
        description="likelihood quantile: the levels, ascending in (0, 1) (0.025 0.1 0.25 0.5 0.75 0.9 0.975)",
    )
    intervals: Literal["none", "conformal"] | None = Field(
        None,
        description=(
            "forecast with likelihood none: conformal (split conformal 80% and 95% intervals per horizon step from "
            "the validation residuals; predict writes lower_/upper_ columns)"
        ),
    )
    readout: Literal["last", "steps"] | None = Field(
        None,
        description=(
            "forecast: how the head reads a multi-step forecast: last (every step from the last state, default) or "
            "steps (step k from the state at lookback position L-H+k through one shared linear layer, as "
            "neuralforecast's and darts' LSTMs do; needs horizon <= lookback)"
        ),
    )
    ensemble: int | None = Field(
        None,
        ge=2,
        le=16,
        description=(
            "classify: train this many copies of the model side by side (own initialization, own loss, the same "
            "batches) and average their class probabilities (model/ensemble.py); costs as many times the compute"
        ),
    )
    forget_bias: float | None = Field(
        None, ge=-100, le=100, description="LSTM cells: initial forget-gate bias (default 1.0, Jozefowicz et al. 2015)"
    )

    @model_validator(mode="after")
    def _cell_options(self) -> ModelConfig:
        if self.proj_size and self.cell != "lstm":
            raise ValueError(
                f"model.proj_size is for cell: lstm (cell is {self.cell}); remove it or set model.cell: lstm"
            )
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"model.proj_size {self.proj_size} must be smaller than model.hidden_size {self.hidden_size}"
            )
        if self.heads is not None and self.cell not in ("slstm", "mlstm"):
            raise ValueError(f"model.heads is for cell slstm or mlstm (cell is {self.cell}); remove it")
        if self.hidden_size % (self.heads or 1):
            raise ValueError(
                f"model.hidden_size {self.hidden_size} is not a multiple of model.heads {self.heads}; change either"
            )
        if self.forget_bias is not None and self.cell in ("gru", "rnn"):
            raise ValueError(f"model.forget_bias is for LSTM cells; a {self.cell} has no forget gate: remove it")
        if self.forget_bias is not None and self.cell in ("nfg", "cifg"):
            raise ValueError(
                f"model.forget_bias does not apply to {self.cell}, which has no forget gate of its own: remove it"
            )
        if (self.subsample or 1) > 1 and self.num_layers == 1:
            raise ValueError(
                f"model.subsample {self.subsample} pools frames between the first and second layers and "
                "model.num_layers is 1; set model.num_layers: 2 (or more) or remove model.subsample"
            )
        if self.intervals == "conformal" and self.likelihood not in (None, "none"):
            raise ValueError(
                f"model.intervals: conformal is for point forecasts; model.likelihood {self.likelihood} gives its own "
                "intervals: remove one of them"
            )
        if self.quantiles is not None and self.likelihood != "quantile":
            raise ValueError("model.quantiles are for model.likelihood: quantile; set it or remove model.quantiles")
        levels = self.quantiles or []
        if any(not 0 < q < 1 for q in levels) or any(b <= a for a, b in zip(levels, levels[1:])):
            raise ValueError(f"model.quantiles {levels} must be ascending levels strictly between 0 and 1")
        if self.readout == "steps" and self.pooling != "last":
            raise ValueError(
                f"model.pooling {self.pooling} is not read with model.readout steps (each step reads its own "
                "position); remove one of them"
            )
        if self.dropout > 0 and self.num_layers == 1:
            raise ValueError(
                f"model.dropout {self.dropout:g} applies between stacked layers and model.num_layers is 1; "
                "set model.num_layers: 2 (or more) or remove model.dropout"
            )
        return self

    @property
    def decoder_size(self) -> int:
        return self.hidden_size if self.decoder_hidden_size is None else self.decoder_hidden_size

    @property
    def decoding(self) -> dict[str, float | int | str]:
        """The translate-only keys' effective values (for the decoder and beam search)."""
        return {
            "attention": self.attention or "general",
            "decoder_layers": self.decoder_layers or 1,
            "beam_size": self.beam_size or 4,
            "length_penalty": 0.6 if self.length_penalty is None else self.length_penalty,
        }

    @property
    def quantile_levels(self) -> tuple[float, ...]:
        """likelihood quantile: the levels (the default set holds the 80% and 95% intervals' ends)."""
        if self.likelihood != "quantile":
            return ()
        return tuple(self.quantiles or (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975))

    @property
    def token_embedding_dim(self) -> int:
        return 64 if self.embedding_dim is None else self.embedding_dim

    @property
    def lstm_forget_bias(self) -> float:
        return 1.0 if self.forget_bias is None else self.forget_bias
