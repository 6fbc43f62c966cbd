"""Section 1, the headline: KPIs against last month, last year and the bank, with the
generated summary.
"""

from __future__ import annotations

import math

import pandas as pd

from crmresearch.core.suppression import (
    Suppression,
)
from crmresearch.report.page import Section, plain_summary, strongest_causes
from crmresearch.viz.i18n import (
    format_amount,
    format_count,
    format_percent,
    label,
    term_label,
)
from crmresearch.viz.summary import fragment


class HeadlineSection:
    """Section 1, the headline: KPIs against last month, last year and the bank, with the (a part of the reports: state and helpers in :class:`~crmresearch.report.base.ReportBase`)."""

    # ------------------------------------------------------------------ 1. headline
    def _comparison(self) -> pd.DataFrame | None:
        c = self.ctx.kpi_comparison
        if c is None:
            return None
        return c[(c["scope"] == self._scope_key)]

    def kpi_result(self):
        """The scope's KPIs as a result (:class:`~crmresearch.analyses.kpis.KpiResult`), from the month's bundle.

        Examples
        --------
        >>> BranchReport.open(path, "B001").kpi_result().to_summary("zh")  # doctest: +SKIP
        """
        from crmresearch.analyses.kpis import KPI_COLUMNS, KpiResult

        comp, trend = self._comparison(), self.ctx.kpi_trend
        now = trend[(trend["scope"] == self._scope_key) & (trend["month"] == self.month)]
        return KpiResult(self._scope_key, self.month, now[["scope", "customers", "month", *KPI_COLUMNS]],
                         comp, trend, [])  # fmt: skip

    def headline(self) -> Section:
        """§1: KPIs with traffic lights against last month, last year and the bank; summary; 13-month trend.

        Examples
        --------
        >>> BranchReport.open(path, "B001").headline()  # doctest: +SKIP
        """
        if not self.dated:
            return self._flat_headline()
        comp = self._comparison()
        parts = [self._summary_html(comp[comp["customers"] == "all"], self.metrics().get("retention"))]
        for who in ("all", "high_value"):
            sub = comp[comp["customers"] == who]
            title = (label("all", self.language) if who == "all"
                     else self.t("high_value_title", tiers=", ".join(self._lbl(t) for t in self.params.high_value_tiers)))  # fmt: skip
            hidden = who == "high_value" and self._who_left_masks()[1]
            parts.append(fragment("heading", title) + self._lights(sub, hidden_churn=hidden))
        ax = self.kpi_result().plot(language=self.language, min_cell=self.min_cell,
                                    series_label=self._branch_name() if self.branch else None)  # fmt: skip
        parts.append(self._fig(ax, self.t("trend_title")))
        return self._section("headline", *parts)

    # ------------------------------------------------------------------ the first screen
    _TILES = ("monthly_churn_rate", "churned_in_month", "aum_lost")
    _ARROWS = {"better": "▼", "worse": "▲", "same": "≈"}

    def first_screen(self) -> str:
        """The month's answer, at the top of the page: KPI tiles, the strongest causes, the watch list's size.

        Each tile (churn rate, customers lost, AUM lost) shows this month's
        value, suppressed as in the headline, and against last month, last
        year and (for a branch) the bank an arrow with its word: better,
        worse or about the same, by the headline's significance rule.

        Examples
        --------
        >>> BranchReport.open(path, "B001").first_screen()  # doctest: +SKIP
        """
        tiles = ""
        if self.dated:
            tiles = fragment("tiles", self._tiles())
        m = self.metrics()
        causes = []
        for r in strongest_causes(pd.DataFrame(m["hazard_ratios"]) if m["hazard_ratios"] else None).itertuples():
            causes.append(self.t("cause_line", term=term_label(r.term, self.language), hr=f"{r.hr:.2f}",
                                 lo=f"{r.lower:.2f}", hi=f"{r.upper:.2f}",
                                 direction=self.t("cause_higher" if r.hr > 1 else "cause_lower")))  # fmt: skip
        scope = self.t("model_scope_" + m["hazard_ratios_scope"])
        watch = None
        if self.branch and self.dated:
            n = self._watch_count()
            watch = self.t("watch_count_none") if n is None else self.t("watch_count", n=format_count(n, self.language))
        return fragment("answer", tiles, self.t("causes_title", scope=scope), causes, self.t("causes_none"), watch)

    def _tiles(self) -> list[dict]:
        comp = self._comparison()
        sub = comp[comp["customers"] == "all"]

        def value(rows: pd.DataFrame, kpi: str, col: str) -> float | None:
            x = rows.loc[rows["kpi"] == kpi, col]
            return float(x.iloc[0]) if len(x) and pd.notna(x.iloc[0]) else None

        cur = sub[sub["against"] == "previous_month"]
        churned, active = value(cur, "churned_in_month", "value"), value(cur, "active_at_start", "value")
        heads = {"previous_month": "vs_last_month", "same_month_last_year": "vs_last_year", "bank": "vs_the_bank"}
        out = []
        for kpi in self._TILES:
            k = sub[sub["kpi"] == kpi].set_index("against")
            if not len(k):
                continue
            v = float(k["value"].iloc[0])
            against = []
            for a, head in heads.items():
                if a not in k.index or (a == "bank" and not self.branch):
                    continue
                status = str(k.loc[a, "status"])
                if status == "n/a":
                    continue
                rows = sub[sub["against"] == a]
                ref = self._kpi_text(kpi, float(k.loc[a, "reference"]), value(rows, "churned_in_month", "reference"),
                                     value(rows, "active_at_start", "reference"))  # fmt: skip
                against.append({"cls": status, "arrow": self._ARROWS.get(status, ""), "head": self.t(head) + self.t("colon"),
                                "word": self.t(status), "ref": ref})  # fmt: skip
            out.append({"label": label(kpi, self.language), "value": self._kpi_text(kpi, v, churned, active),
                        "against": against})  # fmt: skip
        return out

    def _coverage_mask(self, summ: pd.DataFrame) -> Suppression:
        """The suppression of the coverage groups' table: every figure of a coverage group follows it.

        The §3 table, its curves, the §5 cumulative-incidence curves and the
        summary's coverage sentence all show a group only where this mask does.
        """
        # the churned count and rate are named by their window: churned_12m, or churned_snapshot on a flat extract
        count = next((c for c in summ.columns if c.startswith("churned_")), None)
        rates = [c for c in summ.columns if c.startswith("churn_rate_")]
        derived = tuple(c for c in (count, *rates, "survival", "rmst_months") if c is not None and c in summ)
        prior = self._suppress(summ, "customers", derived)
        return self._suppress(summ, count, derived[1:], prior=prior) if count is not None else prior

    def _summary_html(self, comparison: pd.DataFrame | None, retention: dict | None) -> str:
        """The generated plain-language summary (:func:`plain_summary`) of this report's results."""
        m = self.metrics()
        coverage = pd.DataFrame(m["coverage"]) if m["coverage"] else None
        if coverage is not None:  # a group the coverage table hides is not described either
            coverage = coverage[~self._coverage_mask(coverage).rows.to_numpy()]
        summary = plain_summary(comparison, coverage,
                                pd.DataFrame(m["hazard_ratios"]) if m["hazard_ratios"] else None, retention,
                                scope="branch" if self.branch else "bank", language=self.language,
                                min_cell=self.min_cell, model_scope=m["hazard_ratios_scope"])  # fmt: skip
        return fragment("summary_box", self.t("summary_title"), summary)

    def _kpi_text(self, kpi: str, v: float, churned: float | None, active: float | None, *,
                  hidden_churn: bool = False) -> str:  # fmt: skip
        """One KPI cell: a count below the minimum, and every figure computed from it, is not shown exactly.

        The churn rate of fewer than ``min_cell`` churners reads "below x%"
        (x = ``min_cell`` / active: a bound that gives back nothing, the active
        count being shown), or "suppressed" when the active count is hidden too;
        AUM lost and drained by fewer than ``min_cell`` churners read "suppressed".
        ``hidden_churn``: the churners' count is hidden as a complement (a
        breakdown's cells add up to it, :meth:`_who_left_masks`), with its rate and amounts.
        """
        if v is None or not math.isfinite(v):
            return "–"
        if hidden_churn and kpi != "active_at_start":
            return self.t("suppressed")
        m = self.min_cell
        small_churn = churned is not None and 0 < churned < m
        small_active = active is not None and 0 < active < m
        if kpi in ("active_at_start", "churned_in_month"):
            return self._count(v)
        if kpi == "monthly_churn_rate":
            if small_churn or (small_active and churned):
                if small_active or not active:
                    return self.t("suppressed")
                return self.t("below", x=format_percent(m / active, self.language))
            return format_percent(v, self.language, digits=2)
        if small_churn:  # the AUM of fewer than min_cell churners
            return self.t("suppressed")
        return format_amount(v, self.language)

    def _lights(self, sub: pd.DataFrame, hidden_churn: bool = False) -> str:
        from crmresearch.analyses.kpis import KPI_COLUMNS

        def counts(rows: pd.DataFrame, col: str) -> tuple[float | None, float | None]:
            out = []
            for kpi in ("churned_in_month", "active_at_start"):
                x = rows.loc[rows["kpi"] == kpi, col]
                out.append(float(x.iloc[0]) if len(x) and pd.notna(x.iloc[0]) else None)
            return out[0], out[1]

        cur = sub[sub["against"] == "previous_month"]
        churned, active = counts(cur, "value")
        head = [self.t("kpi"), self.t("this_month"), self.t("previous_month"), self.t("same_month_last_year")]
        againsts = ["previous_month", "same_month_last_year"] + (["bank"] if self.branch else [])
        if self.branch:
            head.append(self.t("vs_bank"))
        ref_counts = {a: counts(sub[sub["against"] == a], "reference") for a in againsts}
        rows = []
        for kpi in KPI_COLUMNS:
            k = sub[sub["kpi"] == kpi].set_index("against")
            if not len(k):
                continue
            v = float(k["value"].iloc[0])
            cells = []
            for against in againsts:
                if against not in k.index:
                    cells.append(None)
                    continue
                r = k.loc[against]
                ref_txt = self._kpi_text(kpi, float(r["reference"]), *ref_counts[against])
                status = str(r["status"])
                cells.append({"cls": status.replace("/", ""), "text": ref_txt, "status": status,
                              "light": None if status == "n/a" else self.t(status)})  # fmt: skip
            rows.append({"label": label(kpi, self.language),
                         "value": self._kpi_text(kpi, v, churned, active, hidden_churn=hidden_churn), "cells": cells})
        return fragment("lights", head, rows)

    def _flat_headline(self) -> Section:
        where = "WHERE branch_id = ?" if self.branch else ""
        n, churned = self.source.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE churned) FROM customers {where}",
            [self.branch] if self.branch else []).fetchone()  # fmt: skip
        rows = [(self.t("customers_total"), self._count(n)), (self.t("churned_total"), self._count(churned)),
                (self.t("churn_share"), self._pct(churned / n if n and churned >= self.min_cell else float("nan")))]
        reason = self._flat_reason("monthly KPIs")
        return self._section("headline", self._summary_html(None, None), fragment("pairs", rows, "report-table"),
                             fragment("para", self.t("unavailable_flat", reason=reason)))  # fmt: skip
