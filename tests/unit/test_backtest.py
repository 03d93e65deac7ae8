"""`lstmpipe backtest` without Ray: the folds' origins, the Tune run they become, what is refused,
the rows a shifted origin leaves out, and the mean and std over folds."""

import numpy as np
import pyarrow as pa
import pytest

from pipeline import config
from pipeline.errors import ConfigError, DataError
from pipeline.tasks.forecast_windows import _before, before_origin
from pipeline.track.summary import RunSummary, render
from pipeline.tune.backtest import ORIGIN_KEY, Fold, backtest_config, fold_shifts, over_folds

FORECAST = {"task": "forecast", "data": {"source": "co2", "window": {"lookback": 24, "horizon": 6, "season": 12}}}


def test_folds_are_origins_step_apart_the_earliest_first():
    assert fold_shifts(3, 12) == [24, 12, 0]
    assert fold_shifts(2, 1) == [1, 0]


def test_the_folds_are_a_grid_over_the_origin_run_fifo_on_train_workers():
    cfg = config.validate(FORECAST | {"tune": {"search": "optuna", "scheduler": "asha", "max_concurrent": 2}})
    bt = backtest_config(cfg, folds=4, step=6)
    assert bt.tune.space[ORIGIN_KEY].choice == [18, 12, 6, 0]
    assert (bt.tune.search, bt.tune.scheduler, bt.tune.num_samples) == ("grid", "fifo", 1)
    assert bt.tune.max_concurrent == 2 and bt.tune.trial_workers is None  # each fold on train.workers
    assert bt.model_dump(exclude={"tune"}) == cfg.model_dump(exclude={"tune"})  # nothing else changes


def test_without_refit_only_the_first_origin_is_fitted():
    bt = backtest_config(config.validate(FORECAST), folds=4, step=6, fits="once")
    assert bt.tune.space[ORIGIN_KEY].choice == [18]  # the earliest origin's model, tested at 12, 6 and 0 too


@pytest.mark.parametrize(
    ("raw", "folds", "step", "refusal"),
    [
        ({"data": {"source": "adding"}}, 3, 12, "evaluates forecasters; task is regression"),
        (FORECAST, 1, 12, "at least 2 folds"),
        (FORECAST, 3, 0, "at least 2 folds, 1 step apart"),
        (FORECAST | {"data": FORECAST["data"] | {"window": {"origin_shift": 3}}}, 3, 12, "sets it per fold"),
    ],
)
def test_a_backtest_refuses_what_it_would_not_honour(raw, folds, step, refusal):
    with pytest.raises(ConfigError, match=refusal):
        backtest_config(config.validate(raw), folds=folds, step=step)


def test_a_shifted_origin_leaves_out_the_last_steps_of_every_series():
    times = np.arange(10)
    assert before_origin(times, shift=3, path="p").tolist() == list(range(7))
    with pytest.raises(DataError, match="origin_shift 10 leaves out all 10 time steps"):
        before_origin(times, shift=10, path="p")
    batch = pa.table({"series": ["a", "b", "a", "b"], "time": [5, 6, 7, 6], "value": [1.0, 2.0, 3.0, 4.0]})
    kept = _before(batch, end=6)
    assert kept.column("time").to_pylist() == [5, 6, 6] and kept.column("series").to_pylist() == ["a", "b", "b"]


def test_the_summary_is_the_mean_and_std_over_folds():
    done = [
        Fold(0, 12, "r0", {"test_mase": 0.5, "baseline_test_mase": 1.0, "test_crps": 0.1}),
        Fold(1, 0, "r1", {"test_mase": 0.7, "baseline_test_mase": 1.2}),
    ]
    m = over_folds(done)
    assert m["folds"] == 2 and m["test_mase"] == pytest.approx(0.6) and m["baseline_test_mase"] == pytest.approx(1.1)
    assert m["folds_test_mase_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert "test_crps" not in m  # a metric one fold lacks is not averaged over the others
    text = render(RunSummary("FINISHED", "sqlite:///m.db", "e", "p", "bt", metrics=m), title="backtest")
    assert "over 2 folds (mean ± std): test_mase 0.6000 ± 0.1414" in text
    assert "test_mase        0.6000   naive baseline 1.1000" in text
    m |= {"test_windows": 66.0}
    text = render(RunSummary("FINISHED", "u", "e", "p", "bt", metrics=m, child_run_ids=["r0", "r1"]), title="backtest")
    assert "scored on 66 windows of each fold's test split (mean)" in text and "fold runs: r0, r1" in text


def test_an_outage_hint_for_a_backtest_fold_does_not_offer_a_resume_it_lacks():
    from pipeline.train.lifecycle import Lifecycle

    cfg = config.validate(FORECAST)
    life = {"cfg": cfg, "uri": "u", "name": "bt", "storage": "s", "config_hash": "h", "data": {}, "previous": None}
    assert "--resume" not in Lifecycle(kind="backtest", **life).resume_hint()
    assert Lifecycle(kind="tune", **life).resume_hint() == "`lstmpipe tune --name bt --resume`"
