"""The translation model: an encoder (any cell of `pipeline.model.cells`, stacked, bidirectional)
and an LSTM decoder with attention over the encoder's steps (Luong et al. 2015).

    source ids (B, S) -> embed -> encoder -> h_s (B, S, D)               every source step
    target ids (B, T) -> embed -> decoder LSTM -> h_t (B, T, H)          initial state from the encoder's last
    score(h_t, h_s)   -> softmax over real source steps -> a_t (B, T, S)  padding gets -inf: never attended
    c_t = a_t h_s (B, T, D); h~_t = tanh(W_c [c_t; h_t]); logits = W_o h~_t (B, T, V)

Attention reads the decoder's outputs, not its inputs (Luong's global attention without input
feeding): the decoder does not depend on its own attention, so training runs it over the whole
target as one fused `nn.LSTM` call (cuDNN on GPU) and attends for all steps in one batched matmul,
instead of a Python loop of T cell steps. Decoding steps the same LSTM one token at a time.
Scores: `general` h_t W h_s (Luong), or `additive` v tanh(W h_s + U h_t) (Bahdanau's score).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from pipeline.data.tokenize import PAD_ID
from pipeline.model.cells import Recurrent
from pipeline.model.sequence_model import drop_tokens

if TYPE_CHECKING:
    from pipeline.config import ModelConfig


class Attention(nn.Module):
    """Decoder outputs h_t (B, T, H) over encoder outputs h_s (B, S, D) -> weights (B, T, S)."""

    def __init__(self, kind: str, *, query_size: int, key_size: int):
        super().__init__()
        self.kind = kind
        if kind == "general":
            self.w = nn.Linear(key_size, query_size, bias=False)
        else:
            self.w = nn.Linear(key_size, query_size, bias=False)
            self.u = nn.Linear(query_size, query_size, bias=True)
            self.v = nn.Linear(query_size, 1, bias=False)

    def forward(self, h_t: Tensor, keys: Tensor, real: Tensor) -> Tensor:
        """keys: the projected h_s (`project`), (B, S, H); real: (B, S) bool, False at padding."""
        if self.kind == "general":
            scores = h_t @ keys.transpose(1, 2)  # (B, T, H) @ (B, H, S) -> (B, T, S)
        else:
            hidden = torch.tanh(keys.unsqueeze(1) + self.u(h_t).unsqueeze(2))  # (B, T, S, H)
            scores = self.v(hidden).squeeze(-1)  # (B, T, S)
        scores = scores.masked_fill(~real.unsqueeze(1), float("-inf"))  # padding never attended
        return torch.softmax(scores, dim=-1)  # (B, T, S)

    def project(self, h_s: Tensor) -> Tensor:
        return self.w(h_s)  # (B, S, D) -> (B, S, H), once per source


@dataclass
class Memory:
    """What decoding reads of an encoded batch: h_s, its projection, which steps are real."""

    h_s: Tensor  # (B, S, D)
    keys: Tensor  # (B, S, H)
    real: Tensor  # (B, S) bool

    def select(self, index: Tensor) -> Memory:
        return Memory(self.h_s[index], self.keys[index], self.real[index])


class Seq2Seq(nn.Module):
    def __init__(self, cfg: ModelConfig, *, source_vocab: int, target_vocab: int):
        super().__init__()
        emb, hidden = cfg.token_embedding_dim, cfg.decoder_size
        layers = int(cfg.decoding["decoder_layers"])
        self.src_embed = nn.Embedding(source_vocab, emb, padding_idx=PAD_ID)
        self.tgt_embed = nn.Embedding(target_vocab, emb, padding_idx=PAD_ID)
        self.embed_dropout = nn.Dropout(cfg.embedding_dropout)
        self.word_dropout = cfg.word_dropout
        self.encoder = Recurrent(cfg, input_size=emb)
        self.bridge = nn.Linear(self.encoder.output_size, hidden * layers)  # encoder's last -> decoder's h_0
        self.decoder = nn.LSTM(emb, hidden, num_layers=layers, batch_first=True)
        self.attention = Attention(str(cfg.decoding["attention"]), query_size=hidden, key_size=self.encoder.output_size)
        self.combine = nn.Linear(self.encoder.output_size + hidden, hidden)
        self.head = nn.Linear(hidden, target_vocab)
        self.layers, self.hidden = layers, hidden

    def encode(self, x: Tensor, lengths: Tensor) -> tuple[Memory, tuple[Tensor, Tensor]]:
        """Source ids x (B, S, 1) (floats, as every batch's x) -> memory and the decoder's first state."""
        ids = x[..., 0].long()  # (B, S)
        ids = drop_tokens(ids, self.word_dropout, training=self.training)  # word dropout on the source
        h_s, last = self.encoder(self.embed_dropout(self.src_embed(ids)), lengths)  # (B, S, D), (B, D)
        real = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths.to(ids.device)[:, None]  # (B, S)
        h0 = torch.tanh(self.bridge(last)).view(-1, self.layers, self.hidden).transpose(0, 1).contiguous()  # (L, B, H)
        return Memory(h_s, self.attention.project(h_s), real), (h0, torch.zeros_like(h0))

    def attend(self, h_t: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """Decoder outputs h_t (B, T, H) -> logits (B, T, V) and attention weights (B, T, S)."""
        weights = self.attention(h_t, memory.keys, memory.real)  # (B, T, S)
        context = weights @ memory.h_s  # (B, T, S) @ (B, S, D) -> (B, T, D)
        attentional = torch.tanh(self.combine(torch.cat([context, h_t], dim=-1)))  # (B, T, H)
        return self.head(attentional), weights

    def forward(self, x: Tensor, lengths: Tensor, y_in: Tensor) -> Tensor:
        """Teacher forcing: source x (B, S, 1), lengths (B,), decoder input y_in (B, T) = <s> + target
        -> logits (B, T, V) for target + </s>. Steps past a target's end are padding (masked by the loss)."""
        memory, state = self.encode(x, lengths)
        h_t, _ = self.decoder(self.embed_dropout(self.tgt_embed(y_in)), state)  # (B, T, H), one fused call
        return self.attend(h_t, memory)[0]  # (B, T, V)

    def step(self, tokens: Tensor, state: tuple[Tensor, Tensor], memory: Memory):
        """One decoding step: previous tokens (N,) -> log-probabilities (N, V), new state, weights (N, S)."""
        h_t, state = self.decoder(self.tgt_embed(tokens).unsqueeze(1), state)  # (N, 1, H)
        logits, weights = self.attend(h_t, memory)  # (N, 1, V), (N, 1, S)
        return torch.log_softmax(logits[:, 0].float(), dim=-1), state, weights[:, 0]


def seq2seq_for(cfg: ModelConfig, *, source_vocab: int, target_vocab: int) -> Seq2Seq:
    return Seq2Seq(cfg, source_vocab=source_vocab, target_vocab=target_vocab)
