"""Evaluate a checkpoint on a dataset split (the driver's test step), against the predict-the-mean baseline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray.data
import torch

from pipeline import checkpoint
from pipeline.config import ModelConfig
from pipeline.model import build_model


@dataclass(frozen=True)
class Evaluation:
    mse: float
    baseline_mse: float  # predicting the training mean for every sequence
    num_sequences: int


def load_model(ckpt_dir: str | Path, cfg: ModelConfig, *, input_size: int, output_size: int) -> torch.nn.Module:
    model = build_model(cfg, input_size=input_size, output_size=output_size)
    model.load_state_dict(checkpoint.load(ckpt_dir).model)
    return model.eval()


def evaluate(model: torch.nn.Module, ds: ray.data.Dataset, *, target_mean: float) -> Evaluation:
    sq_err, base_err, n = 0.0, 0.0, 0
    with torch.no_grad():
        for batch in ds.iter_torch_batches(batch_size=1024, dtypes=torch.float32):
            x, y = batch["x"], batch["y"]    # (B, T, C), (B, O)
            pred = model(x)                  # (B, O)
            sq_err += float(((pred - y) ** 2).sum())
            base_err += float(((y - target_mean) ** 2).sum())
            n += y.numel()
    return Evaluation(mse=sq_err / max(n, 1), baseline_mse=base_err / max(n, 1), num_sequences=n)


def input_example(ds: ray.data.Dataset, *, rows: int = 4) -> np.ndarray:
    return ds.take_batch(rows, batch_format="numpy")["x"].astype(np.float32)
