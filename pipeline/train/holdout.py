"""Predictions of a trained model over a whole split (the driver's test step), and the logged input example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import ray.data
import torch

from pipeline.config import ModelConfig
from pipeline.data.batches import collate_for, iter_batches
from pipeline.data.transforms import PAD
from pipeline.model.sequence_model import model_for
from pipeline.tasks import DataInfo, get_task
from pipeline.train import checkpoint


def load_model(ckpt_dir: str | Path, cfg: ModelConfig, *, info: DataInfo) -> torch.nn.Module:
    model = model_for(cfg, info)
    model.load_state_dict(checkpoint.load(ckpt_dir).model)
    return model.eval()


KEY_COLUMNS = ("series", "time", "pos")  # which step(s) a window's prediction is for (forecast, anomaly)


def key_columns(rows) -> dict[str, np.ndarray]:
    """The key columns of an Arrow batch as numpy: (B,), or (B, H) for per-target-step lists."""
    out = {}
    for name in KEY_COLUMNS:
        if name in rows.column_names:
            col = rows.column(name).combine_chunks()
            if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
                out[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)
            else:
                out[name] = col.to_numpy(zero_copy_only=False)
    return out


def predict_split(model: torch.nn.Module, ds: ray.data.Dataset, *, info: DataInfo) -> dict[str, np.ndarray]:
    """{"pred": (N, O), "y": (N, O) or (N,), evaluation-only and key columns} over a whole split."""
    parts: dict[str, list[np.ndarray]] = {}
    collate = collate_for(info)
    with torch.no_grad():
        for rows in ds.iter_batches(batch_size=1024, batch_format="pyarrow"):
            batch = collate(rows)
            parts.setdefault("pred", []).append(model(batch["x"], batch["lengths"]).numpy())
            for name, value in batch.items():
                if name not in ("x", "lengths"):
                    parts.setdefault(name, []).append(value.numpy())
            for name, values in key_columns(rows).items():
                parts.setdefault(name, []).append(values)
    out = {name: _concat(chunks) for name, chunks in parts.items()}
    for name in ("scale", "ref", "ref_scale"):  # one value per window
        if name in out:
            out[name] = out[name][:, 0]
    return out


def decode_split(model: torch.nn.Module, ds: ray.data.Dataset, *, info: DataInfo, model_cfg: ModelConfig) -> dict:
    """A decoding model's outputs over a whole split (`Task.decode`, e.g. translations by beam search):
    array columns concatenated, per-row lists (ids, attention maps) joined."""
    decode = get_task(info.task).decode
    parts: dict[str, list] = {}
    for rows in ds.iter_batches(batch_size=256, batch_format="pyarrow"):
        for name, values in decode(model, rows, info=info, model_cfg=model_cfg).items():
            parts.setdefault(name, []).append(values)
    return {
        k: np.concatenate(v) if isinstance(v[0], np.ndarray) else [x for p in v for x in p] for k, v in parts.items()
    }


def split_outputs(
    model: torch.nn.Module, ds: ray.data.Dataset, *, info: DataInfo, model_cfg: ModelConfig
) -> dict[str, np.ndarray]:
    """The model's outputs over a split: decoded (translate) or one forward pass per batch."""
    if get_task(info.task).decode is not None:
        return decode_split(model, ds, info=info, model_cfg=model_cfg)
    return predict_split(model, ds, info=info)


def _concat(chunks: list[np.ndarray]) -> np.ndarray:
    """Batches -> one array; per-step outputs (B, T, ...) of different T are padded (NaN, or PAD ids)."""
    if chunks[0].ndim < 2 or len({c.shape[1] for c in chunks}) == 1:
        return np.concatenate(chunks)
    t = max(c.shape[1] for c in chunks)
    fill = PAD if chunks[0].dtype.kind == "i" else np.nan
    return np.concatenate(
        [np.pad(c, [(0, 0), (0, t - c.shape[1])] + [(0, 0)] * (c.ndim - 2), constant_values=fill) for c in chunks]
    )


def served_length(info: DataInfo) -> int:
    """The time length the exported model takes (torch.export fixes it): the longest training input."""
    return info.max_len - 1 if info.target in ("tokens", "frames") else info.max_len


def input_example(ds: ray.data.Dataset, *, info: DataInfo, rows: int = 4) -> np.ndarray:
    """A few sequences as the served model takes them: (rows, T_served, C) float32, NaN after each end."""
    # the split's first batch: `ds.limit(rows)` would plan and run a new Ray Data job (seconds here)
    batch = next(iter(iter_batches(ds, info=info, batch_size=rows)))
    x = batch["x"].numpy()  # (rows, T_batch, C)
    t = served_length(info)
    out = np.full((len(x), t, x.shape[2]), np.nan, np.float32)
    for i, n in enumerate(batch["lengths"].tolist()):
        n = min(n, t)  # a test row longer than any training row (e.g. parity's test strings) is cut
        out[i, :n] = x[i, :n]
    if getattr(info.task_info, "window_normalize", "none") == "series":  # + each series' mean and std
        return with_series_moments(out, batch["ref"].numpy(), batch["ref_scale"].numpy())
    return out


def with_series_moments(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Windows x (W, T, C) and their series' training moments (W,) each -> (W, T, C + 2), the served
    model's input for `data.window.normalize: series`."""
    pair = np.stack([np.reshape(mean, -1), np.reshape(std, -1)], axis=-1)  # (W, 2)
    moments = np.broadcast_to(pair[:, None, :], (*x.shape[:2], 2))  # (W, T, 2)
    return np.concatenate([x, moments.astype(x.dtype)], axis=-1)
