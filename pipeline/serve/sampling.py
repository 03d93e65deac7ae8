"""Sampling new sequences from a generate model, one step at a time with the recurrent state.

tokens: softmax over the vocabulary at `temperature`, restricted to the `top_k` likeliest tokens.
frames: one Bernoulli per unit at `temperature`; with `top_k`, only the k likeliest units may sound.
Without a prime, the first step is drawn from the training split's first-step rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.data.sources import chorales
from pipeline.errors import ConfigError
from pipeline.model.sequence_model import SequenceModel
from pipeline.serve import loading as trained_mod
from pipeline.tasks import DataInfo


def sample(
    model: SequenceModel,
    info: DataInfo,
    *,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    prime: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """-> tokens (P + length,) int64 ids, or frames (P + length, K) float32; P = prime length (or 1)."""
    gen = torch.Generator().manual_seed(seed)
    width = info.input_size
    steps = list(prime) if prime is not None and len(prime) else [_first(info, gen)]
    state = None
    with torch.no_grad():
        for t in range(len(steps) + length - 1):
            logits, state = model.step(_as_input(steps[t], info=info), state)  # (1, O)
            if t + 1 >= len(steps):
                steps.append(_draw(logits[0] / temperature, info=info, top_k=top_k, gen=gen))
    out = np.asarray(steps)
    return out.astype(np.int64) if info.target == "tokens" else out.reshape(-1, width).astype(np.float32)


def _as_input(step, *, info: DataInfo) -> torch.Tensor:
    if info.target == "tokens":
        return torch.tensor([[float(step)]])  # (1, 1) the token's id, embedded by the model
    return torch.as_tensor(np.asarray(step, np.float32)).view(1, -1)  # (1, K)


def _draw(logits: torch.Tensor, *, info: DataInfo, top_k: int | None, gen: torch.Generator):
    if top_k is not None and top_k < len(logits):
        cut = torch.topk(logits, top_k).values[-1]
        logits = torch.where(logits >= cut, logits, torch.full_like(logits, float("-inf")))
    if info.target == "tokens":
        return int(torch.multinomial(torch.softmax(logits, dim=0), 1, generator=gen))
    return torch.bernoulli(torch.sigmoid(logits), generator=gen).numpy()  # (K,) 0/1


def _first(info: DataInfo, gen: torch.Generator):
    rates = torch.tensor(info.task_info.first_step, dtype=torch.float64)
    if info.target == "tokens":
        return int(torch.multinomial(rates, 1, generator=gen))
    return torch.bernoulli(rates, generator=gen).float().numpy()


def encode_prime(text: str, info: DataInfo) -> np.ndarray:
    """--prime for a token model: characters, or space-separated integers -> ids."""
    tokens = list(text) if info.task_info.token_kind == "char" else text.split()
    index = {tok: i for i, tok in enumerate(info.task_info.vocab)}
    unknown = sorted({tok for tok in tokens if tok not in index})
    if unknown:
        raise ConfigError(
            f"--prime has token(s) {unknown[:5]} outside the model's vocabulary of {len(index)}; remove them"
        )
    return np.array([index[tok] for tok in tokens], np.int64)


def write_sample(steps: np.ndarray, info: DataInfo, *, out: Path, steps_per_quarter: int = 1) -> None:
    """Tokens -> text (.txt); 88-key frames -> MIDI (.mid); anything -> Parquet (.parquet, column x)."""
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        rows = steps.tolist() if steps.ndim == 2 else [int(s) for s in steps]
        pq.write_table(pa.table({"x": [rows]}), out)
    elif suffix == ".txt" and info.target == "tokens":
        tokens = [info.task_info.vocab[i] for i in steps]
        out.write_text("".join(tokens) if info.task_info.token_kind == "char" else " ".join(tokens) + "\n")
    elif suffix in (".mid", ".midi") and info.target == "frames" and steps.shape[1] == chorales.KEYS:
        chorales.write_midi(steps, out, steps_per_quarter=steps_per_quarter)
    else:
        kinds = (
            ".txt or .parquet"
            if info.target == "tokens"
            else (".mid or .parquet" if steps.shape[1] == chorales.KEYS else ".parquet")
        )
        raise ConfigError(f"--out {out}: a {info.target} model writes {kinds}; change the file extension")


@dataclass(frozen=True)
class GenerateOptions:
    length: int
    temperature: float = 1.0
    top_k: int | None = None
    prime: str | None = None
    seed: int = 0


def run_generate(model_uri: str, opts: GenerateOptions, *, out: Path, tracking_uri: str) -> Path:
    trained = trained_mod.load(model_uri, tracking_uri=tracking_uri)
    info = trained.info
    if info.task != "generate":
        raise ConfigError(
            f"--model {model_uri} is a {info.task} model; generate needs a model trained with task: generate"
        )
    prime = None
    if opts.prime:
        if info.target != "tokens":
            raise ConfigError(
                "--prime is for token models (text); a frames model starts from the training data's first frames"
            )
        prime = encode_prime(opts.prime, info)
    steps = sample(
        trained.model,
        info,
        length=opts.length,
        temperature=opts.temperature,
        top_k=opts.top_k,
        prime=prime,
        seed=opts.seed,
    )
    per_quarter = trained.config.data.options.get("steps_per_quarter", 1)
    write_sample(steps, info, out=out, steps_per_quarter=per_quarter)
    return out
