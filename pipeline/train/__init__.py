"""Training: the driver's run (TorchTrainer), the worker loop, checkpoints, precision, reductions, progress, run state."""
