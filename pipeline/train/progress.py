"""One line per epoch on the driver's console, printed by the Train controller after each report."""

from __future__ import annotations

from typing import Any

import ray.train


class EpochProgress(ray.train.UserCallback):
    def __init__(self, *, name: str, epochs: int):
        self.name = name
        self.epochs = epochs

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        m = metrics[0]  # rank 0's metrics; losses are already all-reduced across workers
        print(
            f"[{self.name}] epoch {int(m['epoch']) + 1}/{self.epochs}  "
            f"train_loss={m['train_loss']:.4f}  val_loss={m['val_loss']:.4f}",
            flush=True,
        )
