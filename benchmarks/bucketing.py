"""B10: batches of similar length (`train.batching: by_length`) against shuffled batches, on the
built-in sentiment set's word tokens: the same model, rows and epochs, only the batches differ.

Both sides go through the worker's own `TrainBatches` (the cached path, fed by a stand-in for Ray's
DataIterator) and the same training step, alternated epoch by epoch (A B A B ...), in one process
with one thread, so drift in the machine hits both. Reported: sequences/s per side, and the share
of padded token slots each batching leaves.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa


class _Split:
    """What TrainBatches reads from a worker's DataIterator: the split's rows as Arrow."""

    def __init__(self, table: pa.Table):
        self.table = table

    def iter_batches(self, *, batch_size, batch_format, prefetch_batches):
        for start in range(0, self.table.num_rows, batch_size):
            yield self.table.slice(start, batch_size)


def sentiment_tokens(cache_dir: str) -> tuple[pa.Table, int]:
    """The movie snippets as word ids (vocabulary 10,000, up to 64 tokens) and labels 0/1."""
    import pyarrow.parquet as pq

    from pipeline.data.sources import materialize
    from pipeline.data.tokenize import fit_tokenizer, tokenize_batch

    raw = pq.read_table(materialize("sentiment", {"domain": "movies"}, cache_dir=cache_dir))
    texts = raw.column("text").to_pylist()
    info = fit_tokenizer([texts], kind="word", vocab_size=10_000, lowercase=True, max_tokens=64)
    rows = tokenize_batch(pa.table({"x": texts}), column="x", info=info)
    y = (np.asarray(raw.column("label").to_pylist()) == "positive").astype(np.int64)
    return pa.table({"x": rows.column("x"), "y": y}), info.vocab_size


def compare(cache_dir: str, *, epochs_per_side: int = 3, batch_size: int = 32) -> dict[str, list[float]]:
    import torch

    from pipeline.config import ModelConfig
    from pipeline.data.batches import TrainBatches
    from pipeline.model.sequence_model import build_model
    from pipeline.tasks import DataInfo

    torch.set_num_threads(1)
    table, vocab = sentiment_tokens(cache_dir)
    info = DataInfo(
        task="classify", input_size=vocab, output_size=2, target="class", max_len=64, num_rows={"train": table.num_rows}
    )
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=64, bidirectional=True, embedding_dim=128)
    model = build_model(cfg, input_size=1, output_size=2, vocab_size=vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sides = {
        b: TrainBatches(
            _Split(table), info=info, batch_size=batch_size, seed=0, rank=0, world=1, budget_mb=1024, batching=b
        )
        for b in ("shuffled", "by_length")
    }
    out: dict[str, list[float]] = {f"{b}_{k}": [] for b in sides for k in ("seq_per_s", "padding")}
    for epoch in range(1 + epochs_per_side):  # epoch 0: warm-up (and the cache fill), dropped
        for name, batches in sides.items():
            seen, slots, real = 0, 0, 0
            start = time.perf_counter()
            for batch in batches.epoch(epoch):
                loss = torch.nn.functional.cross_entropy(model(batch["x"], batch["lengths"]), batch["y"])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                seen += len(batch["y"])
                slots += batch["x"].shape[0] * batch["x"].shape[1]
                real += int(batch["lengths"].sum())
            if epoch:
                out[f"{name}_seq_per_s"].append(seen / (time.perf_counter() - start))
                out[f"{name}_padding"].append(1 - real / slots)
    return out
