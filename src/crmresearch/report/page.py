"""Pieces every section uses: a headed :class:`Section`, escaping, number formats, and the
plain-language summary generated from the results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from markupsafe import Markup

from crmresearch.viz.i18n import (
    coverage_group_label,
    format_amount,
    format_count,
    format_percent,
    term_label,
    text,
)
from crmresearch.viz.summary import render


@dataclass
class Section:
    """One headed section of a report; shows itself as HTML in a notebook.

    Attributes
    ----------
    key : str
        The key of :data:`SECTIONS`.
    title : str
        The heading (translated).
    body : str
        Its HTML (escaped where it holds data text).

    Examples
    --------
    >>> Section("notes", "9. Data and method notes", "<p>ok</p>")._repr_html_()[:30]
    '<section class="report-section'
    """

    key: str
    title: str
    body: str

    def _repr_html_(self) -> str:
        return render("section.html.j2", key=self.key, title=self.title, body=Markup(self.body))


def _pval(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _num(x: float, digits: int = 2) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}f}"


def strongest_causes(hazard_ratios: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """The ``n`` hazard ratios whose interval excludes 1, strongest first (largest ``|log HR|``).

    Parameters
    ----------
    hazard_ratios : DataFrame
        ``term, hr, lower, upper`` (metrics.json's ``hazard_ratios``).
    n : int

    Returns
    -------
    DataFrame

    Examples
    --------
    >>> hr = pd.DataFrame({"term": ["a", "b", "c"], "hr": [0.5, 1.1, 3.0], "lower": [0.4, 0.9, 2.0],
    ...                    "upper": [0.6, 1.3, 4.0]})
    >>> strongest_causes(hr)["term"].tolist()
    ['c', 'a']
    """
    if hazard_ratios is None or not len(hazard_ratios):
        return pd.DataFrame(columns=["term", "hr", "lower", "upper"])
    hr = hazard_ratios[(hazard_ratios["lower"] > 1) | (hazard_ratios["upper"] < 1)].copy()
    hr["size"] = np.abs(np.log(hr["hr"].astype(float)))
    return hr.sort_values("size", ascending=False, kind="stable").head(n).drop(columns="size")


def plain_summary(comparison: pd.DataFrame | None, coverage: pd.DataFrame | None, hazard_ratios: pd.DataFrame | None,
                  retention: dict | None, *, scope: str, language: str = "en", min_cell: int = 10,
                  model_scope: str = "bank") -> list[str]:  # fmt: skip
    """The report's short plain-language summary, generated from its results.

    Sentences, in order: how the churn rate moved against last month (and
    whether chance explains it), AUM lost; which coverage group churned most
    and least within 12 months (as the data shows it, whichever way round);
    the strongest associations of the causes model whose interval excludes 1;
    the share of warnings contacted in target.  Nothing is asserted that the
    results do not show; small groups are not described.

    Parameters
    ----------
    comparison : DataFrame or None
        :func:`kpis.kpi_comparison` rows of the report's scope, all customers.
    coverage : DataFrame or None
        The coverage table (``group, customers, churned_12m, churn_rate_12m``; on a
        flat extract ``churned_snapshot, churn_rate_snapshot``: the sentence then
        speaks of the whole snapshot, not of 12 months).
    hazard_ratios : DataFrame or None
        ``term, hr, lower, upper, p`` of the model shown.
    retention : dict or None
        The ``retention`` object of ``metrics.json``.
    scope : str
        ``"branch"`` or ``"bank"``.
    language : {"en", "zh"}
    min_cell : int
        Groups below it are not described.
    model_scope : str
        Which model the hazard ratios come from.

    Returns
    -------
    list of str
        Plain text (not HTML); escape before showing.

    Examples
    --------
    >>> cov = pd.DataFrame({"group": ["1", "2", "3-4"], "customers": [500, 400, 100],
    ...                     "churned_12m": [100, 40, 60], "churn_rate_12m": [0.2, 0.1, 0.6]})
    >>> plain_summary(None, cov, None, None, scope="branch")[0]
    'Within 12 months of the landmark, customers with 3–4 products churned most (60.0%) and those with 2 products least (10.0%).'
    """
    zh = language == "zh"
    out: list[str] = []
    who = ("本支行" if scope == "branch" else "全行") if zh else ("the branch" if scope == "branch" else "the bank")
    if comparison is not None and len(comparison):
        c = comparison.set_index(["kpi", "against"])

        def _small(col: str) -> bool:  # fewer than min_cell churners (or active customers): not described
            for kpi in ("churned_in_month", "active_at_start"):
                if (kpi, "previous_month") in c.index:
                    x = float(c.loc[(kpi, "previous_month"), col])
                    if math.isfinite(x) and 0 < x < min_cell:
                        return True
            return False

        if ("monthly_churn_rate", "previous_month") in c.index and not _small("value") and not _small("reference"):
            r = c.loc[("monthly_churn_rate", "previous_month")]
            now, ref, status = float(r["value"]), float(r["reference"]), str(r["status"])
            if math.isfinite(now) and math.isfinite(ref):
                if zh:
                    move = {"worse": "上升", "better": "下降"}.get(status, "与上月基本持平")
                    tail = "（超出随机波动范围）" if status in ("worse", "better") else "（差异在随机波动范围内）"
                    out.append(f"本月{who}月流失率为 {format_percent(now, language)}，上月为 "
                               f"{format_percent(ref, language)}，{move}{tail}。")  # fmt: skip
                else:
                    move = {"worse": "rose", "better": "fell"}.get(status, "was about the same as")
                    tail = ("more than chance explains" if status in ("worse", "better")
                            else "within what chance explains")  # fmt: skip
                    verb = f"{move} from" if status in ("worse", "better") else move
                    out.append(f"This month {who}'s churn rate was {format_percent(now, language)}; it {verb} "
                               f"{format_percent(ref, language)} last month ({tail}).")  # fmt: skip
        if ("aum_lost", "previous_month") in c.index and not _small("value"):
            r = c.loc[("aum_lost", "previous_month")]
            if math.isfinite(float(r["value"])):
                out.append(f"流失客户带走资产 {format_amount(float(r['value']), language)}。" if zh else
                           f"Churned customers took {format_amount(float(r['value']), language)} of AUM with them.")
    # the window the counts cover names their columns: churn_rate_12m, or churn_rate_snapshot on a flat extract
    rate_col = next((c for c in (coverage.columns if coverage is not None else ()) if c.startswith("churn_rate_")), None)
    if coverage is not None and len(coverage) and rate_col is not None:
        window = rate_col.removeprefix("churn_rate_")
        count_col = f"churned_{window}"
        churned = coverage[count_col] if count_col in coverage else coverage["customers"]
        cov = coverage[(coverage["customers"] >= min_cell) & ~churned.between(1, min_cell - 1)].dropna(subset=[rate_col])
        if len(cov) >= 2:
            hi = cov.loc[cov[rate_col].idxmax()]
            lo = cov.loc[cov[rate_col].idxmin()]
            if hi["group"] != lo["group"] and window in ("12m", "snapshot"):
                out.append(text(f"summary_coverage_{window}", language,
                                hi=coverage_group_label(hi["group"], language), lo=coverage_group_label(lo["group"], language),
                                hi_rate=format_percent(hi[rate_col], language),
                                lo_rate=format_percent(lo[rate_col], language)))  # fmt: skip
    if hazard_ratios is not None and len(hazard_ratios):
        top = strongest_causes(hazard_ratios)
        if len(top):
            parts = [f"{term_label(r.term, language)} (HR {r.hr:.2f}, {r.lower:.2f}–{r.upper:.2f})"
                     for r in top.itertuples()]  # fmt: skip
            src = text("model_scope_" + model_scope, language)
            if zh:
                out.append(f"{src}模型中关联最强的因素：" + "；".join(parts) + "。这些是关联，不一定是因果。")
            else:
                out.append(f"The strongest associations with churn in the {src} model: " + "; ".join(parts)
                           + ". These are associations, not proof of cause.")  # fmt: skip
    month_warnings = (retention or {}).get("month_warnings") or {}  # the month's warnings, not the outcome cohort
    if month_warnings.get("warnings") and month_warnings.get("contacted_in_target") is not None:
        n, k = int(month_warnings["warnings"]), int(month_warnings["contacted_in_target"])
        share = format_percent(k / n, language) if n else "–"
        if n >= min_cell and not 0 < k < min_cell:  # a share of few warnings gives back the count contacted
                out.append(f"本月触发预警 {format_count(n, language)} 次，{share} 在响应时限内得到接触。" if zh else
                       f"{format_count(n, language)} early warnings were raised; {share} were contacted within the "
                       "response target.")  # fmt: skip
    return out
