"""Predictions of a trained model over a whole split (the driver's test step), and the logged input example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import ray.data
import torch

from pipeline import checkpoint
from pipeline.batches import iter_batches
from pipeline.config import ModelConfig
from pipeline.model import SequenceModel, model_for
from pipeline.tasks import DataInfo


def load_model(ckpt_dir: str | Path, cfg: ModelConfig, *, info: DataInfo) -> SequenceModel:
    model = model_for(cfg, info)
    model.load_state_dict(checkpoint.load(ckpt_dir).model)
    return model.eval()


def predict_split(model: torch.nn.Module, ds: ray.data.Dataset, *, info: DataInfo) -> dict[str, np.ndarray]:
    """{"pred": (N, O), "y": (N, O) or (N,), and any evaluation-only columns} over a whole split."""
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for batch in iter_batches(ds, target=info.target, batch_size=1024):
            parts.setdefault("pred", []).append(model(batch["x"], batch["lengths"]).numpy())
            for name, value in batch.items():
                if name not in ("x", "lengths"):
                    parts.setdefault(name, []).append(value.numpy())
    out = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    if "scale" in out:
        out["scale"] = out["scale"][:, 0]
    return out


def input_example(ds: ray.data.Dataset, *, info: DataInfo, rows: int = 4) -> np.ndarray:
    """A few sequences as the served model takes them: (rows, T_max, C) float32, NaN after each end."""
    batch = next(iter(iter_batches(ds.limit(rows), target=info.target, batch_size=rows)))
    x = batch["x"].numpy().copy()                                     # (rows, T_max, C)
    for i, n in enumerate(batch["lengths"].tolist()):
        x[i, n:] = np.nan
    return x
