"""Mixed precision for the training step: `train.precision` -> torch.amp autocast (+ GradScaler).

    fp32  no autocast (the default)
    bf16  autocast to bfloat16 (GPUs that support it, and CPUs); no scaler: bf16 has fp32's range
    fp16  autocast to float16 with a GradScaler, so small gradients do not underflow to zero
    auto  bf16 where the device supports it, else fp16

The same code runs on CPU (autocast bf16 there), which is how the tests keep the GPU path honest.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Precision = Literal["fp32", "bf16", "fp16", "auto"]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(requested: Precision, *, device: torch.device) -> Literal["fp32", "bf16", "fp16"]:
    """`auto` picks bf16 on CPU and on GPUs that support it (Ampere and later), else fp16."""
    if requested != "auto":
        return requested
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "fp16"
    return "bf16"


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

    def step(self, loss: torch.Tensor, *, model: nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float | None) -> None:
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
