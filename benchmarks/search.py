"""B5 (Tune's fixed cost per trial) and B6: ASHA vs FIFO on the same 8-trial grid.

Both sweeps run the same 8 configurations (a grid: 4 hidden sizes x 2 learning rates, adding
problem, 12 epochs, 1 worker per trial, 2 trials at a time). Trial-epochs are counted from the
epochs each trial logged to MLflow; the best validation loss is the sweep's best over all trials.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipeline import config
from pipeline.track import SweepRun
from pipeline.tune.sweep import run_sweep

EPOCHS = 12


@dataclass(frozen=True)
class SweepCost:
    scheduler: str
    wall_s: float
    trials: int
    trial_epochs: int
    best_val_loss: float
    trial_wall_s: list[float]  # each trial's MLflow run, start to end
    trial_train_s: list[float]  # time inside its training loops (train_epoch_s summed)


def sweep_config(
    *, scheduler: str, workdir: str, epochs: int = EPOCHS, space: dict | None = None, samples: int = 1
) -> config.Config:
    return config.validate(
        {
            "data": {
                "source": "adding",
                "options": {"seq_len": 30, "num_sequences": 2000},
                "cache_dir": f"{workdir}/data",
            },
            "model": {"cell": "lstm"},
            "train": {"epochs": epochs, "batch_size": 32, "lr": 0.01, "storage_path": f"{workdir}/runs"},
            "tune": {
                "num_samples": samples,
                "search": "grid",
                "scheduler": scheduler,
                "trial_workers": 1,
                **({"grace_period": 1, "reduction_factor": 3} if scheduler == "asha" else {}),
                "space": space
                or {"model.hidden_size": {"choice": [8, 16, 32, 64]}, "train.lr": {"choice": [0.003, 0.03]}},
            },
            "tracking": {"uri": f"sqlite:///{workdir}/mlflow.db", "experiment": f"bench-{scheduler}"},
        }
    )


def run(cfg: config.Config) -> SweepCost:
    start = time.perf_counter()
    summary = run_sweep(cfg, name=f"bench-{cfg.tune.scheduler}-{time.time_ns()}")
    wall = time.perf_counter() - start
    uri = summary.tracking_uri
    epochs, best, walls, trains = 0, float("inf"), [], []
    parent = SweepRun(uri, summary.run_id)
    for child in parent.children():
        history = [e for e in parent.child(child.info.run_id).epoch_history() if "train_loss" in e]
        epochs += len(history)
        best = min([best] + [e["val_loss"] for e in history])
        walls.append((child.info.end_time - child.info.start_time) / 1000)
        trains.append(sum(e.get("train_epoch_s", 0.0) for e in history))
    return SweepCost(
        scheduler=cfg.tune.scheduler,
        wall_s=wall,
        trials=len(walls),
        trial_epochs=epochs,
        best_val_loss=best,
        trial_wall_s=walls,
        trial_train_s=trains,
    )
