"""Monthly KPIs against hand-computed values on a hand-made source (exact equality)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmresearch import load_params, load_source
from crmresearch.analyses.kpis import (
    BREAKDOWNS,
    _traffic_light,
    churn_breakdown,
    kpi_comparison,
    kpi_trend,
    monthly_kpis,
)
from crmresearch.core.errors import InputError

CUSTOMERS = [  # id, branch, open, churn
    ("c1", "B1", "2023-01-10", "2024-03-01"),  # churned on the month's first day
    ("c2", "B1", "2023-05-05", "2024-03-31"),  # churned on its last day; high-value
    ("c3", "B1", "2024-03-05", "2024-03-20"),  # opened and churned in the month
    ("c4", "B1", "2024-02-29", None),          # active, high-value
    ("c5", "B1", "2023-01-01", "2024-02-29"),  # churned before the month
    ("c6", "B2", "2023-06-01", None),          # the branch with no churn
    ("c7", "B1", "2024-03-01", None),          # opened on the month's first day: not active at start
    ("c8", "B1", "2024-04-02", None),          # opened after the month
]  # fmt: skip
BALANCES = [  # id, month, aum, avg_daily_aum
    ("c1", "2023-12", 300_000, 300_000), ("c1", "2024-01", 100_000, 100_000), ("c1", "2024-02", 50_000, 50_000),
    ("c2", "2024-01", 260_000, 260_000), ("c2", "2024-02", 240_000, 250_000), ("c2", "2024-03", 1_000, 1_000),
    ("c2", "2022-12", 9_999_999, 9_999_999),  # more than 12 months before the churn month: ignored
    ("c4", "2024-02", 1_900_000, 2_000_000), ("c6", "2024-02", 10_000, 10_000),
    ("c5", "2024-01", 70_000, 70_000),
]  # fmt: skip
# the rich source adds two B2 customers and the optional columns (segment, channel, churn_reason)
RICH_CUSTOMERS = [  # id, branch, open, churn, churn_type, churn_reason, segment, channel
    ("c1", "B1", "2023-01-10", "2024-03-01", "transfer", "rate", "salaried", "walk_in"),
    # c2: key at the month's start (February), mass in its churn month
    ("c2", "B1", "2023-05-05", "2024-03-31", "transfer", "rm_left", "executive", None),
    ("c3", "B1", "2024-03-05", "2024-03-20", None, None, "salaried", "outreach"),
    ("c4", "B1", "2024-02-29", None, None, None, "executive", "existing"),
    ("c5", "B1", "2023-01-01", "2024-02-29", "transfer", "service", "homemaker", "walk_in"),
    ("c6", "B2", "2023-06-01", None, None, None, None, "walk_in"),
    # c7: new in March and staying: its segment gets no row
    ("c7", "B1", "2024-03-01", None, None, None, "affluent_retiree", "outreach"),
    ("c8", "B1", "2024-04-02", None, None, None, None, None),
    # AUM falls from 500k to 50k in 2023-12 and stays there: an asset attrition dated 2023-12-31,
    # confirmed (k = 3) at the end of 2024-02; its recorded exit (2024-04-15) comes later
    ("cA", "B2", "2023-03-01", "2024-04-15", "natural", "emigration", "business_owner", "existing"),
    ("cR", "B2", "2023-04-01", "2024-03-15", "natural", "relocation", None, "walk_in"),
]  # fmt: skip
RICH_BALANCES = [
    *BALANCES,
    *((("cA", m, 500_000, 500_000)) for m in ("2023-09", "2023-10", "2023-11")),
    *((("cA", m, 50_000, 50_000)) for m in ("2023-12", "2024-01", "2024-02", "2024-03")),
    ("cR", "2024-02", 30_000, 30_000),
]
ATTRITION = {"churn.definition": "asset_attrition"}


def _write(path: Path, rich: bool = False, balances: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    extract = pd.DataFrame({"as_of": ["2024-04-30"], "observation_start": ["2023-01-01"]})
    extract.to_csv(path / "extract.csv", index=False)
    branches = pd.DataFrame({"branch_id": ["B1", "B2"], "branch_name": ["一支行", "二支行"]})
    branches.to_csv(path / "branches.csv", index=False)
    if rich:
        df = pd.DataFrame(RICH_CUSTOMERS, columns=["customer_id", "branch_id", "open_date", "churn_date",
                                                   "churn_type", "churn_reason", "segment", "channel"])  # fmt: skip
    else:
        df = pd.DataFrame(CUSTOMERS, columns=["customer_id", "branch_id", "open_date", "churn_date"])
        df["churn_type"] = np.where(df["churn_date"].notna(), "transfer", None)
    df.to_csv(path / "customers.csv", index=False)
    if balances:
        cols = ["customer_id", "month", "aum", "avg_daily_aum"]
        b = pd.DataFrame(RICH_BALANCES if rich else BALANCES, columns=cols)
        b["txn_count"] = 3
        b.to_csv(path / "monthly_balances.csv", index=False)
    return path


@pytest.fixture
def source(tmp_path: Path):
    return load_source(_write(tmp_path))


@pytest.fixture
def rich(tmp_path: Path):
    return load_source(_write(tmp_path, rich=True))


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


# --- the 13-month trend --------------------------------------------------------------------------


def _series(t: pd.DataFrame, scope: str, customers: str = "all",
            cols: tuple = ("active_at_start", "churned_in_month")) -> dict:  # fmt: skip
    part = t[(t.scope == scope) & (t.customers == customers)]
    return {r["month"]: tuple(r[c] for c in cols) for _, r in part.iterrows()}


def test_trend_hand_computed(rich) -> None:
    t = kpi_trend(rich, month="2024-03", months=4)
    assert list(t.columns) == ["scope", "customers", "month", "active_at_start", "churned_in_month",
                               "monthly_churn_rate", "aum_lost", "aum_drained", "provisional"]  # fmt: skip
    cols = ("active_at_start", "churned_in_month", "aum_lost", "aum_drained")
    assert _series(t, "B1", cols=cols) == {
        "2023-12": (3, 0, 0, 0), "2024-01": (3, 0, 0, 0),  # c1 c2 c5 active
        "2024-02": (3, 1, 70_000, 70_000),  # c5 left on 29 February; January's 70k
        "2024-03": (3, 3, 290_000, 560_000),  # as in test_hand_computed_month
    }  # fmt: skip
    assert _series(t, "B2") == {"2023-12": (3, 0), "2024-01": (3, 0), "2024-02": (3, 0), "2024-03": (3, 1)}
    assert _series(t, "bank", cols=("active_at_start", "churned_in_month", "monthly_churn_rate")) == {
        "2023-12": (6, 0, 0.0), "2024-01": (6, 0, 0.0),
        "2024-02": (6, 1, 1 / 6), "2024-03": (6, 4, 4 / 6),
    }  # fmt: skip
    # high value: the tier of the month before (November: cA key; December: c1 key; January, February: c2 key)
    assert _series(t, "B1", "high_value") == {
        "2023-12": (0, 0), "2024-01": (1, 0), "2024-02": (1, 0), "2024-03": (2, 1)}  # fmt: skip
    assert _series(t, "B2", "high_value") == {
        "2023-12": (1, 0), "2024-01": (0, 0), "2024-02": (0, 0), "2024-03": (0, 0)}  # fmt: skip
    assert not t["provisional"].any()
    # the last month is the headline
    last = t[t.month == "2024-03"].drop(columns="provisional").reset_index(drop=True)
    pd.testing.assert_frame_equal(last, monthly_kpis(rich, month="2024-03"))


def test_trend_skips_months_before_the_data(source) -> None:
    t = kpi_trend(source, month="2023-02", months=3)  # 2022-12 ends before the observation start
    assert sorted(t.month.unique()) == ["2023-01", "2023-02"]
    assert _series(t, "B1") == {"2023-01": (0, 0), "2023-02": (2, 0)}
    assert np.isnan(_series(t, "bank", cols=("monthly_churn_rate",))["2023-01"][0])
    assert set(kpi_trend(source, month="2024-03", branch="B2").scope) == {"B2", "bank"}
    with pytest.raises(InputError, match="outside the data"):
        kpi_trend(source, month="2024-05")
    with pytest.raises(InputError, match="at least 1"):
        kpi_trend(source, month="2024-03", months=0)


def test_trend_as_known_at_the_report_months_end(rich) -> None:
    params = load_params(overrides=ATTRITION)
    # reported in February: cA's attrition (dated 2023-12-31) is confirmed at February's end
    t = kpi_trend(rich, params, month="2024-02", months=3)
    cols = ("active_at_start", "churned_in_month", "aum_lost", "provisional")
    assert _series(t, "B2", cols=cols) == {"2023-12": (3, 1, 500_000, False),  # November's 500k
                                           "2024-01": (2, 0, 0, True), "2024-02": (2, 0, 0, True)}  # fmt: skip
    assert _series(t, "B1", cols=cols)["2024-02"] == (3, 1, 70_000, True)
    assert _series(t, "B2", "high_value", cols=cols)["2023-12"] == (1, 1, 500_000, False)
    # reported in January, nothing after January's end is read: the attrition is not known yet
    early = kpi_trend(rich, params, month="2024-01", months=2)
    assert _series(early, "B2", cols=cols) == {"2023-12": (3, 0, 0, True), "2024-01": (3, 0, 0, True)}
    # the report month's row is its headline
    last = t[t.month == "2024-02"].drop(columns="provisional").reset_index(drop=True)
    pd.testing.assert_frame_equal(last, monthly_kpis(rich, params, month="2024-02"))
    # k = 1: confirmed in its own month, nothing provisional
    k1 = load_params(overrides={**ATTRITION, "churn.asset_attrition.months": 1})
    assert not kpi_trend(rich, k1, month="2024-02", months=3)["provisional"].any()


# --- comparisons and traffic lights --------------------------------------------------------------


def _cmp(c: pd.DataFrame, kpi: str, against: str, scope: str = "B1", customers: str = "all") -> dict:
    hit = (c.scope == scope) & (c.customers == customers) & (c.kpi == kpi) & (c.against == against)
    assert hit.sum() == 1
    return c[hit].iloc[0].to_dict()


def test_comparison_hand_computed(rich) -> None:
    c = kpi_comparison(rich, month="2024-03", branch="B1")
    assert set(c.scope) == {"B1", "bank"} and len(c) == 2 * 2 * 5 * 3
    rate = _cmp(c, "monthly_churn_rate", "previous_month")
    assert (rate["month"], rate["reference_month"]) == ("2024-03", "2024-02")
    assert (rate["value"], rate["reference"]) == (1.0, 1 / 3)
    assert rate["difference"] == pytest.approx(2 / 3) and rate["difference_pp"] == pytest.approx(200 / 3)
    # 3 churners of 3: the 95% Poisson interval of the rate is 0.206-2.92
    assert rate["status"] == "same"
    ly = _cmp(c, "monthly_churn_rate", "same_month_last_year")  # March 2023: c1, c5 active, nobody left
    assert (ly["reference_month"], ly["reference"]) == ("2023-03", 0.0)
    assert (ly["difference_pp"], ly["status"]) == (100.0, "worse")
    bank = _cmp(c, "monthly_churn_rate", "bank")
    assert (bank["reference"], bank["status"]) == (4 / 6, "same")
    n = _cmp(c, "churned_in_month", "previous_month")
    assert (n["value"], n["reference"], n["difference"], n["status"]) == (3, 1, 2, "same")
    assert _cmp(c, "churned_in_month", "same_month_last_year")["status"] == "worse"
    nb = _cmp(c, "churned_in_month", "bank")
    # counts are not judged against the bank
    assert (nb["reference"], nb["difference"], nb["status"]) == (4, -1, "n/a")
    lost = _cmp(c, "aum_lost", "previous_month")
    assert (lost["value"], lost["reference"], lost["difference"]) == (290_000, 70_000, 220_000)
    assert lost["status"] == "same"  # within 1.96 * sqrt(50k² + 240k² + 70k²) = 499.7k
    assert np.isnan(lost["difference_pp"])
    assert _cmp(c, "active_at_start", "previous_month")["status"] == "n/a"
    # February's high value: c2, not churned
    hv = _cmp(c, "aum_drained", "previous_month", customers="high_value")
    assert (hv["value"], hv["reference"]) == (260_000, 0)
    # the bank against itself: no reference
    self_ = _cmp(c, "monthly_churn_rate", "bank", scope="bank")
    assert np.isnan(self_["reference"]) and self_["status"] == "n/a"
    assert not c["provisional"].any()


def test_comparison_before_the_data_is_na(rich) -> None:
    # same month last year, 2022-12, is before the observation start
    c = kpi_comparison(rich, month="2023-12")
    ly = c[c.against == "same_month_last_year"]
    assert ly["reference"].isna().all() and set(ly["status"]) == {"n/a"}
    assert set(ly["reference_month"]) == {"2022-12"}
    prev = _cmp(c, "monthly_churn_rate", "previous_month")  # 0 of 3 in November and December
    assert (prev["value"], prev["reference"], prev["status"]) == (0.0, 0.0, "same")
    # a rate with nobody active is not judged
    hv = _cmp(c, "monthly_churn_rate", "previous_month", customers="high_value")
    assert np.isnan(hv["value"]) and hv["status"] == "n/a"
    # under asset_attrition (k = 3) the report month and the one before are provisional
    p = kpi_comparison(rich, load_params(overrides=ATTRITION), month="2024-03", branch="B2")
    assert p["provisional"].all()
    assert _cmp(p, "churned_in_month", "previous_month", scope="B2")["reference"] == 0


def _frame(**cols) -> pd.DataFrame:
    return pd.DataFrame({k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in cols.items()})


def test_traffic_light_rate_poisson_interval() -> None:
    # 10 churners of 100 active: counts 4.7954-18.3904, the rate 0.047954-0.183904
    refs = [0.0479, 0.0480, 0.18, 0.1840, np.nan]
    cur = _frame(active_at_start=[100] * 5, churned_in_month=[10] * 5, monthly_churn_rate=[0.1] * 5)
    ref = _frame(monthly_churn_rate=refs)
    got = _traffic_light("monthly_churn_rate", "previous_month", cur, ref, 0.05)
    assert list(got) == ["worse", "same", "same", "better", "n/a"]
    assert list(_traffic_light("monthly_churn_rate", "bank", cur, ref, 0.05)) == list(got)
    # counts: 0 churners against 3 is chance (upper end 3.69), against 4 it is better
    cur0 = _frame(active_at_start=[50, 50], churned_in_month=[0, 0])
    ref0 = _frame(churned_in_month=[3, 4])
    assert list(_traffic_light("churned_in_month", "same_month_last_year", cur0, ref0, 0.05)) == ["same", "better"]
    assert list(_traffic_light("churned_in_month", "bank", cur0, ref0, 0.05)) == ["n/a"] * 2
    assert list(_traffic_light("active_at_start", "previous_month", cur0, _frame(active_at_start=[1, 99]),
                               0.05)) == ["n/a"] * 2  # fmt: skip


def test_traffic_light_amounts() -> None:
    # this month: 100 churners of 10 each (1,000; Σx² = 10,000)
    cur = _frame(aum_lost=[1000] * 3, aum_lost_ss=[10_000] * 3)
    # 70 churners (700, Σy² 7,000): tolerance 1.96·√17,000 = 255.6 < 300 → worse
    # 80 churners (800, 8,000): 1.96·√18,000 = 263.0 > 200 → same
    # 130 churners (1,300, 13,000): 1.96·√23,000 = 297.2 < 300 → better
    ref = _frame(aum_lost=[700, 800, 1300], aum_lost_ss=[7_000, 8_000, 13_000])
    assert list(_traffic_light("aum_lost", "previous_month", cur, ref, 0.05)) == ["worse", "same", "better"]
    assert list(_traffic_light("aum_lost", "bank", cur, ref, 0.05)) == ["n/a"] * 3


# --- who left ------------------------------------------------------------------------------------


def _groups(b: pd.DataFrame, scope: str, cols: tuple) -> dict:
    part = b[b.scope == scope]
    return {r["group"]: tuple(r[c] for c in cols) for _, r in part.iterrows()}


RATE_COLS = ("active_at_start", "churned_in_month", "churned_of_active", "aum_lost")


def test_breakdown_by_tier_known_at_month_start(rich) -> None:
    b = churn_breakdown(rich, month="2024-03", by="tier")
    # tiers from February's average daily AUM; c2 is key then (250k) and mass in its churn month (1k);
    # c3 opened in March: no February tier
    tiers = ["mass", "potential", "general", "key", "private", "unknown"]
    assert list(b[b.scope == "bank"]["group"]) == tiers
    assert _groups(b, "bank", RATE_COLS) == {
        "mass": (1, 0, 0, 0), "potential": (1, 1, 1, 30_000), "general": (2, 1, 1, 50_000),
        "key": (1, 1, 1, 240_000), "private": (1, 0, 0, 0), "unknown": (0, 1, 0, 0),
    }  # fmt: skip
    bank = b[b.scope == "bank"].set_index("group")
    assert bank["churn_rate"].tolist() == pytest.approx([0.0, 1.0, 0.5, 1.0, 0.0, np.nan], nan_ok=True)
    assert bank["share_of_churned"].tolist() == [0, 0.25, 0.25, 0.25, 0, 0.25]
    assert bank["share_of_aum_lost"].tolist() == [0, 30 / 320, 50 / 320, 240 / 320, 0, 0]
    assert _groups(b, "B1", ("active_at_start", "churned_in_month")) == {
        "general": (1, 1), "key": (1, 1), "private": (1, 0), "unknown": (0, 1)}  # fmt: skip
    assert set(b.by) == {"tier"} and set(b.month) == {"2024-03"}


def test_breakdown_by_segment_and_channel_with_nulls(rich) -> None:
    seg = churn_breakdown(rich, month="2024-03", by="segment")
    # c3 (salaried) opened in March: a churner, not in the rate's denominator
    assert list(seg[seg.scope == "bank"]["group"]) == ["salaried", "executive", "unknown", "business_owner"]
    assert _groups(seg, "bank", (*RATE_COLS, "churn_rate", "share_of_churned")) == {
        "salaried": (1, 2, 1, 50_000, 1.0, 0.5), "executive": (2, 1, 1, 240_000, 0.5, 0.25),
        "unknown": (2, 1, 1, 30_000, 0.5, 0.25), "business_owner": (1, 0, 0, 0, 0.0, 0.0),
    }  # fmt: skip
    ch = churn_breakdown(rich, month="2024-03", branch="B2", by="channel")
    assert set(ch.scope) == {"B2", "bank"}
    assert _groups(ch, "bank", RATE_COLS) == {
        "walk_in": (3, 2, 2, 80_000), "outreach": (0, 1, 0, 0),
        "unknown": (1, 1, 1, 240_000), "existing": (2, 0, 0, 0),
    }  # fmt: skip
    assert _groups(ch, "B2", RATE_COLS) == {"walk_in": (2, 1, 1, 30_000), "existing": (1, 0, 0, 0)}
    assert np.isnan(ch[(ch.scope == "bank") & (ch.group == "outreach")]["churn_rate"].iloc[0])


def test_breakdown_by_churn_type_and_reason(rich) -> None:
    t = churn_breakdown(rich, month="2024-03", by="churn_type")
    assert "active_at_start" not in t.columns and "churn_rate" not in t.columns  # no denominator
    assert _groups(t, "bank", ("churned_in_month", "share_of_churned", "aum_lost", "share_of_aum_lost")) == {
        "transfer": (2, 0.5, 290_000, 290 / 320),
        "natural": (1, 0.25, 30_000, 30 / 320),
        "unknown": (1, 0.25, 0, 0),
    }
    assert _groups(t, "B2", ("churned_in_month",)) == {"natural": (1,)}
    r = churn_breakdown(rich, month="2024-03", by="reason")
    assert _groups(r, "bank", ("churned_in_month", "aum_lost")) == {
        "rate": (1, 50_000), "relocation": (1, 30_000), "rm_left": (1, 240_000), "unknown": (1, 0)}
    # asset attrition with k = 1: cA's attrition of 2023-12-31 is known at December's end, its recorded
    # exit (natural, emigration; 2024-04-15) is not: a transfer with no known reason
    k1 = load_params(overrides={**ATTRITION, "churn.asset_attrition.months": 1})
    t = churn_breakdown(rich, k1, month="2023-12", by="churn_type")
    got = _groups(t, "bank", ("churned_in_month", "aum_lost", "share_of_aum_lost"))
    assert got == {"transfer": (1, 500_000, 1.0)}
    r = churn_breakdown(rich, k1, month="2023-12", by="reason")
    assert _groups(r, "B2", ("churned_in_month",)) == {"unknown": (1,)}


def test_breakdown_errors(source, tmp_path: Path) -> None:
    for by, col in (("segment", "segment"), ("channel", "channel"), ("reason", "churn_reason")):
        with pytest.raises(InputError, match=rf"needs the column customers\.{col},"):
            churn_breakdown(source, month="2024-03", by=by)
    with pytest.raises(InputError, match="by must be one of"):
        churn_breakdown(source, month="2024-03", by="region")
    bare = load_source(_write(tmp_path / "bare", balances=False))
    with pytest.raises(InputError, match="needs the monthly_balances table"):
        churn_breakdown(bare, month="2024-03", by="tier")
    t = churn_breakdown(bare, month="2024-03", by="churn_type")  # counts without balances; no AUM
    assert _groups(t, "bank", ("churned_in_month",)) == {"transfer": (3,)}
    assert t["aum_lost"].isna().all() and t["share_of_aum_lost"].isna().all()
    assert kpi_trend(bare, month="2024-03", months=2)["aum_lost"].isna().all()


# --- the demo bank -------------------------------------------------------------------------------


def test_demo_trend_comparison_and_breakdowns_agree_with_the_headline(small_demo: Path) -> None:
    src = load_source(small_demo)
    month = f"{src.as_of:%Y-%m}"
    trend = kpi_trend(src, month=month)
    assert trend.month.nunique() == 13 and trend["churned_in_month"].sum() > 0
    for m in sorted(trend.month.unique()):  # recorded churn: each month as its own report said it
        got = trend[trend.month == m].drop(columns="provisional").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, monthly_kpis(src, month=m))
    attrition = load_params(overrides=ATTRITION)
    at = kpi_trend(src, attrition, month=month)
    got = at[at.month == month].drop(columns="provisional").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, monthly_kpis(src, attrition, month=month))
    assert sorted(at[at.provisional].month.unique()) == sorted(at.month.unique())[-2:]
    head = monthly_kpis(src, month=month)
    head_all = head[head.customers == "all"].set_index("scope")
    for by in BREAKDOWNS:
        b = churn_breakdown(src, month=month, by=by)
        sums = b.groupby("scope")[["churned_in_month", "aum_lost"]].sum()
        assert sums["churned_in_month"].to_dict() == head_all["churned_in_month"].to_dict(), by
        assert sums["aum_lost"].to_dict() == pytest.approx(head_all["aum_lost"].to_dict()), by
    tiers = churn_breakdown(src, month=month, by="tier")
    assert tiers.groupby("scope")["active_at_start"].sum().to_dict() == head_all["active_at_start"].to_dict()
    hv = tiers[tiers.group.isin(["key", "private"])].groupby("scope")["active_at_start"].sum()
    head_hv = head[head.customers == "high_value"].set_index("scope")
    assert hv.to_dict() == head_hv["active_at_start"].to_dict()
    c = kpi_comparison(src, month=month)
    cur = c[(c.kpi == "churned_in_month") & (c.against == "bank")].set_index(["scope", "customers"])["value"]
    assert cur.to_dict() == head.set_index(["scope", "customers"])["churned_in_month"].astype(float).to_dict()
    assert set(c.status) <= {"better", "same", "worse", "n/a"}


def test_one_kpi_pass_serves_the_trend_the_comparison_and_the_month(small_demo: Path) -> None:
    """A narrower request is a cut of the widest frame computed so far, equal to its own computation."""
    src = load_source(small_demo)
    month = f"{src.as_of:%Y-%m}"
    trend = kpi_trend(src, month=month)
    (frame,) = src.cache["kpi_frames"].values()
    assert frame["month"].nunique() == 13
    cut = kpi_comparison(src, month=month), monthly_kpis(src, month=month)
    assert src.cache["kpi_frames"][next(iter(src.cache["kpi_frames"]))] is frame  # no second pass
    src.close()
    fresh = load_source(small_demo)
    try:
        own = kpi_comparison(fresh, month=month), monthly_kpis(fresh, month=month)
        assert next(iter(fresh.cache["kpi_frames"].values()))["month"].nunique() == 3
        for a, b in zip(cut, own, strict=True):
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        pd.testing.assert_frame_equal(kpi_trend(fresh, month=month), trend, check_exact=True)
    finally:
        fresh.close()
