"""The `stocks` source without the network: plotly's wheel layout (a gzipped wide CSV inside the zip)
-> long rows, and a broken file named in one sentence."""

import gzip
import zipfile

import pytest

from pipeline.data.sources.stocks import MEMBER, read_stocks
from pipeline.errors import DataError


def test_the_wide_table_in_the_wheel_becomes_long_rows(tmp_path):
    wheel = tmp_path / "plotly.whl"
    csv = "date,GOOG,AAPL\n2018-01-01,1.0,1.0\n2018-01-08,1.02,0.99\n2018-01-15,1.03,1.01\n"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(MEMBER, gzip.compress(csv.encode()))
    rows = read_stocks(wheel).to_pydict()
    assert rows["symbol"] == ["GOOG"] * 3 + ["AAPL"] * 3
    assert rows["price"] == [1.0, 1.02, 1.03, 1.0, 0.99, 1.01]
    assert [d.isoformat()[:10] for d in rows["date"][:3]] == ["2018-01-01", "2018-01-08", "2018-01-15"]


def test_a_wheel_without_the_table_is_named(tmp_path):
    wheel = tmp_path / "plotly.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("plotly/__init__.py", "")
    with pytest.raises(DataError, match="plotly.whl: no readable plotly/package_data/datasets/stocks.csv.gz"):
        read_stocks(wheel)


def test_the_real_wheel_fetched_from_pypi_holds_six_weekly_series(tmp_path):
    """The real loading path: pip fetches plotly's wheel once into the cache, then it is read from there."""
    from pipeline.data.sources.series import NoOptions
    from pipeline.data.sources.stocks import generate

    rows = generate(NoOptions(), cache_dir=tmp_path).to_pandas()
    assert sorted(rows["symbol"].unique()) == ["AAPL", "AMZN", "FB", "GOOG", "MSFT", "NFLX"]
    assert len(rows) == 6 * 105 and (rows.groupby("symbol")["price"].first() == 1.0).all()
    assert set(rows["date"].diff().dropna().dt.days.unique()) <= {7, -(104 * 7)}  # weekly, per symbol
    assert list((tmp_path / "stocks").glob("plotly-*.whl"))  # cached: the next call reads it
