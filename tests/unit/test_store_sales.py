"""The generated store_sales set: seeded, one size and region per store, promotions in runs at about
the share asked for, holidays on their fixed dates, and sales that move with both."""

import numpy as np

from pipeline.data.sources.store_sales import HOLIDAYS, StoreSalesOptions, generate


def test_store_sales_is_seeded_with_static_and_future_covariates():
    opts = StoreSalesOptions(stores=3, days=400, promo_share=0.2, seed=4)
    a, b = generate(opts), generate(opts)
    assert a.equals(b) and not a.equals(generate(opts.model_copy(update={"seed": 5})))
    rows = a.to_pandas()
    per_store = rows.groupby("store")
    assert (per_store["size"].nunique() == 1).all() and (per_store["region"].nunique() == 1).all()
    assert all(0.2 <= share < 0.3 for share in per_store["promo"].mean())
    on_holiday = rows[rows["holiday"] == 1.0]["date"].dt.strftime("%m-%d")
    assert set(on_holiday) == set(HOLIDAYS) and len(on_holiday) == 3 * 7  # 2023-01-02 .. 2024-02-05: each once
    relative = rows["sales"] / rows["size"]
    assert (
        relative[rows["promo"] == 1.0].mean() > 1.3 * relative[(rows["promo"] == 0.0) & (rows["holiday"] == 0.0)].mean()
    )
    assert np.isfinite(rows["sales"]).all() and (rows["sales"] > 0).all()
