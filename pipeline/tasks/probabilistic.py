"""Scores of probabilistic forecasts, in the data's units (numpy; no Ray, no torch):

  CRPS       exact for Gaussian and Student-t forecasts (Gneiting & Raftery 2007; Jordan et al.
             2019), from quantiles otherwise (quantile models, the negative binomial's 13 LEVELS):
             twice the mean pinball loss over the levels
  pinball    mean quantile loss over LEVELS
  intervals  coverage and mean width of the central 80% and 95% intervals

The seasonal-naive baseline becomes probabilistic with empirical quantiles of its residuals on the
validation period, per horizon step, so its coverage is compared fairly with the model's.

Split conformal intervals (`model.intervals: conformal`) for a point model: per horizon step, the
half-width is the ceil((n + 1) c)-th smallest absolute validation residual of n, for coverage c; on
exchangeable data the interval covers a new value with probability at least c (Vovk et al. 2005;
Angelopoulos & Bates 2021). Test coverage is reported, not assumed: forecast errors over time are
rarely exchangeable.
"""

from __future__ import annotations

import numpy as np

LEVELS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975)
INTERVALS = {"80": (0.1, 0.9), "95": (0.025, 0.975)}
COVERAGE = {"80": 0.8, "95": 0.95}
INTERVAL_LEVELS = (0.025, 0.1, 0.9, 0.975)  # the central intervals' ends, as quantile levels


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
    if kind == "negative_binomial":
        from scipy.stats import nbinom

        r = 1.0 / params[..., 1:2]  # (W, H, 1)
        return nbinom.ppf(lv, r, r / (r + params[..., :1])).astype(np.float64)
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
    elif kind == "negative_binomial":  # no closed form used: twice the mean pinball loss over LEVELS
        levels = LEVELS
        q = quantiles_of(kind, params, levels)
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


def conformal_half_widths(pred: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """(W, H) validation forecasts and values -> per coverage, each step's half-width (H,)."""
    err = np.sort(np.abs(y - pred), axis=0)  # (n, H)
    n = len(err)
    out = {}
    for name, c in COVERAGE.items():
        k = int(np.ceil((n + 1) * c))  # the k-th smallest residual (1-based)
        out[name] = (err[k - 1] if k <= n else np.full(err.shape[1], np.inf)).tolist()
    return out


def conformal_quantiles(pred: np.ndarray, half: dict[str, list[float]]) -> np.ndarray:
    """(W, H) forecasts -> (W, H, 4) interval ends at INTERVAL_LEVELS (95% low, 80% low, 80% high, 95% high)."""
    h80, h95 = np.asarray(half["80"]), np.asarray(half["95"])
    return np.stack([pred - h95, pred - h80, pred + h80, pred + h95], axis=-1)


def first_step_bands(q: np.ndarray, levels) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(W, H, L) quantiles -> the central intervals the levels hold, at the first horizon step."""
    levels = list(levels)
    return {
        name: (q[:, 0, levels.index(lo)], q[:, 0, levels.index(hi)])
        for name, (lo, hi) in INTERVALS.items()
        if lo in levels and hi in levels
    }


def fan_chart(bands: dict[str, tuple[np.ndarray, np.ndarray]], pred: np.ndarray, y: np.ndarray):
    """First-step forecasts of consecutive test windows with their central intervals (data units)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), layout="tight")
    ax = fig.subplots()
    x = np.arange(len(y))
    for (name, (lo, hi)), alpha in zip(sorted(bands.items(), reverse=True), (0.2, 0.35)):
        ax.fill_between(x, lo, hi, alpha=alpha, color="tab:blue", linewidth=0, label=f"{name}% interval")
    ax.plot(x, y, color="black", label="actual")
    ax.plot(x, pred, color="tab:blue", marker=".", ms=3, label="forecast")
    ax.set_xlabel("test window")
    ax.set_title("one-step-ahead forecasts and their intervals on the test split")
    ax.legend()
    return fig
