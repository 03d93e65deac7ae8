"""Tuning: a Ray Tune sweep whose trials are TorchTrainer runs, and its report."""
