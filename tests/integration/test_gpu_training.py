"""One training run on 1 GPU through Ray Train (NCCL backend, cuDNN, pinned prefetch), in fp32 and
bf16 (skipped without CUDA; run by benchmarks/gpu_check.sh on a lent GPU)."""

import numpy as np
import pytest
import torch
from helpers import train_and_serve

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_on_one_gpu_learns_and_serves(ray_session, tiny_raw, precision):
    raw = {**tiny_raw, "train": {**tiny_raw["train"], "workers": 1, "use_gpu": True, "precision": precision}}
    trained = train_and_serve(raw, name=f"gpu-{precision}")
    metrics = trained.summary.metrics
    assert metrics["test_mse"] < metrics["baseline_test_mse"]
    pred = np.asarray(trained.served.predict(np.random.rand(4, 8, 2).astype("float32")))  # (B, T, C) -> (B, 1)
    assert pred.shape == (4, 1) and np.isfinite(pred).all()
