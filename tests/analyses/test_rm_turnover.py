from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmresearch import load_source
from crmresearch.analyses.rm_turnover import (
    choose_distinct,
    orphaned_churn_rates,
    orphaned_customers,
    rm_exits,
    tenure_band,
    turnover_churn_comparison,
)
from crmresearch.core.errors import InputError
from crmresearch.core.params import Params
from crmresearch.survival.episodes import customer_table

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


# ---- churn after the RM's exit versus matched customers whose RM stayed; orphaned customers


def _write(tmp: Path, **tables: pd.DataFrame) -> Path:
    for name, df in tables.items():
        df.to_csv(tmp / f"{name}.csv", index=False)
    return tmp


@pytest.fixture
def matched_source(tmp_path: Path):
    """R1 (B1) leaves on 2024-03-31 with e1..e3; c1..c4 are the only comparable customers that day.

    Days after the exit: e1 churns on day 31, e2 on day 123; c1 on day 15, c2 on day 150; c3's RM
    (R4) leaves on day 137, censoring c3 (its churn on day 154 does not count).  Not comparable:
    x1 (branch B2), x2 (tier mass), x3 (opened 2024-02-15: tenure 0-3m), x4 (no RM), x5 (its RM R5
    left on 2024-01-05: still exposed on 04-01), x6 (churned on the exit day); e4 churned before
    the exit, so it is not exposed.
    """
    ids = ["e1", "e2", "e3", "e4", "c1", "c2", "c3", "c4", "x1", "x2", "x3", "x4", "x5", "x6"]
    churn = {"e1": "2024-05-01", "e2": "2024-08-01", "e4": "2024-03-20", "c1": "2024-04-15", "c2": "2024-08-28",
             "c3": "2024-09-01", "x1": "2024-04-10", "x2": "2024-04-10", "x3": "2024-04-10", "x4": "2024-04-10",
             "x5": "2024-04-10", "x6": "2024-03-31"}  # fmt: skip
    customers = pd.DataFrame({"customer_id": ids, "branch_id": ["B2" if i == "x1" else "B1" for i in ids],
                              "open_date": ["2024-02-15" if i == "x3" else "2023-06-01" for i in ids],
                              "churn_date": [churn.get(i) for i in ids],
                              "churn_type": ["transfer" if i in churn else None for i in ids]})  # fmt: skip
    rms = pd.DataFrame({"rm_id": ["R1", "R2", "R3", "R4", "R5"], "branch_id": ["B1", "B1", "B2", "B1", "B1"],
                        "hire_date": "2020-01-01",
                        "exit_date": ["2024-03-31", None, None, "2024-08-15", "2024-01-05"],
                        "exit_type": ["resigned", None, None, "transferred", "dismissed"]})  # fmt: skip
    a = [("e1", "R1", "2023-06-01", "2024-03-31"), ("e2", "R1", "2023-06-01", "2024-03-31"),
         ("e3", "R1", "2023-06-01", "2024-03-31"), ("e4", "R1", "2023-06-01", "2024-03-20"),
         ("e2", "R2", "2024-04-10", None), ("e3", "R2", "2024-05-01", None),
         ("c1", "R2", "2023-06-01", None), ("c2", "R2", "2023-06-01", None), ("c3", "R4", "2023-06-01", "2024-08-15"),
         ("c4", "R2", "2023-06-01", None), ("x1", "R3", "2023-06-01", None), ("x2", "R2", "2023-06-01", None),
         ("x3", "R2", "2024-02-15", None), ("x5", "R5", "2023-06-01", "2024-01-05"), ("x5", "R2", "2024-01-20", None),
         ("x6", "R2", "2023-06-01", None)]  # fmt: skip
    assignments = pd.DataFrame(a, columns=["customer_id", "rm_id", "start_date", "end_date"])
    # February's balances give the tier on 2024-03-31: potential (30,000), x2 mass (5,000)
    balances = pd.DataFrame({"customer_id": ids, "month": "2024-02", "aum": [5000.0 if i == "x2" else 30000.0 for i in ids],
                             "txn_count": 3})  # fmt: skip
    extract = pd.DataFrame({"as_of": ["2024-12-31"], "observation_start": ["2024-01-10"]})
    branches = pd.DataFrame({"branch_id": ["B1", "B2"], "branch_name": ["一支行", "二支行"]})
    return load_source(_write(tmp_path, extract=extract, branches=branches, customers=customers,
                              relationship_managers=rms, rm_assignments=assignments, monthly_balances=balances))  # fmt: skip


def test_tenure_bands() -> None:
    # months are 30.4375 days: 3 months = 91.3 days, 12 = 365.25, 36 = 1095.75
    assert tenure_band(pd.Series([1, 91, 92, 365, 366, 1095, 1096, 5000])).tolist() == [
        "0-3m", "0-3m", "3-12m", "3-12m", "1-3y", "1-3y", "3y+", "3y+"]  # fmt: skip


def test_choose_distinct_draws_every_subset_equally_often() -> None:
    # the controls of every exposed customer at once: distinct positions in range, ascending, min(k, n) of
    # them, and each of the C(6, 3) = 20 subsets of a 6-row key equally likely (seeded chi-square)
    rng = np.random.default_rng(7)
    n = np.array([6] * 40_000 + [2, 0, 1, 3])
    out = choose_distinct(rng, n, 3)
    valid = out < n[:, None]
    assert (valid.sum(axis=1) == np.minimum(3, n)).all()
    assert np.where(valid[:, 1:], np.diff(out, axis=1) > 0, True).all()
    assert out[-4:][valid[-4:]].tolist() == [0, 1, 0, 0, 1, 2]
    subsets = pd.Series([tuple(r) for r in out[:40_000]]).value_counts()
    assert len(subsets) == 20
    expected = 40_000 / 20
    chi2 = float((((subsets - expected) ** 2) / expected).sum())
    assert chi2 < 43.8  # the 99.9% point of chi-square with 19 degrees of freedom
    assert choose_distinct(rng, np.array([], dtype=int), 3).shape == (0, 3)


def test_matched_comparison_by_hand(matched_source) -> None:
    res = turnover_churn_comparison(matched_source, Params(min_cell_size=1), month="2024-12")
    # exits in the 12 months ending 180 days before 2024-12-31, from the observation start
    assert (res.cohort_from, res.cohort_to) == (pd.Timestamp("2024-01-10"), pd.Timestamp("2024-07-04"))
    s = res.sets
    assert sorted(s.loc[s["role"] == "exposed", "customer_id"]) == ["e1", "e2", "e3"]
    assert res.unmatched.empty
    ctl = s[s["role"] == "control"]
    assert len(ctl) == 12 and set(ctl["customer_id"]) == {"c1", "c2", "c3", "c4"}  # all 4, in each of 3 sets
    assert (ctl["weight"] == 0.25).all() and set(s["tier"]) == {"potential"} and set(s["tenure_band"]) == {"3-12m"}
    assert ctl.set_index("customer_id")["censor_day"].groupby(level=0).first().to_dict() == pytest.approx(
        {"c1": np.nan, "c2": np.nan, "c3": 137.0, "c4": np.nan}, nan_ok=True)  # fmt: skip
    assert res.summary["exit_type"].tolist() == ["all", "all", "resigned", "resigned"]
    r = res.summary.set_index(["exit_type", "horizon_days"])
    assert r.loc[("all", 90)].equals(r.loc[("resigned", 90)])
    h90, h180 = r.loc[("all", 90)], r.loc[("all", 180)]
    assert [h90["exposed"], h90["exposed_churned"], h90["controls"], h90["controls_churned"],
            h90["controls_censored"], h90["exiting_rms"]] == [3, 1, 12, 3, 0, 1]  # fmt: skip
    assert h90["exposed_churn"] == pytest.approx(1 / 3) and h90["controls_churn"] == pytest.approx(1 / 4)
    assert h90["risk_difference"] == pytest.approx(1 / 12) and h90["risk_ratio"] == pytest.approx(4 / 3)
    # 180 days: Kaplan–Meier for the controls (c3 censored on day 137): S = 3/4 * 1/2, not 2/4 churned
    assert [h180["exposed_churned"], h180["controls_churned"], h180["controls_censored"]] == [2, 6, 3]
    assert h180["exposed_churn"] == pytest.approx(2 / 3) and h180["controls_churn"] == pytest.approx(5 / 8)
    assert h180["risk_difference"] == pytest.approx(2 / 3 - 5 / 8)
    assert h180["risk_ratio"] == pytest.approx(16 / 15)
    # one exiting RM: no interval clustered by RM
    assert r[["exposed_lower", "rd_lower", "rr_lower", "rr_upper"]].isna().all().all()
    assert any("too few for an interval" in c for c in res.caveats)
    assert res.curves["exposed"].iloc[-1] == pytest.approx(2 / 3)
    assert "RM exits 2024-01-10 to 2024-07-04" in res._repr_html_()


def test_matched_comparison_small_cells_counts_only(matched_source) -> None:
    res = turnover_churn_comparison(matched_source, month="2024-12")  # min_cell_size 10 > 3 exposed
    s = res.summary
    assert s["exposed"].tolist() == [3, 3, 3, 3] and s["exposed_churned"].tolist() == [1, 2, 1, 2]
    assert s[["risk_difference", "risk_ratio", "rr_lower", "exposed_lower"]].isna().all().all()
    assert any("Fewer than 10" in c for c in res.caveats)


def test_matched_comparison_is_seeded(matched_source) -> None:
    p = Params(min_cell_size=1)
    runs = [turnover_churn_comparison(matched_source, p, month="2024-12", seed=s, controls_per_exposed=2)
            for s in (3, 3, 4, 5, 6, 7)]  # fmt: skip
    pd.testing.assert_frame_equal(runs[0].summary, runs[1].summary)
    pd.testing.assert_frame_equal(runs[0].sets, runs[1].sets)
    ctl = runs[0].sets[runs[0].sets["role"] == "control"]
    assert len(ctl) == 6 and set(ctl["customer_id"]) <= {"c1", "c2", "c3", "c4"} and (ctl["weight"] == 0.5).all()
    assert ctl.groupby("set_id")["customer_id"].nunique().eq(2).all()  # without replacement within a set
    picks = {tuple(r.sets.loc[r.sets["role"] == "control", "customer_id"]) for r in runs}
    assert len(picks) > 1  # the seed matters


def test_matched_comparison_window_checks(matched_source) -> None:
    with pytest.raises(InputError, match="fully observed"):
        turnover_churn_comparison(matched_source, month="2024-06")
    res = turnover_churn_comparison(matched_source, month="2024-12", horizons=(30,))
    assert res.cohort_to == pd.Timestamp("2024-12-01")  # R4's exit (08-15) enters the cohort
    assert set(res.sets.loc[res.sets["role"] == "exposed", "rm_id"]) == {"R1", "R4"}


def test_orphaned_customers_by_hand(matched_source) -> None:
    # in March 2024 only R1 left: e1..e3 orphaned (e4 had left); nobody handed over by 03-31
    m = orphaned_customers(matched_source, month="2024-03").set_index(["period", "exit_type"])
    assert m.loc[("month", "all"), ["rms", "customers_orphaned", "with_new_rm", "still_orphaned"]].tolist() == [1, 3, 0, 3]
    # by year end: x5 (R5, gap 15), e1 (churned on day 31 while orphaned), e2 (gap 10), e3 (gap 31),
    # c3 (R4, churned on day 17 while orphaned).  Kaplan–Meier of the gap: S = 4/5, 3/5, then 3/10 on day 31.
    y = orphaned_customers(matched_source, month="2024-12").set_index(["period", "exit_type"])
    row = y.loc[("last_12_months", "all")]
    assert [row["rms"], row["customers_orphaned"], row["with_new_rm"], row["churned_while_orphaned"],
            row["still_orphaned"]] == [3, 5, 3, 2, 0]  # fmt: skip
    assert row["median_gap_days"] == 31 and np.isnan(row["p75_gap_days"])
    assert y.loc[("last_12_months", "resigned"), "customers_orphaned"] == 3
    assert y.loc[("month", "all"), "customers_orphaned"] == 0
    assert orphaned_customers(matched_source, month="2024-12", branch="B2")["customers_orphaned"].sum() == 0


def _clustered_source(tmp: Path) -> Path:
    """Six RMs leave on 2024-03-31 with 5 customers each; all of R1's and R2's customers churn on day 20."""
    cust, assign = [], []
    for r in range(1, 7):
        for j in range(5):
            cid = f"r{r}c{j}"
            cust.append((cid, "2024-04-20" if r <= 2 else None))
            assign.append((cid, f"R{r}", "2023-06-01", "2024-03-31"))
    for j in range(40):  # customers of an RM who stays; 4 churn on day 31
        cid = f"s{j:02d}"
        cust.append((cid, "2024-05-01" if j < 4 else None))
        assign.append((cid, "S", "2023-06-01", None))
    customers = pd.DataFrame(cust, columns=["customer_id", "churn_date"]).assign(
        branch_id="B1", open_date="2023-06-01")  # fmt: skip
    customers["churn_type"] = customers["churn_date"].map(lambda d: None if d is None else "transfer")
    rms = pd.DataFrame({"rm_id": [*(f"R{r}" for r in range(1, 7)), "S"], "branch_id": "B1", "hire_date": "2020-01-01",
                        "exit_date": [*["2024-03-31"] * 6, None], "exit_type": [*["resigned"] * 6, None]})  # fmt: skip
    return _write(tmp, extract=pd.DataFrame({"as_of": ["2024-12-31"], "observation_start": ["2024-01-01"]}),
                  branches=pd.DataFrame({"branch_id": ["B1"], "branch_name": ["一支行"]}), customers=customers,
                  relationship_managers=rms,
                  rm_assignments=pd.DataFrame(assign, columns=["customer_id", "rm_id", "start_date", "end_date"]))  # fmt: skip


def test_interval_clustered_by_rm_is_wider_than_binomial(tmp_path: Path) -> None:
    from statsmodels.stats.proportion import proportion_confint

    res = turnover_churn_comparison(load_source(_clustered_source(tmp_path)), month="2024-12")
    r = res.summary.set_index(["exit_type", "horizon_days"]).loc[("all", 90)]
    assert [r["exposed"], r["exposed_churned"], r["exiting_rms"], r["controls"]] == [30, 10, 6, 120]
    assert r["exposed_churn"] == pytest.approx(1 / 3)
    assert r["controls_churn"] == pytest.approx(r["controls_churned"] / 120)  # no censoring, equal weights
    lo, hi = proportion_confint(10, 30, method="wilson")  # as if the 30 customers were independent
    assert r["exposed_upper"] - r["exposed_lower"] > 1.5 * (hi - lo)
    assert r["exposed_lower"] <= 1 / 3 <= r["exposed_upper"]
    assert r["rr_lower"] < r["risk_ratio"] < r["rr_upper"]
    assert any("rough" in c for c in res.caveats)  # 6 RMs: an interval, with a caveat


def test_demo_exposed_churn_more_than_matched(small_demo: Path) -> None:
    """The demo's truth: exposure log-HR 0.7 and orphaned effects, so the exposed churn more."""
    src = load_source(small_demo)
    res = turnover_churn_comparison(src, month="2026-10")
    r = res.summary.set_index(["exit_type", "horizon_days"])
    h90 = r.loc[("all", 90)]
    assert h90["exposed"] >= 100 and h90["controls"] >= 3 * h90["exposed"]
    assert h90["exposed_churn"] > h90["controls_churn"] and h90["risk_ratio"] > 1
    assert np.isfinite([h90["rr_lower"], h90["rr_upper"], h90["rd_lower"], h90["rd_upper"]]).all()
    assert h90["rr_lower"] < h90["risk_ratio"] < h90["rr_upper"]
    # everything is defined on the exit date: controls' RM had not left, exposed were still customers
    s = res.sets
    assert (s["churn_day"].dropna() > 0).all() and (s.loc[s["role"] == "exposed", "censor_day"].isna()).all()
    orph = orphaned_customers(src, month="2026-10").set_index(["period", "exit_type"])
    year = orph.loc[("last_12_months", "all")]
    assert year["customers_orphaned"] == year["with_new_rm"] + year["churned_while_orphaned"] + year["still_orphaned"]
    assert year["rms"] <= rm_exits(src, month="2026-10").set_index("exit_type").loc["all", "last_12_months"]
