"""Mixed precision for the training step: `train.precision` -> torch.amp autocast (+ GradScaler).

    fp32  no autocast (the default)
    bf16  autocast to bfloat16 (GPUs that support it, and CPUs with bf16 kernels); no scaler: bf16 has fp32's range
    fp16  autocast to float16 with a GradScaler, so small gradients do not underflow to zero
    auto  bf16 where the device supports it; else fp16 on a GPU, fp32 on a CPU

The same code runs on CPU (autocast bf16 there), which is how the tests keep the GPU path honest.
Support is checked on the worker, where the model runs: a CPU without bf16 kernels (oneDNN needs
AVX-512 BF16 or AMX for its LSTM) refuses `bf16` with one sentence instead of failing in oneDNN.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from pipeline.errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16", "auto"]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_supports_bf16() -> bool:
    """Whether this CPU has the bf16 kernels torch's CPU LSTM needs under autocast (oneDNN)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve(requested: Precision, *, device: torch.device) -> Literal["fp32", "bf16", "fp16"]:
    """`auto` picks bf16 where the device supports it (Ampere and later GPUs, CPUs with bf16 kernels),
    else fp16 on a GPU and fp32 on a CPU. An explicit bf16 on a CPU without bf16 kernels is refused."""
    if device.type == "cuda":
        if requested == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return requested
    if requested == "auto":
        return "bf16" if cpu_supports_bf16() else "fp32"
    if requested == "bf16" and not cpu_supports_bf16():
        raise ConfigError(
            f"train.precision=bf16 needs bf16 kernels (AVX-512 BF16 or AMX), which this worker's CPU "
            f"({platform.processor() or platform.machine()}) lacks; use train.precision: fp32 or auto"
        )
    return requested


@dataclass
class MixedPrecision:
    """Autocast for the forward pass and loss; a scaled backward and step for fp16."""

    precision: Literal["fp32", "bf16", "fp16"]
    device_type: str
    scaler: torch.amp.GradScaler | None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=DTYPES[self.precision])

    def step(
        self, loss: torch.Tensor, *, model: nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float | None
    ) -> None:
        """backward -> (unscale) -> clip -> optimizer step; fp16 skips steps whose gradients overflowed."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        if grad_clip is not None:
            self.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()


def mixed_precision(requested: Precision, *, device: torch.device) -> MixedPrecision:
    precision = resolve(requested, device=device)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return MixedPrecision(precision=precision, device_type=device.type, scaler=scaler)
