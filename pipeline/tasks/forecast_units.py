"""A forecast model's outputs in the data's units: the standardized (and, for relative windows,
last-value-relative) outputs, per horizon step a point or a distribution's parameters, turned back
into levels the way the served model does it (`OutputUnits`), and the intervals they imply."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.tasks import DataInfo, OutputUnits

if TYPE_CHECKING:
    from pipeline.tasks.forecast import ForecastInfo


def _param_units(own) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output (H * P): scale, shift and whether it is a location (gets the window's reference).
    Locations (a mean, quantiles) take the target's scale and shift; spreads only its scale; nu neither."""
    from pipeline.model.likelihood import param_names

    kind = getattr(own, "likelihood", "none")
    names = param_names(kind, getattr(own, "quantiles", []))
    sd, mu = np.repeat(own.scaler["std"], len(names)), np.repeat(own.scaler["mean"], len(names))
    kinds = np.tile(names, len(own.scaler["std"]))
    located = np.array([n == "mu" or n == "value" or n.startswith("q") for n in kinds])
    scale = np.where(kinds == "nu", 1.0, sd)
    return scale, np.where(located, mu, 0.0), located


def output_units(info: DataInfo) -> OutputUnits:
    own = info.task_info
    scale, shift, located = _param_units(own)
    return OutputUnits(
        scale=scale.tolist(),
        shift=shift.tolist(),
        reference=getattr(own, "window_normalize", "none"),
        located=located.tolist(),
    )


def in_data_units(out: dict[str, np.ndarray], info: DataInfo) -> tuple[np.ndarray, np.ndarray | None]:
    """Standardized (relative) forecasts and targets -> the data's units: (W, H) point forecasts
    (a distribution's mean or median) and values."""
    own: ForecastInfo = info.task_info
    mu, sd = np.asarray(own.scaler["mean"]), np.asarray(own.scaler["std"])
    ref = _reference(out) if own.window_normalize == "last" else 0.0
    y = out["y"] * sd + mu + ref if "y" in out else None
    params = distribution_in_data_units(out, info)  # (W, H, P)
    if own.likelihood == "none":
        return params[..., 0], y
    import torch

    from pipeline.model.likelihood import point

    flat = torch.from_numpy(np.ascontiguousarray(params.reshape(len(params), -1)))
    return np.ascontiguousarray(point(own.likelihood, flat, horizon=len(sd), quantiles=own.quantiles).numpy()), y


def _reference(out: dict[str, np.ndarray]) -> np.ndarray:
    """Each window's last value as (W, 1): the test split gives it as (W,), a predict batch as (W, 1)."""
    ref = np.asarray(out["ref"])
    return ref.reshape(len(ref), -1)[:, :1]


def distribution_in_data_units(out: dict[str, np.ndarray], info: DataInfo) -> np.ndarray:
    """The model's outputs (W, H * P) -> (W, H, P) in the data's units, as the served model gives them."""
    own: ForecastInfo = info.task_info
    scale, shift, located = _param_units(own)
    ref = _reference(out) if own.window_normalize == "last" else 0.0
    values = out["pred"] * scale + shift + ref * located
    return values.reshape(len(values), len(own.scaler["std"]), -1)


def model_intervals(out: dict[str, np.ndarray], info: DataInfo, pred: np.ndarray):
    """The model's (W, H, L) quantiles in data units and their levels: a distribution's, or the
    conformal intervals' ends; (None, ()) for a point model without intervals."""
    from pipeline.tasks.probabilistic import INTERVAL_LEVELS, LEVELS, conformal_quantiles, quantiles_of

    own = info.task_info
    if own.likelihood == "quantile":
        return distribution_in_data_units(out, info), tuple(own.quantiles)
    if own.likelihood != "none":
        return quantiles_of(own.likelihood, distribution_in_data_units(out, info), LEVELS), LEVELS
    if own.conformal is not None:
        return conformal_quantiles(pred, own.conformal), INTERVAL_LEVELS
    return None, ()
