"""The benchmark report: statistics and the RESULTS.md table (the measurements live in benchmarks/)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.results import Result, Stat, render


def test_stat_is_median_min_max():
    s = Stat.of([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.low, s.high, s.n) == (2.5, 1.0, 10.0, 4)
    assert s.show(unit="x") == "2.50x (1.00–10.00, n=4)"


def test_render_lists_every_result_with_its_verdict_and_section():
    results = [
        Result(key="B1", title="throughput", figure="0.97x", goal=">= 0.95x", verdict="met", section="detail one"),
        Result(key="B4", title="cells", figure="0.27x", goal=">= 0.5x", verdict="missed", section="detail two"),
    ]
    text = render(results, command="make bench", started="2026-11-26", minutes=12.5)
    assert "| B1 | throughput | 0.97x | >= 0.95x | met |" in text
    assert "| B4 | cells | 0.27x | >= 0.5x | **missed** |" in text
    assert "## B4: cells" in text and "detail two" in text and "`make bench`" in text and "12.5 min" in text


def test_startup_profile_names_each_process_by_its_role_and_reads_its_cpu():
    from benchmarks.startup import TICKS, Proc, StartupProfile, cpu_seconds, role

    assert role("ray::TrainController") == "ray::TrainController"
    assert role("ray::FooterReader.__init__") == "ray::FooterReader"
    assert role("/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet --raylet_socket_name=x") == "raylet"
    assert role("/venv/bin/python /venv/bin/lstmpipe train -c conf/smoke.yaml") == "driver (lstmpipe)"
    assert role("/venv/bin/python -u /venv/lib/python3.11/site-packages/ray/_private/log_monitor.py") == "log_monitor"
    assert role("ray-dashboard-NodeHead-0 (/venv/bin/python -B -c ...)") == "dashboard head modules"
    # a command name with spaces and parentheses does not shift the fields
    stat = "42 (ray::a (b) c) S 1 2 3 4 5 6 7 8 9 10 " + f"{3 * TICKS} {TICKS} 0 0"
    assert cpu_seconds(stat) == 4.0
    profile = StartupProfile(
        wall_s=1.0,
        summary_s=0.8,
        phase_s={},
        epochs=1,
        procs=[Proc("ray::IDLE", 2.0, 1.0), Proc("ray::IDLE", 1.0, 0.5), Proc("raylet", 0.5, 0.25)],
    )
    assert profile.by_role() == {"ray::IDLE": (2, 1.5, 1.0), "raylet": (1, 0.25, 0.5)}


def test_every_benchmark_config_validates(tmp_path):
    """`make bench` must not stop on a config the schema refuses (B5's FIFO trial did)."""
    from benchmarks import search, throughput

    for scheduler in ("fifo", "asha"):
        assert search.sweep_config(scheduler=scheduler, workdir=str(tmp_path)).tune.scheduler == scheduler
    assert throughput.Workload().config(workers=2, workdir=str(tmp_path)).train.workers == 2


def test_b12_scores_the_pipelines_own_test_windows_with_its_mase_scales():
    """B12's windows and scales are the pipeline's: the seasonal naive forecast of every test window,
    scored by peers.score, gives the baseline_test_mase that `lstmpipe train` reports on the same sets
    (co2 1.3981 over 68 windows, m1_yearly 6.9963 over 362, 181 series); a window a peer left out is an error."""
    import pytest

    from benchmarks import peers
    from pipeline.data.windows import seasonal_naive

    for name, mase, windows in (("co2", 1.3981, 68), ("m1_yearly", 6.9963, 362)):
        p = peers.problem(name)
        data = peers.series_of(p)
        naive = {
            (sid, pos): seasonal_naive(
                data.values[sid][None, pos - p.lookback : pos], horizon=p.horizon, season=p.season
            )[0]
            for sid, pos in peers.test_windows(p, data)
        }
        got = peers.score(p, data, naive)
        assert got["windows"] == windows and got["mase"] == pytest.approx(mase, abs=1e-4)
    naive.pop(next(iter(naive)))
    with pytest.raises(RuntimeError, match="1 of 362 test windows not forecast"):
        peers.score(p, data, naive)
    assert peers.train_windows(p, data) == 592  # the peers' step budget: our training windows
