"""Real time series that ship inside statsmodels' wheel, in the long format: (time, y)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    return pa.table({"time": pa.array(data["YEAR"].to_numpy(np.int64)), "y": pa.array(data["SUNACTIVITY"].to_numpy(np.float64))})
