"""Early warnings and the retention outcome: hand-made cases and a null-effect simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmresearch import Params, load_params, load_source
from crmresearch.analyses.early_warnings import early_warnings, warning_summary
from crmresearch.analyses.retention_loop import (
    contact_outcomes,
    odds_ratio_2x2,
    outcomes_from_cohort,
    retention_cohort,
    rm_table,
    winbacks,
)
from crmresearch.core.errors import InputError


def _write(path: Path, **tables: pd.DataFrame) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(path / f"{name}.csv", index=False)
    return path


@pytest.fixture
def warned(tmp_path: Path):
    """One customer per rule, dates chosen by hand (as-of 2024-06-30)."""
    cust = pd.DataFrame({
        "customer_id": ["dorm", "out", "comp", "rm", "rm2", "prod", "gone"],
        "branch_id": ["B1", "B1", "B1", "B1", "B2", "B2", "B1"],
        "open_date": "2023-01-01",
        "churn_date": [None, None, None, None, None, None, "2024-02-10"],
        "churn_type": [None, None, None, None, None, None, "transfer"],
    })  # fmt: skip
    months = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    bal = []
    for cid in ["dorm", "out", "comp", "rm", "rm2", "prod"]:
        for m in months:
            txn = 0 if (cid == "dorm" and m in ("2024-02", "2024-03", "2024-04")) else 5
            aum = 100_000.0
            outflow = 60_000.0 if (cid == "out" and m == "2024-03") else 1_000.0
            bal.append((cid, m, aum, txn, outflow))
    bal.append(("gone", "2024-01", 50_000.0, 0, 0.0))
    balances = pd.DataFrame(bal, columns=["customer_id", "month", "aum", "txn_count", "outflow"])
    complaints = pd.DataFrame({
        "complaint_id": ["k1", "k2", "k3"], "customer_id": ["comp", "comp", "gone"],
        "complaint_date": ["2024-04-02", "2024-05-01", "2024-03-01"], "severity": "high",
        "escalated": [True, False, True], "escalated_date": ["2024-04-05", None, "2024-03-02"],
    })  # fmt: skip
    rms = pd.DataFrame({"rm_id": ["R1", "R2", "R3"], "branch_id": ["B1", "B1", "B2"],
                        "hire_date": "2020-01-01", "exit_date": ["2024-03-15", None, "2024-04-30"],
                        "exit_type": ["resigned", None, "transferred"]})  # fmt: skip
    assign = pd.DataFrame({"customer_id": ["rm", "rm", "rm2"], "rm_id": ["R1", "R2", "R3"],
                           "start_date": ["2023-01-01", "2024-04-01", "2023-01-01"],
                           "end_date": ["2024-03-15", None, "2024-04-30"]})  # fmt: skip
    holdings = pd.DataFrame({
        "customer_id": ["prod", "prod", "prod"], "product": ["current_account", "time_deposit", "insurance"],
        "start_date": ["2023-01-01", "2023-01-01", "2023-06-01"], "end_date": [None, "2024-05-19", None],
    })  # fmt: skip
    actions = pd.DataFrame({
        "action_id": ["a1", "a2", "a3", "a4", "a5"],
        "customer_id": ["dorm", "comp", "rm2", "rm", "out"],
        "action_date": ["2024-04-01", "2024-04-09", "2024-03-20", "2024-06-30", "2024-06-30"],
        "action_type": "call", "trigger": ["early_warning", "complaint", "proactive", "rm_exit", "winback"],
        "outcome": [None, "retained", None, None, None],
    })  # fmt: skip
    return load_source(_write(
        tmp_path / "w", extract=pd.DataFrame({"as_of": ["2024-06-30"], "observation_start": ["2024-01-01"]}),
        branches=pd.DataFrame({"branch_id": ["B1", "B2"], "branch_name": ["一", "二"]}), customers=cust,
        monthly_balances=balances, complaints=complaints, relationship_managers=rms, rm_assignments=assign,
        product_holdings=holdings, retention_actions=actions))  # fmt: skip


def test_each_rule_is_dated_as_reports_md_says(warned) -> None:
    w = early_warnings(warned)
    got = {(r.customer_id, r.rule): r.warning_date.date().isoformat() for r in w.itertuples()}
    assert got == {
        ("dorm", "no_transaction"): "2024-04-01",  # Feb and Mar without transactions: first day after March
        ("out", "outflow"): "2024-04-01",  # March outflow 60k > 50% of February's 100k: first day after March
        ("comp", "complaint"): "2024-04-05",  # dated by the escalation, not the complaint
        ("rm", "rm_exit"): "2024-03-15",  # the RM's exit date
        ("rm2", "rm_exit"): "2024-04-30",
        ("prod", "product_drop"): "2024-05-20",  # the day the count fell (the day after the end date)
    }  # "gone" churned before its escalated complaint and dormancy: not warned
    assert len(w) == len(got), "a dormant spell warns once, not every month it lasts"
    active = w.set_index("rule")["active_until"].dt.date.astype(str).to_dict()
    assert active["complaint"] == "2024-05-04" and active["no_transaction"] == "2024-04-30"
    assert active["product_drop"] == "2024-08-19"


def test_contact_speed_and_pending(warned) -> None:
    w = early_warnings(warned).set_index("customer_id")
    assert w.loc["dorm", "days_to_contact"] == 0 and bool(w.loc["dorm", "contacted_in_target"])
    assert w.loc["comp", "days_to_contact"] == 4 and not bool(w.loc["comp", "contacted_in_target"])
    assert pd.isna(w.loc["rm2", "days_to_contact"]), "a contact before the warning does not answer it"
    assert w.loc["rm", "days_to_contact"] == 107  # the contact came late
    assert pd.isna(w.loc["out", "first_contact_date"]), "a win-back is not a retention contact"
    assert w.loc["rm", "rm_id"] == "R1"
    s = warning_summary(early_warnings(warned)).set_index("rule")
    assert s.loc["all", "warnings"] == 6 and s.loc["all", "contacted_in_target"] == 1


def test_prior_handover_contact_suppresses_the_rm_warning(warned, tmp_path: Path) -> None:
    """rm2's contact 41 days before the RM's exit is too early to be a handover contact;
    5 days before (within handover_lookback_days = 30) it is, and no warning is raised."""
    assert "rm2" in set(early_warnings(warned)["customer_id"])
    warned.con.execute("UPDATE retention_actions SET action_date = DATE '2024-04-25' WHERE action_id = 'a3'")
    assert "rm2" in set(early_warnings(warned)["customer_id"])  # a loaded source is read-only: derived results stay
    warned.clear_cache()  # ... until the cache is cleared
    assert "rm2" not in set(early_warnings(warned)["customer_id"])
    shorter = load_params(overrides={"warnings.handover_lookback_days": 3})
    assert "rm2" in set(early_warnings(warned, shorter)["customer_id"])


def test_a_month_sees_only_its_own_data(warned) -> None:
    april = early_warnings(warned, month="2024-04")
    assert set(april["rule"]) == {"no_transaction", "outflow", "complaint", "rm_exit"}
    assert (april["warning_date"].dt.month == 4).all()
    # the late contact of "rm" (June) is not known in April's view
    march = early_warnings(warned, month="2024-03").set_index("customer_id")
    assert pd.isna(march.loc["rm", "first_contact_date"])
    assert bool(march.loc["rm", "target_closed"]) and not bool(march.loc["rm", "contacted_in_target"])


def test_missing_tables_drop_their_rules(tmp_path: Path) -> None:
    src = load_source(_write(
        tmp_path / "m", branches=pd.DataFrame({"branch_id": ["B1"], "branch_name": ["一"]}),
        customers=pd.DataFrame({"customer_id": ["a"], "branch_id": ["B1"], "open_date": ["2024-01-01"],
                                "churn_date": [None], "churn_type": [None]})))  # fmt: skip
    assert early_warnings(src).empty
    with pytest.raises(InputError, match="retention_actions"):
        contact_outcomes(src, month="2024-01")


def test_rm_table_by_hand(warned) -> None:
    t = rm_table(warned, month="2024-04").set_index("rm_id")
    assert t.loc["R2", ["book", "churned", "warnings"]].tolist() == [1, 0, 0]  # "rm", handed to R2 on 04-01
    # rm2's RM left on 04-30: the warning's 1-day target runs past the month's end: pending
    assert t.loc["R3", ["book", "warnings", "contacted_in_target", "pending"]].tolist() == [1, 1, 0, 1]
    assert np.isnan(t.loc["R3", "share_in_target"])
    nobody = t.loc["(no RM)"]  # dorm (answered the same day), out (never), comp (after 4 days), prod
    assert [nobody["book"], nobody["warnings"], nobody["contacted_in_target"]] == [4, 3, 1]
    assert nobody["share_in_target"] == pytest.approx(1 / 3)
    assert t.loc["R2", "aum_lost"] == 0


def test_winbacks_count_outcomes(warned) -> None:
    warned.con.execute("""INSERT INTO retention_actions BY NAME
        SELECT 'a6' AS action_id, 'gone' AS customer_id, DATE '2024-02-15' AS action_date, 'call' AS action_type,
               'winback' AS trigger, 'won_back' AS outcome, 0 AS __row""")
    wb = winbacks(warned, month="2024-06").set_index("period")
    assert wb.loc["month", "attempts"] == 1 and wb.loc["month", "not_recorded"] == 1
    assert wb.loc["last_12_months", "attempts"] == 2 and wb.loc["last_12_months", "won_back"] == 1
    assert wb.loc["last_12_months", "success_rate"] == 1.0
    assert np.isnan(wb.loc["month", "success_rate"])


def test_odds_ratio_2x2() -> None:
    r = odds_ratio_2x2(30, 10, 20, 40)
    assert r["or"] == pytest.approx(6.0)
    se = np.sqrt(1 / 30 + 1 / 10 + 1 / 20 + 1 / 40)
    assert r["lower"] == pytest.approx(np.exp(np.log(6) - 1.959964 * se), rel=1e-6)
    assert np.isnan(odds_ratio_2x2(0, 1, 2, 3)["or"])


# ----------------------------------------------------------------------------- simulations


def _simulate(path: Path, seeds: range, n: int = 800, contact_log_hr: float = 0.0) -> Path:
    """One branch per seed (a replicate): warned customers (an escalated complaint each)
    whose churn does not depend on contact when ``contact_log_hr`` is 0; a contact is
    recorded only if the customer is still a customer on its date.  Frail customers churn
    fast, before most contacts, so a naive comparison flatters contact."""
    cust, comp, act = [], [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        as_of = pd.Timestamp("2024-12-31")
        w = pd.Timestamp("2024-07-02") + pd.to_timedelta(rng.integers(0, 92, n), unit="D")
        frail = rng.random(n) < 0.3
        base = np.where(frail, 0.02, 0.002)  # per day
        planned = rng.random(n) < 0.6
        lag = np.where(rng.random(n) < 0.4, rng.integers(0, 2, n), 2 + rng.geometric(1 / 15, n))
        # churn time: the hazard is multiplied by exp(contact_log_hr) from a recorded contact on
        t1 = rng.exponential(1 / base)
        after = planned & (t1 > lag)
        t = np.where(after, lag + rng.exponential(1 / (base * np.exp(contact_log_hr))), t1)
        churn = w + pd.to_timedelta(np.floor(t).astype(int), unit="D")
        churned = churn <= as_of
        contact = w + pd.to_timedelta(lag, unit="D")
        recorded = planned & (contact <= as_of) & (~churned | (contact < churn))
        ids = [f"r{seed}c{i:05d}" for i in range(n)]
        opened = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 500, n), unit="D")
        cust.append(pd.DataFrame({"customer_id": ids, "branch_id": f"R{seed}",
                                  "open_date": opened.strftime("%Y-%m-%d"),
                                  "churn_date": pd.Series(churn.strftime("%Y-%m-%d")).where(churned),
                                  "churn_type": pd.Series("transfer", index=range(n)).where(churned)}))  # fmt: skip
        comp.append(pd.DataFrame({"complaint_id": ids, "customer_id": ids, "complaint_date": w.strftime("%Y-%m-%d"),
                                  "severity": "high", "escalated": True}))  # fmt: skip
        act.append(pd.DataFrame({"action_id": ids, "customer_id": ids, "action_date": contact.strftime("%Y-%m-%d"),
                                 "action_type": "call", "trigger": "complaint"})[recorded])  # fmt: skip
    return _write(path, extract=pd.DataFrame({"as_of": ["2024-12-31"], "observation_start": ["2024-01-01"]}),
                  branches=pd.DataFrame({"branch_id": [f"R{s}" for s in seeds], "branch_name": "模拟"}),
                  customers=pd.concat(cust), complaints=pd.concat(comp),
                  retention_actions=pd.concat(act))  # fmt: skip


def _by_replicate(path: Path) -> list:
    params = Params()
    cohort, a, b = retention_cohort(load_source(path), params, month="2024-12")
    return [outcomes_from_cohort(g, params, cohort_from=a, cohort_to=b) for _, g in cohort.groupby("branch_id")]


def test_null_contacts_landmark_covers_one_naive_does_not(tmp_path: Path) -> None:
    """Contacts that do nothing, recorded only for customers still active: over 200
    seeded replicates the landmark design's adjusted interval covers OR = 1 in at least
    90% of them (95% nominal); the naive comparison (contact any time vs none, retention
    from the warning) is flattered by immortal time and covers 1 in far fewer."""
    results = _by_replicate(_simulate(tmp_path / "null", range(200)))
    fitted = [r for r in results if r.odds_ratio is not None]
    assert len(results) == 200 and len(fitted) >= 190
    covered = np.mean([r.odds_ratio["lower"] <= 1 <= r.odds_ratio["upper"] for r in fitted])
    naive_covered = np.mean([r.naive["lower"] <= 1 <= r.naive["upper"] for r in fitted])
    assert covered >= 0.90, covered
    assert naive_covered <= 0.5, naive_covered
    assert np.median([r.naive["or"] for r in fitted]) > 1.3  # the naive bias flatters contact (1.57 here)


def test_a_real_contact_effect_is_detected(tmp_path: Path) -> None:
    """The same simulation with contact cutting the hazard to 30%: the adjusted OR is above 1."""
    results = _by_replicate(_simulate(tmp_path / "effect", range(100, 103), n=1500, contact_log_hr=np.log(0.3)))
    assert all(r.odds_ratio is not None and r.odds_ratio["lower"] > 1 for r in results), [
        r.odds_ratio for r in results]


def test_no_warnings_unknown_branch_and_no_contacts(warned) -> None:
    # a month whose cohort window holds no warning: an empty cohort, counts zero, a caveat
    res = contact_outcomes(warned, load_params(overrides={"retention.cohort_months": 1}), month="2024-05")
    assert res.counts["customers"].sum() == 0 and res.odds_ratio is None and res.caveats
    for call in (lambda: early_warnings(warned, branch="NOPE"),
                 lambda: contact_outcomes(warned, month="2024-06", branch="NOPE")):  # fmt: skip
        with pytest.raises(InputError, match="unknown branch 'NOPE'.*B1, B2"):
            call()
    (Path(warned.path) / "retention_actions.csv").unlink()
    w = early_warnings(load_source(warned.path))
    assert w["contacted_in_target"].isna().all(), "without contacts supplied, contact is unknown, not 'no'"
    assert np.isnan(warning_summary(w).set_index("rule").loc["all", "share_in_target"])


def test_asset_attrition_cohort_waits_for_confirmed_churns() -> None:
    from crmresearch.analyses.retention_loop import _cohort_window

    _, recorded, _ = _cohort_window("2024-12", Params())
    _, attrition, _ = _cohort_window("2024-12", load_params(overrides={"churn.definition": "asset_attrition"}))
    assert recorded == pd.Timestamp("2024-10-01") and attrition == pd.Timestamp("2024-08-01")


def test_earlier_contact_is_adjusted_for(warned) -> None:
    """A customer contacted shortly before the warning is still protected: the model adjusts for it."""
    cohort, _, _ = retention_cohort(warned, month="2024-06")
    assert "contacted_before" in cohort.columns
    assert set(cohort["contacted_before"].dropna().unique()) <= {0, 1}


def _synthetic_cohort(n: int = 600, seed: int = 3) -> pd.DataFrame:
    """An eligible cohort where every adjustment of the logistic model varies."""
    rng = np.random.default_rng(seed)
    rules = list(Params().warnings.rules)
    fired = rng.integers(0, len(rules), n)
    df = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "eligible": True,
        "contacted": rng.integers(0, 2, n), "tier": rng.choice(["mass", "general", "key"], n),
        "n_products": rng.integers(1, 6, n).astype(float), "tenure_days": rng.integers(30, 3000, n).astype(float),
        "contacted_before": rng.integers(0, 2, n),
    })  # fmt: skip
    for k, r in enumerate(rules):
        df[f"rule_{r}"] = ((fired == k) | (rng.random(n) < 0.1)).astype(int)
    logit = 0.8 + 0.3 * df["contacted"] + 0.2 * df["n_products"] - 0.4 * df["contacted_before"]
    df["retained"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df["naive_contacted"], df["naive_retained"] = df["contacted"], df["retained"]
    return df


def test_retention_docstrings_match_the_model() -> None:
    """Issue 14: the module docstring says what the code fits (a binomial GLM, equal to Logit) and
    lists every adjustment the model has; the caveat names them all (and has its Chinese)."""
    import statsmodels.api as sm

    from crmresearch.analyses import retention_loop
    from crmresearch.viz.i18n import translate

    res = outcomes_from_cohort(_synthetic_cohort())
    model = res.model
    assert model is not None and isinstance(model.model, sm.GLM)
    assert isinstance(model.model.family, sm.families.Binomial)
    terms = [t for t in model.params.index if t not in ("const", "contacted")]
    families = {next(k for k in retention_loop.ADJUSTMENTS if t == k or t.startswith(k)) for t in terms}
    assert families == set(retention_loop.ADJUSTMENTS), (terms, retention_loop.ADJUSTMENTS)
    doc = retention_loop.__doc__
    assert "GLM" in doc and "Binomial" in doc
    assert "(statsmodels ``Logit``)" not in doc  # the old claim
    for key in retention_loop.ADJUSTMENTS:
        assert f"``{key.rstrip('[')}" in doc, key
    # "the same estimates as Logit": the docstring's claim holds
    X = model.model.exog
    logit = sm.Logit(model.model.endog, X).fit(disp=0)
    assert np.allclose(logit.params, model.params.to_numpy(), atol=1e-6)
    caveat = next(c for c in res.caveats if c.startswith("Observational"))
    for words in retention_loop.ADJUSTMENTS.values():
        assert words in caveat
    assert translate(caveat, "zh") != caveat
