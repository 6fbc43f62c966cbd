"""No published page gives back a count it hides (issue 12, group 1).

The property test renders every page of one synthetic bank of 200 small
branches (1–30 customers each, drawn at random) through the library — the
code the report notebooks call — and asks the checker of
:mod:`disclosure` whether any hidden count can be recovered from the
figures on the same page: by multiplication (rate × denominator, O/E ×
expected), by subtraction of totals, or read directly.  One real run of
``crmresearch report`` (papermill, a few small branches) checks the same on
the published files.  The checker is tested on today's leaks first.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from crmresearch.batch.run import render_index
from crmresearch.cli import main
from crmresearch.core.params import Params
from crmresearch.core.privacy import new_key_file
from crmresearch.data.contract import load_source
from crmresearch.data.demo import DemoConfig, write_demo_bank
from crmresearch.month.bundle import build_bundle
from crmresearch.report.reports import BankReport, BranchReport
from disclosure import find_leaks, tables

MONTH = "2026-10"
M = 10  # the default minimum cell size
BRANCH = ["header", "headline", "who_left", "product_coverage", "rm_turnover", "causes", "lifecycle", "retention",
          "watch_list", "notes"]  # fmt: skip
BANK = ["header", "headline", "who_left", "product_coverage", "rm_turnover", "causes", "lifecycle", "retention",
        "notes", "regions", "branch_comparison"]  # fmt: skip


def small_branches(root: Path, branches: int, seed: int, *, per_branch: int = 30, large: int = 0) -> Path:
    """A demo bank whose branches keep 1 to 30 customers each (drawn at random), with all their records.

    The first ``large`` branches keep all ``per_branch`` customers (enough churn for the bank-wide model
    of a bank with few branches).
    """
    out = write_demo_bank(root, DemoConfig(branches=branches, customers_per_branch=per_branch, months=24, seed=seed))
    rng = np.random.default_rng(seed)
    c = pd.read_parquet(out / "customers.parquet")
    keep = np.concatenate([g.to_numpy() if i < large else rng.choice(g.to_numpy(), size=int(rng.integers(1, 31)), replace=False)
                           for i, (_, g) in enumerate(c.groupby("branch_id")["customer_id"])])  # fmt: skip
    for f in out.glob("*.parquet"):
        d = pd.read_parquet(f)
        if "customer_id" in d.columns:
            d[d["customer_id"].isin(keep)].to_parquet(f, index=False)
    return out


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory: pytest.TempPathFactory):
    """200 branches of 1–30 customers, and its month bundle."""
    src = small_branches(tmp_path_factory.mktemp("small-bank") / "bank", 200, seed=12)
    source = load_source(src)
    try:
        bundle = build_bundle(source, Params(), month=MONTH, path=tmp_path_factory.mktemp("small-cache") / "b")
    finally:
        source.close()
    sizes = pd.read_parquet(src / "customers.parquet").groupby("branch_id").size()
    assert len(sizes) == 200 and sizes.between(1, 30).all()
    return src, bundle


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Figures are images (not read by the checker): drawing 200 pages of them would only cost time."""
    from crmresearch.analyses import lifecycle
    from crmresearch.report import reports as reporting
    from crmresearch.viz import plots

    monkeypatch.setattr(reporting._Report, "_fig", lambda self, ax, alt: "")
    for f in ("trend_plot", "km_plot", "forest_plot", "cumulative_incidence_plot", "funnel_plot", "bar_plot"):
        monkeypatch.setattr(plots, f, lambda *a, **k: None)
    monkeypatch.setattr(lifecycle.LifecycleResult, "plot", lambda self, *a, **k: None)


def _page(report, sections: list[str]) -> str:
    return "".join(getattr(report, s)()._repr_html_() for s in sections)


def _index_rows(bundle, reports: dict[str, BranchReport]) -> pd.DataFrame:
    """The index's rows as the runner builds them: the bank stage's branches and each report's metrics."""
    rows = bundle.context.branches[["branch_id", "branch_name", "region", "customers"]].copy()
    rows = rows[rows["customers"] > 0].reset_index(drop=True)
    rows["status"] = "done"
    for c in ("active_at_start", "churned_in_month", "monthly_churn_rate", "aum_lost", "aum_drained"):
        rows[c] = [reports[b].metrics()["kpis"][c] for b in rows["branch_id"]]
    rows["hv_churned"] = [reports[b].metrics()["kpis_high_value"]["churned_in_month"] for b in rows["branch_id"]]
    return rows


def _hidden_cells(page: str) -> int:
    return sum(c.kind in ("small", "hidden") for t in tables(page) for r in t.rows for c in r)


# --------------------------------------------------------------------------- the checker catches today's leaks


KPI = """<table class="report-table kpi-lights"><thead><tr><th>measure</th><th>this month</th><th>vs last month</th>
<th>vs same month last year</th></tr></thead><tbody>
<tr><th>customers active at month start</th><td>85</td><td>82</td><td>80</td></tr>
<tr><th>customers churned in the month</th><td>12</td><td>fewer than 10 <span>about the same</span></td><td>15</td></tr>
<tr><th>monthly churn rate</th><td>14.12%</td><td>{rate} <span>better</span></td><td>18.75%</td></tr>
<tr><th>AUM lost</th><td>CNY 1.20M</td><td>{aum}</td><td>CNY 2.00M</td></tr></tbody></table>"""


def test_the_checker_finds_a_rate_next_to_a_hidden_count_and_the_aum_of_few_churners() -> None:
    leaks = find_leaks(KPI.format(rate="1.22%", aum="CNY 66.7K"), M)
    assert any("1.22% x customers active at month start 82 = 1" in str(x) for x in leaks), leaks
    assert any("AUM of fewer than 10 churners" in str(x) for x in leaks), leaks
    assert find_leaks(KPI.format(rate="below 12.20%", aum="suppressed"), M) == []


def test_the_checker_finds_observed_from_expected_and_ratio() -> None:
    oe = ("<table class='report-table'><thead><tr><th>rank</th><th>branch</th><th>observed churn (12 months)</th>"
          "<th>expected given the customer mix</th><th>observed / expected (95% interval)</th></tr></thead><tbody>"
          "<tr><td>3</td><td>North (B003)</td><td>fewer than 10</td><td>{e}</td><td>{r}</td></tr></tbody></table>")  # fmt: skip
    leaks = find_leaks(oe.format(e="0.5", r="1.89 (0.05–10.53)"), M)
    assert any("= 1" in str(x) for x in leaks), leaks
    assert find_leaks(oe.format(e="suppressed", r="suppressed"), M) == []


def test_the_checker_finds_small_counts_shown_and_cells_given_away_by_a_total() -> None:
    rows = ("<table class='report-table'><caption>Rows used</caption><thead><tr><th>table</th><th>rows</th></tr>"
            "</thead><tbody><tr><td>customers</td><td>{n}</td></tr></tbody></table>")  # fmt: skip
    assert any("rows = 5 is below 10" in str(x) for x in find_leaks(rows.format(n="5"), M))
    assert find_leaks(rows.format(n="fewer than 10"), M) == []
    kpi = KPI.format(rate="1.22%", aum="x").replace("<td>12</td>", "<td>40</td>")
    breakdown = ("<table class='report-table'><caption>Churned customers by tier</caption><thead><tr><th>tier</th>"
                 "<th>churned customers</th></tr></thead><tbody><tr><td>mass</td><td>fewer than 10</td></tr>"
                 "<tr><td>key</td><td>{other}</td></tr></tbody></table>")  # fmt: skip
    assert any("total 40" in str(x) for x in find_leaks(kpi + breakdown.format(other="36"), M))  # 40 - 36 = 4
    assert not [x for x in find_leaks(kpi + breakdown.format(other="suppressed"), M) if "total" in str(x)]
    # by tier: the high-value KPI minus the high-value tiers shown
    hv_kpi = ("<h3>High-value customers (key, private)</h3><table class='report-table kpi-lights'><thead><tr>"
              "<th>measure</th><th>this month</th></tr></thead><tbody><tr><th>customers churned in the month</th>"
              "<td>15</td></tr></tbody></table>")  # fmt: skip
    tiers = ("<table class='report-table'><caption>Churned customers by tier</caption><thead><tr><th>tier</th>"
             "<th>churned customers</th></tr></thead><tbody><tr><td>mass</td><td>{mass}</td></tr>"
             "<tr><td>key</td><td>fewer than 10</td></tr><tr><td>private</td><td>12</td></tr></tbody></table>")  # fmt: skip
    assert any("total 15" in str(x) for x in find_leaks(kpi + hv_kpi + tiers.format(mass="suppressed"), M))  # 15 - 12
    # the index: a region's roll-up minus its branches shown
    index = render_index(pd.DataFrame({"branch_id": ["B1", "B2"], "branch_name": ["a", "b"], "region": ["N", "N"],
                                       "customers": [5, 40], "status": ["done", "done"]}),
                         month=None, language="en", min_cell=M, meta={}, bank_link=False)  # fmt: skip
    assert find_leaks(index, M) == []
    leaky = index.replace("suppressed", "40", 1)  # as if the complement were not there: 45 - 40 = 5
    assert any("region N" in str(x) for x in find_leaks(leaky, M)), find_leaks(leaky, M)


# --------------------------------------------------------------------------- the reproductions of issue 12


def test_kpi_rates_and_aum_of_a_hidden_count_are_hidden_in_every_column(small_bank) -> None:
    """High-value: 1.22% x 82 active gave back 1 churner; the AUM lost by 1 churner is that customer's AUM."""
    _, bundle = small_bank
    r = BranchReport.open(bundle, bundle.branch_ids[0])
    rows = []
    for against, (active, churned, aum) in {"previous_month": (82, 1, 5e5), "same_month_last_year": (82, 1, 7e4),
                                            "bank": (90, 2, 3e5)}.items():  # fmt: skip
        for kpi, v in {"active_at_start": active, "churned_in_month": churned, "monthly_churn_rate": churned / active,
                       "aum_lost": aum, "aum_drained": aum}.items():  # fmt: skip
            rows.append({"kpi": kpi, "against": against, "value": {"active_at_start": 85, "churned_in_month": 3,
                         "monthly_churn_rate": 3 / 85}.get(kpi, 1e5), "reference": v, "status": "same"})  # fmt: skip
    page = r._lights(pd.DataFrame(rows))
    assert "1.22%" not in page and "3.53%" not in page and "CNY" not in page
    assert find_leaks(page, M) == []
    assert page.count("fewer than 10") == 4 and "below 11.8%" in page  # a bound: 10 / 85 this month


def test_observed_expected_hides_expected_and_ratio_with_the_observed_count(small_bank, no_figures) -> None:
    _, bundle = small_bank
    html = BankReport.open(bundle).branch_comparison()._repr_html_()
    t = next(t for t in tables(html) if any("expected" in h for h in t.headers))
    hidden = [r for r in t.rows if r[2].kind == "small"]
    assert hidden, "the small bank has branches with fewer than 10 churners in 12 months"
    assert all(r[3].kind == "hidden" and r[4].kind == "hidden" for r in hidden)
    assert find_leaks(html, M) == []


def test_rows_used_hides_small_counts(small_bank) -> None:
    _, bundle = small_bank
    sizes = bundle.context.branches.set_index("branch_id")["customers"]
    b = str(sizes[sizes.between(1, M - 1)].index[0])
    html = BranchReport.open(bundle, b).notes()._repr_html_()
    t = next(t for t in tables(html) if t.caption == "Rows used")
    customers = next(r for r in t.rows if r[0].text == "customers")
    assert customers[1].text == "fewer than 10", customers
    assert find_leaks(html, M) == []


def test_a_cell_is_hidden_by_the_mask_never_by_its_text(small_bank) -> None:
    """A label from the data that reads like a suppressed cell is shown as it is; a hidden count, from the mask."""
    from crmresearch.core.suppression import suppress_counts

    _, bundle = small_bank
    r = BranchReport.open(bundle, bundle.branch_ids[0])
    df = pd.DataFrame({"group": ["fewer than 3 products", "suppressed", "x"], "n": [40, 50, 4]})
    cols = {"group": ("group", str), "n": ("customers", str)}
    page = r._table(df, cols)
    assert '<td class="text">fewer than 3 products</td>' in page and '<td class="text">suppressed</td><td>50</td>' in page
    masked = r._table(df, cols, mask=suppress_counts(df, "n", total_shown=False))
    assert '<td class="text">x</td><td>fewer than 10</td>' in masked and "<td>4</td>" not in masked


def test_metrics_dir_inside_out_is_refused(small_bank, tmp_path: Path) -> None:
    src, _ = small_bank
    key = new_key_file(tmp_path / "k" / "pseudonym.key")
    out = tmp_path / "reports"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["report", str(src), "--month", MONTH, "--out", str(out), "--key-file", str(key), "--cache-dir",
                     str(tmp_path / "cache"), "--metrics-dir", str(out / "exact")])  # fmt: skip
    assert code == 2 and "--metrics-dir" in err.getvalue() and "inside --out" in err.getvalue(), err.getvalue()
    assert not out.exists() and not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- the property


@pytest.mark.slow
def test_no_page_of_200_small_branches_gives_back_a_hidden_count(small_bank, no_figures) -> None:
    _, bundle = small_bank
    reports = {b: BranchReport.open(bundle, b) for b in bundle.branch_ids}
    assert len(reports) == 200
    pages = {b: _page(r, BRANCH) for b, r in reports.items()}
    pages["bank"] = _page(BankReport.open(bundle), BANK)
    pages["index"] = render_index(_index_rows(bundle, reports), month=MONTH, language="en", min_cell=M, meta={},
                                  bank_link=True)  # fmt: skip
    leaks = {name: find_leaks(p, M) for name, p in pages.items()}
    leaks = {k: v for k, v in leaks.items() if v}
    assert not leaks, "\n".join(f"{k}: {x}" for k, v in list(leaks.items())[:10] for x in v[:5])
    # the pages did hide things: the check is not vacuous
    assert sum(_hidden_cells(p) for p in pages.values()) > 2000
    assert _hidden_cells(pages["index"]) > 100


@pytest.mark.slow
def test_a_real_run_publishes_no_recoverable_count_and_no_metrics(tmp_path: Path) -> None:
    """``crmresearch report`` on 4 small branches and 2 of 300 (papermill): every published file passes the checker."""
    src = small_branches(tmp_path / "bank", 6, seed=5, per_branch=300, large=2)
    key = new_key_file(tmp_path / "k" / "pseudonym.key")
    out, exact = tmp_path / "reports", tmp_path / "exact"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["report", str(src), "--month", MONTH, "--out", str(out), "--key-file", str(key), "--cache-dir",
                     str(tmp_path / "cache"), "--workers", "1", "--metrics-dir", str(exact)])  # fmt: skip
    assert code == 0, err.getvalue()
    month = out / MONTH
    files = sorted(p for p in month.rglob("*") if p.is_file())
    assert not [p for p in files if "metrics" in p.name], "exact metrics are never published"
    assert sorted(p.name for p in (exact / MONTH).iterdir()) == ["B001.json", "B002.json", "B003.json",
                                                                  "B004.json", "B005.json", "B006.json", "bank.json"]  # fmt: skip
    m = json.loads((exact / MONTH / "B001.json").read_text())
    assert isinstance(m["kpis"]["active_at_start"], int), "the metrics dir keeps the exact counts"
    checked = hidden = 0
    for p in files:
        if p.suffix == ".html":
            pages = [p.read_text(encoding="utf-8")]
        elif p.suffix == ".ipynb":
            nb = nbformat.read(p, as_version=4)
            pages = ["".join(o.get("data", {}).get("text/html", "")) for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", [])]  # fmt: skip
        else:
            assert p.name == "manifest.json", p
            continue
        for page in pages:
            assert find_leaks(page, M) == [], (p.name, find_leaks(page, M)[:5])
            hidden += _hidden_cells(page)
        checked += 1
    assert checked == 15  # index, bank, 6 branches, 7 notebooks
    assert hidden > 100, "the small branches' pages hide cells: the check is not vacuous"
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def test_the_reasons_chart_draws_only_the_bars_its_table_shows(small_bank, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar chart of churn reasons writes each bar's count on it: a cell its table hides gets no bar.

    Reasons 30, 12 and 4 under the month's 46 churners: the table hides 4 ("fewer than 10") and 12 (its
    complement, else 46 - 30 - 12 would give the 4 back); the chart must not show the 12 either.
    """
    import dataclasses

    from crmresearch.report import reports as reporting
    from crmresearch.viz import plots
    from crmresearch.viz.i18n import label

    drawn: list[list[float]] = []
    monkeypatch.setattr(reporting._Report, "_fig", lambda self, ax, alt: "")
    monkeypatch.setattr(plots, "bar_plot", lambda data, y, x, **k: drawn.append(sorted(data[x].astype(float))))
    _, bundle = small_bank
    report = BankReport.open(bundle)
    b = report.ctx.breakdowns
    mine = (b["scope"] == "bank") & (b["by"] == "reason")
    crafted = pd.DataFrame([b[mine].iloc[0]] * 3).reset_index(drop=True)
    crafted["group"], crafted["churned_in_month"] = ["price", "service", "moved"], [30, 12, 4]
    crafted["share_of_churned"] = crafted["churned_in_month"] / 46
    report.ctx = dataclasses.replace(report.ctx, breakdowns=pd.concat([b[~mine], crafted], ignore_index=True))
    html = report.who_left()._repr_html_()
    reason = [t for t in tables(html) if label("churn_reason", "en") in t.caption]
    cells = [c for t in reason for r in t.rows for c in r[1:2]]
    assert sorted(c.kind for c in cells) == ["count", "hidden", "small"], [c.text for c in cells]
    assert drawn == [[30.0]], f"bars {drawn}: only the reason the table shows may be drawn"


def test_the_summary_describes_no_coverage_group_its_table_hides(small_bank) -> None:
    """Coverage groups churning 5, 30 and 12: the table hides the 5 and, as its complement, the 12 — so the
    summary's coverage sentence, which quotes churn rates, may not name the 12's group (24.0% x 50 = 12)."""
    _, bundle = small_bank
    report = BranchReport.open(bundle, bundle.branch_ids[0])
    cov = pd.DataFrame({"group": ["1", "2", "3-4"], "customers": [100, 200, 50], "churned_12m": [5, 30, 12]})
    cov["churn_rate_12m"] = cov["churned_12m"] / cov["customers"]
    hidden = report._coverage_mask(cov).rows.tolist()
    assert hidden == [True, False, True]
    m = {**report.metrics(), "coverage": cov.to_dict("records"), "hazard_ratios": None}
    report.metrics = lambda: m
    html = report._summary_html(None, None)
    assert "24.0%" not in html and "5.0%" not in html, html


# --------------------------------------------------------------------------- linked tables (a review's findings)


def _index(customers: list[int], regions: list[str], month: str | None = None) -> str:
    n = len(customers)
    rows = pd.DataFrame({"branch_id": [f"B{i:02d}" for i in range(n)], "branch_name": ["x"] * n, "region": regions,
                         "customers": customers, "status": ["done"] * n})  # fmt: skip
    return render_index(rows, month=month, language="en", min_cell=M, meta={}, bank_link=False)


def test_the_checker_finds_a_hidden_region_given_back_by_its_branches_and_a_region_that_pins_them() -> None:
    index = _index([9, 9, 20, 30], ["N", "N", "S", "S"])
    regions = tables(index)[1]
    # a region hidden with all its branches shown is their sum
    shown = index.replace("fewer than 10", "12")
    assert any("sum of its parts" in str(x) for x in find_leaks(shown, M))
    # a region of 18 shown over two "fewer than 10" branches: 9 + 9 is the only split
    head, regions_part = index.split('id="regions"')
    pinned = head + 'id="regions"' + regions_part.replace('<td data-sort="">suppressed</td>', '<td data-sort="18">18</td>', 1)
    assert any("region N" in str(x) for x in find_leaks(pinned, M)), find_leaks(pinned, M)
    assert regions.rows[0][2].kind == "hidden"


def test_the_index_hides_a_region_its_small_branches_would_be_pinned_by_and_its_complement() -> None:
    """Two branches of 9 make a region of 18 (each read "fewer than 10": 18 pins both); a region hidden as a
    complement is not given back by its branches shown."""
    index = _index([9, 9, 20, 30], ["N", "N", "S", "S"])
    assert find_leaks(index, M) == []
    branches, regions = tables(index)
    assert [r[2].kind for r in regions.rows] == ["hidden", "hidden"]  # N (18) and S, or N = bank - S
    assert [r[3].kind for r in branches.rows] == ["small", "small", "hidden", "count"]  # S = 20 + 30 otherwise
    many = _index([4, 30, 12, 40, 55, 3, 9, 80], ["A", "A", "B", "B", "C", "C", "D", "D"])
    assert find_leaks(many, M) == []


def _flat_bank(root: Path, seed: int, branches: int = 24) -> Path:
    """A flat extract (tenure and churned) of small branches in 4 regions."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    br = pd.DataFrame({"branch_id": [f"F{i:03d}" for i in range(branches)], "branch_name": "x",
                       "region": [f"R{i % 4}" for i in range(branches)]})  # fmt: skip
    sizes = rng.integers(1, 31, size=branches)
    ids = np.repeat(br["branch_id"].to_numpy(), sizes)
    cu = pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(len(ids))], "branch_id": ids,
                       "tenure_months": rng.uniform(1, 60, len(ids)).round(1), "churned": rng.random(len(ids)) < 0.3,
                       "segment": rng.choice(["retail", "sme"], len(ids))})  # fmt: skip
    br.to_parquet(root / "branches.parquet", index=False)
    cu.to_parquet(root / "customers.parquet", index=False)
    return root


def test_a_flat_bank_page_suppresses_its_branches_and_regions_as_one(tmp_path: Path, no_figures) -> None:
    """The flat bank page's churners by branch and by region, on 5 random banks of small branches: no hidden
    branch comes back from its region's row (nor a region from its branches); suppressed apart, they leak."""
    from crmresearch.core.suppression import suppress_counts

    apart = 0
    for seed in range(5):
        source = load_source(_flat_bank(tmp_path / f"flat{seed}", seed))
        try:
            assert source.flat
            bundle = build_bundle(source, Params(), month=None, path=tmp_path / f"cache{seed}" / "b")
        finally:
            source.close()
        report = BankReport.open(bundle)
        page = _page(report, ["headline", "who_left", "regions"])
        regions_of = dict(zip(bundle.context.branches["branch_id"], bundle.context.branches["region"], strict=True))
        assert find_leaks(page, M, regions_of=regions_of) == [], seed
        heads = [t.headers[0] for t in tables(page) if t.headers]
        assert "branch" in heads and "region" in heads
        assert _hidden_cells(page) > 5
        # each table suppressed on its own, against the headline's total only (as before the fix)
        df, _, g, _ = report._flat_branches_and_regions()
        mb = suppress_counts(df, "customers", derived=("churned", "share"),
                             prior=suppress_counts(df, "churned", derived=("share",)))  # fmt: skip
        mr = suppress_counts(g, "churned", derived=("rate",), prior=suppress_counts(g, "customers", derived=("churned", "rate")))
        report._flat_regions = (df, mb, g, mr)
        apart += bool(find_leaks(_page(report, ["headline", "who_left", "regions"]), M, regions_of=regions_of))
    assert apart >= 1, "suppressed apart, the two tables give hidden counts back on some bank: the check is not vacuous"


def test_the_checker_finds_the_high_value_kpi_given_back_by_the_other_tiers() -> None:
    """40 churners, 33 of them outside the high-value tiers: the high-value KPI's "fewer than 10" is 7."""
    kpi = KPI.format(rate="suppressed", aum="x").replace("<td>12</td>", "<td>40</td>")
    hv_kpi = ("<h3>High-value customers (key, private)</h3><table class='report-table kpi-lights'><thead><tr>"
              "<th>measure</th><th>this month</th></tr></thead><tbody><tr><th>customers churned in the month</th>"
              "<td>fewer than 10</td></tr></tbody></table>")  # fmt: skip
    tiers = ("<table class='report-table'><caption>Churned customers by tier</caption><thead><tr><th>tier</th>"
             "<th>churned customers</th></tr></thead><tbody><tr><td>mass</td><td>33</td></tr>"
             "<tr><td>affluent</td><td>{affluent}</td></tr><tr><td>key</td><td>fewer than 10</td></tr>"
             "<tr><td>private</td><td>fewer than 10</td></tr></tbody></table>")  # fmt: skip
    assert any("high" not in str(x) and "total 40" in str(x) for x in find_leaks(kpi + hv_kpi + tiers.format(affluent="0"), M))
    assert find_leaks(kpi + hv_kpi + tiers.format(affluent="suppressed"), M) == []
    # a shown 18 over two "fewer than 10" high-value tiers: 9 + 9; hidden, it is no longer a total
    shown18 = hv_kpi.replace("fewer than 10</td></tr></tbody>", "18</td></tr></tbody>")
    assert find_leaks(kpi + shown18 + tiers.format(affluent="suppressed"), M)


def test_the_competing_risks_chart_draws_no_cause_of_fewer_than_n_churners_nor_its_complement(
        small_bank, no_figures, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A cause's incidence at the horizon times its group's customers (shown in §3) is about its churners.

    On the bank page and the branches' pages, every cause drawn has 0 or at least 10 churners by the
    horizon, and no group hides just one cause with churners (the group's churners would give it back).
    """
    from crmresearch.analyses import product_coverage
    from crmresearch.viz import plots

    computed, pairs = [], []
    real = product_coverage.cumulative_incidence
    monkeypatch.setattr(product_coverage, "cumulative_incidence", lambda *a: computed.append(real(*a)) or computed[-1])
    monkeypatch.setattr(plots, "cumulative_incidence_plot", lambda cif, **k: pairs.append((computed[-1], cif.copy())))
    _, bundle = small_bank
    for r in [BankReport.open(bundle)] + [BranchReport.open(bundle, b) for b in bundle.branch_ids[:40]]:
        r.causes()
    assert pairs, "some page draws the chart"
    for full, cif in pairs:
        assert not cif["events"].between(1, M - 1).any(), cif[cif["events"].between(1, M - 1)]
        for g, causes in full[full["group"].isin(cif["group"])].groupby("group", observed=True):
            drawn = set(cif.loc[cif["group"] == g, "cause"])
            left_out = causes[~causes["cause"].isin(drawn) & (causes["events"] > 0)]
            assert len(left_out) != 1, f"group {g}: only {left_out['cause'].tolist()} is left out"
    assert sum(int(f["events"].between(1, M - 1).sum()) for f in computed) > 0, "some cause was small: not vacuous"
