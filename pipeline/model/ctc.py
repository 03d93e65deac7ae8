"""CTC (Graves et al. 2006): a frame-labelling model and its decoders, for `task: transcribe`.

The model reads frames (B, T, C) and gives per-frame logits over the alphabet plus the blank
(id 0), (B, T', V) with T' = ceil(T / model.subsample), and NaN at frames past each sequence's
end: the output lengths travel with the output, so the loss (`torch.nn.functional.ctc_loss`)
and the decoders read them from it.

Decoders, on log-probabilities (T', V) of one sequence:
  greedy       the best label per frame, repeats collapsed, blanks dropped
  prefix beam  Hannun et al. 2014's CTC prefix beam search: the `beam` most likely label prefixes,
               each with its probability of ending in a blank and in a label, summed over all
               alignments; a repeated label needs a blank between its two frames.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pipeline.model.sequence_model import SequenceModel

BLANK = 0


class Transcriber(SequenceModel):
    """x (B, T, C) + lengths (B,) -> logits (B, T', V), NaN past each sequence's (subsampled) end."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64)
        out, _ = self.rnn(self.inputs(x), lengths)  # (B, T', D)
        logits = self.head(out)  # (B, T', V)
        n = self.rnn.output_lengths(lengths).to(logits.device)  # (B,)
        real = torch.arange(logits.shape[1], device=logits.device)[None, :] < n[:, None]  # (B, T')
        return torch.where(real.unsqueeze(-1), logits, torch.full_like(logits, float("nan")))


def output_lengths(logits: torch.Tensor) -> torch.Tensor:
    """(B, T', V) logits, NaN past each end -> (B,) frames per sequence."""
    return (~torch.isnan(logits[..., 0])).sum(dim=1)


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """(B, T', V) logits (NaN-padded) -> log-probabilities (B, T', V), zeros past each end."""
    return torch.log_softmax(torch.nan_to_num(logits, nan=0.0), dim=-1)


def infeasible(label_lengths: torch.Tensor, labels: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """(B,) True where no CTC alignment exists: fewer frames than labels plus the blanks that must
    separate repeated labels."""
    real = labels != BLANK  # (B, L) padding is 0
    repeats = ((labels[:, 1:] == labels[:, :-1]) & real[:, 1:]).sum(dim=1)  # (B,)
    return frames < label_lengths + repeats


def greedy(lp: np.ndarray) -> list[int]:
    """(T', V) log-probabilities of one sequence -> labels: per-frame best, repeats collapsed, blanks dropped."""
    best = lp.argmax(axis=-1)  # (T',)
    keep = np.r_[True, best[1:] != best[:-1]] & (best != BLANK)
    return best[keep].tolist()


def _lse(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), for Python floats."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def _add(beams: dict, prefix: tuple[int, ...], which: int, value: float) -> None:
    entry = beams.setdefault(prefix, [-math.inf, -math.inf])
    entry[which] = _lse(entry[which], value)


def prefix_beam(lp: np.ndarray, *, beam: int, prune: float = -12.0) -> list[int]:
    """(T', V) log-probabilities -> the most likely label sequence by CTC prefix beam search. Labels
    whose log-probability at a frame is below `prune` are not extended there (the best always is)."""
    if beam == 1:
        return greedy(lp)
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, -math.inf]}  # prefix -> [log p blank, log p label]
    for frame in lp.astype(np.float64):
        candidates = [int(c) for c in np.flatnonzero(frame >= min(prune, frame.max())) if c != BLANK]
        p = frame.tolist()
        new: dict[tuple[int, ...], list[float]] = {}
        for prefix, (p_b, p_nb) in beams.items():
            total = _lse(p_b, p_nb)
            _add(new, prefix, 0, total + p[BLANK])  # a blank: the prefix stays
            last = prefix[-1] if prefix else None
            for c in candidates:
                if c == last:
                    _add(new, prefix + (c,), 1, p_b + p[c])  # a repeat needs a blank in between
                    _add(new, prefix, 1, p_nb + p[c])  # or it continues the same label
                else:
                    _add(new, prefix + (c,), 1, total + p[c])
        beams = dict(sorted(new.items(), key=lambda kv: -_lse(*kv[1]))[:beam])
    return list(max(beams.items(), key=lambda kv: _lse(*kv[1]))[0])


def decode_batch(logits: torch.Tensor, *, beam: int) -> tuple[list[list[int]], np.ndarray]:
    """(B, T', V) logits (NaN-padded) -> each sequence's labels and the (B, T', V) posteriors."""
    lp = log_probs(logits).float()  # (B, T', V)
    n = output_lengths(logits).tolist()
    arr = lp.cpu().numpy()
    return [prefix_beam(arr[i, : n[i]], beam=beam) for i in range(len(n))], np.exp(arr)
