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
    Locations (a mean, quantiles) take the target's scale and shift; spreads only its scale; shape
    parameters (nu, a negative binomial's alpha) neither."""
    from pipeline.model.likelihood import UNSCALED, param_names

    kind = getattr(own, "likelihood", "none")
    names = param_names(kind, getattr(own, "quantiles", []))
    sd, mu = np.repeat(own.scaler["std"], len(names)), np.repeat(own.scaler["mean"], len(names))
    kinds = np.tile(names, len(own.scaler["std"]))
    located = np.array([n == "mu" or n == "value" or n.startswith("q") for n in kinds])
    scale = np.where(np.isin(kinds, UNSCALED), 1.0, sd)
    return scale, np.where(located, mu, 0.0), located


def output_units(info: DataInfo) -> OutputUnits:
    own = info.task_info
    scale, shift, located = _param_units(own)
    return OutputUnits(
        scale=scale.tolist(),
        shift=shift.tolist(),
        reference=getattr(own, "window_normalize", "none"),
        located=located.tolist(),
        scaled=_scaled(own).tolist(),
    )


def _scaled(own) -> np.ndarray:
    """Per output (H * P): whether it is in the target's units (a location or a spread), so a
    window's scale multiplies it; a shape parameter (student-t's nu) is not."""
    from pipeline.model.likelihood import UNSCALED, param_names

    names = param_names(getattr(own, "likelihood", "none"), getattr(own, "quantiles", []))
    return np.tile([n not in UNSCALED for n in names], len(own.scaler["std"]))


def in_data_units(out: dict[str, np.ndarray], info: DataInfo) -> tuple[np.ndarray, np.ndarray | None]:
    """Standardized (relative) forecasts and targets -> the data's units: (W, H) point forecasts
    (a distribution's mean or median) and values."""
    own: ForecastInfo = info.task_info
    mu, sd = np.asarray(own.scaler["mean"]), np.asarray(own.scaler["std"])
    ref, ref_scale = window_units(out, own)
    y = (out["y"] * sd + mu) * ref_scale + ref if "y" in out else None
    params = distribution_in_data_units(out, info)  # (W, H, P)
    if own.likelihood == "none":
        return params[..., 0], y
    import torch

    from pipeline.model.likelihood import point

    flat = torch.from_numpy(np.ascontiguousarray(params.reshape(len(params), -1)))
    return np.ascontiguousarray(point(own.likelihood, flat, horizon=len(sd), quantiles=own.quantiles).numpy()), y


def _per_window(values) -> np.ndarray:
    """One value per window as (W, 1): the test split gives (W,), a predict batch (W, 1)."""
    values = np.asarray(values)
    return values.reshape(len(values), -1)[:, :1]


def window_units(out: dict[str, np.ndarray], own) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Each window's (shift, scale) as (W, 1) each, that its relative outputs are turned back with:
    last: (its last value, 1); revin: (its mean, std); series: (its series' training mean, std); none: (0, 1)."""
    normalize = getattr(own, "window_normalize", "none")
    if normalize == "none":
        return 0.0, 1.0
    scale = _per_window(out["ref_scale"]) if normalize in ("revin", "series") else 1.0
    return _per_window(out["ref"]), scale


def distribution_in_data_units(out: dict[str, np.ndarray], info: DataInfo) -> np.ndarray:
    """The model's outputs (W, H * P) -> (W, H, P) in the data's units, as the served model gives them."""
    own: ForecastInfo = info.task_info
    scale, shift, located = _param_units(own)
    ref, ref_scale = window_units(out, own)  # (W, 1) each, or scalars
    scaled = np.where(_scaled(own), ref_scale, 1.0)  # (W, H * P)
    values = (out["pred"] * scale + shift) * scaled + ref * located
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
