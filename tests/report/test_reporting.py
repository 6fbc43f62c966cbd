"""The month bundle and the report sections: slices, privacy, escaping, languages, flat extracts, summaries."""

from __future__ import annotations

import re
import shutil
from html import unescape
from pathlib import Path

import pandas as pd
import pytest

from crmresearch.core.errors import InputError
from crmresearch.core.params import Params
from crmresearch.data.contract import load_source
from crmresearch.month.bundle import build_bundle, open_bundle, slice_source
from crmresearch.month.metrics import metrics, metrics_json
from crmresearch.report.reports import SECTIONS, BankReport, BranchReport, plain_summary, text
from public_data import BANK_CSV

MONTH = "2026-10"
BRANCH_SECTIONS = ["headline", "who_left", "product_coverage", "rm_turnover", "causes", "lifecycle", "retention",
                   "watch_list", "notes"]  # fmt: skip
KEY = "ab" * 32


@pytest.fixture(scope="module")
def named_demo(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small demo with seeded customer names and a hostile branch name."""
    out = tmp_path_factory.mktemp("named") / "bank"
    shutil.copytree(small_demo, out)
    c = pd.read_parquet(out / "customers.parquet")
    c["name"] = [f"Zyxname{i:05d}" for i in range(len(c))]
    c.to_parquet(out / "customers.parquet", index=False)
    b = pd.read_parquet(out / "branches.parquet")
    b.loc[0, "branch_name"] = "<script>alert(1)</script>"
    b.to_parquet(out / "branches.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def source(named_demo: Path):
    return load_source(named_demo)


@pytest.fixture(scope="module")
def month(source) -> str:
    return source.as_of.strftime("%Y-%m")


@pytest.fixture(scope="module")
def bundle(source, month: str, tmp_path_factory: pytest.TempPathFactory):
    return build_bundle(source, Params(), month=month, path=tmp_path_factory.mktemp("cache") / "b")


def _html(report, names) -> str:
    return "".join(getattr(report, n)()._repr_html_() for n in ["header", *names])


def test_slice_holds_only_its_branch_without_names(source, bundle) -> None:
    b = bundle.branch_ids[0]
    for s in (slice_source(source, b), bundle.branch_source(b)):
        cust = s.df("customers")
        assert set(cust["branch_id"]) == {b}
        assert "name" not in cust.columns
        ids = set(cust["customer_id"])
        for t in ("product_holdings", "monthly_balances", "rm_assignments", "complaints", "retention_actions"):
            assert set(s.df(t)["customer_id"]) <= ids, t
        assert s.tables["customers"] == int((source.df("customers")["branch_id"] == b).sum())


def test_branch_metrics_from_the_bundle_equal_the_whole_source(source, bundle, month: str) -> None:
    """The runner's path (slice + bank model) and `crmresearch metrics` (whole source) write the same bytes."""
    for b in bundle.branch_ids:
        direct = metrics_json(metrics(source, Params(), month=month, branch=b))
        via = metrics_json(metrics(bundle.branch_source(b), Params(), month=month, branch=b,
                                   model=bundle.context.model))  # fmt: skip
        assert direct == via
    assert metrics_json(metrics(source, Params(), month=month)) == metrics_json(
        metrics(bundle.bank_source(), Params(), month=month, model=bundle.context.model))


def test_a_slice_refuses_other_scopes(bundle, month: str) -> None:
    b = bundle.branch_ids[0]
    with pytest.raises(InputError, match="slice of branch"):
        metrics(bundle.branch_source(b), Params(), month=month, branch=None)
    with pytest.raises(InputError, match="bank-wide model"):
        metrics(bundle.branch_source(b), Params(), month=month, branch=b)
    with pytest.raises(InputError, match="unknown branch"):
        bundle.branch_source("NOPE")


@pytest.mark.slow
def test_branch_report_sections_names_and_escaping(bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMRESEARCH_PSEUDONYM_KEY", KEY)
    b = bundle.branch_ids[0]  # the branch named <script>
    r = BranchReport.open(bundle.path, b, language="en", generated_at="2026-11-01 08:00")
    page = _html(r, BRANCH_SECTIONS)
    for key in BRANCH_SECTIONS:
        assert f"<h2>{SECTIONS[key][0]}</h2>" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Zyxname" not in page
    # no customer ID of the bank appears; pseudonyms do, and they are unique
    ids = set(bundle.bank_source().df("customers")["customer_id"])
    assert not any(re.search(rf"\b{re.escape(i)}\b", page) for i in list(ids)[:2000])
    wl = r.watch_list()._repr_html_()
    pseud = re.findall(r'<td class="text">(P[0-9a-f]{16})</td>', wl)
    assert pseud and len(pseud) == len(set(pseud))
    # other branches' RMs' customers are not listed: every RM in the per-RM table serves this branch
    assert "fewer than 10" in page or "suppressed" in page


@pytest.mark.slow
def test_watch_list_is_withheld_without_a_key(bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRMRESEARCH_PSEUDONYM_KEY", raising=False)
    r = BranchReport.open(bundle.path, bundle.branch_ids[1])
    html = r.watch_list()._repr_html_()
    assert "withheld" in html and "<table" not in html


@pytest.mark.slow
def test_chinese_report_translates_headings_and_amounts(bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMRESEARCH_PSEUDONYM_KEY", KEY)
    r = BranchReport.open(bundle.path, bundle.branch_ids[1], language="zh")
    page = _html(r, ["headline", "who_left", "notes"])
    for key in ("headline", "who_left", "notes"):
        assert f"<h2>{SECTIONS[key][1]}</h2>" in page
    assert "万元" in page and "本月要点" in page
    assert "术语表" in page and 'lang="en">hazard ratio (HR)</td>' in page  # the bilingual glossary, English marked


@pytest.mark.slow
def test_bank_report_has_regions_and_funnel(bundle) -> None:
    r = BankReport.open(bundle.path)
    page = _html(r, ["headline", "regions", "branch_comparison", "notes"])
    assert "Regional roll-up" in page and "observed versus expected" in page
    assert "<img src=\"data:image/png;base64," in page
    assert "Zyxname" not in page


def test_plain_summary_describes_the_data_whichever_way() -> None:
    protective = pd.DataFrame({"group": ["1", "2", "3-4"], "customers": [500, 400, 300],
                               "churned_12m": [250, 80, 30], "churn_rate_12m": [0.5, 0.2, 0.1]})  # fmt: skip
    harmful = protective.assign(churn_rate_12m=[0.27, 0.08, 0.83])
    s1 = plain_summary(None, protective, None, None, scope="bank")[0]
    s2 = plain_summary(None, harmful, None, None, scope="bank")[0]
    assert "1 product churned most" in s1 and "3–4 products least" in s1
    assert "3–4 products churned most" in s2 and "2 products least" in s2
    # groups below the minimum cell are not described
    tiny = protective.assign(customers=[500, 400, 5])
    assert "3–4" not in plain_summary(None, tiny, None, None, scope="bank")[0]
    hr = pd.DataFrame({"term": ["n_products", "dormant"], "hr": [0.6, 1.05], "lower": [0.5, 0.9],
                       "upper": [0.7, 1.2], "p": [0.0001, 0.5]})  # fmt: skip
    s3 = " ".join(plain_summary(None, None, hr, None, scope="branch"))
    assert "products held" in s3 and "dormant" not in s3 and "associations" in s3
    assert text("headline", "zh") == "1. 概览"


@pytest.mark.slow
@pytest.mark.skipif(not BANK_CSV.exists(), reason=f"public dataset not found at {BANK_CSV}")
def test_flat_snapshot_on_bank_churn_modelling_says_more_products_churn_more(tmp_path: Path) -> None:
    from crmresearch.data.flat import import_flat

    src = load_source(import_flat(BANK_CSV, "bank-churn-modelling", tmp_path / "src"))
    b = build_bundle(src, Params(), month=None, path=tmp_path / "cache")
    r = BankReport.open(b.path)
    head = r.headline()._repr_html_()
    assert "3–4 products churned most" in head
    page = _html(r, ["who_left", "product_coverage", "rm_turnover", "causes", "lifecycle", "retention", "notes"])
    assert "Not available" in page  # sections the flat extract cannot support say so, and why
    surnames = set(pd.read_csv(BANK_CSV)["Surname"].astype(str))
    assert not [s for s in surnames if len(s) > 3 and re.search(rf"\b{re.escape(s)}\b", head + page)]
    br = BranchReport.open(b.path, open_bundle(b.path).branch_ids[0])
    assert "<h2>8. Watch list</h2>" in br.watch_list()._repr_html_()


def test_the_bank_summary_renders_the_bank_stage_results_as_recomputing_them_would(bundle) -> None:
    """The bank stage computes the bank summary's results once (issue 16); they equal a rebuild from the slices."""
    import dataclasses

    from crmresearch.month.results import SECTION_RESULTS

    stored = bundle.context.bank
    assert stored is not None and "metrics" in stored
    assert set(SECTION_RESULTS) <= set(stored), sorted(set(SECTION_RESULTS) - set(stored))
    reopened = open_bundle(bundle.path)  # as the bank summary's kernel sees it: read back from the bundle's files
    fast = BankReport.open(reopened, language="zh", generated_at="now")
    assert fast._stored_bank() is not None
    slow_bundle = dataclasses.replace(reopened, context=dataclasses.replace(reopened.context, bank=None))
    slow = BankReport.open(slow_bundle, language="zh", generated_at="now")
    assert slow._stored_bank() is None
    assert metrics_json(fast.metrics()) == metrics_json(slow.metrics())
    for name in ("header", "product_coverage", "rm_turnover", "causes", "lifecycle", "retention"):
        assert getattr(fast, name)().body == getattr(slow, name)().body, name
    # other parameters than the bundle's: nothing stored is used
    other = BankReport.open(reopened, params_json=Params(min_cell_size=11).model_dump_json(), generated_at="now")
    assert other._stored_bank() is None


@pytest.mark.slow
def test_rm_turnover_window_is_stated_beside_the_hazard_ratio(source, month: str,
                                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    """Issue 14: the exposure window (exit + 1 … exit + N) is a convention; the report states it beside
    the hazard ratio, in both languages, with N from the parameters the model was fitted with."""
    from crmresearch.core.params import load_params

    params = load_params(overrides={"windows.rm_turnover_days": 45})
    b = build_bundle(source, params, month=month, path=tmp_path_factory.mktemp("cache45") / "b")
    for language in ("en", "zh"):
        html = unescape(BranchReport.open(b.path, b.branch_ids[1], language=language).rm_turnover()._repr_html_())
        hr_at = html.find(text("turnover_hr", language).split("{")[0][:12])
        assert hr_at >= 0, "the report shows the hazard ratio of RM-turnover exposure"
        window = text("turnover_window", language, days=45)
        assert window in html[hr_at:], language
        assert "+ 90" not in html


def _flat_in_days(tmp_path: Path, n: int = 600) -> Path:
    """A flat extract whose CSV gives tenure in days: the source holds tenure months."""
    import numpy as np
    import yaml

    from crmresearch.data.flat import import_flat

    rng = np.random.default_rng(21)
    products = rng.integers(1, 5, n)
    churned = rng.random(n) < np.where(products == 1, 0.5, 0.15)
    df = pd.DataFrame({"id": [f"C{i:04d}" for i in range(n)], "tenure_days": rng.integers(0, 3653, n),
                       "left": churned.astype(int), "products": products, "region": rng.choice(["N", "S"], n)})
    df.to_csv(tmp_path / "in.csv", index=False)
    mapping = {"customer_id": "id", "tenure": {"column": "tenure_days", "unit": "days"},
               "churned": {"column": "left", "true_values": [1], "false_values": [0]},
               "n_products": {"column": "products"}, "branch": {"column": "region"}}  # fmt: skip
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(mapping), encoding="utf-8")
    return import_flat(tmp_path / "in.csv", tmp_path / "map.yaml", tmp_path / "src")


def _keys(obj) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


def test_flat_extract_names_and_labels_follow_its_time_unit(tmp_path: Path, small_demo: Path) -> None:
    """Issue 14: a flat extract's durations are tenure months and its churn flag covers the whole snapshot;
    fields, metrics.json keys, the curves' axis and the report's labels say so (en and zh), not days / 12 months."""
    from lifelines import KaplanMeierFitter
    from lifelines.utils import restricted_mean_survival_time

    from crmresearch.analyses.product_coverage import product_coverage
    from crmresearch.viz.i18n import label
    from crmresearch.viz.plots import km_plot

    src = load_source(_flat_in_days(tmp_path))
    assert src.time_unit == "months" and load_source(small_demo).time_unit == "days"
    cust = src.df("customers")
    res = product_coverage(src)
    assert (res.time_unit, res.window) == ("months", "snapshot")
    assert res.horizon == pytest.approx(cust["tenure_months"].max())  # about 120 months, not 3,652 days
    summ = res.summary
    assert "rmst_months" in summ and not any("days" in c or "12m" in c for c in summ.columns)
    for g, part in res.data.groupby("group", observed=True):
        km = KaplanMeierFitter().fit(part["duration"], part["event"])  # tenure months
        area = summ.set_index("group").loc[str(g), "rmst_months"]
        assert area == pytest.approx(restricted_mean_survival_time(km, t=res.horizon), rel=1e-9)
        assert area <= res.horizon
    # churned over the whole snapshot: every churner of the group, whatever the tenure
    t = res.table.set_index("group")
    by_group = cust.assign(g=res.data["group"].astype(str).to_numpy()).groupby("g")["churned"].sum()
    assert (t["churned_snapshot"] == by_group.reindex(t.index)).all()
    m = metrics(src, month=None)
    assert m["time_unit"] == "months"
    assert set(m["coverage"][0]) == {"group", "customers", "churned_snapshot", "churn_rate_snapshot"}
    assert not [k for k in _keys(m) if "days" in k or "12m" in k]
    ax = km_plot(res)
    assert ax.get_xlim()[1] >= cust["tenure_months"].max() - 1e-9  # the axis runs in months, to the longest tenure
    # the report: labels by the snapshot, in both languages
    b = build_bundle(src, Params(), month=None, path=tmp_path / "cache")
    for language in ("en", "zh"):
        r = BankReport.open(b.path, language=language)
        page = unescape(r.product_coverage()._repr_html_())
        assert label("churn_rate_snapshot", language) in page and label("products_at_snapshot", language) in page
        assert label("churn_rate_12m", language) not in page and label("products_at_landmark", language) not in page
        head = unescape(r.headline()._repr_html_())
        assert text("summary_coverage_snapshot", language).split("{")[0] in head
        assert text("summary_coverage_12m", language).split("{")[0] not in head


def test_retention_section_names_its_two_populations_and_hides_a_small_group(bundle, monkeypatch: pytest.MonkeyPatch
                                                                             ) -> None:  # fmt: skip
    """Issue 14: §7 names the outcome cohort (its warning dates, grace and outcome days, from the parameters) apart
    from the month's warnings; a contacted group of 4 is shown as "fewer than 10" and cannot be recovered from the
    page's other numbers (the disclosure checker), while metrics.json (not published) keeps the exact size."""
    import numpy as np

    from crmresearch.analyses import retention_loop
    from disclosure import find_leaks

    real = retention_loop.contact_outcomes

    def four_contacted(source, params=None, *, month, branch=None):
        res = real(source, params, month=month, branch=branch)
        c = res.cohort
        contacted = np.zeros(len(c), dtype=int)
        contacted[:4] = 1
        retained = c["retained"].to_numpy().copy()
        retained[:4] = [1, 1, 1, 0]
        return retention_loop.outcomes_from_cohort(c.assign(contacted=contacted, retained=retained), params,
                                                   cohort_from=res.cohort_from, cohort_to=res.cohort_to)  # fmt: skip

    monkeypatch.setattr(retention_loop, "contact_outcomes", four_contacted)
    b = bundle.branch_ids[1]
    co = four_contacted(bundle.branch_source(b), bundle.params, month=bundle.context.month, branch=b)
    assert len(co.cohort) - 4 >= 10
    for language in ("en", "zh"):
        r = BranchReport.open(bundle.path, b, language=language)
        html = r.retention()._repr_html_()
        caption = text("outcomes_title", language, start=f"{co.cohort_from:%Y-%m-%d}", end=f"{co.cohort_to:%Y-%m-%d}",
                       grace=bundle.params.retention.grace, outcome=bundle.params.retention.outcome_days)
        assert caption in unescape(html)
        assert text("warnings_title", language, days=bundle.params.retention.response_target_days) in unescape(html)
        assert text("fewer", language, n=10) in html
        if language == "en":
            assert not find_leaks(html, 10), find_leaks(html, 10)
        cohort = r.metrics()["retention"]["outcome_cohort"]
        assert (cohort["contacted"], cohort["retained_contacted"]) == (4, 3)  # exact in the (unpublished) file
        assert cohort["contacted"] + cohort["not_contacted"] == len(co.cohort)
