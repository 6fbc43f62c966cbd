from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crmresearch import load_source
from crmresearch.errors import InputError
from crmresearch.survival import customer_table
from crmresearch.turnover import orphaned_churn_rates, rm_exits

M = 30.4375


@pytest.fixture
def rm_source(tmp_path: Path):
    pd.DataFrame({"as_of": ["2024-12-31"], "observation_start": ["2024-01-01"]}).to_csv(tmp_path / "extract.csv", index=False)
    pd.DataFrame({"branch_id": ["B1"], "branch_name": ["一支行"]}).to_csv(tmp_path / "branches.csv", index=False)
    pd.DataFrame({"customer_id": ["a", "b", "c"], "branch_id": "B1", "open_date": "2024-01-01",
                  "churn_date": [None, "2024-03-15", None], "churn_type": [None, "transfer", None]}).to_csv(
        tmp_path / "customers.csv", index=False)  # fmt: skip
    pd.DataFrame({"rm_id": ["R1", "R2"], "branch_id": "B1", "hire_date": ["2020-01-01", "2024-03-01"],
                  "exit_date": ["2024-02-29", None], "exit_type": ["resigned", None]}).to_csv(
        tmp_path / "relationship_managers.csv", index=False)  # fmt: skip
    pd.DataFrame({"customer_id": ["a", "b", "c", "a"], "rm_id": ["R1", "R1", "R2", "R2"],
                  "start_date": ["2024-01-01", "2024-01-01", "2024-03-01", "2024-03-11"],
                  "end_date": ["2024-02-29", "2024-02-29", None, None]}).to_csv(tmp_path / "rm_assignments.csv", index=False)  # fmt: skip
    return load_source(tmp_path)


def test_orphaned_person_time_by_hand(rm_source) -> None:
    r = orphaned_churn_rates(rm_source).set_index("band")
    # R1 left on 02-29. a: orphaned 03-01..03-10 (10 days: 8 in 0-7, 2 in 8-30), then R2.
    # b: orphaned 03-01..03-15, churned 03-15 (day 14 without an RM: band 8-30): 8 + 7 days.
    assert r.loc["0-7", "customer_months"] == pytest.approx(16 / M)
    assert r.loc["8-30", "customer_months"] == pytest.approx(9 / M)
    assert r.loc["31+", "customer_months"] == 0
    assert r["churned"].tolist() == [0, 1, 0, 0]
    total_days = (366 + (31 + 29 + 15) + 366)  # a, b, c follow-up in 2024 (leap year)
    assert r.loc["not orphaned", "customer_months"] == pytest.approx((total_days - 25) / M)


def test_rm_exits_by_type(rm_source) -> None:
    e = rm_exits(rm_source, month="2024-02").set_index("exit_type")
    assert e.loc["all"].tolist() == [1, 1] and e.loc["resigned"].tolist() == [1, 1]
    assert rm_exits(rm_source, month="2024-03").set_index("exit_type").loc["all"].tolist() == [0, 1]


def test_demo_bands_partition_follow_up(small_demo: Path) -> None:
    """Every customer-day and every churn falls in exactly one band."""
    src = load_source(small_demo)
    r = orphaned_churn_rates(src)
    cust = customer_table(src)
    assert r["churned"].sum() == cust["event"].sum()
    assert r["customer_months"].sum() == pytest.approx((cust["duration"] - cust["entry"]).sum() / M)
    assert (r.set_index("band").loc[["0-7", "8-30", "31+"], "customer_months"] > 0).all()


def test_needs_rm_tables(tmp_path: Path, small_demo: Path) -> None:
    for t in ("extract", "branches", "customers"):
        (tmp_path / f"{t}.parquet").write_bytes((small_demo / f"{t}.parquet").read_bytes())
    with pytest.raises(InputError, match="relationship_managers"):
        orphaned_churn_rates(load_source(tmp_path))
