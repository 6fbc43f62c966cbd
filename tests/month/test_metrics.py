"""metrics.json: the fields of reports.md, the same numbers as the analyses, byte-identical reruns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crmresearch import load_params, load_source
from crmresearch.analyses.kpis import monthly_kpis
from crmresearch.analyses.product_coverage import product_coverage
from crmresearch.cli import main
from public_data import BANK_CSV

REQUIRED = ["schema", "scope", "branch_id", "month", "as_of", "churn_definition", "language", "kpis",
            "coverage", "hazard_ratios_scope", "hazard_ratios", "retention", "caveats"]  # fmt: skip


@pytest.fixture(scope="module")
def branch_file(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("metrics") / "B001.metrics.json"
    assert main(["metrics", str(small_demo), "--month", "2026-10", "--branch", "B001", "--out", str(out)]) == 0
    return out


def test_fields_and_values_match_the_analyses(branch_file: Path, small_demo: Path) -> None:
    m = json.loads(branch_file.read_text(encoding="utf-8"))
    assert all(k in m for k in REQUIRED)
    assert m["time_unit"] == "days"  # a dated source: durations in days (a flat extract: months)
    assert (m["schema"], m["scope"], m["branch_id"], m["month"], m["as_of"]) == (2, "branch", "B001", "2026-10",
                                                                                "2026-10-31")  # fmt: skip
    src = load_source(small_demo)
    k = monthly_kpis(src, month="2026-10").set_index(["scope", "customers"]).loc[("B001", "all")]
    assert m["kpis"]["active_at_start"] == k["active_at_start"] and m["kpis"]["churned_in_month"] == k["churned_in_month"]
    assert m["kpis"]["aum_lost"] == pytest.approx(k["aum_lost"], rel=1e-11)
    cov = product_coverage(src, month="2026-10", branch="B001").table
    assert [c["group"] for c in m["coverage"]] == [str(g) for g in cov.loc[cov.customers > 0, "group"]]
    assert [c["churned_12m"] for c in m["coverage"]] == cov.loc[cov.customers > 0, "churned_12m"].tolist()
    terms = [h["term"] for h in m["hazard_ratios"]]
    assert {"n_products", "rm_turnover_exposed", "complaint_escalated_90d"} <= set(terms)
    assert m["hazard_ratios_scope"] == "bank"
    assert all(h["lower"] < h["hr"] < h["upper"] for h in m["hazard_ratios"])
    r = m["retention"]
    assert set(r) == {"month_warnings", "outcome_cohort", "contact_odds_ratio"}
    assert 0 <= r["month_warnings"]["contacted_in_target"] <= r["month_warnings"]["warnings"]
    if r["contact_odds_ratio"] is None:
        assert any("odds ratio" in c for c in m["caveats"])


def test_retention_gives_group_sizes_and_names_its_two_populations(branch_file: Path, small_demo: Path) -> None:
    """Issue 14: the outcome cohort's group sizes are there (so a retention rate can be formed), and the month's
    warnings and the outcome cohort are two named populations: the cohort was warned before the month."""
    import datetime as dt

    import pandas as pd

    from crmresearch.analyses.early_warnings import early_warnings, warning_summary
    from crmresearch.analyses.retention_loop import contact_outcomes

    r = json.loads(branch_file.read_text(encoding="utf-8"))["retention"]
    src = load_source(small_demo)
    co = contact_outcomes(src, month="2026-10", branch="B001")
    k = co.counts.set_index("group")
    c = r["outcome_cohort"]
    assert set(c) == {"warned_from", "warned_to", "grace_days", "outcome_days", "contacted", "not_contacted",
                      "retained_contacted", "retained_not_contacted"}  # fmt: skip
    assert (c["contacted"], c["not_contacted"]) == (k.loc["contacted", "customers"], k.loc["not contacted", "customers"])
    assert c["contacted"] + c["not_contacted"] == len(co.cohort) > 0
    assert 0 <= c["retained_contacted"] <= c["contacted"] and 0 <= c["retained_not_contacted"] <= c["not_contacted"]
    assert c["retained_contacted"] / c["contacted"] == pytest.approx(k.loc["contacted", "retention_rate"])
    assert (c["grace_days"], c["outcome_days"]) == (co.grace_days, co.outcome_days)
    # two populations: the cohort's warnings end before the report month; the month's warnings are in it
    assert dt.date.fromisoformat(c["warned_to"]) < dt.date(2026, 10, 1)
    assert c["warned_from"] <= c["warned_to"]
    w = early_warnings(src, month="2026-10", branch="B001")
    assert (pd.to_datetime(w["warning_date"]) >= pd.Timestamp("2026-10-01")).all()
    assert r["month_warnings"]["warnings"] == int(warning_summary(w).set_index("rule").loc["all", "warnings"])
    if r["contact_odds_ratio"] is not None:
        assert r["contact_odds_ratio"]["n"] == c["contacted"] + c["not_contacted"]


def test_rerun_is_byte_identical_and_never_overwrites_silently(branch_file: Path, small_demo: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    again = tmp_path / "again.json"
    args = ["metrics", str(small_demo), "--month", "2026-10", "--branch", "B001", "--out", str(again)]
    assert main(args) == 0
    assert again.read_bytes() == branch_file.read_bytes()
    assert main(args) == 0  # identical: left as it is
    zh = ["metrics", str(small_demo), "--month", "2026-10", "--branch", "B001", "--language", "zh", "--out", str(again)]
    assert main(zh) == 2, "different content needs --force"
    assert again.read_bytes() == branch_file.read_bytes()
    assert main([*zh, "--force"]) == 0 and json.loads(again.read_text())["language"] == "zh"


def test_bank_file_and_usage_errors(small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bank.metrics.json"
    assert main(["metrics", str(small_demo), "--month", "2026-10", "--bank", "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["scope"] == "bank" and m["branch_id"] is None
    assert main(["metrics", str(small_demo), "--month", "2026-10", "--out", str(tmp_path / "x.json")]) == 2
    assert main(["metrics", str(small_demo), "--month", "2026-10", "--branch", "NOPE", "--out",
                 str(tmp_path / "y.json")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--branch ID or --bank" in err and "unknown branch 'NOPE'" in err
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()


def test_branch_model_when_it_has_enough_events(small_demo: Path) -> None:
    from crmresearch.month.metrics import metrics

    src = load_source(small_demo)
    own = metrics(src, load_params(overrides={"branch_model_min_events": 50}), month="2026-10", branch="B001")
    assert own["hazard_ratios_scope"] == "branch"
    bank = metrics(src, load_params(overrides={"branch_model_min_events": 10**6}), month="2026-10", branch="B001")
    assert bank["hazard_ratios_scope"] == "bank" and bank["hazard_ratios"] != own["hazard_ratios"]


def test_flat_extract_metrics(tmp_path: Path) -> None:
    if not BANK_CSV.exists():
        pytest.skip(f"public dataset not found: {BANK_CSV}")
    from crmresearch.data.flat import import_flat

    src_dir = import_flat(BANK_CSV, "bank-churn-modelling", tmp_path / "flat")
    out = tmp_path / "flat.json"
    assert main(["metrics", str(src_dir), "--bank", "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["month"] is None and m["kpis"] is None and m["retention"] is None
    by_group = {c["group"]: c for c in m["coverage"]}
    assert by_group["1"]["customers"] + by_group["2"]["customers"] + by_group["3-4"]["customers"] == 10_000
    assert any("monthly KPIs" in c for c in m["caveats"])
    assert main(["metrics", str(src_dir), "--bank", "--month", "2026-10", "--out", str(tmp_path / "z.json")]) == 2


def test_engine_settings_do_not_change_the_file(small_demo: Path) -> None:
    from crmresearch.month.metrics import metrics, metrics_json

    src = load_source(small_demo)
    a = metrics(src, month="2026-10", branch="B002")
    b = metrics(src, load_params(overrides={"engine.threads": 1}), month="2026-10", branch="B002")
    assert metrics_json(a) == metrics_json(b)
