"""Look inside a trained LSTM: gate activations, cell and hidden states, and gradient flow through
time, on a probe batch. `trace` recomputes the recurrence step by step from the weights (fused
cells included); `stats` turns it into one long table per layer, direction, quantity and step."""

from pipeline.telemetry.stats import column, probe, summarize
from pipeline.telemetry.trace import LayerTrace, ModelTrace, trace_model

__all__ = ["LayerTrace", "ModelTrace", "column", "probe", "summarize", "trace_model"]
