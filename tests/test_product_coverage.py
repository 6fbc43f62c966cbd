"""Product coverage from a landmark: hand-made source, demo ordering, flat extract vs lifelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import restricted_mean_survival_time

from crmresearch import load_source
from crmresearch.errors import InputError
from crmresearch.product_coverage import coverage_group, product_coverage, rmst
from public_data import BANK_CSV


@pytest.fixture
def hand_source(tmp_path: Path):
    pd.DataFrame({"as_of": ["2024-12-31"], "observation_start": ["2023-01-01"]}).to_csv(tmp_path / "extract.csv", index=False)
    pd.DataFrame({"branch_id": ["B1"], "branch_name": ["一支行"]}).to_csv(tmp_path / "branches.csv", index=False)
    cust = [  # landmark for 2024-12 is 2023-12-31
        ("a", "2023-01-05", None),          # 1 product on L, stays
        ("b", "2023-01-05", "2024-06-01"),  # 1 product on L (2nd dropped before L), churns after L
        ("c", "2023-02-01", "2023-12-31"),  # churned ON the landmark: not in the view
        ("d", "2024-01-01", None),          # opened after L: not in the view
        ("e", "2023-03-01", "2024-12-31"),  # 2 products on L (3rd added after L), churns on the month's last day
        ("f", "2023-03-01", None),          # 5 products on L
        ("g", "2023-03-01", None),          # 0 products on L (all ended before)
    ]  # fmt: skip
    c = pd.DataFrame(cust, columns=["customer_id", "open_date", "churn_date"])
    c["branch_id"] = "B1"
    c["churn_type"] = np.where(c["churn_date"].notna(), "transfer", None)
    c.to_csv(tmp_path / "customers.csv", index=False)
    h = [("a", "current_account", "2023-01-05", None),
         ("b", "current_account", "2023-01-05", None), ("b", "credit_card", "2023-02-01", "2023-12-30"),
         ("c", "current_account", "2023-02-01", None),
         ("d", "current_account", "2024-01-01", None),
         ("e", "current_account", "2023-03-01", None), ("e", "payroll", "2023-03-01", None),
         ("e", "insurance", "2024-01-01", None),
         *[("f", p, "2023-03-01", None) for p in ("current_account", "payroll", "insurance", "trust", "fund_sip")],
         ("g", "current_account", "2023-03-01", "2023-10-31")]  # fmt: skip
    pd.DataFrame(h, columns=["customer_id", "product", "start_date", "end_date"]).to_csv(
        tmp_path / "product_holdings.csv", index=False)
    return load_source(tmp_path)


def test_landmark_table_by_hand(hand_source) -> None:
    r = product_coverage(hand_source, month="2024-12")
    assert str(r.landmark) == "2023-12-31" and r.horizon_days == 366
    assert sorted(r.data["customer_id"]) == ["a", "b", "e", "f", "g"]
    t = r.table.set_index("group")
    assert t.loc["0"].tolist()[:2] == [1, 0]
    assert t.loc["1"].tolist()[:2] == [2, 1]  # a stays, b churns
    assert t.loc["2"].tolist()[:2] == [1, 1]  # e churns on the month's last day: counted
    assert t.loc["5+"].tolist()[:2] == [1, 0]
    assert "3-4" not in t.index
    by = r.table_by_count().set_index("n_products")
    assert by.loc[5, "customers"] == 1 and by.loc[2, "churned"] == 1


def test_landmark_before_the_data_is_an_error(hand_source) -> None:
    with pytest.raises(InputError, match="does not reach back"):
        product_coverage(hand_source, month="2023-06")
    with pytest.raises(InputError, match="month is required"):
        product_coverage(hand_source)


def test_demo_coverage_is_protective(small_demo: Path) -> None:
    r = product_coverage(load_source(small_demo), month="2026-10")
    t = r.table
    rates = t.set_index("group")["churn_rate_12m"]
    assert rates.is_monotonic_decreasing, rates
    assert r.logrank["p"] < 1e-6
    s = r.summary
    assert (s["survival_lower"] <= s["survival"]).all() and (s["survival"] <= s["survival_upper"]).all()
    assert (s["rmst_lower"] < s["rmst_days"]).all() and (s["rmst_days"] < s["rmst_upper"]).all()
    assert s["rmst_days"].is_monotonic_increasing
    risk = r.at_risk()
    assert (risk.iloc[:, 0] == t.set_index("group")["customers"]).all()


def test_rmst_matches_lifelines_and_bootstrap() -> None:
    rng = np.random.default_rng(11)
    t = rng.exponential(300, 800).round()
    c = rng.uniform(50, 500, 800).round()
    dur, ev = np.minimum(t, c), (t <= c).astype(int)
    area, se = rmst(dur, ev, 365.0)
    km = KaplanMeierFitter().fit(dur, ev)
    assert area == pytest.approx(restricted_mean_survival_time(km, t=365.0), rel=1e-9)
    boots = [rmst(dur[i], ev[i], 365.0)[0] for i in (rng.integers(0, 800, 800) for _ in range(300))]
    assert se == pytest.approx(np.std(boots), rel=0.15)


def test_coverage_groups() -> None:
    g = coverage_group(pd.Series([0, 1, 2, 3, 4, 5, 9]))
    assert list(g.astype(str)) == ["0", "1", "2", "3-4", "3-4", "5+", "5+"]


def test_flat_bank_dataset_matches_its_readme_and_lifelines(tmp_path: Path) -> None:
    if not BANK_CSV.exists():
        pytest.skip(f"public dataset not present: {BANK_CSV}")
    from crmresearch.flat import import_flat

    r = product_coverage(load_source(import_flat(BANK_CSV, "bank-churn-modelling", tmp_path / "bank")))
    by = r.table_by_count().set_index("n_products")
    assert by[["customers", "churned"]].to_dict("index") == {
        1: {"customers": 5084, "churned": 1409}, 2: {"customers": 4590, "churned": 348},
        3: {"customers": 266, "churned": 220}, 4: {"customers": 60, "churned": 60}}  # fmt: skip
    raw = pd.read_csv(BANK_CSV)
    km_raw = KaplanMeierFitter().fit(raw["Tenure"], raw["Exited"])
    km_all = KaplanMeierFitter().fit(r.data["duration"], r.data["event"])  # tenure in months
    for years in range(11):
        assert km_all.predict(12.0 * years) == pytest.approx(km_raw.predict(float(years)), abs=1e-12)
    assert km_raw.predict(10.0) == pytest.approx(0.485699, abs=1e-6)  # the README's figure
    for n, part in raw.groupby("NumOfProducts"):
        ours = r.data[r.data["n_products"] == n]
        a = KaplanMeierFitter().fit(ours["duration"], ours["event"]).predict(60.0)
        b = KaplanMeierFitter().fit(part["Tenure"], part["Exited"]).predict(5.0)
        assert a == pytest.approx(b, abs=1e-12)


def test_cumulative_incidence_of_competing_churn_types(small_demo: Path) -> None:
    from crmresearch.product_coverage import cumulative_incidence
    from crmresearch.survival import customer_table

    src = load_source(small_demo)
    r = product_coverage(src, month="2026-10")
    types = customer_table(src).set_index("customer_id")["churn_type"]
    cif = cumulative_incidence(r, types)
    assert cif.equals(cumulative_incidence(r, types))  # seeded jitter: reproducible
    s = r.summary.set_index("group")
    for g, part in cif.groupby("group"):
        total_loss = 1 - s.loc[g, "survival"]
        # transfer + natural never exceed all churn; the rest is 'unknown'
        assert part["cif"].sum() <= total_loss + 1e-9
        assert part["cif"].sum() >= 0.85 * total_loss
        assert (part["lower"] <= part["cif"]).all() and (part["cif"] <= part["upper"]).all()
