"""The retention loop (``reports.md`` §7): warning → contact → retained?

Design: a landmark (target-trial) comparison
--------------------------------------------
A customer can only be contacted while still a customer, so the naive
comparison — "warned customers contacted at some point in the next 90 days
kept better than those who were not" — flatters contact even when it does
nothing: those who left in the first days had no time to be contacted and
all count as "not contacted, churned" (immortal time).  Instead, for each
warned customer:

1. **time zero** is the warning date ``w`` (the customer's first warning in
   the cohort; the rules raised that day are recorded);
2. **exposure** is decided in a fixed *grace window* ``[w, w + grace]``
   (``retention.grace_days``, default the response target, 1 day): contacted
   when a retention action (not a win-back) is dated in it;
3. **eligible** are the warned customers still active at the window's end
   (not churned on or before ``w + grace``), whether contacted or not — so
   both groups had the same chance to be contacted;
4. **outcome**: retained when not churned in the ``retention.outcome_days``
   (90) after the window, ``(w + grace, w + grace + 90]``.

The cohort is the warnings dated in the ``retention.cohort_months`` (3)
months up to the latest date whose outcome is known by the report month's
end (``w + grace + 90 <= month end``); everything is computed from data
dated on or before that month end.  The adjusted odds ratio of retention for
contact comes from a logistic regression, fitted as a binomial GLM with the
logit link by IRLS (statsmodels ``GLM(family=Binomial())``: the same estimates
as ``Logit``, which can stall on sparse tiers), adjusting for what was known
at the warning (:data:`ADJUSTMENTS`, the model's terms besides ``contacted``):

* ``n_products``: products held on the warning date (a missing count, from a
  missing ``product_holdings`` table, takes the cohort's median);
* ``log_tenure_months``: ``log(1 + tenure in months)`` on the warning date;
* ``contacted_before``: a retention contact in the
  ``windows.retention_contact_days`` (90) days before the warning day (a
  contact still protecting);
* ``tier[...]``: indicators of the tier on the warning date (missing reads
  ``unknown``) against the most frequent tier, when more than one occurs;
* ``rule_<name>``: which rules fired that day, for the rules that fired for
  some but not all customers (the most frequent is left out when the rules
  fired always partition the cohort).

A term that is constant in the cohort is left out.  It is an observational
*association*: contact is not
randomised, and whatever made an RM call one customer and not another may
also change the outcome.  It is reported only when each of the four cells
(contacted or not × retained or churned) holds at least ``min_cell_size``
customers; otherwise it is missing, with a caveat.

``tests/analyses/test_retention_loop.py`` checks the design on simulations in which
contact does nothing and is recorded only for customers still active: the
adjusted interval covers 1 in at least 90% of replicates, the naive one in
far fewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from crmresearch.analyses.early_warnings import early_warnings
from crmresearch.core.calendar import DAYS_PER_MONTH, month_bounds
from crmresearch.core.errors import InputError
from crmresearch.core.jsonsafe import json_number
from crmresearch.core.params import Params
from crmresearch.data.contract import Source, check_branch
from crmresearch.survival.episodes import context, materialize
from crmresearch.viz.summary import Renders

__all__ = ["ADJUSTMENTS", "ContactOutcomes", "contact_outcomes", "odds_ratio_2x2", "outcomes_from_cohort",
           "retention_cohort", "rm_table", "winbacks"]

#: what the contact odds ratio is adjusted for: the logistic model's term (or term prefix) -> its words,
#: in the order of the design (:func:`_fit_logit`); the caveat of an estimated ratio names them all
ADJUSTMENTS: dict[str, str] = {
    "n_products": "products",
    "log_tenure_months": "tenure",
    "contacted_before": "an earlier retention contact",
    "tier[": "tier",
    "rule_": "rules fired",
}


def odds_ratio_2x2(a: int, b: int, c: int, d: int, alpha: float = 0.05) -> dict:
    """Crude odds ratio ``(a·d)/(b·c)`` with a Woolf (log) interval.

    ``a``: exposed with the outcome, ``b``: exposed without, ``c``: unexposed
    with, ``d``: unexposed without.  Missing when a cell is 0.

    Examples
    --------
    >>> round(odds_ratio_2x2(20, 10, 10, 20)["or"], 2)
    4.0
    """
    if min(a, b, c, d) == 0:
        return {"or": np.nan, "lower": np.nan, "upper": np.nan, "p": np.nan, "n": a + b + c + d}
    lor = np.log(a * d / (b * c))
    se = np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    z = stats.norm.ppf(1 - alpha / 2)
    return {"or": float(np.exp(lor)), "lower": float(np.exp(lor - z * se)), "upper": float(np.exp(lor + z * se)),
            "p": float(2 * stats.norm.sf(abs(lor / se))), "n": int(a + b + c + d)}  # fmt: skip


@dataclass
class ContactOutcomes(Renders):
    """Retention of warned customers with and without timely contact.

    Attributes
    ----------
    cohort : DataFrame
        The eligible warned customers (rows of :func:`retention_cohort`
        with ``eligible`` true).
    odds_ratio : dict or None
        ``or, lower, upper, p, n``: the adjusted odds ratio of retention for
        contact (None when a cell is smaller than the minimum).
    naive : dict
        The naive crude odds ratio (contact at any time within the outcome
        days vs none, among everyone warned, retention counted from the
        warning): shown only to explain why the design matters.
    model : statsmodels results or None
        The fitted logistic regression (a binomial GLM; its terms: ``const``,
        ``contacted`` and those of :data:`ADJUSTMENTS` that vary).
    cohort_from, cohort_to : Timestamp
        The warning dates of the cohort.
    caveats : list of str
        Plain-words caveats.

    Examples
    --------
    >>> res = contact_outcomes(src, month="2026-10")  # doctest: +SKIP
    >>> res.counts; res.odds_ratio; res.caveats  # doctest: +SKIP
    """

    _table_attr = "counts"

    cohort: pd.DataFrame
    odds_ratio: dict | None
    naive: dict
    model: object | None
    cohort_from: pd.Timestamp
    cohort_to: pd.Timestamp
    grace_days: int
    outcome_days: int
    caveats: list[str] = field(default_factory=list)

    @property
    def counts(self) -> pd.DataFrame:
        """Customers retained and churned, contacted or not, with retention rates."""
        c = self.cohort
        out = (c.assign(group=np.where(c["contacted"] == 1, "contacted", "not contacted"))
               .groupby("group")["retained"].agg(customers="size", retained="sum"))  # fmt: skip
        out = out.reindex(["contacted", "not contacted"], fill_value=0)
        out["churned"] = out["customers"] - out["retained"]
        out["retention_rate"] = out["retained"] / out["customers"].where(out["customers"] > 0)
        return out.reset_index()

    @property
    def summary(self) -> pd.DataFrame:
        """The logistic model as odds ratios: ``term, or, lower, upper, p``."""
        if self.model is None:
            return pd.DataFrame(columns=["term", "or", "lower", "upper", "p"])
        ci = np.exp(self.model.conf_int())
        return pd.DataFrame({"term": self.model.params.index, "or": np.exp(self.model.params.to_numpy()),
                             "lower": ci[0].to_numpy(), "upper": ci[1].to_numpy(),
                             "p": self.model.pvalues.to_numpy()})  # fmt: skip

    def plot(self, ax=None, language: str = "en"):
        """Retention rate with its 95% (Wilson) interval, contacted vs not; returns the axes.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw (default: a new figure).
        language : {"en", "zh"}
            Language of the labels (Chinese with the bundled font).

        Returns
        -------
        matplotlib Axes

        Examples
        --------
        >>> contact_outcomes(src, month="2026-10").plot()  # doctest: +SKIP
        """
        import matplotlib.pyplot as plt
        from statsmodels.stats.proportion import proportion_confint

        from crmresearch.viz.i18n import label
        from crmresearch.viz.plots import use_fonts

        use_fonts(language)
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 2.5))
        k = self.counts
        lo, hi = proportion_confint(k["retained"], k["customers"].clip(lower=1), method="wilson")
        rate = k["retention_rate"].fillna(0)
        ax.barh([label("plot_" + g.replace(" ", "_"), language) for g in k["group"]], rate, xerr=[rate - lo, hi - rate], color=["#2a7", "#999"], capsize=4)
        ax.set_xlim(0, 1)
        ax.set_xlabel(label("plot_retained_after", language, outcome=self.outcome_days, grace=self.grace_days))
        return ax

    def to_metrics(self) -> dict:
        """metrics.json's retention outcomes: the outcome cohort's groups, their retained, and the odds ratio.

        The *outcome cohort* is its own population: customers first warned
        between ``warned_from`` and ``warned_to`` (months before the report
        month, so that their outcome is known) and still active at the end of
        the grace window; not the report month's warnings.

        Returns
        -------
        dict
            ``outcome_cohort``: ``warned_from, warned_to`` (ISO dates),
            ``grace_days, outcome_days``, the group sizes ``contacted`` and
            ``not_contacted`` (contact in the grace window or not) and
            ``retained_contacted``, ``retained_not_contacted`` (not churned in
            the outcome days after the window), so a rate can be formed; and
            ``contact_odds_ratio`` (``or, lower, upper, p, n``, or None when a
            cell is below the minimum).  Exact counts (metrics.json is not
            published; the pages suppress them).

        Examples
        --------
        >>> contact_outcomes(src, month="2026-10").to_metrics()["outcome_cohort"]  # doctest: +SKIP
        """
        k = self.counts.set_index("group")
        o = self.odds_ratio

        def day(t: pd.Timestamp) -> str | None:
            return None if pd.isna(t) else t.date().isoformat()

        cohort = {"warned_from": day(self.cohort_from), "warned_to": day(self.cohort_to),
                  "grace_days": int(self.grace_days), "outcome_days": int(self.outcome_days),
                  "contacted": int(k.loc["contacted", "customers"]),
                  "not_contacted": int(k.loc["not contacted", "customers"]),
                  "retained_contacted": int(k.loc["contacted", "retained"]),
                  "retained_not_contacted": int(k.loc["not contacted", "retained"])}  # fmt: skip
        return {"outcome_cohort": cohort,
                "contact_odds_ratio": None if o is None else {key: json_number(v) for key, v in o.items()}}  # fmt: skip

    def _caption(self) -> str:
        o = self.odds_ratio
        head = (f"Warnings {self.cohort_from:%Y-%m-%d} to {self.cohort_to:%Y-%m-%d}: "
                f"{len(self.cohort)} warned customers still active after the {self.grace_days}-day window.")  # fmt: skip
        if o is not None:
            head += (f" Adjusted odds ratio of retention for contact {o['or']:.2f} "
                     f"(95% CI {o['lower']:.2f}–{o['upper']:.2f}; an association, not proof of effect).")
        return head



def _cohort_window(month: str, params: Params) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    _, last = month_bounds(month)
    r = params.retention
    end = pd.Timestamp(last)
    latest = end - pd.Timedelta(days=r.grace + r.outcome_days)
    if params.churn.definition == "asset_attrition":  # a churn is confirmed k - 1 months after its date
        latest -= pd.DateOffset(months=params.churn.asset_attrition.months - 1)
    earliest = latest - pd.DateOffset(months=r.cohort_months) + pd.Timedelta(days=1)
    return earliest, latest, end


def _covariates_at(source: Source, params: Params, as_of, cohort: pd.DataFrame) -> pd.DataFrame:
    """Tier, products and tenure of each customer on their warning date, and whether they had a
    retention contact in the window before it (``retention_contact_90d`` the day before), from
    the episodes."""
    ctx = context(source, params, as_of)
    _, ep = materialize(source, ctx)
    con = ctx.con
    con.register("__cohort", cohort[["customer_id", "warning_date"]])
    try:
        return con.execute(f"""
            SELECT k.customer_id, e.tier, e.n_products,
                   CAST(CAST(k.warning_date AS DATE) - e.start_date + e.start + 1 AS INTEGER) AS tenure_days,
                   COALESCE(b.retention_contact_90d, 0) AS contacted_before
            FROM __cohort k JOIN {ep} e ON e.customer_id = k.customer_id
             AND CAST(k.warning_date AS DATE) BETWEEN e.start_date AND e.stop_date
            LEFT JOIN {ep} b ON b.customer_id = k.customer_id
             AND CAST(k.warning_date AS DATE) - 1 BETWEEN b.start_date AND b.stop_date""").df()
    finally:
        con.unregister("__cohort")


def _fit_logit(df: pd.DataFrame, rules: list[str]):
    import statsmodels.api as sm

    X = pd.DataFrame({"contacted": df["contacted"].astype(float)})
    if df["n_products"].notna().any():
        X["n_products"] = df["n_products"].fillna(df["n_products"].median()).astype(float)
    X["log_tenure_months"] = np.log1p(df["tenure_days"].astype(float) / DAYS_PER_MONTH)
    X["contacted_before"] = df["contacted_before"].fillna(0).astype(float)  # a contact still protecting
    tier = df["tier"].fillna("unknown")
    if tier.nunique() > 1:
        ref = tier.value_counts().index[0]
        X = X.join(pd.get_dummies(tier, prefix="tier", prefix_sep="[", dtype=float)
                   .rename(columns=lambda c: c + "]").drop(columns=f"tier[{ref}]"))  # fmt: skip
    fired = [r for r in rules if 0 < df[f"rule_{r}"].sum() < len(df)]
    if fired:  # rules are not exclusive; the most frequent is left out when they always partition
        counts = df[[f"rule_{r}" for r in fired]]
        drop = [f"rule_{counts.sum().idxmax()[5:]}"] if (counts.sum(axis=1) == 1).all() else []
        X = X.join(counts.drop(columns=drop).astype(float))
    X = X.loc[:, X.std() > 0] if len(X) > 1 else X
    if "contacted" not in X:
        return None
    X = sm.add_constant(X, has_constant="add")
    # IRLS (GLM) converges where Newton on Logit can stall with sparse tiers; same estimates
    return sm.GLM(df["retained"].astype(float), X, family=sm.families.Binomial()).fit()


def retention_cohort(source: Source, params: Params | None = None, *, month: str,
                     branch: str | None = None) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:  # fmt: skip
    """The warned customers of the outcome cohort, classified for both designs.

    Computed once for the bank, it can be split by branch, RM or anything
    else and passed to :func:`outcomes_from_cohort`.

    Returns
    -------
    cohort : DataFrame
        One row per customer warned in the cohort window (their first warning
        there): ``customer_id, branch_id, rm_id, warning_date, rules`` (the
        rules raised that day), one ``rule_<name>`` 0/1 column per rule,
        ``eligible`` (active at the grace window's end), ``contacted`` (in the
        grace window), ``retained`` (no churn in the outcome days after it),
        ``naive_contacted`` / ``naive_retained`` (contact any time within the
        outcome days / no churn within them from the warning), and ``tier,
        n_products, tenure_days`` on the warning date.
    cohort_from, cohort_to : Timestamp
        The warning dates of the cohort window.

    Examples
    --------
    >>> cohort, first, last = retention_cohort(src, month="2026-10")  # doctest: +SKIP
    """
    params = params or Params()
    cohort, first, latest = source.memo("retention_cohort", (month, branch, params.model_dump_json()),
                                        lambda: _retention_cohort(source, params, month, branch))  # fmt: skip
    return cohort.copy(), first, latest


def _retention_cohort(source: Source, params: Params, month: str,
                      branch: str | None) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:  # fmt: skip
    source.require("retention outcomes")
    if not source.has("retention_actions"):
        raise InputError("the retention outcome needs retention_actions, which was not supplied")
    check_branch(source, branch)
    first, latest, end = _cohort_window(month, params)
    if latest.date() < source.observation_start:
        raise InputError(f"no warning before {latest:%Y-%m-%d} has a known {params.retention.outcome_days}-day "
                         f"outcome within the data (observation start {source.observation_start})")  # fmt: skip
    grace, horizon = params.retention.grace, params.retention.outcome_days
    w = early_warnings(source, params, as_of=end.date(), branch=branch)
    w = w[(w["warning_date"] >= first) & (w["warning_date"] <= latest)]
    ctx = context(source, params, end.date())
    ct, _ = materialize(source, ctx)
    fu = ctx.con.execute(f"SELECT customer_id, end_date, event FROM {ct}").df()
    fu["end_date"] = pd.to_datetime(fu["end_date"])
    rules = list(params.warnings.rules)

    if w.empty:  # no warning in the cohort window: an empty cohort with the declared columns
        w = w.assign(days_to_contact=pd.Series(dtype=float))
    index = w.sort_values(["warning_date", "rule"]).groupby("customer_id", as_index=False).first()
    fired = (w.merge(index[["customer_id", "warning_date"]], on=["customer_id", "warning_date"])
             .assign(v=1).pivot_table(index="customer_id", columns="rule", values="v", aggfunc="max"))  # fmt: skip
    fired = fired.reindex(columns=rules).fillna(0).astype(int).add_prefix("rule_")
    c = index.drop(columns="rule").merge(fired, left_on="customer_id", right_index=True).reset_index(drop=True)
    flags = c[[f"rule_{r}" for r in rules]].to_numpy(dtype=bool)
    c["rules"] = [", ".join(r for r, f in zip(rules, row, strict=True) if f) for row in flags]
    c = c.merge(fu, on="customer_id", how="left")
    days_to_churn = (c["end_date"].where(c["event"] == 1) - c["warning_date"]).dt.days
    dtc = c["days_to_contact"]
    c["naive_contacted"] = (dtc.le(horizon) & ~(days_to_churn < dtc)).astype(int)
    c["naive_retained"] = (~(days_to_churn <= horizon)).astype(int)
    c["eligible"] = ~(days_to_churn <= grace)
    c["contacted"] = dtc.le(grace).astype(int)
    c["retained"] = (~(days_to_churn <= grace + horizon)).astype(int)
    if len(c):
        c = c.merge(_covariates_at(source, params, end.date(), c), on="customer_id", how="left")
    else:
        c = c.assign(tier=pd.Series(dtype=object), n_products=pd.Series(dtype=float),
                     tenure_days=pd.Series(dtype=float), contacted_before=pd.Series(dtype=float))  # fmt: skip
    cols = ["customer_id", "branch_id", "rm_id", "warning_date", "rules", *fired.columns, "eligible",
            "contacted", "retained", "naive_contacted", "naive_retained", "tier", "n_products", "tenure_days", "contacted_before"]  # fmt: skip
    return c[cols].sort_values("customer_id").reset_index(drop=True), first, latest


def outcomes_from_cohort(cohort: pd.DataFrame, params: Params | None = None, *,
                         cohort_from: pd.Timestamp | None = None,
                         cohort_to: pd.Timestamp | None = None) -> ContactOutcomes:  # fmt: skip
    """Fit the landmark comparison (and the naive one) on a cohort from :func:`retention_cohort`.

    Pure: takes and returns data, reads no source — so one bank-wide cohort
    serves every branch (``cohort[cohort.branch_id == b]``).

    Examples
    --------
    >>> cohort, a, b = retention_cohort(src, month="2026-10")  # doctest: +SKIP
    >>> outcomes_from_cohort(cohort[cohort.branch_id == "B001"]).odds_ratio  # doctest: +SKIP
    """
    params = params or Params()
    rules = [r for r in params.warnings.rules if f"rule_{r}" in cohort]
    nc, nr = cohort["naive_contacted"].astype(bool), cohort["naive_retained"].astype(bool)
    naive = odds_ratio_2x2(int((nc & nr).sum()), int((nc & ~nr).sum()), int((~nc & nr).sum()),
                           int((~nc & ~nr).sum()))  # fmt: skip
    c = cohort[cohort["eligible"].astype(bool)].reset_index(drop=True)
    caveats: list[str] = []
    nat = pd.Timestamp("NaT")
    result = ContactOutcomes(c, None, naive, None, cohort_from if cohort_from is not None else nat,
                             cohort_to if cohort_to is not None else nat, params.retention.grace,
                             params.retention.outcome_days, caveats)  # fmt: skip
    k = result.counts
    m = params.min_cell_size
    if min([*k["retained"], *k["churned"]]) < m:
        caveats.append(f"The odds ratio of contact is not shown: a group (contacted or not × retained or "
                       f"churned) has fewer than {m} customers.")  # fmt: skip
        return result
    try:
        model = _fit_logit(c, rules)
    except (np.linalg.LinAlgError, ValueError) as exc:  # e.g. perfect separation
        caveats.append(f"The logistic regression could not be fitted ({exc}).")
        return result
    if model is None or not np.isfinite(model.bse.get("contacted", np.nan)):
        caveats.append("The logistic regression could not separate contact from the adjustments.")
        return result
    lo, hi = np.exp(model.conf_int().loc["contacted"])
    result.model = model
    result.odds_ratio = {"or": float(np.exp(model.params["contacted"])), "lower": float(lo),
                         "upper": float(hi), "p": float(model.pvalues["contacted"]), "n": int(model.nobs)}  # fmt: skip
    caveats.append("Observational: contacted customers may differ from the others in ways the adjustment "
                   f"({', '.join(ADJUSTMENTS.values())}) does not capture.")  # fmt: skip
    return result


def contact_outcomes(source: Source, params: Params | None = None, *, month: str,
                     branch: str | None = None) -> ContactOutcomes:  # fmt: skip
    """Retention of warned customers contacted in the grace window vs not (landmark design).

    Parameters
    ----------
    source : Source
        A loaded source with ``retention_actions`` and the tables of at least
        one warning rule.
    params : Params, optional
        ``retention`` (grace window, outcome days, cohort months),
        ``warnings`` and ``min_cell_size``.
    month : str
        The report month ``YYYY-MM``: only data dated up to its end is used.
    branch : str, optional
        Keep this branch's warned customers (default: the whole bank).

    Returns
    -------
    ContactOutcomes
        The cohort, counts, adjusted and naive odds ratios, and caveats.

    Raises
    ------
    InputError
        ``retention_actions`` was not supplied, or the data does not reach
        back to the cohort.

    Examples
    --------
    >>> res = contact_outcomes(src, month="2026-10")  # doctest: +SKIP
    >>> res.counts, res.odds_ratio  # doctest: +SKIP
    """
    params = params or Params()
    cohort, first, latest = retention_cohort(source, params, month=month, branch=branch)
    return outcomes_from_cohort(cohort, params, cohort_from=first, cohort_to=latest)


UNASSIGNED = "(no RM)"


def rm_table(source: Source, params: Params | None = None, *, month: str,
             branch: str | None = None) -> pd.DataFrame:  # fmt: skip
    """Per relationship manager for the month: book, churn, AUM lost, warnings and response.

    Parameters
    ----------
    source : Source
        A loaded source with ``rm_assignments`` and ``relationship_managers``.
    params : Params, optional
        Churn definition, warning rules, response target.
    month : str
        ``YYYY-MM``; only data dated up to its end is used.
    branch : str, optional
        Keep this branch's customers.

    Returns
    -------
    DataFrame
        One row per RM (plus ``(no RM)`` for customers without one):
        ``rm_id, book`` (customers assigned on the month's first day and
        active at its start), ``churned`` and ``aum_lost`` (of that book, in the
        month; the KPI definitions of :mod:`.kpis`), ``warnings`` (raised in
        the month for customers whose RM was this RM on the warning date),
        ``contacted_in_target``, ``share_in_target`` (of the warnings whose
        target window had closed) and ``pending``.  Sorted by book size.

    Examples
    --------
    >>> rm_table(src, month="2026-10", branch="B001").head()  # doctest: +SKIP
    """
    from crmresearch.analyses.kpis import customer_month

    params = params or Params()
    if not (source.has("rm_assignments") and source.has("relationship_managers")):
        raise InputError("the per-RM table needs rm_assignments and relationship_managers, "
                         "which were not supplied")  # fmt: skip
    first, last = month_bounds(month)
    cm = customer_month(source, params, month=month)
    cm = cm[cm["active_at_start"]]
    if branch is not None:
        cm = cm[cm["branch_id"] == branch]
    rm_on = source.con.execute(f"""
        SELECT customer_id, rm_id FROM rm_assignments
        WHERE start_date <= DATE '{first}' AND (end_date IS NULL OR end_date >= DATE '{first}')""").df()  # fmt: skip
    book = cm.merge(rm_on, on="customer_id", how="left").fillna({"rm_id": UNASSIGNED})
    g = book.groupby("rm_id").agg(book=("customer_id", "size"), churned=("churned", "sum"),
                                  aum_lost=("aum_lost", "sum"))  # fmt: skip
    if not source.has("monthly_balances"):
        g["aum_lost"] = np.nan
    w = early_warnings(source, params, month=month, branch=branch).fillna({"rm_id": UNASSIGNED})
    closed = w["target_closed"] | w["contacted_in_target"].fillna(False).astype(bool)
    wg = (w.assign(closed=closed, hit=w["contacted_in_target"].fillna(False).astype(bool))
          .groupby("rm_id").agg(warnings=("rule", "size"), closed=("closed", "sum"), contacted_in_target=("hit", "sum")))  # fmt: skip
    out = g.join(wg, how="outer").fillna({"book": 0, "churned": 0, "warnings": 0, "closed": 0,
                                          "contacted_in_target": 0})  # fmt: skip
    out["share_in_target"] = out["contacted_in_target"] / out["closed"].where(out["closed"] > 0)
    out["pending"] = out["warnings"] - out["closed"]
    ints = ["book", "churned", "warnings", "contacted_in_target", "pending"]
    out[ints] = out[ints].astype(int)
    out = out.drop(columns="closed").reset_index().sort_values(["book", "rm_id"], ascending=[False, True])
    return out[["rm_id", "book", "churned", "aum_lost", "warnings", "contacted_in_target", "share_in_target",
                "pending"]].reset_index(drop=True)  # fmt: skip


def winbacks(source: Source, *, month: str, branch: str | None = None) -> pd.DataFrame:
    """Win-back attempts (``trigger = 'winback'``) in the month and the 12 months to its end.

    Returns
    -------
    DataFrame
        ``period`` (``month``, ``last_12_months``), ``attempts``,
        ``customers``, ``won_back``, ``lost``, ``pending``, ``not_recorded``
        and ``success_rate = won_back / (won_back + lost)`` with its Wilson
        95% interval (missing when no attempt was decided).

    Examples
    --------
    >>> winbacks(src, month="2026-10")  # doctest: +SKIP
    """
    from statsmodels.stats.proportion import proportion_confint

    if not source.has("retention_actions"):
        raise InputError("win-backs need retention_actions, which was not supplied")
    first, last = month_bounds(month)
    year = (pd.Timestamp(last) - pd.DateOffset(months=12) + pd.Timedelta(days=1)).date()
    outcome = "outcome" if source.has_column("retention_actions", "outcome") else "CAST(NULL AS VARCHAR)"
    df = source.con.execute(f"""
        SELECT r.customer_id, r.action_date, {outcome} AS outcome FROM retention_actions r
        JOIN customers c USING (customer_id)
        WHERE r.trigger = 'winback' AND r.action_date BETWEEN DATE '{year}' AND DATE '{last}'
        {"AND c.branch_id = $b" if branch else ""}""", {"b": branch} if branch else {}).df()  # fmt: skip
    rows = []
    for period, part in (("month", df[pd.to_datetime(df["action_date"]) >= pd.Timestamp(first)]),
                         ("last_12_months", df)):  # fmt: skip
        o = part["outcome"]
        won, lost = int((o == "won_back").sum()), int((o == "lost").sum())
        decided = won + lost
        lo, hi = proportion_confint(won, decided, method="wilson") if decided else (np.nan, np.nan)
        rows.append({"period": period, "attempts": len(part), "customers": part["customer_id"].nunique(),
                     "won_back": won, "lost": lost, "pending": int((o == "pending").sum()),
                     "not_recorded": int(o.isna().sum()), "success_rate": won / decided if decided else np.nan,
                     "lower": lo, "upper": hi})  # fmt: skip
    return pd.DataFrame(rows)
