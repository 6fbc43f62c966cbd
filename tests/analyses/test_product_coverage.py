"""Product coverage from a landmark: hand-made source, demo ordering, flat extract vs lifelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import restricted_mean_survival_time

from crmresearch import load_source
from crmresearch.analyses.product_coverage import coverage_group, product_coverage, rmst
from crmresearch.core.errors import InputError
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
    assert str(r.landmark) == "2023-12-31" and r.horizon == 366 and r.time_unit == "days" and r.window == "12m"
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
    from crmresearch.data.flat import import_flat

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
    from crmresearch.analyses.product_coverage import cumulative_incidence
    from crmresearch.survival.episodes import customer_table

    src = load_source(small_demo)
    r = product_coverage(src, month="2026-10")
    types = customer_table(src).set_index("customer_id")["churn_type"]
    cif = cumulative_incidence(r, types)
    assert cif.equals(cumulative_incidence(r, types))  # deterministic (no tie-breaking jitter)
    s = r.summary.set_index("group")
    for g, part in cif.groupby("group"):
        total_loss = 1 - s.loc[g, "survival"]
        # transfer + natural never exceed all churn; the rest is 'unknown'
        assert part["cif"].sum() <= total_loss + 1e-9
        assert part["cif"].sum() >= 0.85 * total_loss
        assert (part["lower"] <= part["cif"]).all() and (part["cif"] <= part["upper"]).all()


# --------------------------------------------------------------------------- sticky products


def test_sticky_products_on_the_demo(small_demo: Path) -> None:
    """The demo's truth: each product protects (β = −0.5), payroll (−0.4) and mobile banking
    (−0.3) protect beyond the count, fund SIP and third-party custody do not (0).  The small
    demo has the power for the count and mobile banking (interval below 1); payroll's point
    estimate is below 1 (the truth's three seeds recover every β: tests/test_truth.py)."""
    from crmresearch.analyses.product_coverage import sticky_products

    r = sticky_products(load_source(small_demo))
    t = r.table.set_index("term")
    assert list(r.table.columns) == ["term", "hr", "lower", "upper", "p", "note"]
    assert list(t.index) == ["n_products", "holds_mobile_banking", "holds_fund_sip", "holds_payroll",
                             "holds_third_party_custody"]  # fmt: skip
    assert (t["lower"] < t["hr"]).all() and (t["hr"] < t["upper"]).all()
    assert t.loc["n_products", "upper"] < 1 and t.loc["holds_mobile_banking", "upper"] < 1
    assert t.loc["holds_payroll", "hr"] < 1
    # the model adjusts for the causes model's covariates, and the table matches it
    hr = r.model.hazard_ratios().set_index("term")
    assert {"rm_turnover_exposed", "complaint_escalated_90d", "dormant"} <= set(hr.index)
    assert any(i.startswith("tier[") for i in hr.index) and any(i.startswith("segment[") for i in hr.index)
    pd.testing.assert_frame_equal(t[["hr", "lower", "upper", "p"]], hr.loc[t.index, ["hr", "lower", "upper", "p"]])
    # plain words, as associations
    pct = round(100 * (1 - t.loc["holds_mobile_banking", "hr"]))
    assert t.loc["holds_mobile_banking", "note"].startswith(
        f"holding mobile banking is associated with {pct}% lower churn hazard, beyond the number of products "
        f"(hazard ratio {t.loc['holds_mobile_banking', 'hr']:.2f}, 95% interval ")
    assert t.loc["n_products", "note"].startswith("each additional product is associated with ")
    assert r.holders["used"].all() and (r.holders["holders"] >= 10).all()
    assert any("Associations, not effects" in c for c in r.caveats)


@pytest.fixture
def sticky_source(tmp_path: Path):
    """Two branches of 40 customers; sticky holders per branch (B1 / B2): mobile banking 3 / 0,
    fund SIP 0 / 0, payroll 15 / 12, third-party custody 10 / 2."""
    rng = np.random.default_rng(5)
    pd.DataFrame({"as_of": ["2024-12-31"], "observation_start": ["2023-01-01"]}).to_csv(tmp_path / "extract.csv", index=False)
    pd.DataFrame({"branch_id": ["B1", "B2"], "branch_name": ["一支行", "二支行"]}).to_csv(tmp_path / "branches.csv", index=False)
    base = pd.Timestamp("2023-01-01")
    cust, hold = [], []
    counts = {"B1": {"mobile_banking": 3, "payroll": 15, "third_party_custody": 10},
              "B2": {"payroll": 12, "third_party_custody": 2}}  # fmt: skip
    for b, n_by_product in counts.items():
        ids = [f"{b}-{i:02d}" for i in range(40)]
        for i, cid in enumerate(ids):
            opened = base + pd.Timedelta(days=int(rng.integers(0, 300)))
            churn = opened + pd.Timedelta(days=int(rng.integers(20, 600)))
            churned = churn <= pd.Timestamp("2024-12-31") and rng.random() < 0.6
            cust.append((cid, b, opened.date(), churn.date() if churned else None, "transfer" if churned else None))
            hold.append((cid, "current_account", opened.date(), None))
            if i % 3 == 0:
                hold.append((cid, "credit_card", opened.date(), None))
        for product, n in n_by_product.items():
            for cid in rng.choice(ids, n, replace=False):
                opened = next(c[2] for c in cust if c[0] == cid)
                hold.append((cid, product, opened + pd.Timedelta(days=int(rng.integers(0, 15))), None))
    c = pd.DataFrame(cust, columns=["customer_id", "branch_id", "open_date", "churn_date", "churn_type"])
    c.to_csv(tmp_path / "customers.csv", index=False)
    h = pd.DataFrame(hold, columns=["customer_id", "product", "start_date", "end_date"])
    # no holding may start after the customer's churn
    h = h.merge(c[["customer_id", "churn_date"]], on="customer_id")
    h = h[h["churn_date"].isna() | (pd.to_datetime(h["start_date"]) <= pd.to_datetime(h["churn_date"]))]
    h.drop(columns="churn_date").to_csv(tmp_path / "product_holdings.csv", index=False)
    return load_source(tmp_path)


def test_sticky_products_held_by_fewer_than_10_are_left_out(sticky_source) -> None:
    from crmresearch.analyses.product_coverage import sticky_products

    r = sticky_products(sticky_source)
    h = r.holders.set_index("product")
    assert h["holders"].to_dict() == {"mobile_banking": 3, "fund_sip": 0, "payroll": 27, "third_party_custody": 12}
    assert h["used"].to_dict() == {"mobile_banking": False, "fund_sip": False, "payroll": True,
                                   "third_party_custody": True}  # fmt: skip
    assert list(r.table["term"]) == ["n_products", "holds_payroll", "holds_third_party_custody"]
    assert list(r.model.params_.index) == ["n_products", "holds_payroll", "holds_third_party_custody"]
    assert "mobile banking is left out: held by fewer than 10 customers." in r.caveats
    assert "fund SIP is left out: held by fewer than 10 customers." in r.caveats
    # per branch: B1 keeps custody (10 holders: not fewer than 10), B2 does not (2)
    b1 = sticky_products(sticky_source, branch="B1")
    assert list(b1.table["term"]) == ["n_products", "holds_payroll", "holds_third_party_custody"]
    assert b1.holders.set_index("product").loc["third_party_custody", "holders"] == 10
    b2 = sticky_products(sticky_source, branch="B2")
    assert list(b2.table["term"]) == ["n_products", "holds_payroll"]
    assert "third-party custody is left out: held by fewer than 10 customers." in b2.caveats
    # the threshold is the minimum cell size
    from crmresearch import load_params

    r3 = sticky_products(sticky_source, load_params(overrides={"min_cell_size": 3}))
    assert "holds_mobile_banking" in set(r3.table["term"]) and "holds_fund_sip" not in set(r3.table["term"])
    with pytest.raises(InputError, match="unknown branch 'B9'"):
        sticky_products(sticky_source, branch="B9")


def test_sticky_products_need_product_holdings(hand_source, tmp_path: Path) -> None:
    from crmresearch.analyses.product_coverage import sticky_products

    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("extract.csv", "branches.csv", "customers.csv"):
        (bare / f).write_bytes((hand_source.path / f).read_bytes())
    with pytest.raises(InputError, match="sticky products need the product_holdings table, which the source .* "
                                         "does not supply"):  # fmt: skip
        sticky_products(load_source(bare))


def test_sticky_products_refuse_a_flat_extract(tmp_path: Path) -> None:
    import yaml

    from crmresearch.analyses.product_coverage import sticky_products
    from crmresearch.data.flat import import_flat

    (tmp_path / "in.csv").write_text("id,t,c,n\n1,3,1,1\n2,5,0,2\n3,8,0,3\n4,1,1,1\n", encoding="utf-8")
    mapping = {"customer_id": "id", "tenure": {"column": "t", "unit": "months"},
               "churned": {"column": "c", "true_values": [1], "false_values": [0]},
               "branch": {"id": "ALL", "name": "All"}, "n_products": {"column": "n"}}  # fmt: skip
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(mapping), encoding="utf-8")
    src = load_source(import_flat(tmp_path / "in.csv", tmp_path / "map.yaml", tmp_path / "out"))
    with pytest.raises(InputError, match="sticky products cannot run on the flat extract .*no product_holdings"):
        sticky_products(src)


def test_cumulative_incidence_takes_tied_days_as_they_are() -> None:
    """Aalen–Johansen by hand on ties of different churn types on the same day.

    Ten customers: day 10 has a transfer, a natural churn and a censoring; day 20
    two transfers; day 30 one 'other' churn; the rest are censored at 40.
    Overall survival before day 10 is 1, n = 10: F_transfer(10) = 1/10,
    F_natural(10) = 1/10; S(10) = 8/10, n(20) = 7: F_transfer(20) = 0.1 + 0.8 * 2/7;
    S(20) = 0.8 * 5/7, n(30) = 5, the 'other' churn competes: F's are unchanged.
    """
    from crmresearch.analyses.product_coverage import CoverageResult, cumulative_incidence

    days = [10, 10, 10, 20, 20, 30, 40, 40, 40, 40]
    event = [1, 1, 0, 1, 1, 1, 0, 0, 0, 0]
    kind = ["transfer", "natural", None, "transfer", "transfer", "other", None, None, None, None]
    data = pd.DataFrame({"customer_id": [f"C{i}" for i in range(10)], "n_products": 1,
                         "duration": np.array(days, float), "event": event})
    data["group"] = pd.Categorical(["1"] * 10, categories=["1", "2"])
    res = CoverageResult(None, 40.0, data)
    cif = cumulative_incidence(res, pd.Series(kind, index=data["customer_id"])).set_index("cause")
    assert list(cif["group"]) == ["1", "1"]  # the empty group "2" is left out
    assert cif.loc["transfer", "cif"] == pytest.approx(0.1 + 0.8 * 2 / 7, abs=1e-12)
    assert cif.loc["natural", "cif"] == pytest.approx(0.1, abs=1e-12)
    for c in ("transfer", "natural"):
        assert 0 < cif.loc[c, "lower"] < cif.loc[c, "cif"] < cif.loc[c, "upper"] < 1


def test_cumulative_incidence_interval_covers_the_truth() -> None:
    """Seeded: two exponential causes (hazards 0.002, 0.001 per day), uniform censoring;
    the true incidence of cause 1 at 365 days is 2/3 * (1 - exp(-0.003 * 365)); the 95%
    interval covers it in about 95% of 200 draws (binomial tolerance)."""
    from crmresearch.analyses.product_coverage import CoverageResult, cumulative_incidence

    rng = np.random.default_rng(7)
    truth = 2 / 3 * (1 - np.exp(-0.003 * 365))
    hits = 0
    for _ in range(200):
        n = 400
        t1, t2 = rng.exponential(1 / 0.002, n), rng.exponential(1 / 0.001, n)
        cens = rng.uniform(100, 900, n)
        t = np.ceil(np.minimum.reduce([t1, t2, cens]))  # whole days: many ties
        ev = np.where(cens <= np.minimum(t1, t2), 0, 1)
        kind = np.where(t1 < t2, "transfer", "natural")
        data = pd.DataFrame({"customer_id": np.arange(n).astype(str), "n_products": 1, "duration": t, "event": ev})
        data["group"] = pd.Categorical(["1"] * n)
        cif = cumulative_incidence(CoverageResult(None, 365.0, data),
                                   pd.Series(kind, index=data["customer_id"])).set_index("cause")
        hits += int(cif.loc["transfer", "lower"] <= truth <= cif.loc["transfer", "upper"])
    # 95% coverage: 190 of 200 expected, sd ~3.1; below 180 would mean a wrong interval
    assert 180 <= hits <= 200
