"""The GPU path on a real GPU (skipped without CUDA; run by benchmarks/gpu_check.sh on a lent one):
cuDNN's LSTM against the CPU's with the same weights, a pinned non-blocking copy, and each
precision's training step (bf16 autocast; fp16 with its GradScaler) computing in its dtype and learning."""

import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.data.batches import to_device
from pipeline.model.sequence_model import build_model
from pipeline.train.precision import mixed_precision

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
GPU = torch.device("cuda", 0) if torch.cuda.is_available() else None


@pytest.mark.parametrize("cell", ["lstm", "gru", "cifg"])
def test_the_gpu_model_matches_the_cpu_model(cell):
    torch.manual_seed(0)
    cpu = build_model(ModelConfig(cell=cell, hidden_size=32, num_layers=2), input_size=3, output_size=2)
    gpu = build_model(ModelConfig(cell=cell, hidden_size=32, num_layers=2), input_size=3, output_size=2).to(GPU)
    gpu.load_state_dict(cpu.state_dict())
    x, lengths = torch.randn(16, 40, 3), torch.randint(1, 41, (16,))  # (B, T, C), ragged
    assert torch.allclose(gpu(x.to(GPU), lengths).cpu(), cpu(x, lengths), atol=1e-4)


def test_a_pinned_batch_reaches_the_gpu_unchanged():
    batch = {"x": torch.randn(8, 5, 2).pin_memory(), "y": torch.randn(8, 1).pin_memory()}
    moved = to_device(batch, GPU)
    torch.cuda.synchronize()
    assert all(v.device.type == "cuda" and torch.equal(v.cpu(), batch[k]) for k, v in moved.items())


@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_each_precision_trains_on_the_gpu_in_its_dtype(name, dtype):
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="lstm", hidden_size=16), input_size=2, output_size=1).to(GPU)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    amp = mixed_precision(name, device=GPU)
    x = torch.randn(32, 12, 2, device=GPU)  # (B, T, C)
    y = x[:, :, 0].sum(dim=1, keepdim=True)  # (B, 1)
    lengths = torch.full((32,), 12)
    losses = []
    for _ in range(40):
        with amp.autocast():
            pred = model(x, lengths)  # (B, 1) in the autocast dtype
            loss = ((pred.float() - y) ** 2).mean()
        amp.step(loss, model=model, optimizer=optimizer, grad_clip=1.0)
        losses.append(float(loss.detach()))
    assert pred.dtype == dtype
    assert losses[-1] < 0.5 * losses[0]
