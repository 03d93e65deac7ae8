"""Training: the run's lifecycle, the driver's TorchTrainer run, the worker loop, checkpoints, precision, reductions."""
