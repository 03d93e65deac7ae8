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
