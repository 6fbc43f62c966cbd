from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from crmresearch import load_source
from crmresearch.analyses.lifecycle import lifecycle, stage_rates

matplotlib.use("Agg")
M = 30.4375


def test_stage_rates_by_hand() -> None:
    cust = pd.DataFrame({"entry": [0, 0, 200], "duration": [30, 400, 500], "event": [1, 0, 1]})
    r = stage_rates(cust).set_index("stage")
    assert r.loc["new", "customer_months"] == pytest.approx((30 + 3 * M) / M)
    assert r.loc["growth", "customer_months"] == pytest.approx((9 * M + (12 * M - 200)) / M)
    assert r.loc["mature", "customer_months"] == pytest.approx((400 - 12 * M + 500 - 12 * M) / M)
    assert r["churned"].tolist() == [1, 0, 1]
    assert r.loc["growth", "lower"] == 0 and r.loc["growth", "upper"] > 0
    assert r.loc["new", "lower"] < r.loc["new", "rate_per_customer_month"] < r.loc["new", "upper"]


def test_demo_lifecycle_follows_the_truth(small_demo: Path) -> None:
    import json

    truth = json.loads((small_demo / "truth.json").read_text(encoding="utf-8"))["baseline_hazard_per_day"]
    r = lifecycle(load_source(small_demo))
    rates = r.stages.set_index("stage")["rate_per_customer_month"]
    # the true baseline falls from new to growth to mature; covariates shift levels, not the order
    assert truth["new_1_90"] > truth["growth_91_365"] > truth["mature_366_plus"]
    assert rates["new"] > rates["growth"] > rates["mature"]
    loss = r.new_customer_loss(3)
    assert 0.25 < loss["loss"] < 0.55 and loss["lower"] < loss["loss"] < loss["upper"]
    h = r.smoothed_hazard()
    assert (h["hazard_per_month"] >= 0).all() and (h["at_risk"] >= 50).all()
    early = h[h["tenure_days"] < 60]["hazard_per_month"].mean()
    late = h[(h["tenure_days"] > 400) & (h["tenure_days"] < 900)]["hazard_per_month"].mean()
    assert early > 2 * late
    ax = r.plot()
    assert ax.get_xlabel() == "tenure (months)"
