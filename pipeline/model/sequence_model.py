"""The sequence model: a recurrent stack (`pipeline.model.cells`: fused LSTM/GRU/RNN or a Greff LSTM
variant, stacked, optionally bidirectional) and a linear head on its final output.

Training feeds zero-padded batches with their lengths; fused cells pack them with
`pack_padded_sequence` and custom cells mask padded steps, so padding never reaches the recurrence.
`ServingModel` is what gets logged to MLflow: it takes one float tensor, NaN-padded for ragged
batches, and returns outputs in the data's original units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from pipeline.config import ModelConfig
from pipeline.data.tokenize import PAD_ID, UNK_ID
from pipeline.data.windows import REVIN_EPS
from pipeline.model.cells import Recurrent

if TYPE_CHECKING:
    from pipeline.tasks import DataInfo

# one output per sequence (its last step), one per step (generate), or a forecast's horizon step k
# from the state at position length - horizon + k (model.readout steps, one head shared by the steps)
Readout = Literal["last", "every", "steps"]
Pooling = Literal["last", "mean", "max"]  # readout "last": which vector of the outputs the head reads


def pool_steps(out: torch.Tensor, last: torch.Tensor, lengths: torch.Tensor | None, *, how: Pooling) -> torch.Tensor:
    """One vector per sequence from the stack's outputs out (B, T, D): its last step (`last`, (B, D),
    as the stack gives it: a backward direction's last is its first step), or the mean or max over
    the real steps (padding excluded)."""
    if how == "last":
        return last
    t = out.shape[1]
    lengths = torch.full((out.shape[0],), t, device=out.device) if lengths is None else lengths.to(out.device)
    real = (torch.arange(t, device=out.device)[None, :] < lengths[:, None]).unsqueeze(-1)  # (B, T, 1)
    if how == "mean":
        return (out * real).sum(dim=1) / lengths.clamp(min=1).unsqueeze(-1).to(out.dtype)  # (B, D)
    return out.masked_fill(~real, float("-inf")).amax(dim=1)  # (B, D)


def read_out(
    head: nn.Module,
    out: torch.Tensor,
    last: torch.Tensor,
    lengths: torch.Tensor | None,
    *,
    readout: Readout,
    pooling: Pooling,
    horizon: int,
) -> torch.Tensor:
    """The head on the stack's outputs out (B, T, D): on one pooled vector per sequence -> (B, O), or
    ("steps") on the states at positions length-H .. length-1, one per horizon step -> (B, H * P)."""
    if readout != "steps":
        return head(pool_steps(out, last, lengths, how=pooling))  # (B, O)
    b, t, d = out.shape
    lengths = torch.full((b,), t, device=out.device) if lengths is None else lengths.to(out.device)
    pos = (lengths[:, None] - horizon + torch.arange(horizon, device=out.device)[None, :]).clamp(min=0)  # (B, H)
    picked = out.gather(1, pos.unsqueeze(-1).expand(b, horizon, d))  # (B, H, D)
    return head(picked).reshape(b, -1)  # (B, H, P) -> (B, H * P), step-major


def drop_tokens(ids: torch.Tensor, p: float, *, training: bool) -> torch.Tensor:
    """Word dropout: while training, each real token id (B, T) becomes <unk> with probability p, so a
    text model cannot lean on a few words it memorized; padding stays padding, eval sees every token."""
    if not training or p == 0.0:
        return ids
    drop = (torch.rand(ids.shape, device=ids.device) < p) & (ids != PAD_ID)  # (B, T)
    return ids.masked_fill(drop, UNK_ID)


class SequenceModel(nn.Module):
    """x (B, T, C) + lengths (B,) -> (B, O) from each sequence's last real step (readout "last"),
    or (B, T, O) from every step (readout "every"; outputs past a sequence's end are meaningless
    and masked out by the loss)."""

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        input_size: int,
        output_size: int,
        input_mean: list[float] | None = None,
        input_std: list[float] | None = None,
        readout: Readout = "last",
        vocab_size: int | None = None,
        padding_idx: int | None = PAD_ID,
        distribution: nn.Module | None = None,
        horizon: int = 1,
    ):
        super().__init__()
        self.readout = readout
        self.horizon, self.output_size = horizon, output_size
        self.pooling = cfg.pooling
        # Input standardization fitted on the training split; buffers, so it travels with the weights.
        mean = torch.tensor(input_mean, dtype=torch.float32) if input_mean else torch.zeros(input_size)  # (I,)
        std = torch.tensor(input_std, dtype=torch.float32) if input_std else torch.ones(input_size)  # (I,)
        self.register_buffer("in_mean", mean)
        self.register_buffer("in_std", std)
        # Token inputs (x[..., 0] holds ids; 0 pads): a learned embedding instead of standardization.
        self.embed = nn.Embedding(vocab_size, cfg.token_embedding_dim, padding_idx=padding_idx) if vocab_size else None
        self.embed_dropout = nn.Dropout(cfg.embedding_dropout)  # identity in eval, and at 0
        self.word_dropout = cfg.word_dropout  # word dropout: input tokens -> <unk> while training
        self.rnn = Recurrent(cfg, input_size=cfg.token_embedding_dim if vocab_size else input_size)
        per_read = output_size // horizon if readout == "steps" else output_size  # steps: one head for all
        self.head = nn.Linear(self.rnn.output_size, per_read)
        # a probabilistic forecast's head reads the outputs as distribution parameters (model/likelihood.py)
        self.dist = distribution if distribution is not None else nn.Identity()

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the recurrent stack reads: x (B, T, C) standardized, or token ids x (B, T, 1) embedded."""
        if self.embed is not None:
            ids = drop_tokens(x[..., 0].long(), self.word_dropout, training=self.training)  # (B, T)
            return self.embed_dropout(self.embed(ids))  # (B, T) ids -> (B, T, E)
        return (x - self.in_mean) / self.in_std  # (B, T, C)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = self.inputs(x)  # (B, T, C) or (B, T, E)
        out, last = self.rnn(x, lengths)  # (B, T, D), (B, D)
        if self.readout == "every":
            return self.head(out)  # (B, T, O)
        head = read_out(
            self.head, out, last, lengths, readout=self.readout, pooling=self.pooling, horizon=self.horizon
        )  # (B, O)
        return self.dist(head)

    def step(self, x_t: torch.Tensor, state=None):
        """One step of the recurrence for sampling: x_t (B, C) values, or (B, 1) token ids -> logits
        (B, O) and the new state."""
        x_t = self.embed(x_t[:, 0].long()) if self.embed is not None else (x_t - self.in_mean) / self.in_std  # (B, E|C)
        out, state = self.rnn.step(x_t, state)  # (B, D)
        return self.head(out), state


class ServingModel(nn.Module):
    """The logged model: x (B, T, C) float, NaN after each sequence's end -> (B, O) in data units,
    or (B, T, O) per-step logits (NaN past each end) for a readout-"every" model.

    Padding is read from NaNs instead of a second input, so the model has a single tensor input
    (MLflow's pickle-free pt2 format). A unidirectional recurrence never looks ahead, so reading
    the output at step length-1 of the zero-filled batch equals the packed result exactly.
    torch.export fixes T: callers pad to the exported length (the training data's longest sequence).
    A forecast model trained with `data.window.normalize: series` reads two more channels at the end
    of each step: its series' training mean and std of the target (`series_scales` in the model's
    data info; `lstmpipe predict` and `lstmpipe serve` add them from the series id).
    """

    def __init__(
        self,
        model: SequenceModel,
        *,
        out_scale: list[float] | None = None,
        out_shift: list[float] | None = None,
        reference: Literal["none", "last", "revin", "series"] = "none",
        located: list[bool] | None = None,
        scaled: list[bool] | None = None,
    ):
        super().__init__()
        self.rnn, self.head, self.readout, self.reference = model.rnn, model.head, model.readout, reference
        self.dist = model.dist
        self.pooling, self.horizon = model.pooling, model.horizon
        self.embed = model.embed  # token models: x holds ids (as floats, NaN-padded)
        self.register_buffer("in_mean", model.in_mean.clone())
        self.register_buffer("in_std", model.in_std.clone())
        size = model.output_size
        self.register_buffer("out_scale", torch.tensor(out_scale or [1.0] * size, dtype=torch.float32))
        self.register_buffer("out_shift", torch.tensor(out_shift or [0.0] * size, dtype=torch.float32))
        where = [1.0 if k else 0.0 for k in located] if located is not None else [1.0] * size
        self.register_buffer("out_located", torch.tensor(where, dtype=torch.float32))  # (O,) 1: add the reference
        times = [1.0 if k else 0.0 for k in scaled] if scaled is not None else [1.0] * size
        self.register_buffer("out_scaled", torch.tensor(times, dtype=torch.float32))  # (O,) 1: times the window's scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real = ~torch.isnan(x[..., 0])  # (B, T)
        last = real.sum(dim=1).clamp(min=1) - 1  # (B,) index of the last real step
        ref = torch.zeros(x.shape[0], 1, dtype=x.dtype)  # (B, 1)
        ref_scale = torch.ones(x.shape[0], 1, dtype=x.dtype)  # (B, 1)
        if self.reference == "last":  # forecast relative to the last value
            ref = x[..., 0].gather(1, last.view(-1, 1))  # (B, 1) last observed target
        elif self.reference == "revin":  # standardized by the window's own mean and std (RevIN)
            ref, ref_scale = window_moments(x[..., 0], real)  # (B, 1), (B, 1)
        elif self.reference == "series":  # the series' training mean and std ride on the last two channels
            ref, ref_scale = x[:, 0, -2:-1], x[:, 0, -1:]  # (B, 1), (B, 1)
            ref_scale = torch.where(ref_scale > REVIN_EPS, ref_scale, torch.ones_like(ref_scale))
            x = x[..., :-2]  # (B, T, C)
        if self.reference != "none":
            x = torch.cat([(x[..., :1] - ref.unsqueeze(-1)) / ref_scale.unsqueeze(-1), x[..., 1:]], dim=-1)
        if self.embed is not None:
            x = self.embed(torch.nan_to_num(x[..., 0], nan=0.0).long())  # (B, T) ids -> (B, T, E), padding id 0
        else:
            x = torch.nan_to_num((x - self.in_mean) / self.in_std, nan=0.0)  # (B, T, C)
        out, h = self.rnn(x, real.sum(dim=1), padding="mask")  # (B, T, D), (B, D)
        if self.readout == "every":
            logits = self.head(out)  # (B, T, O)
            return torch.where(real.unsqueeze(-1), logits, torch.full_like(logits, float("nan")))
        head = read_out(
            self.head, out, h, real.sum(dim=1), readout=self.readout, pooling=self.pooling, horizon=self.horizon
        )  # (B, O)
        out = self.dist(head) * self.out_scale + self.out_shift  # (B, O)
        return out * (1 + (ref_scale - 1) * self.out_scaled) + ref * self.out_located  # (B, O) in data units


def window_moments(target: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """target (B, T) with NaN past each end, real (B, T) -> each window's mean and std (B, 1) over its
    real steps; a std below REVIN_EPS is 1 (a constant window is only centred), as the training windows'."""
    n = real.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1)
    v = torch.where(real, target, torch.zeros_like(target))  # (B, T)
    mean = v.sum(dim=1, keepdim=True) / n  # (B, 1)
    var = (torch.where(real, target - mean, torch.zeros_like(target)) ** 2).sum(dim=1, keepdim=True) / n
    std = var.sqrt()  # (B, 1)
    return mean, torch.where(std > REVIN_EPS, std, torch.ones_like(std))


def build_model(
    cfg: ModelConfig,
    *,
    input_size: int,
    output_size: int,
    input_mean: list[float] | None = None,
    input_std: list[float] | None = None,
    readout: Readout = "last",
    vocab_size: int | None = None,
    padding_idx: int | None = PAD_ID,
    distribution: nn.Module | None = None,
    horizon: int = 1,
) -> SequenceModel:
    return SequenceModel(
        cfg,
        input_size=input_size,
        output_size=output_size,
        input_mean=input_mean,
        input_std=input_std,
        readout=readout,
        vocab_size=vocab_size,
        padding_idx=padding_idx,
        distribution=distribution,
        horizon=horizon,
    )


def model_for(cfg: ModelConfig, info: DataInfo) -> nn.Module:
    """The model for a prepared dataset: its sizes, its training split's input scaler, and one output
    per step for next-step targets (generate); an encoder-decoder for translate; `model.ensemble`
    members averaged (classify)."""
    if info.target == "sequence":
        from pipeline.model.seq2seq import Seq2Seq

        return Seq2Seq(cfg, source_vocab=info.input_size, target_vocab=info.output_size)
    if info.target == "labels":
        from pipeline.model.ctc import Transcriber

        return Transcriber(
            cfg,
            input_size=info.input_size,
            output_size=info.output_size,
            input_mean=info.input_mean,
            input_std=info.input_std,
            readout="every",
        )
    models = [
        build_model(
            cfg,
            input_size=1 if info.embedded else info.input_size,  # token ids: one column of ids
            output_size=info.output_size,
            input_mean=info.input_mean,
            input_std=info.input_std,
            readout=_readout(cfg, info),
            vocab_size=info.input_size if info.embedded else None,
            padding_idx=PAD_ID if info.tokens_in else None,  # generate's ids are all tokens (padding is masked)
            distribution=_distribution(info),
            horizon=info.output_size // _distribution_size(info) if cfg.readout == "steps" else 1,
        )
        for _ in range(cfg.ensemble or 1)  # each member draws its own initial weights
    ]
    if cfg.ensemble is None:
        return models[0]
    from pipeline.model.ensemble import Ensemble

    return Ensemble(models)


def _readout(cfg: ModelConfig, info: DataInfo) -> Readout:
    if info.target in ("tokens", "frames"):
        return "every"
    return "steps" if cfg.readout == "steps" else "last"


def _distribution_size(info: DataInfo) -> int:
    """Outputs per horizon step: a distribution's parameters, or 1 for a point forecast."""
    per_step = getattr(info.task_info, "per_step", 1)
    return per_step if isinstance(per_step, int) else 1


def _distribution(info: DataInfo) -> nn.Module | None:
    """A probabilistic forecast's head (forecast with model.likelihood other than none)."""
    kind = getattr(info.task_info, "likelihood", "none")
    if kind == "none":
        return None
    from pipeline.model.likelihood import DistributionHead, param_names

    return DistributionHead(kind, per_step=len(param_names(kind, info.task_info.quantiles)))
