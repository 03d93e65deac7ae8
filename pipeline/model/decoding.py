"""Decoding a translation: greedy, and beam search with a length penalty (Wu et al. 2016).

Both run any `Stepper`: start(N) -> state, step(tokens (N,), state) -> (log-probs (N, V), state,
attention (N, S)), select(state, index) -> the state's rows at `index`. `Seq2Seq` is one
(`translate_batch`); the tests use a hand-made table of probabilities.

Beam search keeps the `beam` best partial outputs per source by total log-probability; an output
that emits </s> is finished and ranked by log p / ((5 + length) / 6) ** alpha; a source is done
when it has `beam` finished outputs and none of its live beams could still beat the best of them
(log p only falls, so a live beam's best is its score over the penalty at `max_len`); at `max_len`
its live beams end with </s>.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from pipeline.data.tokenize import BOS_ID, EOS_ID


class Stepper(Protocol):
    def start(self, n: int) -> Any: ...
    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any, Tensor]: ...
    def select(self, state: Any, index: Tensor) -> Any: ...


@dataclass
class Decoded:
    tokens: list[list[int]]  # per source, without <s> and </s>
    attention: list[np.ndarray] = field(default_factory=list)  # per source: (len(tokens) + 1, S) weights
    score: list[float] = field(default_factory=list)  # the ranking score (log p, length-penalized for beams)


def length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


def greedy(stepper: Stepper, *, n: int, max_len: int) -> Decoded:
    """The most likely next token at every step, until </s> or max_len tokens."""
    device = getattr(stepper, "device", torch.device("cpu"))
    state = stepper.start(n)
    tokens = torch.full((n,), BOS_ID, dtype=torch.long, device=device)
    out, weights, logp_sum = [], [], torch.zeros(n, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for _ in range(max_len + 1):  # max_len tokens, then </s> at the latest
        logp, state, attn = stepper.step(tokens, state)  # (n, V), state, (n, S)
        tokens = logp.argmax(dim=-1)  # (n,)
        logp_sum += torch.where(done, 0.0, logp.detach().gather(1, tokens[:, None])[:, 0])
        out.append(tokens)
        weights.append(attn)
        done |= tokens == EOS_ID
        if bool(done.all()):
            break
    steps, attns = torch.stack(out, 1).tolist(), torch.stack(weights, 1).detach().float().cpu().numpy()  # (n, t, S)
    result = Decoded(tokens=[], score=logp_sum.tolist())
    for i, seq in enumerate(steps):
        end = seq.index(EOS_ID) if EOS_ID in seq else min(len(seq), max_len)
        result.tokens.append(seq[:end])
        result.attention.append(attns[i, : end + 1])
    return result


@dataclass
class _Hypothesis:
    score: float
    tokens: list[int]
    attention: np.ndarray


def beam_search(stepper: Stepper, *, n: int, beam: int, max_len: int, alpha: float) -> Decoded:
    """The best output per source by length-penalized log-probability among `beam`-wide searches."""
    if beam == 1:
        return greedy(stepper, n=n, max_len=max_len)
    device = getattr(stepper, "device", torch.device("cpu"))
    rows = torch.arange(n, device=device).repeat_interleave(beam)  # (n*k,) the source of each beam
    state = stepper.select(stepper.start(n), rows)
    scores = torch.full((n, beam), float("-inf"))
    scores[:, 0] = 0.0  # one live beam per source to begin with
    tokens = torch.full((n, beam, 0), BOS_ID, dtype=torch.long)  # (n, k, t) tokens so far
    attn_hist: Tensor | None = None  # (n, k, t, S)
    finished: list[list[_Hypothesis]] = [[] for _ in range(n)]
    done = [False] * n
    best_penalty = length_penalty(max_len, alpha)  # the largest penalty: a live beam's best possible score
    last = torch.full((n * beam,), BOS_ID, dtype=torch.long)
    for t in range(max_len + 1):
        logp, state, attn = stepper.step(last.to(device), state)  # (n*k, V), state, (n*k, S)
        logp, attn = logp.float().cpu(), attn.detach().float().cpu()  # the search's bookkeeping is on the CPU
        vocab = logp.shape[-1]
        attn = attn.view(n, beam, 1, -1)
        attn_hist = attn if attn_hist is None else torch.cat([attn_hist, attn], dim=2)  # (n, k, t+1, S)
        total = (scores.unsqueeze(-1) + logp.view(n, beam, vocab)).view(n, beam * vocab)  # (n, k*V)
        if t == max_len:  # only </s> may follow the longest output
            total = total.view(n, beam, vocab).clone()
            total[..., :EOS_ID] = float("-inf")
            total[..., EOS_ID + 1 :] = float("-inf")
            total = total.view(n, beam * vocab)
        best, index = total.topk(2 * beam, dim=-1)  # (n, 2k): enough for k live beams after some finish
        new_scores = torch.full((n, beam), float("-inf"))
        new_from = torch.zeros((n, beam), dtype=torch.long)
        new_tok = torch.full((n, beam), EOS_ID, dtype=torch.long)
        for i in range(n):
            if done[i]:
                continue  # its beams stay dead (-inf)
            live = 0
            for score, flat in zip(best[i].tolist(), index[i].tolist()):
                if score == float("-inf") or live == beam:
                    break
                origin, token = divmod(flat, vocab)
                if token == EOS_ID:
                    seq = tokens[i, origin].tolist()
                    hist = attn_hist[i, origin].detach().numpy()  # (t+1, S)
                    finished[i].append(_Hypothesis(score / length_penalty(len(seq), alpha), seq, hist))
                    continue
                new_scores[i, live], new_from[i, live], new_tok[i, live] = score, origin, token
                live += 1
            if len(finished[i]) >= beam:
                best_live = float(new_scores[i].max()) / best_penalty
                done[i] = max(h.score for h in finished[i]) >= best_live
                if done[i]:
                    new_scores[i] = float("-inf")
        if all(done) or bool(torch.isinf(new_scores).all()):
            break
        select = (torch.arange(n)[:, None] * beam + new_from).view(-1)  # (n*k,) flat index of each parent beam
        state = stepper.select(state, select.to(device))
        tokens = torch.cat([tokens.view(n * beam, -1)[select].view(n, beam, -1), new_tok.unsqueeze(-1)], dim=-1)
        attn_hist = attn_hist.view(n * beam, *attn_hist.shape[2:])[select].view(n, beam, *attn_hist.shape[2:])
        scores, last = new_scores, new_tok.view(-1)
    result = Decoded(tokens=[])
    for hyps in finished:
        top = max(hyps, key=lambda h: h.score)
        result.tokens.append(top.tokens)
        result.attention.append(top.attention)
        result.score.append(top.score)
    return result


class _Encoded:
    """A `Stepper` over a Seq2Seq model's encoded batch; the state is (decoder state, memory)."""

    def __init__(self, model, x: Tensor, lengths: Tensor):
        self.model, self.device = model, x.device
        self.memory, self.first = model.encode(x, lengths)

    def start(self, n: int):
        return self.first, self.memory

    def step(self, tokens: Tensor, state):
        (h, c), memory = state
        logp, new, attn = self.model.step(tokens, (h, c), memory)
        return logp, (new, memory), attn

    def select(self, state, index: Tensor):
        (h, c), memory = state
        return (h[:, index], c[:, index]), memory.select(index)


@torch.no_grad()
def translate_batch(model, x: Tensor, lengths: Tensor, *, beam: int, max_len: int, alpha: float) -> Decoded:
    """Source ids x (B, S, 1) and lengths (B,) -> each source's best output (target ids)."""
    return beam_search(_Encoded(model.eval(), x, lengths), n=len(x), beam=beam, max_len=max_len, alpha=alpha)


@torch.no_grad()
def greedy_ids(model, x: Tensor, lengths: Tensor, *, max_len: int) -> list[list[int]]:
    """Each source's greedy output (target ids): the cheap decoding of every validation epoch."""
    return greedy(_Encoded(model, x, lengths), n=len(x), max_len=max_len).tokens
