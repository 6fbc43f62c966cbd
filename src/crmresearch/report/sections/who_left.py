"""Section 2, who left: churn by tier, segment, channel and reason (and, on a flat extract,
by branch and region), suppressed as linked tables.
"""

from __future__ import annotations

import pandas as pd

from crmresearch.core.suppression import (
    Suppression,
    suppress_counts,
    suppress_nested,
    suppress_split,
)
from crmresearch.report.page import Section
from crmresearch.viz.i18n import (
    format_count,
    label,
)


class WhoLeftSection:
    """Section 2, who left: churn by tier, segment, channel and reason (and, on a flat extract, (a part of the reports: state and helpers in :class:`~crmresearch.report.base.ReportBase`)."""

    # ------------------------------------------------------------------ 2. who left
    def who_left(self) -> Section:
        """§2: the month's churners by tier, segment, channel, churn type and reason, by count and AUM.

        Examples
        --------
        >>> BranchReport.open(path, "B001").who_left()  # doctest: +SKIP
        """
        if not self.dated:
            return self._flat_who_left()

        parts = []
        reasons = self.ctx.breakdowns.iloc[:0]
        for by, (part, mask) in self._who_left_masks()[0].items():
            key = "churn_reason" if by == "reason" else by
            cols = {"group": (label(key, self.language), self._lbl),
                    "churned_in_month": (label("churned", self.language), lambda v: format_count(v, self.language)),
                    "share_of_churned": (f"{label('share', self.language)} ({label('count', self.language)})", self._pct),
                    "aum_lost": (label("aum_lost", self.language), self._amt),
                    "share_of_aum_lost": (f"{label('share', self.language)} ({label('aum_weighted', self.language)})", self._pct)}  # fmt: skip
            parts.append(self._table(part, cols, caption=self.t("by_count", by=label(key, self.language)), mask=mask))
            if by == "reason":  # the chart labels each bar with its count: only the bars the table shows
                reasons = part[~mask.rows.to_numpy()]
        if len(reasons):
            from crmresearch.viz.plots import bar_plot

            ax = bar_plot(reasons, "group", "churned_in_month", xlabel=label("churned", self.language),
                          title=self.t("by_count", by=label("churn_reason", self.language)), language=self.language)
            parts.append(self._fig(ax, self.t("by_count", by=label("churn_reason", self.language))))
        return self._section("who_left", *parts)

    def _flat_branches_and_regions(self) -> tuple[pd.DataFrame, Suppression, pd.DataFrame, Suppression]:
        """A flat extract's customers and churners per branch and per region, suppressed as one.

        The bank page shows both tables: each region's row is the sum of its
        branches' rows (and the regions add up to the headline), so a cell
        hidden in one must not come back from the other
        (:func:`crmresearch.core.suppression.suppress_nested`).
        """
        if self._flat_regions is None:
            df = self.source.sql("""SELECT CAST(branch_id AS VARCHAR) AS "group", count(*) AS customers,
                                           count(*) FILTER (WHERE churned) AS churned FROM customers
                                    GROUP BY 1 ORDER BY 1""")  # fmt: skip
            df["share"] = df["churned"] / df["customers"]
            br = self.ctx.branches.assign(branch_id=lambda d: d["branch_id"].astype(str))
            region = br.set_index("branch_id")["region"].fillna("–")
            df["region"] = df["group"].map(region).fillna("–")
            g = df.groupby("region", as_index=False).agg(branches=("group", "nunique"), customers=("customers", "sum"),
                                                         churned=("churned", "sum"))  # fmt: skip
            g["rate"] = g["churned"] / g["customers"]
            mb, mr = suppress_nested(df, g, "churned", by="region", min_cell=self.min_cell, derived=("share",),
                                     totals_derived=("rate",))  # fmt: skip
            mb, mr = suppress_nested(df, g, "customers", by="region", min_cell=self.min_cell, derived=("churned", "share"),
                                     totals_derived=("churned", "rate"), prior=(mb, mr))  # fmt: skip
            self._flat_regions = (df, mb, g, mr)
        return self._flat_regions

    def _who_left_masks(self) -> tuple[dict[str, tuple[pd.DataFrame, Suppression]], bool]:
        """§2's breakdowns with their masks, and whether the headline's high-value churners are hidden too.

        Each breakdown adds up to the month's churners (a headline KPI).  By
        tier, the high-value tiers add up to the high-value KPI, and the
        other tiers to the month's churners minus it: the high-value count
        is a cell of these sums (:func:`crmresearch.core.suppression.suppress_split`), so
        a small one is not given back by the other tiers, and one that the
        high-value tiers shown would pin down (two tiers of "fewer than 10"
        under 18) is hidden in the headline.
        """
        if self._who_left is None:
            from crmresearch.month.bundle import BREAKDOWN_BY

            b = self.ctx.breakdowns
            b = b[b["scope"] == self._scope_key]
            derived = ("share_of_churned", "aum_lost", "share_of_aum_lost")
            out, hv_hidden = {}, False
            for by in BREAKDOWN_BY:
                part = b[(b["by"] == by) & ((b["churned_in_month"] > 0) | (b["active_at_start"] > 0))]
                if not len(part):
                    continue
                part = part.reset_index(drop=True)
                hv = part["group"].isin(self.params.high_value_tiers).to_numpy()
                if by == "tier" and hv.any():
                    mask, hv_hidden = suppress_split(part, "churned_in_month", hv, min_cell=self.min_cell, derived=derived)
                else:
                    mask = suppress_counts(part, "churned_in_month", min_cell=self.min_cell, derived=derived)
                out[by] = (part, mask)
            self._who_left = (out, hv_hidden)
        return self._who_left

    def _flat_who_left(self) -> Section:
        cols = [c for c in ("segment", "channel") if self.source.has_column("customers", c)]
        if not self.branch:
            cols.append("branch_id")
        parts = []
        where = "WHERE branch_id = ?" if self.branch else ""
        for c in cols:
            if c == "branch_id":  # the bank's branches add up to its regions: suppressed with the regions table
                df, mask, _, _ = self._flat_branches_and_regions()
            else:
                df = self.source.con.execute(
                    f"""SELECT CAST({c} AS VARCHAR) AS "group", count(*) AS customers,
                               count(*) FILTER (WHERE churned) AS churned FROM customers {where}
                        GROUP BY 1 ORDER BY 1""", [self.branch] if self.branch else []).df()  # fmt: skip
                df["share"] = df["churned"] / df["customers"]
                mask = self._suppress(df, "customers", ("churned", "share"), prior=self._suppress(df, "churned", ("share",)))
            parts.append(self._table(df, {"group": (label(c if c != "branch_id" else "branch", self.language), self._lbl),
                                          "customers": (self.t("customers_total"), lambda v: format_count(v, self.language)),
                                          "churned": (self.t("churned_total"), lambda v: format_count(v, self.language)),
                                          "share": (self.t("churn_share"), self._pct)}, mask=mask))  # fmt: skip
        return self._section("who_left", *parts) if parts else self._unavailable("who_left", "no attributes")
