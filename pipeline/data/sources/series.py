"""Real time series that ship inside statsmodels' and aeon's wheels, in the long format: ([series,] time, y)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel

from pipeline.data.sources.options import STRICT


class NoOptions(BaseModel):
    model_config = STRICT


def co2(opts: NoOptions) -> pa.Table:
    """Mauna Loa CO2 (ppm), weekly 1958-2001 -> 526 monthly means; the few empty months interpolated."""
    import statsmodels.api as sm

    weekly = sm.datasets.co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate()
    return pa.table({"time": pa.array(monthly.index.to_numpy()), "y": pa.array(monthly.to_numpy(np.float64))})


def sunspots(opts: NoOptions) -> pa.Table:
    """Yearly sunspot numbers 1700-2008 (309 years; an ~11-year cycle)."""
    import statsmodels.api as sm

    data = sm.datasets.sunspots.load_pandas().data
    return pa.table(
        {"time": pa.array(data["YEAR"].to_numpy(np.int64)), "y": pa.array(data["SUNACTIVITY"].to_numpy(np.float64))}
    )


def airline(opts: NoOptions) -> pa.Table:
    """Monthly international airline passengers (thousands), 1949-1960, from aeon's wheel."""
    from aeon.datasets import load_airline

    values = np.asarray(load_airline(), np.float64)
    months = np.arange("1949-01", "1961-01", dtype="datetime64[M]").astype("datetime64[ns]")
    return pa.table({"time": pa.array(months), "y": pa.array(values)})


def nile(opts: NoOptions) -> pa.Table:
    """Yearly flow of the Nile at Aswan (10^8 m^3), 1871-1970, from statsmodels."""
    import statsmodels.api as sm

    data = sm.datasets.nile.load_pandas().data
    return pa.table(
        {"time": pa.array(data["year"].to_numpy(np.int64)), "y": pa.array(data["volume"].to_numpy(np.float64))}
    )


def m1_yearly(opts: NoOptions) -> pa.Table:
    """The M1 competition's 181 yearly series (aeon's wheel), values from 2.4 to 1.9e7 on average.
    They end in different years (1909-2004), so `time` counts the years before each series' last
    observation (0 = the last): the global time cut then gives every series its last years as the
    test period, as the competition scored them."""
    from aeon.datasets import load_forecasting

    frame = load_forecasting("m1_yearly_dataset")
    names, times, values = [], [], []
    for name, series_values in zip(frame["series_name"], frame["series_value"]):
        v = np.asarray(series_values, np.float64)
        names += [str(name)] * len(v)
        times.append(np.arange(len(v), dtype=np.int64) - (len(v) - 1))
        values.append(v)
    return pa.table(
        {
            "series": pa.array(names, pa.string()),
            "time": pa.array(np.concatenate(times)),
            "y": pa.array(np.concatenate(values)),
        }
    )
