"""A study for issue 19: does a language-model objective on the training snippets lift sentiment accuracy?

    .venv/bin/python -m benchmarks.lm_objective [--aux-weight 0.2] [--pretrain-epochs 5] [--seeds 0,1,2]
    .venv/bin/python -m benchmarks.lm_objective [--ema-decay 0.99] [--adversarial-eps 2.0]

The shipped sentiment recipe (conf/experiments/sentiment.yaml: word tokens, 10,000 words, a
bidirectional LSTM(64) over 128-dimensional embeddings with dropout 0.5, mean pooling, AdamW with
weight decay 0.05, one warmup epoch then a cosine schedule over 10 epochs, batches of 64 of similar
length, the best epoch by validation accuracy) in one plain PyTorch process, beside two ways of
letting the model learn from the words themselves before or while it learns the labels:
- an auxiliary loss (Rei 2017, semi-supervised multitask learning): each direction's output at step
  t predicts the next word (the backward direction: the previous one) through one linear layer over
  the `--lm-vocab` most frequent words (the rest are <unk>), weighted by `--aux-weight`;
- language-model pretraining (Dai & Le 2015): `--pretrain-epochs` epochs of that loss alone first.
And two regularizers of the recipe itself, measured the same way:
- an exponential moving average of the weights (`--ema-decay`, updated every step; the averaged
  model is the one validated and tested);
- adversarial training on the embeddings (Miyato et al. 2017): each step also trains on the batch
  with its embedded words moved by `--adversarial-eps` along the loss gradient, normalized per snippet.
Nothing here enters the product: it measured no gain (docs/results.md), so `model` has no such key.
The split is this script's own seeded 80/10/10 (not the pipeline's), so compare rows within one run.
"""

from __future__ import annotations

import argparse
import math
import random
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pipeline.data.sources.sentiment import SentimentOptions, generate
from pipeline.data.tokenize import PAD_ID, UNK_ID, fit_tokenizer, load_tokenizer
from pipeline.tasks.text_baselines import tfidf_logreg

EPOCHS, LR, WEIGHT_DECAY, BATCH, MAX_TOKENS = 10, 0.002, 0.05, 64, 64


def load(cache_dir: str, *, split_seed: int = 123):
    """Token ids of every movie snippet, labels, a seeded 80/10/10 split of their indices, the texts."""
    table = generate(SentimentOptions(domain="movies"), cache_dir=cache_dir)
    texts = table["text"].to_pylist()
    labels = np.array([1 if label == "positive" else 0 for label in table["label"].to_pylist()])
    order = np.random.default_rng(split_seed).permutation(len(texts))
    n_train, n_val = int(0.8 * len(texts)), int(0.1 * len(texts))
    train, val, test = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    info = fit_tokenizer(
        [[texts[i] for i in train]], kind="word", vocab_size=10_000, lowercase=True, max_tokens=MAX_TOKENS
    )
    ids = [e.ids[:MAX_TOKENS] or [UNK_ID] for e in load_tokenizer(info.tokenizer_json).encode_batch(texts)]
    return ids, labels, (train, val, test), info.vocab_size, texts


def batches(rows, *, ids, labels, seed: int | None):
    """(x (B, T) ids, lengths (B,), y (B,)): shuffled batches of similar length (runs of 50 batches
    sorted by length) when seeded, else in order."""
    rows = list(rows)
    if seed is None:
        groups = [rows[k : k + 1024] for k in range(0, len(rows), 1024)]
    else:
        rng = random.Random(seed)
        rng.shuffle(rows)
        groups = []
        for k in range(0, len(rows), BATCH * 50):
            run = sorted(rows[k : k + BATCH * 50], key=lambda i: len(ids[i]))
            groups += [run[j : j + BATCH] for j in range(0, len(run), BATCH)]
        rng.shuffle(groups)
    for group in groups:
        lengths = torch.tensor([len(ids[i]) for i in group])  # (B,)
        x = torch.full((len(group), int(lengths.max())), PAD_ID, dtype=torch.long)  # (B, T)
        for k, i in enumerate(group):
            x[k, : len(ids[i])] = torch.tensor(ids[i])
        yield x, lengths, torch.tensor(labels[group])


class Classifier(nn.Module):
    def __init__(self, vocab: int, *, lm_vocab: int, hidden: int = 64, embedding: int = 128):
        super().__init__()
        self.hidden, self.lm_vocab = hidden, lm_vocab
        self.embed = nn.Embedding(vocab, embedding, padding_idx=PAD_ID)
        self.drop = nn.Dropout(0.5)
        self.rnn = nn.LSTM(embedding, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 2)
        self.lm_head = nn.Linear(hidden, lm_vocab)  # one layer for both directions' word predictions

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, *, shift: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        embedded = self.embed(x)  # (B, T, E)
        e = self.drop(embedded if shift is None else embedded + shift)  # shift: adversarial_loss's
        packed = pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
        out = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])[0]  # (B, T, 2H)
        real = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)  # (B, T, 1)
        pooled = (out * real).sum(dim=1) / lengths[:, None]  # (B, 2H)
        return self.head(pooled), out, embedded  # (B, 2) logits, (B, T, 2H) outputs, (B, T, E)

    def lm_loss(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Forward outputs at t predict word t+1, backward outputs at t word t-1; padding is ignored."""
        common = x.masked_fill(x >= self.lm_vocab, UNK_ID)  # (B, T) rare words -> <unk>
        ahead = self.lm_head(out[:, :-1, : self.hidden])  # (B, T-1, K)
        behind = self.lm_head(out[:, 1:, self.hidden :])  # (B, T-1, K)
        ce = nn.functional.cross_entropy
        return (
            ce(ahead.transpose(1, 2), common[:, 1:], ignore_index=PAD_ID)
            + ce(behind.transpose(1, 2), common[:, :-1], ignore_index=PAD_ID)
        ) / 2


def accuracy(model: Classifier, rows, *, ids, labels) -> float:
    model.eval()
    with torch.no_grad():
        right = sum(
            (model(x, n)[0].argmax(1) == y).sum().item() for x, n, y in batches(rows, ids=ids, labels=labels, seed=None)
        )
    return right / len(rows)


def adversarial_loss(
    model: Classifier, batch: tuple[torch.Tensor, ...], *, loss: torch.Tensor, embedded: torch.Tensor, eps: float
) -> torch.Tensor:
    """The loss on the batch (x, n, y) with each snippet's embedded words moved by eps along the gradient
    of its `loss` with respect to them (L2 over the snippet)."""
    x, n, y = batch
    g = torch.autograd.grad(loss, embedded, retain_graph=True)[0].detach()  # (B, T, E)
    shift = eps * g / (g.flatten(1).norm(dim=1)[:, None, None] + 1e-12)
    return nn.functional.cross_entropy(model(x, n, shift=shift)[0], y)


def run(
    data,
    *,
    seed: int,
    aux_weight: float,
    pretrain_epochs: int,
    lm_vocab: int,
    ema_decay: float = 0.0,
    adversarial_eps: float = 0.0,
) -> tuple[float, float]:
    """(val, test) accuracy at the best epoch by validation accuracy."""
    ids, labels, (train, val, test), vocab, _ = data
    torch.manual_seed(seed)
    model = Classifier(vocab, lm_vocab=lm_vocab)
    matrices = [p for p in model.parameters() if p.dim() > 1]
    others = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": matrices, "weight_decay": WEIGHT_DECAY}, {"params": others}], lr=LR)
    for epoch in range(pretrain_epochs):  # the words alone, at the peak rate
        model.train()
        for x, n, _ in batches(train, ids=ids, labels=labels, seed=seed * 1000 + 500 + epoch):
            loss = model.lm_loss(model(x, n)[1], x)
            opt.zero_grad()
            loss.backward()
            opt.step()
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay)) if ema_decay else None
    best = (-1.0, 0.0)
    for epoch in range(EPOCHS):
        progress = (epoch - 1) / (EPOCHS - 1)
        lr = LR if epoch == 0 else LR * 0.5 * (1 + math.cos(math.pi * progress))  # warmup epoch, then cosine
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        for x, n, y in batches(train, ids=ids, labels=labels, seed=seed * 1000 + epoch):
            logits, out, embedded = model(x, n)
            loss = nn.functional.cross_entropy(logits, y)
            if adversarial_eps:
                loss = loss + adversarial_loss(model, (x, n, y), loss=loss, embedded=embedded, eps=adversarial_eps)
            if aux_weight:
                loss = loss + aux_weight * model.lm_loss(out, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
        judged = ema.module if ema is not None else model
        scores = (accuracy(judged, val, ids=ids, labels=labels), accuracy(judged, test, ids=ids, labels=labels))
        best = max(best, scores, key=lambda s: s[0])
    return best


def tfidf_accuracy(data) -> float:
    """The pipeline's TF-IDF + logistic regression baseline on this split (fitted on its training rows)."""
    _, labels, (train, _, test), _, texts = data
    model = tfidf_logreg([texts[i] for i in train], labels[train])
    return float((model.predict([texts[i] for i in test]) == labels[test]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aux-weight", type=float, default=0.0)
    parser.add_argument("--pretrain-epochs", type=int, default=0)
    parser.add_argument("--lm-vocab", type=int, default=1000, help="words the language model predicts")
    parser.add_argument("--ema-decay", type=float, default=0.0, help="average the weights (0: off)")
    parser.add_argument("--adversarial-eps", type=float, default=0.0, help="adversarial embeddings' radius (0: off)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--cache-dir", default="data", help="data.cache_dir: where the sdist is fetched once")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core, as one Ray worker of the pipeline
    data = load(args.cache_dir)
    print(f"tfidf_logreg test={tfidf_accuracy(data):.3f} (the same split)", flush=True)
    for seed in (int(s) for s in args.seeds.split(",") if s):
        start = time.perf_counter()
        val, test = run(
            data,
            seed=seed,
            aux_weight=args.aux_weight,
            pretrain_epochs=args.pretrain_epochs,
            lm_vocab=args.lm_vocab,
            ema_decay=args.ema_decay,
            adversarial_eps=args.adversarial_eps,
        )
        print(
            f"aux_weight={args.aux_weight} pretrain_epochs={args.pretrain_epochs} ema_decay={args.ema_decay} "
            f"adversarial_eps={args.adversarial_eps} seed={seed} "
            f"val={val:.3f} test={test:.3f} {time.perf_counter() - start:.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
