"""Seeded statistical tests: the survival tables let a Cox model recover the demo's truth.

The demo bank draws churn from a known proportional-hazards model
(``truth.json``).  If the episodes put every covariate on the right days, a
time-varying Cox fit (stratified by branch, whose effects are nuisance
parameters) recovers every true coefficient within 3 standard errors.  Built
with look-ahead (the most products a customer ever reached instead of the count
that day, "ever exposed" instead of "exposed now"), the same check fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from crmresearch import load_params, load_source
from crmresearch.analyses.retention_loop import contact_outcomes
from crmresearch.data.demo import DemoConfig, write_demo_bank
from crmresearch.survival.cox import TimeVaryingCox
from crmresearch.survival.episodes import customer_table, episodes
from crmresearch.timelines.rm_exposure import ORPHAN_BANDS

pytestmark = pytest.mark.slow

TIME_VARYING = ["n_products", "holds_mobile_banking", "holds_fund_sip", "holds_payroll", "holds_third_party_custody",
                "rm_turnover_exposed", "orphaned_band", "complaint_escalated_90d", "dormant",
                "retention_contact_90d"]  # fmt: skip


def _design(ep: pd.DataFrame, cust: pd.DataFrame) -> pd.DataFrame:
    return ep.merge(cust[["customer_id", "segment", "channel"]], on="customer_id", validate="many_to_one")


def _fit(design: pd.DataFrame) -> pd.DataFrame:
    """Stratified time-varying Cox fit (the exact aggregated fitter, equal to lifelines':
    tests/survival/test_cox.py)."""
    model = TimeVaryingCox().fit(design, [*TIME_VARYING, "segment", "channel"], strata=["branch_id"],
                                 reference={"segment": "salaried", "channel": "walk_in",
                                            "orphaned_band": "none"})  # fmt: skip
    return model.summary


def _z_scores(summary: pd.DataFrame, truth: dict) -> pd.Series:
    coefs = truth["coefficients"]
    return pd.Series({k: (summary.loc[k, "coef"] - v) / summary.loc[k, "se(coef)"] for k, v in coefs.items()})


@pytest.fixture(scope="module", params=[11, 22, 33], ids=lambda s: f"seed{s}")
def seeded_bank(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp(f"truth{request.param}") / "bank"
    # 12,000 customers: at 6,000 the crude trend across the orphaned bands (few events in 0-7)
    # was significant on only 14 of 16 seeds tried (1-10, 11-66), too fragile for fixed seeds
    path = write_demo_bank(out, DemoConfig(branches=4, customers_per_branch=3000, months=24, seed=request.param))
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    src = load_source(path)
    ep, cust = episodes(src), customer_table(src)
    return truth, ep, cust, src


def test_cox_on_episodes_recovers_every_true_coefficient(seeded_bank) -> None:
    truth, ep, cust, _ = seeded_bank
    z = _z_scores(_fit(_design(ep, cust)), truth)
    assert set(z.index) == set(truth["coefficients"])
    assert (z.abs() < 3).all(), f"coefficients off by more than 3 SE:\n{z[z.abs() >= 3]}"


@pytest.mark.parametrize(
    "covariate",
    ["n_products", "rm_turnover_exposed", "complaint_escalated_90d"],
)
def test_look_ahead_covariate_fails_the_same_check(seeded_bank, covariate: str) -> None:
    """Replace a covariate by its value known only at the end of follow-up
    (the most products the customer ever reached; "ever exposed to RM
    turnover"; "ever had an escalated complaint"): the customers who stay
    longest gain those values later, so the fit is biased and fails the check."""
    truth, ep, cust, _ = seeded_bank
    leaky = ep.copy()
    leaky[covariate] = leaky["customer_id"].map(leaky.groupby("customer_id")[covariate].max())
    z = _z_scores(_fit(_design(leaky, cust)), truth)
    assert abs(z[covariate]) > 3, f"look-ahead went unnoticed: z = {z[covariate]:.2f}"


def test_churn_per_person_time_rises_with_days_orphaned_as_the_truth_says(seeded_bank) -> None:
    """The truth's orphaned effect rises with the days orphaned so far; so do the churn
    rates per customer-month by band (a Poisson trend across the bands, significant),
    and every band churns faster than customers who are not orphaned."""
    truth, ep, _, _ = seeded_bank
    coefs = [truth["coefficients"][f"orphaned_band[{b}]"] for b in ORPHAN_BANDS]
    assert coefs == sorted(coefs) and coefs[0] < coefs[-1]
    days = (ep["stop"] - ep["start"]).groupby(ep["orphaned_band"]).sum()
    events = ep.groupby("orphaned_band")["event"].sum()
    bands = list(ORPHAN_BANDS)
    trend = sm.GLM(events[bands].to_numpy(), sm.add_constant(np.arange(3.0)), family=sm.families.Poisson(),
                   offset=np.log(days[bands].to_numpy())).fit()  # fmt: skip
    assert trend.params[1] > 0 and trend.pvalues[1] < 0.05, trend.summary()
    none_upper = stats.chi2.ppf(0.975, 2 * events["none"] + 2) / 2 / days["none"]
    assert ((events[bands] / days[bands]) > none_upper).all()


def test_contacted_warned_customers_are_retained_more_as_in_the_truth(seeded_bank) -> None:
    """In the truth a retention contact lowers the hazard for 90 days, so among warned
    customers still active after the grace window, those contacted in it are retained
    more: the adjusted odds ratio is above 1.  The naive comparison (contact at any time,
    retention from the warning) flatters contact further through immortal time."""
    truth, _, _, src = seeded_bank
    assert truth["coefficients"]["retention_contact_90d"] < 0
    res = contact_outcomes(src, load_params(overrides={"retention.cohort_months": 12}), month="2026-10")
    assert res.odds_ratio is not None, res.caveats
    assert res.odds_ratio["or"] > 1 and res.odds_ratio["upper"] > res.odds_ratio["or"] > res.odds_ratio["lower"]
    assert res.naive["or"] > res.odds_ratio["or"]


def test_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    cfg = DemoConfig(branches=2, customers_per_branch=300, months=12, seed=5)
    a, b = write_demo_bank(tmp_path / "a", cfg), write_demo_bank(tmp_path / "b", cfg)
    for f in sorted(p.name for p in a.iterdir()):
        if f.endswith(".parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(a / f), pd.read_parquet(b / f))
    assert (a / "truth.json").read_text() == (b / "truth.json").read_text()
    c = write_demo_bank(tmp_path / "c", DemoConfig(branches=2, customers_per_branch=300, months=12, seed=6))
    assert not pd.read_parquet(a / "customers.parquet").equals(pd.read_parquet(c / "customers.parquet"))
    assert np.isfinite(pd.read_parquet(a / "monthly_balances.parquet")["aum"]).all()
