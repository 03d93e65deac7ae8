"""Serving: a trained model by URI, batch prediction and evaluation, sampling, explanations."""
