"""Sections 7–8: whether the retention work paid off, and the notes (definitions, caveats,
glossary).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmresearch.core.errors import InputError
from crmresearch.report.page import Section, _num, _pval
from crmresearch.viz.i18n import (
    GLOSSARY,
    format_count,
    label,
    table_label,
    translate,
)
from crmresearch.viz.summary import SummaryTable, fragment


class OutcomesSection:
    """Sections 7–8: whether the retention work paid off, and the notes (definitions, caveats, (a part of the reports: state and helpers in :class:`~crmresearch.report.base.ReportBase`)."""

    # ------------------------------------------------------------------ 7. retention
    def retention(self) -> Section:
        """§7: warnings and contact speed, outcomes with and without contact and the adjusted OR, per RM, win-backs.

        Examples
        --------
        >>> BranchReport.open(path, "B001").retention()  # doctest: +SKIP
        """
        if not self.dated:
            return self._unavailable("retention", self._flat_reason("retention outcomes"))
        from crmresearch.analyses.early_warnings import warning_summary
        from crmresearch.analyses.retention_loop import rm_table

        p = self.params
        parts = []
        ws = warning_summary(self._result("early_warnings"))
        ws = ws.assign(share=np.where(ws["warnings"] > 0, ws["contacted_in_target"] / ws["warnings"].where(ws["warnings"] > 0), np.nan))
        mask = self._suppress(ws, "warnings", ("contacted_in_target", "share"))
        mask = self._suppress(ws, "contacted_in_target", ("share",), prior=mask)
        parts.append(self._table(ws, {"rule": (label("rule", self.language), lambda v: self._lbl(v)),
                                      "warnings": (label("warnings", self.language), lambda v: format_count(v, self.language)),
                                      "contacted_in_target": (label("contacted_in_target", self.language),
                                                              lambda v: format_count(v, self.language)),
                                      "share": (label("share", self.language), self._pct)},
                                 caption=self.t("warnings_title", days=p.retention.response_target_days), mask=mask))  # fmt: skip
        if self.source.has("retention_actions"):
            try:
                co = self._result("contact_outcomes")
                counts = co.counts
                mask = self._suppress(counts, "customers", ("retained", "churned", "retention_rate"))
                for c in ("retained", "churned"):  # retained + churned = customers: hiding one hides the other
                    if c in counts.columns:
                        mask = self._suppress(counts, c, ("retained", "churned", "retention_rate"), total_shown=False,
                                              prior=mask)  # fmt: skip
                parts.append(self._table(counts, {"group": ("", lambda v: self._lbl(v)),
                                                  "customers": (label("customers", self.language), lambda v: format_count(v, self.language)),
                                                  "retained": (label("retained", self.language), lambda v: format_count(v, self.language)),
                                                  "churned": (label("churned", self.language), lambda v: format_count(v, self.language)),
                                                  "retention_rate": (label("retention_rate", self.language), self._pct)},
                                         caption=self.t("outcomes_title", start=f"{co.cohort_from:%Y-%m-%d}",
                                                        end=f"{co.cohort_to:%Y-%m-%d}", grace=co.grace_days,
                                                        outcome=co.outcome_days), mask=mask))  # fmt: skip
                o = co.odds_ratio
                if o and o["n"] >= self.min_cell:
                    parts.append(fragment("para", self.t("odds_ratio", or_=_num(o["or"]), lo=_num(o["lower"]), hi=_num(o["upper"]),
                                              p=_pval(o["p"]), n=format_count(o["n"], self.language))))  # fmt: skip
                for cv in co.caveats:
                    parts.append(fragment("note", translate(cv, self.language)))
            except InputError as exc:
                parts.append(fragment("para", self.t("not_available", reason=str(exc))))
            if self.branch:
                rt = rm_table(self.source, p, month=self.month, branch=self.branch)
                # the branch's active customers, churners and warnings are shown elsewhere on the page: totals
                mask = self._suppress(rt, "book", ("churned", "aum_lost", "warnings", "contacted_in_target", "share_in_target"))
                mask = self._suppress(rt, "churned", ("aum_lost",), prior=mask)
                mask = self._suppress(rt, "warnings", ("contacted_in_target", "share_in_target"), prior=mask)
                mask = self._suppress(rt, "contacted_in_target", ("share_in_target",), total_shown=False, prior=mask)
                parts.append(self._table(rt, {"rm_id": ("RM", self._lbl),
                                              "book": (label("book", self.language), lambda v: format_count(v, self.language)),
                                              "churned": (label("churned", self.language), lambda v: format_count(v, self.language)),
                                              "aum_lost": (label("aum_lost", self.language), self._amt),
                                              "warnings": (label("warnings", self.language), lambda v: format_count(v, self.language)),
                                              "share_in_target": (label("share_in_target", self.language), self._pct)},
                                         caption=self.t("rm_title"), mask=mask))  # fmt: skip
            wb = self._result("winbacks")
            rates = ("success_rate", "lower", "upper")
            mask = self._suppress(wb, "attempts", rates, total_shown=False)
            for c in ("won_back", "lost"):  # the success rate's numerator and denominator
                if c in wb.columns:
                    mask = self._suppress(wb, c, rates, total_shown=False, prior=mask)
            cols = {"period": (self.t("month_label"), self._period),
                    "attempts": (label("attempts", self.language), lambda v: format_count(v, self.language))}
            for c in ("success_rate", "lower", "upper"):
                if c in wb.columns:
                    cols[c] = (label(c, self.language), self._pct)
            parts.append(self._table(wb, cols, caption=self.t("winback_title"), mask=mask))
        return self._section("retention", *parts)

    # ------------------------------------------------------------------ 9. notes
    def notes(self) -> Section:
        """§9: rows used, model diagnostics, parameters, caveats and the bilingual glossary.

        Examples
        --------
        >>> BranchReport.open(path, "B001").notes()  # doctest: +SKIP
        """
        parts = []
        rows = pd.DataFrame({"table": list(self.source.tables), "rows": list(self.source.tables.values())})
        # the slice's row counts are counts of customers and their records: below min_cell they are hidden too
        parts.append(self._table(rows, {"table": (self.t("table"), lambda v: table_label(v, self.language)), "rows": (self.t("rows"), lambda v: format_count(v, self.language))},
                                 caption=self.t("rows_title"), mask=self._suppress(rows, "rows", total_shown=False)))  # fmt: skip
        # what the bank's source check found (counts and rules only: its examples name customers)
        findings = [self.t("finding", where=table_label(w.table, self.language) + (f".{w.column}" if w.column else ""),
                           rule=self._lbl(w.rule), n=format_count(w.n_rows, self.language),
                           message=translate(w.message, self.language))
                    for w in getattr(self.ctx.validation, "warnings", [])]  # fmt: skip
        if findings:
            parts.append(fragment("bullets", self.t("findings_title"), findings))
        model = self.ctx.model
        if model is not None:
            k = len(model.params_)
            diag = pd.DataFrame({"k": [self.t("concordance"), self.t("events"), self.t("events_per_term")],
                                 "v": [_num(model.concordance(), 3), format_count(model.n_events_, self.language),
                                       _num(model.n_events_ / k if k else float("nan"), 0)]})  # fmt: skip
            parts.append(self._table(diag, {"k": ("", str), "v": ("", "count")}, caption=self.t("diagnostics_title")))
        caveats = [translate(c, self.language) for c in [*self.metrics().get("caveats", []), *self.ctx.caveats]]
        if self.ctx.backtest:
            bt = self.ctx.backtest
            parts.append(fragment("para", self.t("backtest", days=bt.get("horizon_days", 90), auc=_num(bt.get("auc"), 3),
                                      c=_num(bt.get("concordance"), 3), n=format_count(bt.get("customers", float("nan")), self.language))))  # fmt: skip
        if caveats:
            parts.append(fragment("bullets", self.t("caveats_title"), caveats))
        g = pd.DataFrame(GLOSSARY, columns=["en", "zh", "definition", "definition_zh"])
        # the other language's term column is kept on purpose, marked with its language
        if self.language == "en":
            cols = {"en": ("English", str), "zh": ("中文", str), "definition": (label("definition", "en"), str)}
        else:
            cols = {"zh": ("中文", str), "en": ("English", str), "definition_zh": (label("definition", "zh"), str)}
        parts.append(SummaryTable(g, cols, self.t("glossary_title"), min_cell=self.min_cell,
                                  langs={"zh": "zh"} if self.language == "en" else {"en": "en"}).as_html(self.language))  # fmt: skip
        return self._section("notes", *parts)
