"""Sections 3–6, why they left: product coverage, RM turnover, the causes model and the
lifecycle.
"""

from __future__ import annotations

import math

import pandas as pd

from crmresearch.core.calendar import DAYS_PER_MONTH
from crmresearch.core.errors import InputError
from crmresearch.report.page import Section, _num, _pval
from crmresearch.viz.i18n import (
    coverage_group_label,
    format_count,
    format_percent,
    label,
    term_label,
    translate,
)
from crmresearch.viz.summary import fragment


class DriversSection:
    """Sections 3–6, why they left: product coverage, RM turnover, the causes model and the (a part of the reports: state and helpers in :class:`~crmresearch.report.base.ReportBase`)."""

    # ------------------------------------------------------------------ 3. product coverage
    def _coverage_result(self):
        if self._coverage is None:
            self._coverage = self._result("product_coverage")
        return self._coverage

    def product_coverage(self) -> Section:
        """§3: churn within 12 months by products held at the landmark, KM curves, log-rank, sticky products.

        Examples
        --------
        >>> BranchReport.open(path, "B001").product_coverage()  # doctest: +SKIP
        """
        try:
            res = self._coverage_result()
        except InputError as exc:
            return self._unavailable("product_coverage", str(exc))
        summ = res.summary.copy()
        # the restricted mean in months, whatever the source's unit (days from the landmark, or tenure months)
        summ["rmst_months"] = summ[res.rmst_col] / (DAYS_PER_MONTH if res.time_unit == "days" else 1.0)
        mask = self._coverage_mask(summ)
        summ["group_label"] = summ["group"].map(lambda g: coverage_group_label(g, self.language))
        landmark = res.landmark.isoformat() if res.landmark else ""
        cols = {"group_label": (label("products_at_landmark" if self.dated else "products_at_snapshot", self.language), str),
                "customers": (label("customers", self.language), lambda v: format_count(v, self.language)),
                res.count_col: (label("churned", self.language), lambda v: format_count(v, self.language)),
                res.rate_col: (label(res.rate_col, self.language), self._pct)}  # fmt: skip
        if self.dated:
            cols["survival"] = (self.t("survival_12m"), self._pct)
            cols["rmst_months"] = (self.t("rmst"), lambda v: _num(v, 1))
        parts = [self._table(summ, cols, caption=self.t("coverage_table", landmark=landmark) if self.dated
                             else self.t("coverage_table_flat"), mask=mask)]  # fmt: skip
        lr = res.logrank
        if lr and math.isfinite(lr.get("statistic", float("nan"))) and not mask.rows.any():  # a test on hidden groups
            parts.append(fragment("para", self.t("logrank", stat=lr["statistic"], df=lr["df"], p=_pval(lr["p"]))))
        try:
            from crmresearch.viz.plots import km_plot

            # each step of a curve is a churner: no curve of a group whose count is hidden
            shown = set(summ.loc[~mask.rows, "group"].astype(str))
            data = res.data[res.data["group"].astype(str).isin(shown)]
            if len(data):
                ax = km_plot(data, horizon=res.horizon, time_unit=res.time_unit, min_cell=self.min_cell, language=self.language,
                             xlabel="tenure_months" if res.landmark is None else "months_since_landmark")  # fmt: skip
                parts.append(self._fig(ax, label("retention", self.language)))
        except (ValueError, InputError):
            pass
        sticky = self.ctx.sticky
        if sticky is not None and self.dated:
            t = sticky.table
            cols = {"term": (label("term", self.language), lambda v: term_label(v, self.language)),
                    "hr": (label("hazard_ratio", self.language), lambda v: _num(v)),
                    "lower": ("95% ↓", lambda v: _num(v)), "upper": ("95% ↑", lambda v: _num(v)),
                    "p": ("p", lambda v: _pval(v).lstrip("= "))}  # fmt: skip
            parts.append(self._table(t, cols, caption=self.t("sticky_title")))
        return self._section("product_coverage", *parts)

    # ------------------------------------------------------------------ 4. RM turnover
    def _model_hr(self, term: str) -> dict | None:
        for r in self.metrics()["hazard_ratios"]:
            if r["term"] == term:
                return r
        return None

    def rm_turnover(self) -> Section:
        """§4: RM exits, orphaned customers, matched 90/180-day churn comparison, HR, rates by days orphaned.

        Examples
        --------
        >>> BranchReport.open(path, "B001").rm_turnover()  # doctest: +SKIP
        """
        if not self.dated:
            return self._unavailable("rm_turnover", self._flat_reason("RM turnover"))
        from crmresearch.timelines.rm_exposure import has_rm_tables

        if not has_rm_tables(self.source):
            return self._unavailable("rm_turnover", "relationship_managers and rm_assignments were not supplied")
        parts = []
        ex = self._result("rm_exits")
        parts.append(self._table(ex, {"exit_type": (label("exit_type", self.language), self._lbl),
                                      "in_month": (self.t("in_month"), lambda v: format_count(v, self.language)),
                                      "last_12_months": (self.t("last_12_months"), lambda v: format_count(v, self.language))},
                                 caption=self.t("exits_title")))  # fmt: skip
        oc = self._result("orphaned_customers")
        oc = oc[oc["exit_type"] == "all"] if "all" in set(oc["exit_type"]) else oc
        mask = self._suppress(oc, "customers_orphaned", ("with_new_rm", "churned_while_orphaned", "still_orphaned",
                                                         "median_gap_days"), total_shown=False)  # fmt: skip
        mask = self._suppress(oc, "churned_while_orphaned", (), total_shown=False, prior=mask)
        parts.append(self._table(oc, {"period": (self.t("month_label"), self._period),
                                      "rms": (self.t("exits_title"), lambda v: format_count(v, self.language)),
                                      "customers_orphaned": (label("orphaned", self.language), lambda v: format_count(v, self.language)),
                                      "churned_while_orphaned": (label("churned", self.language), lambda v: format_count(v, self.language)),
                                      "median_gap_days": (label("median_gap_days", self.language), lambda v: _num(v, 0))},
                                 caption=self.t("orphaned_title"), mask=mask))  # fmt: skip
        try:
            tc = self._result("turnover_comparison")
            s = tc.summary
            s = s[s["exit_type"] == "all"] if "all" in set(s["exit_type"]) else s
            cols = {"horizon_days": (label("horizon_days", self.language), lambda v: str(int(v))),
                    "risk_ratio": (label("risk_ratio", self.language), lambda v: _num(v)),
                    "rr_lower": ("95% ↓", lambda v: _num(v)), "rr_upper": ("95% ↑", lambda v: _num(v))}  # fmt: skip
            for c in ("exposed", "exposed_churn", "control_churn"):
                if c in s.columns:
                    cols[c] = (label(c, self.language), (lambda v: format_count(v, self.language)) if c == "exposed" else self._pct)
            rr = ("risk_ratio", "rr_lower", "rr_upper")
            mask = self._suppress(s, "exposed", ("exposed_churn", *rr), total_shown=False)
            for n_col, rate_col in (("exposed_churned", "exposed_churn"), ("controls_churned", "controls_churn")):
                if n_col in s.columns:
                    mask = self._suppress(s, n_col, (rate_col, *rr), total_shown=False, prior=mask)
            parts.append(self._table(s, cols, caption=self.t("turnover_title"), mask=mask))
            for cv in tc.caveats:
                parts.append(fragment("note", translate(cv, self.language)))
        except (InputError, ValueError) as exc:
            parts.append(fragment("para", self.t("not_available", reason=str(exc))))
        hr = self._model_hr("rm_turnover_exposed")
        if hr:
            model_scope = self.metrics()["hazard_ratios_scope"]
            parts.append(fragment("para", self.t("turnover_hr", scope=self.t("model_scope_" + model_scope),
                                     hr=f"{hr['hr']:.2f} ({hr['lower']:.2f}–{hr['upper']:.2f})")))  # fmt: skip
            # the window of the model shown: the bank-wide model is fitted with the run's parameters
            model_params = self.params if model_scope == "branch" else self.bundle.params
            parts.append(fragment("note", self.t("turnover_window", days=model_params.windows.rm_turnover_days)))
        rates = self._result("orphaned_churn_rates")
        cols = {"band": (label("orphaned_band", self.language), self._lbl),
                "customer_months": (label("customer_months", self.language), lambda v: format_count(v, self.language))}
        for c in rates.columns:
            if c not in ("band", "customer_months"):
                cols[c] = (label(c, self.language), (lambda v: format_count(v, self.language)) if c in ("churned", "events")
                           else (lambda v: format_percent(v, self.language, 2)))  # fmt: skip
        events_col = "churned" if "churned" in rates.columns else ("events" if "events" in rates.columns else None)
        mask = None
        if events_col:
            # the bands' churners add up to the lifecycle stages' (§6, same page): complements
            mask = self._suppress(rates, events_col, tuple(c for c in rates.columns if c not in ("band", "customer_months", events_col)))
        parts.append(self._table(rates, cols, caption=self.t("orphan_rates_title"), mask=mask))
        return self._section("rm_turnover", *parts)

    # ------------------------------------------------------------------ 5. causes
    def causes(self) -> Section:
        """§5: forest plot of the causes model, proportional-hazards check, transfer vs natural churn.

        Examples
        --------
        >>> BranchReport.open(path, "B001").causes()  # doctest: +SKIP
        """
        from crmresearch.viz.plots import forest_plot

        m = self.metrics()
        hrs = pd.DataFrame(m["hazard_ratios"])
        parts = []
        scope = self.t("model_scope_" + m["hazard_ratios_scope"])
        if not len(hrs):
            return self._unavailable("causes", "; ".join(m["caveats"]) or "no model")
        ax = forest_plot(hrs, language=self.language, title=self.t("forest_title", scope=scope))
        parts.append(self._fig(ax, self.t("forest_title", scope=scope)))
        model = self.ctx.model
        if model is not None and self.dated and m["hazard_ratios_scope"] == "bank":
            ph = model.ph_check()
            changes = ph[ph["verdict"].astype(str).str.startswith("changes")]
            if len(changes):
                verdicts = {label(k, "en"): k for k in ("ph_holds", "ph_later", "ph_early")}
                cols = {"term": (label("term", self.language), lambda v: term_label(v, self.language)),
                        "verdict": (label("ph_verdict", self.language),
                                    lambda v: label(verdicts.get(str(v), str(v)), self.language))}  # fmt: skip
                parts.append(self._table(changes, cols, caption=self.t("ph_title")))
            else:
                parts.append(fragment("para", self.t("ph_ok")))
        if self.dated:
            try:
                from crmresearch.analyses.product_coverage import cumulative_incidence
                from crmresearch.viz.plots import cumulative_incidence_plot

                res = self._coverage_result()
                types = self.source.df("customers").set_index("customer_id")["churn_type"]
                cif = cumulative_incidence(res, types)
                summ = res.summary
                shown = summ.loc[~self._coverage_mask(summ).rows.to_numpy(), "group"]
                cif = cif[cif["group"].isin(shown)]  # each step is a churner: no curve of a group §3 hides
                # a cause's incidence times the group's customers (shown in §3) is about its churners: a cause of
                # fewer than min_cell churners is not drawn, nor (its complement) the next smallest of its group
                keep = [g[~self._suppress(g, "events").rows.to_numpy()] for _, g in cif.groupby("group", sort=False, observed=True)]
                cif = pd.concat(keep) if keep else cif
                if len(cif):
                    ax = cumulative_incidence_plot(cif, language=self.language, title=self.t("cif_title"))
                    parts.append(self._fig(ax, self.t("cif_title")))
            except (InputError, ValueError) as exc:
                parts.append(fragment("para", self.t("not_available", reason=str(exc))))
        return self._section("causes", *parts)

    # ------------------------------------------------------------------ 6. lifecycle
    def lifecycle(self) -> Section:
        """§6: churn hazard by tenure stage (new 0–3 months, growth 3–12, mature 12+).

        Examples
        --------
        >>> BranchReport.open(path, "B001").lifecycle()  # doctest: +SKIP
        """
        if not self.dated:
            return self._unavailable("lifecycle", self._flat_reason("lifecycle"))
        res = self._result("lifecycle")
        st = res.stages.copy()
        ev = "events" if "events" in st.columns else "churned"
        # the stages' churners add up to the orphaned bands' (§4, same page): complements
        mask = self._suppress(st, ev, tuple(c for c in st.columns if c not in ("stage", "customer_months", ev)))
        cols = {"stage": (self.t("kpi"), self._lbl),
                "customer_months": (label("customer_months", self.language), lambda v: format_count(v, self.language)),
                ev: (label("churned", self.language), lambda v: format_count(v, self.language))}  # fmt: skip
        for c in st.columns:
            if c not in cols:
                cols[c] = (label("hazard_per_month" if c in ("rate", "hazard_per_month") else c, self.language),
                           lambda v: format_percent(v, self.language, 2))  # fmt: skip
        parts = [self._table(st, cols, caption=self.t("stages_title"), mask=mask)]
        loss = res.new_customer_loss()
        lost = loss.get("loss", float("nan")) * loss.get("customers", 0)  # about how many were lost: not shown below min_cell
        if loss.get("customers", 0) >= self.min_cell and math.isfinite(lost) and not 0 < round(lost) < self.min_cell:
            parts.append(fragment("para", self.t("new_loss", loss=self._pct(loss["loss"]), lo=self._pct(loss["lower"]),
                                      hi=self._pct(loss["upper"]), n=format_count(loss["customers"], self.language))))  # fmt: skip
        try:
            if not mask.rows.any():  # the smoothed hazard of a few churners shows each of them
                ax = res.plot(language=self.language)
                parts.append(self._fig(ax, self.t("stages_title")))
        except (ValueError, InputError):
            pass
        return self._section("lifecycle", *parts)
