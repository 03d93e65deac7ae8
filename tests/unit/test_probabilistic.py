"""Probabilistic forecasts without Ray: heads, losses, CRPS/pinball/intervals against reference values."""

import numpy as np
import pytest
import torch

from pipeline.config import validate
from pipeline.model.likelihood import DistributionHead, nll, point
from pipeline.tasks import DataInfo
from pipeline.tasks import probabilistic as prob


def _crps_by_samples(samples: np.ndarray, y: float) -> float:
    """CRPS = E|X - y| - 0.5 E|X - X'| (Gneiting & Raftery 2007), estimated from samples."""
    x = np.sort(samples)
    n = len(x)
    spread = 2 * np.sum(x * (2 * np.arange(1, n + 1) - n - 1)) / n**2  # E|X - X'| for sorted samples
    return float(np.mean(np.abs(x - y)) - 0.5 * spread)


def test_gaussian_crps_has_its_closed_form_values():
    # CRPS of N(0, 1) at its mean is (sqrt(2) - 1) / sqrt(pi); it scales with sigma
    assert prob.crps_gaussian(np.array(0.0), np.array(1.0), np.array(0.0)) == pytest.approx(
        (np.sqrt(2) - 1) / np.sqrt(np.pi)
    )
    assert prob.crps_gaussian(np.array(5.0), np.array(2.0), np.array(5.0)) == pytest.approx(
        2 * (np.sqrt(2) - 1) / np.sqrt(np.pi)
    )
    rng = np.random.default_rng(0)
    assert prob.crps_gaussian(np.array(1.0), np.array(2.0), np.array(2.5)) == pytest.approx(
        _crps_by_samples(rng.normal(1.0, 2.0, 400_000), 2.5), rel=0.01
    )


def test_student_t_crps_matches_sampling_and_tends_to_the_gaussian():
    rng = np.random.default_rng(1)
    mu, sigma, nu, y = 0.5, 1.5, 4.0, -1.0
    samples = mu + sigma * rng.standard_t(nu, 400_000)
    exact = prob.crps_student_t(np.array(mu), np.array(sigma), np.array(nu), np.array(y))
    assert exact == pytest.approx(_crps_by_samples(samples, y), rel=0.01)
    big = prob.crps_student_t(np.array(0.0), np.array(1.0), np.array(1e6), np.array(0.3))
    assert big == pytest.approx(prob.crps_gaussian(np.array(0.0), np.array(1.0), np.array(0.3)), rel=1e-4)


def test_pinball_and_quantile_crps_by_hand():
    q = np.array([[[1.0, 2.0, 3.0]]])  # one window, one step, levels 0.1, 0.5, 0.9
    y = np.array([[2.5]])
    # errors y - q = 1.5, 0.5, -0.5 -> 0.1*1.5, 0.5*0.5, (0.9-1)*(-0.5)
    assert prob.pinball(q, y, (0.1, 0.5, 0.9)) == pytest.approx((0.15 + 0.25 + 0.05) / 3)
    got = prob.scores("quantile", q, y, levels=(0.1, 0.5, 0.9))
    assert got["crps"] == pytest.approx(2 * (0.15 + 0.25 + 0.05) / 3)
    assert got["coverage_80"] == 1.0 and got["width_80"] == 2.0 and "coverage_95" not in got


def test_intervals_of_a_calibrated_gaussian_cover_what_they_say():
    rng = np.random.default_rng(2)
    y = rng.normal(0.0, 1.0, size=(20_000, 2))
    params = np.stack([np.zeros_like(y), np.ones_like(y)], axis=-1)  # (W, H, 2): mu 0, sigma 1
    got = prob.scores("gaussian", params, y, levels=prob.LEVELS)
    assert got["coverage_80"] == pytest.approx(0.80, abs=0.01) and got["coverage_95"] == pytest.approx(0.95, abs=0.01)
    assert got["width_95"] == pytest.approx(2 * 1.959964, rel=1e-4)
    residual = prob.residual_quantiles(np.zeros_like(y), y)  # seasonal naive's empirical quantiles
    assert np.asarray(residual).shape == (2, len(prob.LEVELS)) and residual[0][6] == pytest.approx(0.0, abs=0.03)


def test_heads_keep_spreads_positive_and_quantiles_in_order():
    raw = torch.randn(64, 3 * 5) * 10
    q = DistributionHead("quantile", per_step=5)(raw).reshape(64, 3, 5)
    assert (q.diff(dim=-1) >= 0).all()
    t = DistributionHead("student_t", per_step=3)(torch.randn(64, 2 * 3) * 10).reshape(64, 2, 3)
    assert (t[..., 1] > 0).all() and (t[..., 2] > 2).all()


def test_losses_are_the_distributions_negative_log_likelihoods():
    mu, sigma, y = torch.randn(4, 2), torch.rand(4, 2) + 0.5, torch.randn(4, 2)
    params = torch.stack([mu, sigma], dim=-1).reshape(4, 4)
    expected = -torch.distributions.Normal(mu, sigma).log_prob(y)
    assert torch.allclose(nll("gaussian", params, y, quantiles=[]), expected, atol=1e-6)
    levels = [0.1, 0.5, 0.9]
    quant = torch.tensor([[0.0, 1.0, 2.0]])  # one window, one step
    assert nll("quantile", quant, torch.tensor([[2.5]]), quantiles=levels).item() == pytest.approx(
        (0.1 * 2.5 + 0.5 * 1.5 + 0.9 * 0.5) / 3
    )
    assert point("quantile", quant, horizon=1, quantiles=levels).item() == 1.0  # the median


def test_negative_binomial_scores_counts_like_scipy():
    from scipy.stats import nbinom

    from pipeline.model.likelihood import negative_binomial_nll

    mu, alpha = torch.tensor([[3.0, 40.0]]), torch.tensor([[0.5, 0.05]])
    y = torch.tensor([[0.0, 37.0]])
    r = 1 / alpha
    expected = -nbinom.logpmf(y.numpy(), r.numpy(), (r / (r + mu)).numpy())
    assert np.allclose(negative_binomial_nll(mu, alpha, y).numpy(), expected, atol=1e-4)
    # the head's mu is in units of the training mean (count_scale); y too, scored as counts
    params = torch.stack([mu / 20.0, alpha], dim=-1).reshape(1, 4)
    got = nll("negative_binomial", params, y / 20.0, quantiles=[], count_scale=20.0)
    assert np.allclose(got.numpy(), expected, atol=1e-4)
    q = prob.quantiles_of("negative_binomial", np.array([[[40.0, 0.05]]]), levels=(0.1, 0.5, 0.9))
    assert q[0, 0].tolist() == nbinom.ppf([0.1, 0.5, 0.9], 20.0, 20.0 / 60.0).tolist()


def test_negative_binomial_head_keeps_mean_and_dispersion_positive_and_only_mu_is_rescaled():
    from pipeline.tasks.forecast import ForecastInfo
    from pipeline.tasks.forecast_units import output_units

    out = DistributionHead("negative_binomial", per_step=2)(torch.randn(8, 6) * 10)  # (B, H * 2)
    assert torch.all(out > 0)
    info = DataInfo(
        task="forecast",
        target="float",
        input_size=1,
        output_size=4,
        max_len=5,
        num_rows={},
        task_info=ForecastInfo(
            scaler={"mean": [0.0, 0.0], "std": [20.0, 20.0]}, season=1, likelihood="negative_binomial"
        ),
    )
    units = output_units(info)
    assert units.scale == [20.0, 1.0, 20.0, 1.0] and units.shift == [0.0] * 4  # mu in counts, alpha as is
    assert units.scaled == [True, False, True, False]


def test_a_target_that_is_not_counts_is_refused_for_negative_binomial():
    import pandas as pd

    from pipeline.errors import DataError
    from pipeline.tasks.forecast_windows import _windows

    cfg = validate(
        {
            "task": "forecast",
            "data": {"source": "airline", "window": {"lookback": 3}},
            "model": {"likelihood": "negative_binomial"},
        }
    ).data
    group = pd.DataFrame(
        {"series": "0", "time": range(12), "y": [1.0, 2, 3, 0, 5, 6, 7, 8, 9, 10, 2.5, -1], "split": ["train"] * 12}
    )
    cfg = cfg.model_copy(update={"columns": cfg.columns.model_copy(update={"target": "y"})})
    one, zero = np.ones(1), np.zeros(1)
    with pytest.raises(DataError, match="target column 'y' has 2 value\\(s\\) that are not counts"):
        _windows(group, cfg=cfg, mean=zero, std=one, at="first", counts=True)
    assert len(_windows(group, cfg=cfg, mean=zero, std=one, at="first")) > 0  # not checked otherwise


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"likelihood": "negative_binomial", "normalize": "revin"}, "negative_binomial models counts"),
        ({"quantiles": [0.1, 0.9]}, "model.quantiles are for model.likelihood: quantile"),
        ({"likelihood": "quantile", "quantiles": [0.9, 0.1]}, "must be ascending levels strictly between 0 and 1"),
    ],
)
def test_likelihood_config_rules(model, message):
    window = {"lookback": 12} | ({"normalize": model.pop("normalize")} if "normalize" in model else {})
    with pytest.raises(Exception, match=message):
        validate({"task": "forecast", "data": {"source": "airline", "window": window}, "model": model})


def test_anomaly_refuses_the_negative_binomial():
    with pytest.raises(Exception, match="model.likelihood negative_binomial is for task: forecast"):
        validate(
            {"task": "anomaly", "data": {"source": "sensor_anomalies"}, "model": {"likelihood": "negative_binomial"}}
        )


def test_likelihood_is_for_forecasts():
    with pytest.raises(Exception, match="model.likelihood is for task: forecast"):
        validate({"task": "regression", "model": {"likelihood": "gaussian"}})


def test_a_sweep_prepares_data_per_likelihood_but_not_per_hidden_size():
    from pipeline.tune.trial import data_key

    base = {"task": "forecast", "data": {"source": "airline", "window": {"lookback": 12}}}
    key = data_key(validate(base))
    assert data_key(validate(base | {"model": {"likelihood": "gaussian"}})) != key  # other outputs: other data info
    assert data_key(validate(base | {"model": {"hidden_size": 7}})) == key


def test_predict_outputs_of_relative_windows_are_per_window_in_data_units():
    """A predict batch gives each window's last value as (W, 1) (the test split as (W,)): both add
    it to the locations only, one row per window (predict on a normalize: last model once broadcast
    it to (W, W, H))."""
    from pipeline.tasks import DataInfo
    from pipeline.tasks.forecast import ForecastInfo, outputs

    own = ForecastInfo(
        scaler={"mean": [0.0, 0.0], "std": [2.0, 2.0]}, season=1, window_normalize="last", likelihood="gaussian"
    )
    info = DataInfo(task="forecast", input_size=1, output_size=4, target="float", max_len=3, task_info=own)
    pred = np.array([[0.5, 0.1, 1.0, 0.2], [0.0, 0.3, 0.0, 0.3]])  # (W, H * (mu, sigma)), standardized
    for ref in (np.array([[100.0], [200.0]]), np.array([100.0, 200.0])):
        out = {"pred": pred, "y": np.zeros((2, 2)), "ref": ref, "baseline": np.zeros((2, 2))}
        out |= {"series": np.array(["a", "a"]), "time": np.array([1, 2])}
        cols = outputs(out, info)
        assert np.allclose(cols["mu"], [[101.0, 102.0], [200.0, 200.0]])  # 0.5 * 2 + 100, ...
        assert np.allclose(cols["sigma"], [[0.2, 0.4], [0.6, 0.6]])  # scaled, not shifted
        assert np.allclose(cols["forecast"], cols["mu"]) and np.allclose(cols["actual"], [[100, 100], [200, 200]])


def test_revin_outputs_scale_locations_and_spreads_but_not_student_t_nu():
    """A revin model's student-t parameters per window: mu * std + mean, sigma * std, nu as is; the
    served model is told the same (OutputUnits.located, .scaled)."""
    from pipeline.tasks import DataInfo
    from pipeline.tasks.forecast import ForecastInfo, output_units, outputs

    own = ForecastInfo(scaler={"mean": [0.0], "std": [1.0]}, season=1, window_normalize="revin", likelihood="student_t")
    info = DataInfo(task="forecast", input_size=1, output_size=3, target="float", max_len=3, task_info=own)
    out = {"pred": np.array([[0.5, 0.2, 4.0]]), "y": np.array([[1.0]]), "ref": np.array([100.0])}
    out |= {"ref_scale": np.array([10.0]), "baseline": np.zeros((1, 1)), "series": ["a"], "time": [1]}
    cols = outputs(out, info)
    assert (
        np.allclose(cols["mu"], [[105.0]]) and np.allclose(cols["sigma"], [[2.0]]) and np.allclose(cols["nu"], [[4.0]])
    )
    assert np.allclose(cols["actual"], [[110.0]])
    units = output_units(info)
    assert units.reference == "revin" and units.located == [True, False, False] and units.scaled == [True, True, False]


def test_conformal_intervals_cover_exchangeable_data_at_least_as_promised():
    rng = np.random.default_rng(3)
    covered = {"80": [], "95": []}
    for _ in range(200):  # many small calibrations: the guarantee is on average over them
        val_y, test_y = rng.standard_t(3, size=(50, 2)), rng.standard_t(3, size=(50, 2))  # heavy tails
        half = prob.conformal_half_widths(np.zeros_like(val_y), val_y)
        q = prob.conformal_quantiles(np.zeros_like(test_y), half)
        got = prob.interval_scores(q, test_y, prob.INTERVAL_LEVELS)
        for name in covered:
            covered[name].append(got[f"coverage_{name}"])
    assert 0.80 <= np.mean(covered["80"]) < 0.84 and 0.95 <= np.mean(covered["95"]) < 0.975


def test_conformal_with_too_few_residuals_gives_an_infinite_interval():
    half = prob.conformal_half_widths(np.zeros((5, 1)), np.ones((5, 1)))  # ceil(6 * 0.95) = 6 > 5
    assert half["95"] == [np.inf] and half["80"] == [1.0]


def test_conformal_is_for_point_forecasts():
    with pytest.raises(Exception, match="model.intervals: conformal is for point forecasts"):
        validate(
            {
                "task": "forecast",
                "data": {"source": "airline", "window": {"lookback": 12}},
                "model": {"likelihood": "gaussian", "intervals": "conformal"},
            }
        )


def test_the_summary_says_why_a_metric_has_no_value_instead_of_nan():
    from pipeline.track.summary import RunSummary, render

    summary = RunSummary(
        status="FINISHED",
        tracking_uri="sqlite:///m.db",
        experiment="e",
        run_id="r",
        name="n",
        metrics={"test_auroc": float("nan"), "baseline_test_auroc": float("nan"), "test_f1": 0.0},
    )
    text = render(summary, title="train")
    assert "nan" not in text
    assert "test_auroc       undefined: the test period holds no labelled anomaly" in text
    assert "data.test_fraction" in text and "test_f1          0.0000" in text


def test_the_summary_names_the_strongest_baseline_and_counts_the_test_windows():
    from pipeline.track.summary import RunSummary, render

    metrics = {"test_mase": 0.5, "baseline_test_mase": 0.9, "baseline_drift_test_mase": 0.4, "test_windows": 32.0}
    summary = RunSummary(
        status="FINISHED", tracking_uri="sqlite:///m.db", experiment="e", run_id="r", name="n", metrics=metrics
    )
    text = render(summary, title="train")
    assert "test_mase        0.5000   naive baseline 0.9000   drift 0.4000   -> behind drift" in text
    assert "scored on 32 windows of the test split" in text and "test_windows" not in text
    summary.metrics = metrics | {"test_mase": 0.3, "test_series": 2.0}
    text = render(summary, title="train")
    assert "-> beats the strongest baseline (drift)" in text and "32 windows, 2 series" in text


def test_a_seed_axis_reports_each_setting_as_mean_and_std_over_its_seeds():
    """tune.space with train.seed: the sweep report groups the trials by the other searched keys and
    gives every test metric as mean and std over the seeds; the summary prints the best setting's."""
    import pandas as pd

    from pipeline.config import validate
    from pipeline.track.summary import RunSummary, render
    from pipeline.tune.report import over_seeds, seed_lines

    space = validate(
        {
            "task": "forecast",
            "data": {"source": "airline", "window": {"lookback": 12}},
            "tune": {"space": {"train.seed": {"choice": [0, 1, 2]}, "model.hidden_size": {"choice": [8, 16]}}},
        }
    ).tune.space
    table = pd.DataFrame(
        {
            "trial_id": list("abcdef"),
            "train.seed": [0, 1, 2, 0, 1, 2],
            "model.hidden_size": [8, 8, 8, 16, 16, 16],
            "test_mase": [0.5, 0.7, 0.6, 0.9, 1.1, 1.0],
            "baseline_test_mase": [1.4] * 6,
        }
    )
    spread = over_seeds(table, space=space).set_index("model.hidden_size")
    assert spread.loc[8, "seeds"] == 3 and spread.loc[8, "test_mase_mean"] == pytest.approx(0.6)
    assert spread.loc[8, "test_mase_std"] == pytest.approx(0.1) and spread.loc[16, "test_mase_mean"] == pytest.approx(
        1.0
    )
    best = seed_lines(over_seeds(table, space=space), metric="test_mase", mode="min")
    assert best["seeds_test_mase_mean"] == pytest.approx(0.6) and best["seeds"] == 3
    summary = RunSummary(
        status="FINISHED", tracking_uri="sqlite:///m.db", experiment="e", run_id="r", name="n", metrics=best
    )
    assert "over 3 seeds (mean ± std): test_mase 0.6000 ± 0.1000" in render(summary, title="tune")
    assert over_seeds(table, space={k: v for k, v in space.items() if k != "train.seed"}) is None
