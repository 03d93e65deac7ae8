"""train.precision: the GPU's mixed-precision path, run on CPU (autocast bf16, and fp16 with a scaler)."""

import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.errors import ConfigError
from pipeline.model.sequence_model import build_model
from pipeline.train import precision
from pipeline.train.precision import MixedPrecision, cpu_supports_bf16, mixed_precision, resolve

CPU = torch.device("cpu")
needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no bf16 kernels (AVX-512 BF16/AMX)")


def test_auto_picks_bf16_on_a_cpu_with_bf16_kernels_and_explicit_choices_stay(monkeypatch):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert resolve("auto", device=CPU) == "bf16"
    assert [resolve(p, device=CPU) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]


def test_a_cpu_without_bf16_kernels_refuses_bf16_and_auto_picks_fp32(monkeypatch):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    assert resolve("auto", device=CPU) == "fp32"
    with pytest.raises(
        ConfigError, match=r"train.precision=bf16 needs bf16 kernels .* use train.precision: fp32 or auto"
    ):
        mixed_precision("bf16", device=CPU)


def test_auto_falls_back_to_fp16_on_a_gpu_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve("auto", device=torch.device("cuda", 0)) == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve("auto", device=torch.device("cuda", 0)) == "bf16"


def _train(amp: MixedPrecision, steps: int = 30) -> tuple[list[float], torch.dtype]:
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="lstm", hidden_size=16), input_size=2, output_size=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    x = torch.randn(32, 12, 2)  # (B, T, C)
    y = x[:, :, 0].sum(dim=1, keepdim=True)  # (B, 1)
    lengths = torch.full((32,), 12)
    losses = []
    for _ in range(steps):
        with amp.autocast():
            pred = model(x, lengths)  # (B, 1), in the autocast dtype
            loss = ((pred.float() - y) ** 2).mean()
        amp.step(loss, model=model, optimizer=optimizer, grad_clip=1.0)
        losses.append(float(loss.detach()))
    return losses, pred.dtype


@pytest.mark.parametrize(
    "name, dtype", [("fp32", torch.float32), pytest.param("bf16", torch.bfloat16, marks=needs_bf16)]
)
def test_each_precision_computes_in_its_dtype_and_learns(name, dtype):
    losses, out_dtype = _train(mixed_precision(name, device=CPU))
    assert out_dtype == dtype  # autocast really ran the head in that dtype
    assert losses[-1] < 0.5 * losses[0]


def test_the_scaled_step_fp16_uses_learns():
    """fp16's step (scale, backward, unscale, clip, step, update), driven on CPU under bf16 autocast
    (fp32 where the CPU has no bf16 kernels) because CPU LSTM kernels have no float16: the code a GPU
    runs, minus the dtype."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    dtype = "bf16" if cpu_supports_bf16() else "fp32"
    losses, _ = _train(MixedPrecision(precision=dtype, device_type="cpu", scaler=scaler))
    assert losses[-1] < 0.5 * losses[0]
    assert scaler.get_scale() >= 2.0**10  # no overflow made it back off


def test_fp16_without_a_gpu_is_a_config_error():
    from pipeline import config

    with pytest.raises(config.ConfigError, match=r"train.precision=fp16 needs train.use_gpu=true.*use bf16"):
        config.validate({"data": {"source": "adding"}, "train": {"precision": "fp16"}})
    assert (
        config.validate({"data": {"source": "adding"}, "train": {"precision": "fp16", "use_gpu": True}}).train.precision
        == "fp16"
    )


def test_fp16_uses_a_grad_scaler_and_bf16_does_not(monkeypatch):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert mixed_precision("fp16", device=CPU).scaler is not None
    assert mixed_precision("bf16", device=CPU).scaler is None
    assert mixed_precision("fp32", device=CPU).scaler is None
