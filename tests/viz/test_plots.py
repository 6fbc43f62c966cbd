"""Figures for management: every helper in English and Chinese, Chinese glyphs really present, HTML embedding."""

from __future__ import annotations

import base64
import doctest
import functools
import io
import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib import font_manager, ticker
from matplotlib.ft2font import FT2Font

from crmresearch import load_source
from crmresearch.viz import i18n, plots
from crmresearch.viz.i18n import coverage_group_label, label, term_label

matplotlib.use("Agg")

LANGS = ["en", "zh"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def strict(draw: Callable[..., object], *args, **kwargs):
    """Call a plotting helper and draw its figure with every warning an error (a missing glyph
    warns at draw time); in Chinese also save it as PNG.  Returns the helper's result."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = draw(*args, **kwargs)
        fig = out if isinstance(out, matplotlib.figure.Figure) else out.figure
        fig.canvas.draw()
        if kwargs.get("language") == "zh":
            fig.savefig(io.BytesIO(), format="png", dpi=30)
    return out


def _fonts_for(text: matplotlib.text.Text) -> list:
    """The font files (with face index) of a text's fallback chain, in order."""
    props = text.get_fontproperties()
    found = []
    for family in props.get_family():
        p = props.copy()
        p.set_family(family)
        try:
            found.append(font_manager.findfont(p, fallback_to_default=False))
        except ValueError:
            continue
    return found


def _charmap(fontpath) -> dict:
    return _charmap_of(str(getattr(fontpath, "path", fontpath)), getattr(fontpath, "face_index", 0))


@functools.cache
def _charmap_of(path: str, face_index: int) -> dict:
    return FT2Font(path, face_index=face_index).get_charmap()


def assert_glyphs(text: matplotlib.text.Text) -> None:
    """Every character of the text is in some font of its fallback chain."""
    maps = [_charmap(f) for f in _fonts_for(text)]
    missing = [c for c in text.get_text() if not c.isspace() and not any(ord(c) in m for m in maps)]
    assert not missing, f"{text.get_text()!r}: no font has {missing}"


def assert_labelled(ax) -> None:
    assert ax.get_xlabel().strip() and ax.get_ylabel().strip()


# ------------------------------------------------------------------ synthetic inputs
@pytest.fixture(scope="module")
def km_df() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for g, scale, n in (("1", 200, 40), ("2", 400, 40), ("3-4", 900, 40), ("5+", 2000, 5)):
        t = rng.exponential(scale, n)
        rows.append(pd.DataFrame({"group": g, "duration": np.minimum(t, 365.0), "event": (t <= 365).astype(int)}))
    return pd.concat(rows, ignore_index=True)


HR = pd.DataFrame({"term": ["n_products", "rm_turnover_exposed", "complaint_escalated_90d", "tier[private]"],
                   "hr": [0.64, 2.5, 2.0, 0.21], "lower": [0.6, 2.08, 1.35, 0.16],
                   "upper": [0.67, 3.02, 2.97, 0.28], "p": [1e-50, 1e-20, 5e-4, 1e-30]})  # fmt: skip
CIF = pd.DataFrame({"group": ["1", "1", "2", "2", "5+", "5+"], "cause": ["transfer", "natural"] * 3,
                    "cif": [0.28, 0.19, 0.24, 0.14, 0.04, 0.03], "lower": [0.22, 0.14, 0.19, 0.1, 0.01, 0.01],
                    "upper": [0.34, 0.25, 0.29, 0.18, 0.09, 0.08]})  # fmt: skip
HAZARD = pd.DataFrame({"tenure_days": np.arange(0, 1500, 10.0)})
HAZARD["hazard_per_month"] = 0.02 + 0.15 * np.exp(-HAZARD["tenure_days"] / 60)
MONTHS = pd.period_range("2025-10", "2026-10", freq="M").astype(str)
TREND = pd.DataFrame({"month": MONTHS, "monthly_churn_rate": np.linspace(0.01, 0.019, 13), "bank": 0.015})
TIERS = pd.DataFrame({"tier": ["mass", "potential", "general", "key", "private"] * 2,
                      "share": [0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.1, 0.2, 0.3, 0.35],
                      "measure": ["count"] * 5 + ["aum_weighted"] * 5})  # fmt: skip


# ------------------------------------------------------------------ the Chinese font
def test_chinese_font_is_bundled_and_has_the_glyphs() -> None:
    path = plots.chinese_font_path()
    assert path.is_file() and path.suffix == ".ttc"
    family = plots.use_chinese_font()
    assert plots.use_chinese_font() == family  # idempotent
    fam = matplotlib.rcParams["font.family"]
    assert fam[-1] == family and fam.count(family) == 1 and fam[0] != family  # a fallback, not the main font
    found = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    assert Path(getattr(found, "path", found)) == path
    cmap = _charmap(found)
    assert all(ord(c) in cmap for c in "留存率风险比客户经理流失万元（）：")
    if matplotlib.__version__ >= "3.11":
        assert family == "Noto Sans CJK SC"


def test_without_the_font_the_glyph_warning_fires() -> None:
    """The check the other tests rely on: a Chinese label in a Latin-only font does warn."""
    fig, ax = plt.subplots()
    ax.set_xlabel("留存率", fontfamily="DejaVu Sans")
    with pytest.warns(UserWarning, match="missing from font"):
        fig.canvas.draw()


@pytest.mark.parametrize("language", LANGS)
def test_every_helper_draws_without_warnings(language: str, km_df: pd.DataFrame,
                                             caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="matplotlib.font_manager")
    axes = [
        strict(plots.km_plot, km_df, horizon=365, language=language),
        strict(plots.forest_plot, HR, language=language),
        strict(plots.cumulative_incidence_plot, CIF, language=language),
        strict(plots.hazard_by_tenure_plot, HAZARD, max_months=36, language=language),
        strict(plots.trend_plot, TREND, "monthly_churn_rate", compare="bank", series_label="branch",
               language=language),  # fmt: skip
        strict(plots.bar_plot, TIERS, "tier", "share", hue="measure", language=language),
        strict(plots.bar_plot, TIERS[TIERS["measure"] == "count"], "tier", "share", language=language),
    ]
    for ax in axes:
        assert_labelled(ax)
        assert ax.figure.get_figwidth() == plots.REPORT_WIDTH_INCHES
        for text in [ax.xaxis.label, ax.yaxis.label, *ax.get_yticklabels(), *ax.get_xticklabels()]:
            assert_glyphs(text)
        if language == "zh":
            assert re.search(r"[\u4e00-\u9fff]", ax.get_xlabel() + ax.get_ylabel()), ax.get_xlabel()
    assert not [r for r in caplog.records if "findfont" in r.getMessage()]


def test_chinese_labels_use_the_bundled_font(km_df: pd.DataFrame) -> None:
    ax = strict(plots.km_plot, km_df, horizon=365, language="zh")
    xlabel = ax.xaxis.label
    assert "月" in xlabel.get_text()
    fonts = _fonts_for(xlabel)
    assert Path(getattr(fonts[0], "path", fonts[0])).name.startswith("DejaVuSans")  # Latin keeps the default font
    cjk = [f for f in fonts if Path(getattr(f, "path", f)) == plots.chinese_font_path()]
    assert cjk and ord("留") in _charmap(cjk[0])


# ------------------------------------------------------------------ each helper
@pytest.mark.parametrize("language", LANGS)
def test_km_plot_has_the_at_risk_row(language: str, km_df: pd.DataFrame) -> None:
    ax = plots.km_plot(km_df, horizon=365, language=language)
    assert ax.get_xlabel() == label("months_since_landmark", language)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [coverage_group_label(g, language)
                                                                   for g in ("1", "2", "3-4", "5+")]  # fmt: skip
    (tab,) = [a for a in ax.figure.axes if a.get_label() == "at_risk"]
    assert tab.get_title(loc="left") == label("at_risk", language)
    assert [t.get_text() for t in tab.get_yticklabels()][0] == coverage_group_label("1", language)
    ticks = list(ax.get_xticks())
    assert ticks == [0, 3, 6, 9, 12]
    counts = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in tab.texts}
    assert len(counts) == 4 * len(ticks)
    assert counts[(0, 0)] == "40" and counts[(0, 3)] == "5"
    assert counts[(12, 0)] == str(int((km_df.loc[km_df["group"] == "1", "duration"] >= 365).sum()))


def test_km_plot_suppresses_small_cells() -> None:
    df = pd.DataFrame({"group": ["1"] * 12 + ["2"] * 5,
                       "duration": [20.0 * k for k in range(1, 10)] + [365.0] * 3 + [365.0] * 5,
                       "event": [1] * 9 + [0] * 3 + [0] * 5})  # fmt: skip
    ax = plots.km_plot(df, horizon=365, min_cell=10)
    (tab,) = [a for a in ax.figure.axes if a.get_label() == "at_risk"]
    assert [t.get_text() for t in tab.get_yticklabels()] == ["1 product"]  # the group of 5 is left out
    counts = {round(t.get_position()[0]): t.get_text() for t in tab.texts}
    assert counts[0] == "12" and counts[12] == "<10"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["1 product"]


def test_forest_plot_one_row_per_term(language: str = "zh") -> None:
    _, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    ax = plots.forest_plot(HR, ax=right, language=language)
    assert ax is right
    assert len(ax.get_yticks()) == len(HR)
    assert [t.get_text() for t in ax.get_yticklabels()] == [term_label(t, language) for t in HR["term"]]
    assert ax.get_xscale() == "log"
    assert any(np.allclose(line.get_xdata(), 1.0) for line in ax.get_lines())
    lo, hi = ax.get_xlim()
    assert lo < HR["lower"].min() and hi > HR["upper"].max()
    en = plots.forest_plot(HR)
    assert en.get_xlabel() == "hazard ratio (95% interval, log scale)"
    assert "0.64 (0.60–0.67)" in [t.get_text() for t in en.texts]


def test_cumulative_incidence_plot_bars() -> None:
    ax = plots.cumulative_incidence_plot(CIF, language="zh")
    assert len(ax.patches) == 6
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1 个产品", "2 个产品", "5 个及以上产品"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["转移流失", "自然流失"]
    assert isinstance(ax.yaxis.get_major_formatter(), ticker.PercentFormatter)
    assert "28.0%" in [t.get_text() for t in ax.texts]


def test_hazard_by_tenure_plot_stages() -> None:
    ax = plots.hazard_by_tenure_plot(HAZARD, max_months=36)
    assert ax.get_xlabel() == "tenure (months)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:3] == [label(s) for s in ("new", "growth", "mature")]
    assert ax.get_xlim() == (0, 36)


def test_trend_plot_months_and_percent() -> None:
    ax = plots.trend_plot(TREND, "monthly_churn_rate", compare="bank", language="zh")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) == 13 and labels[0] == "2025年10月" and labels[-1] == "2026年10月"
    assert isinstance(ax.yaxis.get_major_formatter(), ticker.PercentFormatter)
    assert ax.get_ylabel() == "月流失率" and len(ax.get_lines()) == 2
    assert "1.9%" in [t.get_text() for t in ax.texts]
    amounts = pd.DataFrame({"month": MONTHS, "aum_lost": np.linspace(1e6, 3e6, 13)})
    ax = plots.trend_plot(amounts, "aum_lost", language="zh")
    assert ax.get_ylabel() == "流失资产（万元）" and "300.0万" in [t.get_text() for t in ax.texts]


def test_bar_plot_breakdown() -> None:
    counts = pd.DataFrame({"churn_type": ["transfer", "natural", None], "churned": [120, 40, 7]})
    ax = plots.bar_plot(counts, "churn_type", "churned", language="zh")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["转移流失", "自然流失", "未记录"]
    assert len(ax.patches) == 3 and "120" in [t.get_text() for t in ax.texts]
    assert_labelled(ax)
    order = ["mass", "potential", "general", "key", "private"]
    ax = plots.bar_plot(TIERS, "tier", "share", hue="measure", order=order)
    assert [t.get_text() for t in ax.get_yticklabels()] == order
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["by count", "AUM-weighted"]


def test_bad_language() -> None:
    with pytest.raises(ValueError, match="language"):
        plots.forest_plot(HR, language="fr")


# ------------------------------------------------------------------ HTML
def test_figure_to_html_embeds_a_png() -> None:
    ax = plots.trend_plot(TREND, "monthly_churn_rate", language="zh")
    html = plots.figure_to_html(ax, alt='trend "13 months"', close=True)
    m = re.fullmatch(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)" width="(\d+)" '
                     r'style="max-width:100%;height:auto">', html)  # fmt: skip
    assert m, html[:200]
    png = base64.b64decode(m.group(1))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert m.group(2) == "trend &quot;13 months&quot;"
    assert 800 <= int(m.group(3)) <= 1000  # shown at about the report width
    assert not plt.fignum_exists(ax.figure.number)
    assert "http" not in html.replace("data:image/png", "")


# ------------------------------------------------------------------ real results from the demo
@pytest.fixture(scope="module")
def demo_results(small_demo: Path) -> dict:
    from crmresearch.analyses.lifecycle import lifecycle
    from crmresearch.analyses.product_coverage import cumulative_incidence, product_coverage
    from crmresearch.survival.cox import TimeVaryingCox
    from crmresearch.survival.episodes import customer_table, episodes

    src = load_source(small_demo)
    cov = product_coverage(src, month="2026-10")
    cust = customer_table(src).set_index("customer_id")
    ep = episodes(src)
    model = TimeVaryingCox().fit(ep, ["n_products", "rm_turnover_exposed", "complaint_escalated_90d", "tier"],
                                 reference={"tier": "general"})  # fmt: skip
    return {"coverage": cov, "cif": cumulative_incidence(cov, cust["churn_type"]), "lifecycle": lifecycle(src),
            "model": model}  # fmt: skip


@pytest.mark.parametrize("language", LANGS)
def test_result_objects_plot_through_plots(language: str, demo_results: dict) -> None:
    cov = demo_results["coverage"]
    ax = strict(cov.plot, language=language)
    assert_labelled(ax)
    (tab,) = [a for a in ax.figure.axes if a.get_label() == "at_risk"]
    risk = cov.at_risk()
    first = {round(t.get_position()[1]): t.get_text() for t in tab.texts if t.get_position()[0] == 0}
    assert [first[i] for i in range(len(risk))] == [f"{n:,}" for n in risk.iloc[:, 0]]
    last = {round(t.get_position()[1]): t.get_text() for t in tab.texts if t.get_position()[0] == 12}
    assert [last[i] for i in range(len(risk))] == [f"{n:,}" for n in risk.iloc[:, -1]]

    model = demo_results["model"]
    ax = strict(plots.forest_plot, model.hazard_ratios(), language=language)
    assert len(ax.get_yticks()) == len(model.hazard_ratios())
    assert_labelled(ax)

    ax = strict(plots.cumulative_incidence_plot, demo_results["cif"], language=language)
    assert len(ax.patches) == len(demo_results["cif"])

    ax = strict(demo_results["lifecycle"].plot, language=language)
    assert ax.get_xlabel() == label("tenure_months", language)
    assert len(ax.get_lines()) == 1


def test_i18n_module() -> None:
    assert label("key", "zh") == "重点客户" and label("B001", "zh") == "B001"
    assert term_label("tier[key]", "zh") == "客户层级：重点客户"
    assert i18n.format_amount(123_456, "zh") == "12.3万元"
    with pytest.raises(ValueError, match="language"):
        label("key", "de")
    for code in ("mass", "potential", "general", "key", "private", "salaried", "business_owner", "executive",
                 "affluent_retiree", "homemaker", "transfer", "natural", "unknown", "fund_sip", "payroll",
                 "mobile_banking", "third_party_custody"):  # fmt: skip
        assert code in i18n.LABELS, code
    from crmresearch.data.contract import CHANNELS, CHURN_TYPES, EXIT_TYPES, PRODUCTS, SEGMENTS

    assert set(PRODUCTS + SEGMENTS + CHANNELS + CHURN_TYPES + EXIT_TYPES) <= set(i18n.LABELS)
    assert doctest.testmod(i18n).failed == 0


def _png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, i = [], 8
    while i < len(png):
        n = int.from_bytes(png[i:i + 4], "big")
        out.append((png[i + 4:i + 8], png[i + 8:i + 8 + n]))
        i += 12 + n
    return out


@pytest.mark.parametrize("language", LANGS)
def test_figures_are_the_same_bytes_each_time_and_carry_no_date(language: str, km_df: pd.DataFrame) -> None:
    """Issue 17: the same drawing gives the same PNG (in a fresh figure too); its text chunks hold no date or version."""
    pages = []
    for _ in range(2):
        ax = plots.km_plot(km_df, language=language)
        pages.append(plots.figure_to_html(ax, alt="km", close=True))
    assert pages[0] == pages[1]
    png = base64.b64decode(re.search(r"base64,([^\"]+)", pages[0]).group(1))
    chunks = _png_chunks(png)
    assert b"tIME" not in [t for t, _ in chunks]
    text = {t: d for t, d in chunks if t in (b"tEXt", b"iTXt", b"zTXt")}
    assert list(text.values()) == [b"Software\0crmresearch"], text
    assert matplotlib.rcParams["svg.hashsalt"] == "crmresearch"
    svgs = []
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
        svgs.append(buf.getvalue())
    assert svgs[0] == svgs[1]
