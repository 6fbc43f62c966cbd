"""The one renderer (viz/summary.py): tables with column kinds and notes, escaped, suppressed, as HTML and text."""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
import pytest

from crmresearch.core.suppression import suppress_counts
from crmresearch.viz.summary import Summary, SummaryTable, render


def _table(df: pd.DataFrame) -> SummaryTable:
    return SummaryTable(df, {"group": ("group", "text"), "customers": ("customers", "count"),
                             "rate": ("churn rate", "percent")}, caption="Churn by group")  # fmt: skip


DF = pd.DataFrame({"group": ["<script>alert(1)</script>", "it's two", "three"], "customers": [4, 1200, 300],
                   "rate": [0.5, 0.01, 0.02]})  # fmt: skip


def test_html_and_text_show_the_same_cells() -> None:
    t = _table(DF)
    page = t.as_html("en")
    for row in t.cells("en"):
        for j, cell in enumerate(row):  # text left-aligned (class "text"), numbers not
            assert (f'<td class="text">{html.escape(cell)}</td>' if j == 0 else f"<td>{html.escape(cell)}</td>") in page
            assert cell in t.as_text("en")
    assert "1,200" in page and "<caption>Churn by group</caption>" in page


def test_data_text_is_escaped_with_quotes() -> None:
    page = _table(DF).as_html()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "it&#x27;s two" in page  # html.escape's form: pages stay as they were before templates
    assert render("section.html.j2", key="k", title='"a" & b', body="") == \
        '<section class="report-section" id="k"><h2>&quot;a&quot; &amp; b</h2></section>'


def test_suppress_follows_the_reports_rule() -> None:
    s = Summary([_table(DF)], notes=["a note"]).suppress(10, count="customers", derived=("rate",))
    want = suppress_counts(DF, "customers", min_cell=10, derived=["rate"])
    got = s.tables[0].mask
    for i in DF.index:
        for c in ("customers", "rate"):
            assert got.is_hidden(i, c) == want.is_hidden(i, c)
    cells = s.tables[0].cells("en")
    assert cells[0][1] == "fewer than 10" and cells[0][2] == "suppressed"
    assert sum(c == "suppressed" for row in cells for c in row[1:2]) == 1  # the complement
    assert "4" not in [c for row in cells for c in row]


def test_repr_html_is_the_html_and_zh_is_chinese() -> None:
    s = Summary([_table(DF)], notes=["<b>x</b>"], language="zh").suppress(10, count="customers")
    assert s._repr_html_() == s.as_html()
    assert "少于 10" in s.as_html() or "少于10" in s.as_html()
    assert "&lt;b&gt;x&lt;/b&gt;" in s.as_html() and str(s) == s.as_text()


def test_every_result_shows_its_own_table(small_demo) -> None:
    """Each analysis's result renders itself through the one renderer, with its own numbers."""
    from crmresearch import load_source
    from crmresearch.analyses.lifecycle import lifecycle
    from crmresearch.analyses.product_coverage import product_coverage, sticky_products
    from crmresearch.analyses.retention_loop import contact_outcomes
    from crmresearch.analyses.rm_turnover import turnover_churn_comparison
    from crmresearch.analyses.watchlist import watch_list

    src = load_source(small_demo)
    try:
        results = {
            "coverage": (product_coverage(src, month="2026-10"), "summary"),
            "sticky": (sticky_products(src), "table"),
            "lifecycle": (lifecycle(src), "stages"),
            "contacts": (contact_outcomes(src, month="2026-10"), "counts"),
            "turnover": (turnover_churn_comparison(src, month="2026-10"), "summary"),
            "watch": (watch_list(src, month="2026-10", branch="B001", top=5, key=b"k" * 32, validate=False), "summary"),
        }
        for name, (res, attr) in results.items():
            frame = getattr(res, attr).reset_index(drop=True)
            s = res.to_summary("en")
            assert isinstance(res.caveats, list), name
            (table,) = s.tables
            assert list(table.frame.columns) == list(frame.columns), name
            pd.testing.assert_frame_equal(table.frame, frame, check_dtype=False)
            assert res._repr_html_() == s.as_html(), name
            metrics = res.to_metrics()  # JSON-safe (no NaN), the result's own figures
            json.dumps(metrics, allow_nan=False)
            if name not in ("coverage", "contacts"):  # those two have metrics.json's own shape (test_metrics)
                assert len(metrics) == len(frame) and all(set(m) == {str(c) for c in frame.columns} for m in metrics), name
            assert s.as_html().startswith('<div class="summary"><table class="report-table">'), name
            zh = res.to_summary("zh").as_html()
            assert zh != s.as_html() or frame.empty, name
            if name in ("contacts", "turnover", "watch"):  # the results' own figures, in both languages
                import matplotlib.pyplot as plt

                for lang in ("en", "zh"):
                    ax = res.plot(language=lang)
                    assert ax.get_xlabel() and (lang == "en") != any("\u4e00" <= ch <= "\u9fff" for ch in ax.get_xlabel())
                    plt.close(ax.figure)
    finally:
        src.close()


def test_the_kpis_render_themselves(small_demo) -> None:
    """The month's KPIs are a result too: metrics.json's numbers, a table per language, the trend figure."""
    import matplotlib.pyplot as plt

    from crmresearch import load_source
    from crmresearch.analyses.kpis import KPI_COLUMNS, month_kpis, monthly_kpis

    src = load_source(small_demo)
    try:
        k = month_kpis(src, month="2026-10", branch="B001")
        plain = monthly_kpis(src, month="2026-10", branch="B001").set_index(["scope", "customers"])
        bare = month_kpis(src, month="2026-10", compare=False, trend=False)
    finally:
        src.close()
    m = k.to_metrics()
    for who, block in (("all", "kpis"), ("high_value", "kpis_high_value")):
        for c in KPI_COLUMNS:
            assert m[block][c] == pytest.approx(float(plain.loc[("B001", who), c])), (who, c)
    assert isinstance(m["kpis"]["churned_in_month"], int)
    zh = k.to_summary("zh")
    assert len(zh.tables[0].frame) == len(KPI_COLUMNS) and "月流失率" in zh.as_html()
    assert k._repr_html_() == k.to_summary("en").as_html()
    ax = k.plot(language="zh", min_cell=10**9)  # every month hidden: no point drawn
    assert all(len(line.get_xydata()) == 0 or np.isnan(line.get_xydata()[:, 1]).all() for line in ax.get_lines()
               if line.get_label() == "B001")
    plt.close(ax.figure)
    assert bare.scope == "bank" and bare.trend is None
    with pytest.raises(ValueError, match="no trend"):
        bare.plot()


def test_the_causes_model_has_its_summary(small_demo) -> None:
    from crmresearch import load_source
    from crmresearch.analyses.causes import causes_model, causes_summary

    src = load_source(small_demo)
    try:
        model = causes_model(src)
    finally:
        src.close()
    s = causes_summary(model, "en")
    (table,) = s.tables
    hr = model.hazard_ratios()
    assert list(table.frame["hr"]) == list(hr["hr"]) and len(table.frame) == len(hr)
    assert "associations" in s.notes[0] and f"{model.n_events_:,} churns" in table.caption
    assert s._repr_html_().count("<tr>") == len(hr) + 1
