"""Analyses on flat extracts: the Cox model against lifelines on the raw CSVs, the support matrix,
the errors of the analyses a flat extract cannot support, and the CLI's account of them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from lifelines import CoxPHFitter, KaplanMeierFitter

from crmresearch.analyses.causes import causes_model
from crmresearch.analyses.early_warnings import early_warnings
from crmresearch.analyses.kpis import monthly_kpis
from crmresearch.analyses.lifecycle import lifecycle
from crmresearch.analyses.product_coverage import cumulative_incidence, product_coverage
from crmresearch.analyses.retention_loop import contact_outcomes
from crmresearch.analyses.rm_turnover import orphaned_churn_rates, rm_exits
from crmresearch.analyses.watchlist import watch_list
from crmresearch.cli import main
from crmresearch.core.errors import InputError
from crmresearch.data.capabilities import ANALYSES, FLAT_REASONS, NOT_BUILT, flat_support
from crmresearch.data.contract import Source, load_source
from crmresearch.data.flat import import_flat
from crmresearch.data.flat_covariates import (
    MAX_EVENT_CORRELATION,
    LeakageWarning,
    flat_covariates,
    leakage_reason,
)
from crmresearch.survival.episodes import customer_table
from public_data import BANK_CSV, TELCO_CSV

ALL_ANALYSES = ["monthly KPIs", "product coverage", "competing risks", "causes model", "lifecycle",
                "RM turnover", "retention outcomes", "early warnings", "watch list", "metrics.json"]  # fmt: skip
FLAT_RUNS = {"product coverage", "causes model", "metrics.json"}


@pytest.fixture(scope="module")
def bank_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BANK_CSV.is_file():
        pytest.skip(f"public dataset not present: {BANK_CSV}")
    return import_flat(BANK_CSV, "bank-churn-modelling", tmp_path_factory.mktemp("bank") / "src")


@pytest.fixture(scope="module")
def telco_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TELCO_CSV.is_file():
        pytest.skip(f"public dataset not present: {TELCO_CSV}")
    return import_flat(TELCO_CSV, "telco-customer-churn", tmp_path_factory.mktemp("telco") / "src")


@pytest.fixture(scope="module")
def bank(bank_out: Path) -> Source:
    return load_source(bank_out)


@pytest.fixture(scope="module")
def telco(telco_out: Path) -> Source:
    return load_source(telco_out)


def _tiny_flat(tmp_path: Path, csv: str, mapping: dict) -> Source:
    (tmp_path / "in.csv").write_text(csv, encoding="utf-8")
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(mapping), encoding="utf-8")
    return load_source(import_flat(tmp_path / "in.csv", tmp_path / "map.yaml", tmp_path / "out"))


def _lifelines(design: pd.DataFrame, duration: pd.Series, event: pd.Series) -> CoxPHFitter:
    """lifelines' Cox model (Efron ties), iterated to convergence.

    Its default stopping rule (``precision=1e-7`` on the step) can stop short:
    on the Germany subset its log-likelihood is 6e-11 below the maximum and
    its coefficients 1e-5 (one standard deviation's effect) off.
    """
    return CoxPHFitter().fit(design.assign(T=duration.to_numpy(), E=event.to_numpy()), "T", "E",
                             fit_options={"precision": 1e-12})  # fmt: skip


def _same_fit(ours, theirs: CoxPHFitter, design: pd.DataFrame) -> None:
    """Coefficients and standard errors equal, on the scale of one standard deviation of each term.

    (Raw coefficients of balance or salary are ~1e-6 per unit: an absolute
    tolerance on them would be vacuous.)
    """
    s = theirs.summary
    assert set(ours.params_.index) == set(s.index)
    sd = design.std()
    for term in s.index:
        assert ours.params_[term] * sd[term] == pytest.approx(s.loc[term, "coef"] * sd[term], abs=1e-6), term
        assert ours.summary.loc[term, "se(coef)"] == pytest.approx(s.loc[term, "se(coef)"], rel=1e-6), term
    assert ours.log_likelihood_ == pytest.approx(theirs.log_likelihood_, rel=1e-9)


# --------------------------------------------------------------------------- the Cox model vs lifelines


def _bank_design(raw: pd.DataFrame) -> pd.DataFrame:
    """The raw CSV's columns, dummy-coded against the most frequent level (France, Male)."""
    return pd.DataFrame({
        "n_products": raw["NumOfProducts"],
        "branch_id[GERMANY]": (raw["Geography"] == "Germany").astype(float),
        "branch_id[SPAIN]": (raw["Geography"] == "Spain").astype(float),
        "gender[Female]": (raw["Gender"] == "Female").astype(float), "age": raw["Age"],
        "balance": raw["Balance"], "has_cr_card": raw["HasCrCard"],
        "is_active_member": raw["IsActiveMember"], "estimated_salary": raw["EstimatedSalary"],
    })  # fmt: skip


def test_bank_cox_equals_lifelines_on_the_raw_csv(bank: Source) -> None:
    raw = pd.read_csv(BANK_CSV)
    design = _bank_design(raw)
    # lifelines on the raw CSV, tenure in whole *years* (ours runs on days): only the order matters
    theirs = _lifelines(design, raw["Tenure"], raw["Exited"])
    with pytest.warns(LeakageWarning, match=r"credit_score \(its name contains 'score'\)"):
        ours = causes_model(bank)
    _same_fit(ours, theirs, design)
    assert ours.n_events_ == 2037 and ours.n_episodes_ == 10_000
    sel = ours.covariate_selection_.set_index("covariate")
    assert sel.drop(index="credit_score")["used"].all()  # a credit score is a model score by name: out unless named
    assert sel.loc["credit_score", "reason"].startswith("looks like a model score or leaks the outcome")
    assert ours.concordance() == pytest.approx(theirs.concordance_index_, abs=1e-9)
    hr = ours.hazard_ratios().set_index("term")
    assert hr.loc["is_active_member", "upper"] < 1 and hr.loc["branch_id[GERMANY]", "lower"] > 1
    ph = ours.ph_check()
    assert np.isfinite(ph["chi2"]).all()  # tenure 0 churns at day 1, not at log(0)


def test_bank_cox_chosen_covariates_and_one_branch(bank: Source) -> None:
    raw = pd.read_csv(BANK_CSV)
    design = _bank_design(raw)[["n_products", "age", "is_active_member"]]
    ours = causes_model(bank, covariates=["n_products", "age", "is_active_member"])
    assert list(ours.covariate_selection_["covariate"]) == ["n_products", "age", "is_active_member"]
    _same_fit(ours, _lifelines(design, raw["Tenure"], raw["Exited"]), design)

    germany = raw["Geography"] == "Germany"
    design = _bank_design(raw[germany]).drop(columns=["branch_id[GERMANY]", "branch_id[SPAIN]"])
    with pytest.warns(LeakageWarning, match="credit_score"):
        ours = causes_model(bank, branch="GERMANY")
    assert ours.n_events_ == 814
    _same_fit(ours, _lifelines(design, raw.loc[germany, "Tenure"], raw.loc[germany, "Exited"]), design)


def test_cox_covariate_errors_name_the_column_and_the_source(bank: Source) -> None:
    with pytest.raises(InputError) as err:
        causes_model(bank, covariates=["n_products", "income"])
    assert "'income'" in str(err.value) and str(bank.path) in str(err.value)
    assert "credit_score" in str(err.value)  # the columns it does have
    for col in ("tenure_months", "churned", "name", "customer_id"):
        with pytest.raises(InputError, match=f"'{col}'.*never a covariate"):
            causes_model(bank, covariates=[col])
    with pytest.raises(InputError, match="'branch_id'.*takes a single value"):
        causes_model(bank, covariates=["age", "branch_id"], branch="SPAIN")
    with pytest.raises(InputError, match="records no churn types"):
        causes_model(bank, churn_type="transfer")
    with pytest.raises(InputError, match="no dates"):
        causes_model(bank, as_of=pd.Timestamp("2020-01-31").date())
    with pytest.raises(InputError, match="unknown branch 'ITALY'"):
        causes_model(bank, branch="ITALY")


def _telco_design(raw: pd.DataFrame) -> pd.DataFrame:
    services = ["PhoneService", "MultipleLines", "OnlineSecurity", "OnlineBackup", "DeviceProtection",
                "TechSupport", "StreamingTV", "StreamingMovies"]  # fmt: skip
    d = {"n_products": raw[services].eq("Yes").sum(axis=1), "gender[Female]": raw["gender"].eq("Female"),
         "senior_citizen": raw["SeniorCitizen"], "partner": raw["Partner"].eq("Yes"),
         "dependents": raw["Dependents"].eq("Yes")}  # fmt: skip
    for col, name, ref in [("InternetService", "internet_service", "Fiber optic"),
                           ("Contract", "contract", "Month-to-month")]:  # fmt: skip
        for level in sorted(set(raw[col]) - {ref}):
            d[f"{name}[{level}]"] = raw[col].eq(level)
    d["paperless_billing"] = raw["PaperlessBilling"].eq("Yes")
    for level in sorted(set(raw["PaymentMethod"]) - {"Electronic check"}):
        d[f"payment_method[{level}]"] = raw["PaymentMethod"].eq(level)
    d["monthly_charges"] = raw["MonthlyCharges"]
    d["phone_service[No]"] = raw["PhoneService"].eq("No")
    return pd.DataFrame(d).astype(float)


def test_telco_cox_fits_with_finite_hazard_ratios_and_equals_lifelines(telco: Source) -> None:
    m = causes_model(telco)
    hr = m.hazard_ratios().set_index("term")
    assert np.isfinite(hr[["hr", "lower", "upper", "p"]].to_numpy()).all()
    assert hr.loc["contract[Two year]", "upper"] < hr.loc["contract[One year]", "lower"]
    assert hr.loc["contract[One year]", "upper"] < 1
    sel = m.covariate_selection_.set_index("covariate")
    assert sel.loc["total_charges", "reason"] == "has 11 missing values"
    assert sel.loc["branch_id", "reason"] == "takes a single value"
    # every add-on's "No internet service" level repeats internet_service[No]
    for col in ("online_security", "tech_support", "streaming_movies", "multiple_lines"):
        assert sel.loc[col, "reason"].startswith("a linear combination"), col
    raw = pd.read_csv(TELCO_CSV)
    design = _telco_design(raw)
    _same_fit(m, _lifelines(design, raw["tenure"], raw["Churn"].eq("Yes")), design)


def test_default_covariates_leave_out_what_cannot_be_a_covariate() -> None:
    rng = np.random.default_rng(3)
    n = 400
    tenure = rng.integers(0, 60, n).astype(float)
    data = pd.DataFrame({
        "customer_id": [f"C{i}" for i in range(n)], "branch_id": "ALL", "tenure_months": tenure,
        "churned": rng.random(n) < 0.3, "n_products": rng.integers(1, 5, n),
        "total_paid": tenure * 50 + rng.normal(0, 5, n),          # mostly tenure
        "postcode": [f"P{i % 37}" for i in range(n)],              # too many levels
        "plan": rng.choice(["a", "b", "c"], n),
        "plan_is_a": 0,                                            # set below: repeats plan
        "x_noise": rng.normal(size=n),
    })  # fmt: skip
    data["plan_is_a"] = (data["plan"] == "a").astype(int)
    sel = flat_covariates(data).set_index("covariate")
    assert sel.loc[["n_products", "plan", "x_noise"], "used"].all()
    assert sel.loc["total_paid", "reason"].startswith("mostly measures tenure")
    assert sel.loc["postcode", "reason"].startswith("text with 37 levels")
    assert sel.loc["plan_is_a", "reason"].startswith("a linear combination")
    assert sel.loc["branch_id", "reason"] == "takes a single value"
    assert "customer_id" not in sel.index and "tenure_months" not in sel.index
    # asked for, the tenure-like and many-level columns are the caller's choice ...
    assert flat_covariates(data, ["total_paid", "postcode"])["used"].all()
    # ... but an unidentifiable one is an error
    with pytest.raises(InputError, match="'plan_is_a'.*linear combination"):
        flat_covariates(data, ["plan", "plan_is_a"])


# --------------------------------------------------------------------------- retention curves (KM) on tenure


def test_telco_retention_curve_matches_its_readme(telco: Source) -> None:
    r = product_coverage(telco)
    km = KaplanMeierFitter().fit(r.data["duration"], r.data["event"])  # tenure in months
    readme = {1: 0.945961, 6: 0.884826, 12: 0.843200, 24: 0.788736, 36: 0.748545, 48: 0.708840,
              60: 0.664404, 72: 0.592790}  # fmt: skip
    for t, s in readme.items():
        assert km.predict(float(t)) == pytest.approx(s, abs=1e-6)


# --------------------------------------------------------------------------- the support matrix


@pytest.mark.parametrize("name", ["bank", "telco"])
def test_support_matrix_of_the_public_flat_extracts(name: str, request: pytest.FixtureRequest) -> None:
    source = request.getfixturevalue(name)
    s = flat_support(source)
    assert list(s.columns) == ["analysis", "functions", "available", "reason"]
    assert list(s["analysis"]) == ALL_ANALYSES == [a.name for a in ANALYSES]
    assert set(s.loc[s["available"], "analysis"]) == FLAT_RUNS
    assert (s.loc[s["available"], "reason"] == "").all()
    for row in s[~s["available"]].itertuples():
        assert row.reason == FLAT_REASONS[row.analysis]
    reasons = s.set_index("analysis")["reason"]
    assert "no dates" in reasons["monthly KPIs"] and "no relationship managers" in reasons["RM turnover"]
    assert "no churn types" in reasons["competing risks"]


def test_support_matrix_of_a_calendar_source(small_demo: Path, tmp_path: Path) -> None:
    s = flat_support(load_source(small_demo)).set_index("analysis")
    built = [a.name for a in ANALYSES if a.built]
    assert s.loc[built, "available"].all() and (s.loc[built, "reason"] == "").all()
    not_built = [a.name for a in ANALYSES if not a.built]
    assert not s.loc[not_built, "available"].any()
    assert (s.loc[not_built, "reason"] == NOT_BUILT).all()

    # the same bank with only its required tables: each row names the table it lacks
    slim = tmp_path / "slim"
    slim.mkdir()
    for f in small_demo.iterdir():
        if f.stem in ("customers", "branches", "extract"):
            shutil.copy(f, slim / f.name)
    src = load_source(slim)
    s = flat_support(src).set_index("analysis")
    assert s.loc["monthly KPIs", "available"] and s.loc["causes model", "available"]
    assert s.loc["lifecycle", "available"]
    assert s.loc["product coverage", "reason"] == "needs the product_holdings table, which this source does not supply"
    assert not s.loc["competing risks", "available"]
    assert s.loc["RM turnover", "reason"] == ("needs the relationship_managers and rm_assignments tables, "
                                              "which this source does not supply")  # fmt: skip
    assert s.loc["retention outcomes", "reason"] == (
        "needs the retention_actions table, which this source does not supply")
    with pytest.raises(InputError, match="retention_actions"):
        contact_outcomes(src, month="2026-10")
    # and the analyses agree: they refuse for the table named
    with pytest.raises(InputError, match="product_holdings"):
        product_coverage(src, month="2026-10")
    with pytest.raises(InputError, match="relationship_managers and rm_assignments"):
        rm_exits(src, month="2026-10")
    # the calendar causes model: chosen covariates, and a covariate whose table is missing
    with pytest.raises(InputError, match="'tier' needs the monthly_balances table"):
        causes_model(src, covariates=["tier"])
    with pytest.raises(InputError, match=f"'nope'.*{re.escape(str(slim))}"):
        causes_model(src, covariates=["nope"])


def test_calendar_causes_model_with_chosen_covariates(small_demo: Path) -> None:
    src = load_source(small_demo)
    m = causes_model(src, covariates=["n_products", "dormant"])
    assert list(m.params_.index) == ["n_products", "dormant"]
    assert list(causes_model(src).params_.index)[:2] == ["n_products", "rm_turnover_exposed"]


# --------------------------------------------------------------------------- refusals with the reason


def _reason(source: Source, analysis: str) -> str:
    s = flat_support(source).set_index("analysis")
    assert not s.loc[analysis, "available"]
    return s.loc[analysis, "reason"]


def test_unavailable_analyses_raise_with_the_support_reason(bank: Source) -> None:
    calls = {
        "monthly KPIs": lambda: monthly_kpis(bank, month="2020-01"),
        "lifecycle": lambda: lifecycle(bank),
        "RM turnover": lambda: rm_exits(bank, month="2020-01"),
        "competing risks": lambda: cumulative_incidence(
            product_coverage(bank), customer_table(bank).set_index("customer_id")["churn_type"]),
    }
    calls["RM turnover (orphaned)"] = lambda: orphaned_churn_rates(bank)
    calls["early warnings"] = lambda: early_warnings(bank, month="2020-01")
    calls["retention outcomes"] = lambda: contact_outcomes(bank, month="2020-01")
    calls["watch list"] = lambda: watch_list(bank, month="2020-01")
    for analysis, call in calls.items():
        name = analysis.split(" (")[0]
        with pytest.raises(InputError) as err:
            call()
        assert _reason(bank, name) in str(err.value), analysis
        assert str(err.value).startswith(f"{name} cannot run on"), analysis


def test_coverage_and_model_refuse_a_flat_extract_without_what_they_need(tmp_path: Path) -> None:
    mapping = {"customer_id": "id", "tenure": {"column": "t", "unit": "months"},
               "churned": {"column": "c", "true_values": [1], "false_values": [0]},
               "branch": {"id": "ALL", "name": "All"}, "extras": ["region_code"]}  # fmt: skip
    src = _tiny_flat(tmp_path, "id,t,c,region_code\n1,3,1,N\n2,5,0,N\n3,8,0,N\n4,1,1,N\n", mapping)
    s = flat_support(src).set_index("analysis")
    assert s.index[s["available"]].tolist() == ["metrics.json"]  # no n_products, no attribute that varies
    with pytest.raises(InputError) as err:
        product_coverage(src)
    assert _reason(src, "product coverage") in str(err.value)
    with pytest.raises(InputError) as err:
        causes_model(src)
    assert _reason(src, "causes model") in str(err.value)


# --------------------------------------------------------------------------- the CLI


def _unavailable_lines(out: str) -> dict[str, str]:
    lines = out.split("unavailable on this flat extract, and why:\n", 1)[1].splitlines()
    return dict(line.removeprefix("  - ").split(": ", 1) for line in lines if line.startswith("  - "))


def test_cli_validate_and_import_print_the_unavailable_analyses(
        bank_out: Path, small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(["validate", str(bank_out)]) == 0
    out = capsys.readouterr().out
    assert "source is valid" in out
    assert "analyses that run on this flat extract: product coverage, causes model" in out
    expected = {a: r for a, r in FLAT_REASONS.items() if a not in FLAT_RUNS}
    assert _unavailable_lines(out) == expected

    assert main(["import-flat", str(BANK_CSV), "--mapping", "bank-churn-modelling",
                 "--out", str(tmp_path / "again")]) == 0  # fmt: skip
    assert _unavailable_lines(capsys.readouterr().out) == expected

    assert main(["validate", str(small_demo)]) == 0
    assert "flat extract" not in capsys.readouterr().out


def _leaky(n: int = 1000, seed: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    churned = rng.random(n) < 0.3
    flip = lambda p: np.where(rng.random(n) < p, ~churned, churned)  # noqa: E731 - the event, a share p flipped
    return pd.DataFrame({
        "customer_id": [f"C{i}" for i in range(n)], "branch_id": "ALL", "tenure_months": rng.integers(1, 60, n) * 1.0,
        "churned": churned, "n_products": rng.integers(1, 5, n), "age": rng.integers(20, 80, n),
        "Credit_Score": rng.integers(300, 850, n),                 # by name: "score", any case
        "naive_bayes_classifier_1": rng.random(n),                 # by name
        "exit_prob": rng.random(n),                                # by name: "prob"
        "churn_flag_copy": rng.integers(0, 2, n),                  # by name: "churn"
        "closed_all": flip(0.02).astype(int),                      # the outcome, nearly: rho about 0.95
        "still_active": (~flip(0.02)).astype(int),                 # its negative: rho about -0.95
        "inactive_months": np.where(flip(0.15), 4, 1) + rng.integers(0, 2, n),  # rho about 0.6: kept
    })  # fmt: skip


def test_default_covariates_leave_out_scores_and_outcome_leaks_with_a_warning() -> None:
    """Issue 14: columns that look like model scores (by name) or leak the outcome (|Spearman| >= 0.8 with the
    churn flag) are left out of the default, with a warning naming each and why; named, they enter."""
    data = _leaky()
    ev = data["churned"].astype(float)
    rho = {c: data[c].rank().corr(ev.rank()) for c in ("closed_all", "still_active", "inactive_months")}
    assert rho["closed_all"] >= MAX_EVENT_CORRELATION and rho["still_active"] <= -MAX_EVENT_CORRELATION
    assert abs(rho["inactive_months"]) < MAX_EVENT_CORRELATION
    with pytest.warns(LeakageWarning) as caught:
        sel = flat_covariates(data).set_index("covariate")
    by_name = {"Credit_Score": "score", "naive_bayes_classifier_1": "naive_bayes", "exit_prob": "prob",
               "churn_flag_copy": "churn"}  # fmt: skip
    message = str(caught[0].message)
    for col, part in by_name.items():
        assert not sel.loc[col, "used"]
        assert sel.loc[col, "reason"].startswith(f"looks like a model score or leaks the outcome: its name contains {part!r}")
        assert f"{col} (its name contains {part!r})" in message
    for col in ("closed_all", "still_active"):
        assert not sel.loc[col, "used"]
        assert f"rank correlation {rho[col]:.2f} with churn" in sel.loc[col, "reason"]
        assert f"{col} (rank correlation {rho[col]:.2f} with churn" in message
    assert sel.loc[["n_products", "age", "inactive_months"], "used"].all()
    assert "inactive_months" not in message and "age" not in message
    # named by the user, they enter, without a warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", LeakageWarning)
        assert flat_covariates(data, ["n_products", "Credit_Score", "closed_all"])["used"].all()
    assert leakage_reason("age", data["age"], data["churned"]) == ""


def test_flat_model_caveat_names_the_leaky_columns(tmp_path: Path) -> None:
    from crmresearch.month.metrics import metrics
    from crmresearch.viz.i18n import translate

    data = _leaky(400)
    csv = data.assign(churned=data["churned"].astype(int)).drop(columns="branch_id")
    mapping = {"customer_id": "customer_id", "tenure": {"column": "tenure_months", "unit": "months"},
               "churned": {"column": "churned", "true_values": [1], "false_values": [0]},
               "n_products": {"column": "n_products"}, "branch": {"id": "ALL", "name": "All"},
               "extras": [{"column": c, "as": c.lower()} for c in csv.columns
                          if c not in ("customer_id", "tenure_months", "churned", "n_products")]}  # fmt: skip
    source = _tiny_flat(tmp_path, csv.to_csv(index=False), mapping)
    with pytest.warns(LeakageWarning):
        m = causes_model(source)
    assert {"credit_score", "closed_all", "still_active"}.isdisjoint(m.covariates_)
    (caveat,) = [c for c in m.caveats_ if "model score" in c]
    for col in ("credit_score", "naive_bayes_classifier_1", "exit_prob", "churn_flag_copy", "closed_all", "still_active"):
        assert col in caveat
    zh = translate(caveat, "zh")
    assert zh != caveat and "模型评分" in zh and "closed_all" in zh
    with pytest.warns(LeakageWarning):
        assert caveat in metrics(source, month=None)["caveats"]
