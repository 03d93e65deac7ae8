"""Scores of probabilistic forecasts, in the data's units (numpy; no Ray, no torch):

  CRPS       exact for Gaussian and Student-t forecasts (Gneiting & Raftery 2007; Jordan et al.
             2019), from quantiles otherwise: twice the mean pinball loss over the levels
  pinball    mean quantile loss over LEVELS
  intervals  coverage and mean width of the central 80% and 95% intervals

The seasonal-naive baseline becomes probabilistic with empirical quantiles of its residuals on the
validation period, per horizon step, so its coverage is compared fairly with the model's.
"""

from __future__ import annotations

import numpy as np

LEVELS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975)
INTERVALS = {"80": (0.1, 0.9), "95": (0.025, 0.975)}


def crps_gaussian(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    z = (y - mu) / sigma
    return sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


def crps_student_t(mu: np.ndarray, sigma: np.ndarray, nu: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Closed form for nu > 1 (Jordan, Krüger & Lerch 2019, scoringRules' crps_t)."""
    from scipy.special import beta
    from scipy.stats import t

    z = (y - mu) / sigma
    spread = 2 * np.sqrt(nu) * beta(0.5, nu - 0.5) / ((nu - 1) * beta(0.5, nu / 2) ** 2)
    return sigma * (z * (2 * t.cdf(z, nu) - 1) + 2 * t.pdf(z, nu) * (nu + z**2) / (nu - 1) - spread)


def quantiles_of(kind: str, params: np.ndarray, levels=LEVELS) -> np.ndarray:
    """(W, H, P) distribution parameters -> (W, H, L) quantiles at `levels`."""
    from scipy.stats import norm, t

    lv = np.asarray(levels)[None, None, :]
    if kind == "gaussian":
        return params[..., :1] + params[..., 1:2] * norm.ppf(lv)
    if kind == "student_t":
        return params[..., :1] + params[..., 1:2] * t.ppf(lv, params[..., 2:3])
    raise ValueError(f"no parametric quantiles for likelihood {kind}")


def pinball(q: np.ndarray, y: np.ndarray, levels) -> float:
    """Mean pinball loss of (W, H, L) quantiles against (W, H) values."""
    lv = np.asarray(levels)[None, None, :]
    err = y[..., None] - q
    return float(np.mean(np.maximum(lv * err, (lv - 1) * err)))


def interval_scores(q: np.ndarray, y: np.ndarray, levels) -> dict[str, float]:
    """Coverage and width of the central 80% and 95% intervals the levels hold."""
    out = {}
    for name, (lo, hi) in INTERVALS.items():
        i, j = _level(levels, lo), _level(levels, hi)
        if i is None or j is None:
            continue
        out[f"coverage_{name}"] = float(np.mean((y >= q[..., i]) & (y <= q[..., j])))
        out[f"width_{name}"] = float(np.mean(q[..., j] - q[..., i]))
    return out


def _level(levels, value: float) -> int | None:
    found = [k for k, lv in enumerate(levels) if abs(lv - value) < 1e-9]
    return found[0] if found else None


def scores(kind: str, params: np.ndarray, y: np.ndarray, *, levels) -> dict[str, float]:
    """CRPS, pinball and interval scores of (W, H, P) parameters (or quantiles at `levels`)."""
    if kind == "quantile":
        q = params
        crps = 2 * pinball(q, y, levels)
    else:
        levels = LEVELS
        q = quantiles_of(kind, params, levels)
        args = (params[..., 0], params[..., 1]) + ((params[..., 2],) if kind == "student_t" else ())
        crps = float(np.mean((crps_gaussian if kind == "gaussian" else crps_student_t)(*args, y)))
    return {"crps": crps, "pinball": pinball(q, y, levels)} | interval_scores(q, y, levels)


def residual_quantiles(forecast: np.ndarray, y: np.ndarray, levels=LEVELS) -> list[list[float]]:
    """(W, H) forecasts and values -> per horizon step, the residuals' empirical quantiles (H, L)."""
    return np.quantile(y - forecast, levels, axis=0).T.tolist()
