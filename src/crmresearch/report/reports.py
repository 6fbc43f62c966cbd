"""The monthly reports' content: each section of ``reports.md`` as headed HTML, in English or Chinese.

The report notebooks (``notebooks/branch_report.ipynb``,
``notebooks/bank_report.ipynb``) are thin: they open a :class:`BranchReport`
or :class:`BankReport` on a month bundle (:mod:`crmresearch.month.bundle`) and show
one section per cell.  Everything shown is computed here from the library's
analyses, so an analyst can rebuild any table by hand.

What a reader sees is safe to publish:

* customers appear only under their keyed pseudonym (:mod:`crmresearch.core.privacy`),
  never by name or ID; the watch list is withheld when no key is configured;
* groups smaller than ``params.min_cell_size`` show "fewer than N"
  (:func:`crmresearch.core.suppression.suppress_counts`), with a complement where a
  total is shown, and a rate whose numerator is hidden shows only a bound;
* every text that comes from the data (branch names, codes) is HTML-escaped;
* a branch report holds only that branch's customers (its slice of the bank);
  the bank report only aggregates.

Observational results are worded as associations, every effect carries its
interval, and the plain-language summary (:func:`plain_summary`) is generated
from the results: it describes what the data shows.
"""

from __future__ import annotations

import math
from pathlib import Path

from crmresearch.core.errors import InputError
from crmresearch.core.suppression import (
    Suppression,
)
from crmresearch.month.bundle import Bundle
from crmresearch.report.base import ReportBase
from crmresearch.report.page import Section, _num, plain_summary
from crmresearch.report.sections.drivers import DriversSection
from crmresearch.report.sections.headline import HeadlineSection
from crmresearch.report.sections.outcomes import OutcomesSection
from crmresearch.report.sections.who_left import WhoLeftSection
from crmresearch.viz.i18n import (
    GLOSSARY,
    SECTIONS,
    format_count,
    format_percent,
    label,
    text,
    translate,
)
from crmresearch.viz.summary import fragment

__all__ = ["BankReport", "BranchReport", "GLOSSARY", "SECTIONS", "Section", "plain_summary", "text"]


class _Report(HeadlineSection, WhoLeftSection, DriversSection, OutcomesSection, ReportBase):
    """A report of a month bundle: the sections every scope has (each in its module of :mod:`crmresearch.report.sections`)."""


class BranchReport(_Report):
    """One branch's monthly report (sections 1–9 of ``reports.md``) from a month bundle.

    Examples
    --------
    >>> r = BranchReport.open("~/.cache/crmresearch/2026-10-ab12", "B001", language="zh")  # doctest: +SKIP
    >>> r.header(); r.headline(); r.watch_list()  # doctest: +SKIP
    """

    scope = "branch"
    CONTENTS = ("headline", "who_left", "product_coverage", "rm_turnover", "causes", "lifecycle", "retention",
                "watch_list", "notes", "about")  # fmt: skip

    @classmethod
    def open(cls, bundle: str | Path | Bundle, branch: str, *, language: str | None = None,
             params_json: str | None = None, key_file: str | None = None,
             generated_at: str | None = None, provenance_json: str | None = None) -> BranchReport:  # fmt: skip
        """Open the report of ``branch`` on a month bundle.

        Parameters
        ----------
        bundle : str, Path or Bundle
            The month bundle (:func:`crmresearch.month.bundle.build_bundle`).
        branch : str
            The branch.
        language : {"en", "zh"}, optional
            Default: the parameters' language.
        params_json : str, optional
            The branch's parameters as JSON (default: the bundle's).
        key_file : str, optional
            The pseudonym key file (default: ``$CRMRESEARCH_PSEUDONYM_KEY_FILE``, else the key in
            ``$CRMRESEARCH_PSEUDONYM_KEY``; without either, the watch list is withheld).
        generated_at : str, optional
            When the report was made (default: now).
        provenance_json : str, optional
            What the run passes for "About this report": ``source_fingerprint``, ``notebook_digest`` and
            ``code_digest`` as JSON (default: none; shown as ``–``).

        Returns
        -------
        BranchReport

        Examples
        --------
        >>> BranchReport.open(path, "B001")  # doctest: +SKIP
        """
        if branch is None:
            raise InputError("a branch report needs a branch")
        b, params, key = cls._resolve(bundle, params_json, key_file)
        return cls(b, branch=str(branch), language=language, params=params, key=key, generated_at=generated_at,
                   provenance=cls._provenance(provenance_json))  # fmt: skip

    def _watch(self):
        """The branch's watch list (computed once per report: the first screen counts it, §8 shows it)."""
        if getattr(self, "_watch_result", None) is None:
            from crmresearch.analyses.watchlist import watch_list

            self._watch_result = watch_list(self.source, self.params, month=self.month, branch=self.branch,
                                            key=self.key, model=self.ctx.model, validate=False)  # fmt: skip
        return self._watch_result

    def _watch_count(self) -> int | None:
        if self.key is None or self.ctx.model is None:
            return None
        return len(self._watch().table)

    def watch_list(self) -> Section:
        """§8: the customers most at risk, under pseudonyms, with the warnings fired and a suggested action.

        Examples
        --------
        >>> BranchReport.open(path, "B001").watch_list()  # doctest: +SKIP
        """
        if not self.dated:
            return self._unavailable("watch_list", self._flat_reason("watch list"))
        if self.key is None:
            return self._section("watch_list", fragment("para", self.t("watch_no_key")))
        if self.ctx.model is None:
            return self._unavailable("watch_list", "; ".join(self.ctx.caveats))
        wl = self._watch()
        t = wl.table.drop(columns=["customer_id"])
        sep = ", " if self.language == "en" else "、"
        cols = {"rank": ("#", str), "pseudonym": (label("pseudonym", self.language), str),
                "tier": (label("tier", self.language), self._lbl),
                "aum": (label("aum", self.language), self._amt),
                "n_products": (label("products_held", self.language), lambda v: _num(v, 0)),
                "rm_id": ("RM", lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)),
                "warnings": (label("warnings", self.language),
                             lambda v: sep.join(self._lbl(x.strip()) for x in str(v).split(",") if x.strip())),
                "suggested_action": (label("suggested_action", self.language),
                                     lambda v: ("; " if self.language == "en" else "；").join(
                                         self._lbl(a.strip()) for a in str(v).split(";") if a.strip())),
                "churn_risk_90d": (label("churn_risk_90d", self.language), self._pct)}  # fmt: skip
        parts = [self._table(t, cols, caption=self.t("watch_title"))]
        for cv in wl.caveats:
            parts.append(fragment("note", translate(cv, self.language)))
        return self._section("watch_list", *parts)


class BankReport(_Report):
    """The bank's monthly summary: the headline and trend, every section on the whole bank,
    the regional roll-up and the risk-adjusted comparison of branches.

    Examples
    --------
    >>> r = BankReport.open("~/.cache/crmresearch/2026-10-ab12")  # doctest: +SKIP
    >>> r.regions(); r.branch_comparison()  # doctest: +SKIP
    """

    CONTENTS = ("headline", "regions", "branch_comparison", "who_left", "product_coverage", "rm_turnover", "causes",
                "lifecycle", "retention", "notes", "about")  # fmt: skip

    @classmethod
    def open(cls, bundle: str | Path | Bundle, *, language: str | None = None, params_json: str | None = None,
             key_file: str | None = None, generated_at: str | None = None,
             provenance_json: str | None = None) -> BankReport:  # fmt: skip
        """Open the bank summary on a month bundle (parameters as for :meth:`BranchReport.open`).

        Examples
        --------
        >>> BankReport.open(path, language="en")  # doctest: +SKIP
        """
        b, params, key = cls._resolve(bundle, params_json, key_file)
        return cls(b, branch=None, language=language, params=params, key=key, generated_at=generated_at,
                   provenance=cls._provenance(provenance_json))  # fmt: skip

    def regions(self) -> Section:
        """The regional roll-up: customers, active at start, churned and churn rate per region.

        Examples
        --------
        >>> BankReport.open(path).regions()  # doctest: +SKIP
        """
        br = self.ctx.branches.copy()
        br["region"] = br["region"].fillna("–")
        mask = None
        if not self.dated:
            _, _, g, mask = self._flat_branches_and_regions()
            rate_head = self.t("churn_share")
        else:
            k = self.ctx.kpi_comparison
            k = k[(k["customers"] == "all") & (k["against"] == "previous_month")]
            wide = k.pivot_table(index="scope", columns="kpi", values="value").reset_index().rename(columns={"scope": "branch_id"})
            g = br[["branch_id", "region"]].merge(wide, on="branch_id").groupby("region", as_index=False).agg(
                branches=("branch_id", "nunique"), customers=("active_at_start", "sum"),
                churned=("churned_in_month", "sum"), aum_lost=("aum_lost", "sum"))  # fmt: skip
            g["rate"] = g["churned"] / g["customers"].where(g["customers"] > 0)
            rate_head = label("monthly_churn_rate", self.language)
        # the regions add up to the bank's figures (shown in the headline): complements
        amounts = tuple(c for c in ("aum_lost",) if c in g.columns)
        if mask is None:
            mask = self._suppress(g, "customers", ("churned", "rate", *amounts))
            mask = self._suppress(g, "churned", ("rate", *amounts), prior=mask)
        cols = {"region": (self.t("region"), str), "branches": (self.t("branches"), lambda v: format_count(v, self.language)),
                "customers": (label("active_at_start" if self.dated else "customers", self.language), lambda v: format_count(v, self.language)),
                "churned": (label("churned", self.language), lambda v: format_count(v, self.language)),
                "rate": (rate_head, lambda v: format_percent(v, self.language, 2))}  # fmt: skip
        if "aum_lost" in g.columns:
            cols["aum_lost"] = (label("aum_lost", self.language), self._amt)
        return self._section("regions", self._table(g, cols, mask=mask))

    def branch_comparison(self) -> Section:
        """Observed versus expected churn per branch (bank-wide model): funnel plot and ranked table.

        Examples
        --------
        >>> BankReport.open(path).branch_comparison()  # doctest: +SKIP
        """
        if not self.dated:
            return self._unavailable("branch_comparison", self._flat_reason("lifecycle"))
        oe = self.ctx.branch_risk
        if oe is None or not len(oe):
            return self._unavailable("branch_comparison", "; ".join(self.ctx.caveats) or "no model")
        from crmresearch.viz.plots import funnel_plot

        names = self.ctx.branches.set_index("branch_id")["branch_name"]
        oe = oe.assign(name=oe["branch_id"].map(lambda b: f"{names.get(b) or ''} ({b})".strip())).reset_index(drop=True)
        # a hidden observed count hides its expected count and ratio (ratio x expected gives it back), in the
        # table and in the funnel plot; the sum of the observed counts is about the sum of the expected: complements
        mask = self._suppress(oe, "observed", ("expected", "ratio", "lower", "upper", "interval"))
        ax = funnel_plot(oe[~mask.rows], language=self.language, title=self.t("branch_comparison"))
        parts = [self._fig(ax, self.t("branch_comparison")), fragment("para", self.t("funnel_note"))]
        ranked = oe.sort_values(["rank", "branch_id"], na_position="last")
        mask = Suppression(mask.hidden.loc[ranked.index], mask.small.loc[ranked.index])
        ranked = ranked.assign(interval=[f"{r:.2f} ({lo:.2f}–{hi:.2f})" for r, lo, hi in
                                         zip(ranked["ratio"], ranked["lower"], ranked["upper"], strict=True)])  # fmt: skip
        parts.append(self._table(ranked, {"rank": (self.t("rank"), lambda v: _num(v, 0)), "name": (label("branch", self.language), str),
                                          "observed": (self.t("observed"), lambda v: format_count(v, self.language)),
                                          "expected": (self.t("expected"), lambda v: _num(v, 1)),
                                          "interval": (self.t("ratio"), str)}, mask=mask))  # fmt: skip
        return self._section("branch_comparison", *parts)
