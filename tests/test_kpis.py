"""Monthly KPIs against hand-computed values on a hand-made source (exact equality)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmresearch import load_params, load_source
from crmresearch.errors import InputError
from crmresearch.kpis import monthly_kpis


@pytest.fixture
def source(tmp_path: Path):
    pd.DataFrame({"as_of": ["2024-04-30"], "observation_start": ["2023-01-01"]}).to_csv(tmp_path / "extract.csv", index=False)
    pd.DataFrame({"branch_id": ["B1", "B2"], "branch_name": ["一支行", "二支行"]}).to_csv(tmp_path / "branches.csv", index=False)
    cust = [  # id, branch, open, churn
        ("c1", "B1", "2023-01-10", "2024-03-01"),  # churned on the month's first day
        ("c2", "B1", "2023-05-05", "2024-03-31"),  # churned on its last day; high-value
        ("c3", "B1", "2024-03-05", "2024-03-20"),  # opened and churned in the month
        ("c4", "B1", "2024-02-29", None),          # active, high-value
        ("c5", "B1", "2023-01-01", "2024-02-29"),  # churned before the month
        ("c6", "B2", "2023-06-01", None),          # the branch with no churn
        ("c7", "B1", "2024-03-01", None),          # opened on the month's first day: not active at start
        ("c8", "B1", "2024-04-02", None),          # opened after the month
    ]  # fmt: skip
    df = pd.DataFrame(cust, columns=["customer_id", "branch_id", "open_date", "churn_date"])
    df["churn_type"] = np.where(df["churn_date"].notna(), "transfer", None)
    df.to_csv(tmp_path / "customers.csv", index=False)
    bal = [  # id, month, aum, avg_daily_aum
        ("c1", "2023-12", 300_000, 300_000), ("c1", "2024-01", 100_000, 100_000), ("c1", "2024-02", 50_000, 50_000),
        ("c2", "2024-01", 260_000, 260_000), ("c2", "2024-02", 240_000, 250_000), ("c2", "2024-03", 1_000, 1_000),
        ("c2", "2022-12", 9_999_999, 9_999_999),  # more than 12 months before the churn month: ignored
        ("c4", "2024-02", 1_900_000, 2_000_000), ("c6", "2024-02", 10_000, 10_000),
        ("c5", "2024-01", 70_000, 70_000),
    ]  # fmt: skip
    b = pd.DataFrame(bal, columns=["customer_id", "month", "aum", "avg_daily_aum"])
    b["txn_count"] = 3
    b.to_csv(tmp_path / "monthly_balances.csv", index=False)
    return load_source(tmp_path)


def _row(k: pd.DataFrame, scope: str, customers: str = "all") -> dict:
    return k[(k.scope == scope) & (k.customers == customers)].iloc[0].to_dict()


def test_hand_computed_month(source) -> None:
    k = monthly_kpis(source, month="2024-03")
    b1 = _row(k, "B1")
    assert (b1["active_at_start"], b1["churned_in_month"]) == (3, 3)  # c1 c2 c4 / c1 c2 c3
    assert b1["monthly_churn_rate"] == 1.0
    assert b1["aum_lost"] == 50_000 + 240_000 + 0  # c3 had no snapshot before leaving
    assert b1["aum_drained"] == 300_000 + 260_000 + 0
    hv = _row(k, "B1", "high_value")  # tier from February: c2 key (250k), c4 private (2M)
    assert (hv["active_at_start"], hv["churned_in_month"], hv["aum_lost"], hv["aum_drained"]) == (2, 1, 240_000, 260_000)
    b2 = _row(k, "B2")
    assert (b2["active_at_start"], b2["churned_in_month"], b2["monthly_churn_rate"], b2["aum_lost"]) == (1, 0, 0.0, 0.0)
    bank = _row(k, "bank")
    assert (bank["active_at_start"], bank["churned_in_month"], bank["monthly_churn_rate"]) == (4, 3, 0.75)
    assert (bank["aum_lost"], bank["aum_drained"]) == (290_000, 560_000)


def test_month_with_no_customers_yet(source) -> None:
    k = monthly_kpis(source, month="2023-01")
    bank = _row(k, "bank")
    assert (bank["active_at_start"], bank["churned_in_month"]) == (0, 0)
    assert np.isnan(bank["monthly_churn_rate"])


def test_branch_filter_and_errors(source) -> None:
    k = monthly_kpis(source, month="2024-03", branch="B2")
    assert set(k.scope) == {"B2", "bank"}
    with pytest.raises(InputError, match="unknown branch 'B9'; known: B1, B2"):
        monthly_kpis(source, month="2024-03", branch="B9")
    with pytest.raises(InputError, match="outside the data"):
        monthly_kpis(source, month="2024-05")
    with pytest.raises(InputError, match="YYYY-MM"):
        monthly_kpis(source, month="2024-3")


def test_asset_attrition_counts_confirmed_churns_only(source) -> None:
    params = load_params(overrides={"churn.definition": "asset_attrition"})
    k = monthly_kpis(source, params, month="2024-03")
    # c1's AUM falls to 1/3 and 1/6 of its 300k peak, but never below 20% for 3 months: recorded churns only
    assert _row(k, "bank")["churned_in_month"] == 3
