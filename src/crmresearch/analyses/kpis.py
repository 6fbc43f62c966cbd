"""Monthly KPIs: how many customers and how much money left, per branch and month.

Definitions (``reports.md`` → metrics.json), for month ``M`` using only data
dated on or before ``M``'s last day:

* ``active_at_start``: opened before ``M``'s first day and not churned before it;
* ``churned_in_month``: churn date inside ``M`` (customers opened in ``M`` included);
* ``monthly_churn_rate``: ``churned_in_month / active_at_start`` (missing when
  nobody was active);
* ``aum_lost``: for each churner, the AUM of the latest month-end *before the
  churn month* among the 12 months before it (the last snapshot while still
  a customer); summed; 0 for a churner with no such snapshot;
* ``aum_drained``: for each churner, the peak month-end AUM over those 12
  months; summed.  ``aum_drained − aum_lost`` is the money that left before the
  account closed.

``aum_lost`` and ``aum_drained`` are missing without ``monthly_balances``.
High-value customers are those whose tier, as known on ``M``'s first day
(from the month before ``M``), is one of ``params.high_value_tiers``.

These rules are written once, in :func:`_panel_sql` (one row per customer and
month: active at the start, churned in the month, AUM lost and drained, tier at
the start); the headline (:func:`monthly_kpis`), the trend (:func:`kpi_trend`),
the comparisons (:func:`kpi_comparison`) and the breakdowns
(:func:`churn_breakdown`) all aggregate that panel.

Time discipline.  A report for month ``M`` reads nothing dated after ``M``'s
last day: churns are those known by then (:func:`~crmresearch.timelines.churn.churn_events`
with ``M``'s last day as the as-of date), tiers come from closed months.  The
trend and the comparisons show every earlier month *as known at ``M``'s end*
(the best knowledge the report could have), not as it was first published.
Under the ``recorded`` definition the two are the same.  Under
``asset_attrition`` a churn is only confirmed ``k − 1`` months after its date,
so the last ``k − 1`` months of a report (``M`` included) may still gain
churns (and lose active customers) in a later run: they are flagged
``provisional``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from crmresearch.core.calendar import DAYS_PER_MONTH, month_bounds, shift_month
from crmresearch.core.errors import InputError
from crmresearch.core.jsonsafe import json_number
from crmresearch.core.params import Params
from crmresearch.core.sql import literal
from crmresearch.data.contract import Source, check_branch
from crmresearch.survival.estimators import rate_row
from crmresearch.timelines.activity import tier_case
from crmresearch.timelines.churn import churn_events
from crmresearch.timelines.context import Context, date_lit
from crmresearch.viz.summary import Renders

__all__ = [
    "BREAKDOWNS",
    "COMPARISONS",
    "KPI_COLUMNS",
    "KpiResult",
    "customer_month",
    "churn_breakdown",
    "kpi_comparison",
    "kpi_trend",
    "month_kpis",
    "monthly_kpis",
]

KPI_COLUMNS = ["active_at_start", "churned_in_month", "monthly_churn_rate", "aum_lost", "aum_drained"]
#: What :func:`churn_breakdown` can group the churners by.
BREAKDOWNS = ("tier", "segment", "channel", "churn_type", "reason")
Breakdown = Literal["tier", "segment", "channel", "churn_type", "reason"]
#: The references of :func:`kpi_comparison`.
COMPARISONS = ("previous_month", "same_month_last_year", "bank")

_SUMS = ["active_at_start", "churned_in_month", "aum_lost", "aum_drained", "aum_lost_ss", "aum_drained_ss"]
# optional customers columns the breakdowns read
_BY_COLUMN = {"segment": "segment", "channel": "channel", "reason": "churn_reason"}


def _check_month(source: Source, month: str) -> None:
    """The report month must have closed by the as-of date and end after the observation start."""
    source.require("monthly KPIs")
    _, last = month_bounds(month)
    if last > source.as_of or last < source.observation_start:
        raise InputError(f"month {month} is outside the data: months from {source.observation_start:%Y-%m} "
                         f"to {source.as_of:%Y-%m} (the last one must have closed by the as-of date "
                         f"{source.as_of})")  # fmt: skip


def _in_data(source: Source, month: str) -> bool:
    """Whether a month (before the report month) is inside the data: it ends after the observation start."""
    return month_bounds(month)[1] >= source.observation_start


def _provisional(params: Params, report_month: str, month: str) -> bool:
    """Whether ``month``'s figures, as known at ``report_month``'s end, may still change.

    Under ``asset_attrition`` an attrition dated in month ``m`` is confirmed at
    the end of month ``m + k − 1``: months later than ``report_month − (k − 1)``
    are incomplete.
    """
    if params.churn.definition != "asset_attrition":
        return False
    lag = (pd.Period(report_month, "M") - pd.Period(month, "M")).n
    return lag < params.churn.asset_attrition.months - 1


def _panel_sql(source: Source, params: Params, report_month: str, months: list[str],
               extra: dict[str, str] | None = None) -> str:  # fmt: skip
    """One row per customer and month of ``months`` for customers in play that month.

    The single home of the KPI definitions.  A customer is in play in month
    ``m`` when opened on or before its last day and not churned before its
    first day.  Columns: ``month`` (first day), ``customer_id``, ``branch_id``,
    ``churn_date``, ``churn_type``, ``lost``, ``drained`` (NULL without
    balances), ``active_at_start``, ``churned`` (booleans), ``tier`` (known on
    the month's first day: from the month before; ``unknown`` without that
    month's balance) and ``high_value``, plus ``extra`` (name → SQL expression
    over ``customers c`` and the churn events ``ch``).

    Churns are those known by ``report_month``'s last day (the as-of date of
    every month of the panel), so nothing dated after it is read.
    """
    first, last = month_bounds(report_month)
    ctx = Context(source.con, frozenset(source.tables), params, last, source.observation_start or first)
    balances = source.has("monthly_balances")
    hv = ", ".join(literal(t) for t in params.high_value_tiers)
    extra_cols = "".join(f", {expr} AS {name}" for name, expr in (extra or {}).items())
    values = ", ".join(f"({date_lit(a)}, {date_lit(b)})" for a, b in map(month_bounds, months))
    if balances:
        amount = ("COALESCE(b.avg_daily_aum, b.aum)" if source.has_column("monthly_balances", "avg_daily_aum")
                  else "b.aum")  # fmt: skip
        tier = tier_case(params, amount)
        # the last month-end AUM before the churn month, and the peak, over the 12 months before it
        money = """, money AS (
        SELECT ch.customer_id, arg_max(b.aum, b.month) AS lost, max(b.aum) AS drained
        FROM ch JOIN monthly_balances b ON b.customer_id = ch.customer_id
             AND b.month < date_trunc('month', ch.churn_date)
             AND b.month >= date_trunc('month', ch.churn_date) - INTERVAL 12 MONTH
        GROUP BY ch.customer_id)"""
        money_join, money_cols = "LEFT JOIN money USING (customer_id)", "money.lost, money.drained"
        tier_join = """LEFT JOIN monthly_balances b ON b.customer_id = cust.customer_id
             AND b.month = CAST(m.m0 - INTERVAL 1 MONTH AS DATE)"""
    else:
        tier, money, money_join, tier_join = "'unknown'", "", "", ""
        money_cols = "NULL AS lost, NULL AS drained"
    return f"""
    WITH ch AS ({churn_events(ctx)}){money},
    m AS (SELECT * FROM (VALUES {values}) t(m0, m1)),
    cust AS (
        SELECT c.customer_id, c.branch_id, c.open_date, ch.churn_date, ch.churn_type, {money_cols}{extra_cols}
        FROM customers c LEFT JOIN ch USING (customer_id) {money_join}
    )
    SELECT m.m0 AS month, cust.*,
           cust.open_date < m.m0 AS active_at_start,
           COALESCE(cust.churn_date <= m.m1, false) AS churned,
           {tier} AS tier,
           {tier} IN ({hv}) AS high_value
    FROM m JOIN cust ON cust.open_date <= m.m1 AND (cust.churn_date IS NULL OR cust.churn_date >= m.m0)
    {tier_join}"""


def _exact_sum(expr: str, scale: int = 4) -> str:
    """SQL sum of ``expr`` (NULL as 0) over the churners, in exact decimal arithmetic, as DOUBLE.

    A floating-point sum depends on the order DuckDB's threads combine their
    parts; a decimal one does not, so reruns give identical figures.
    """
    return f"CAST(sum(CAST(COALESCE({expr}, 0) AS DECIMAL(38, {scale}))) FILTER (WHERE churned) AS DOUBLE)"


def _kpi_frame(source: Source, params: Params, report_month: str, months: list[str]) -> pd.DataFrame:
    """:func:`_kpi_frame_of`, computed once per (report month, parameters) for the widest months asked.

    Each month's rows depend on that month alone (its own bounds in the
    panel, exact decimal sums), so the months of a narrower request are a
    cut of a wider one: the bank stage's trend (13 months), comparison
    (this month, the previous, a year ago) and month's KPIs are one pass.
    """
    held = source.cache.setdefault("kpi_frames", {})
    key = (report_month, params.model_dump_json())
    frame = held.get(key)
    if frame is None or not set(months) <= set(frame["month"]):
        wider = sorted(set(months) | (set(frame["month"]) if frame is not None else set()))
        frame = held[key] = _kpi_frame_of(source, params, report_month, wider)
    return frame[frame["month"].isin(months)].reset_index(drop=True)


def _kpi_frame_of(source: Source, params: Params, report_month: str, months: list[str]) -> pd.DataFrame:
    """KPIs of ``months`` (as known at ``report_month``'s end): every branch and the bank, all and high-value.

    One SQL pass over all months.  Columns ``scope, customers, month``,
    :data:`KPI_COLUMNS`, ``provisional`` and the sums of squares of the
    churners' AUM (``aum_lost_ss``, ``aum_drained_ss``) used by the traffic lights.
    """
    panel = _panel_sql(source, params, report_month, months)
    raw = source.con.execute(f"""
    SELECT strftime(month, '%Y-%m') AS month, branch_id, high_value,
           count(*) FILTER (WHERE active_at_start) AS active_at_start,
           count(*) FILTER (WHERE churned) AS churned_in_month,
           {_exact_sum("lost")} AS aum_lost,
           {_exact_sum("drained")} AS aum_drained,
           {_exact_sum("lost * lost", 0)} AS aum_lost_ss,
           {_exact_sum("drained * drained", 0)} AS aum_drained_ss
    FROM ({panel}) GROUP BY ALL""").df()
    branches = _branches(source)
    key = ["month", "branch_id", "high_value"]
    full = pd.MultiIndex.from_product([months, branches, [False, True]], names=key)
    g = raw.set_index(key).reindex(full)[_SUMS].astype(float).fillna(0.0)
    hv = g.xs(True, level="high_value")
    pieces = {
        ("branch", "all"): g.groupby(level=["month", "branch_id"]).sum(),
        ("branch", "high_value"): hv,
        ("bank", "all"): g.groupby(level="month").sum(),
        ("bank", "high_value"): hv.groupby(level="month").sum(),
    }
    frames = []
    for (level, customers), part in pieces.items():
        part = part.reset_index()
        part["scope"] = part["branch_id"] if level == "branch" else "bank"
        part["customers"] = customers
        frames.append(part.drop(columns="branch_id", errors="ignore"))
    out = pd.concat(frames, ignore_index=True)
    for col in ("active_at_start", "churned_in_month"):
        out[col] = out[col].astype("int64")
    if not source.has("monthly_balances"):
        out[["aum_lost", "aum_drained", "aum_lost_ss", "aum_drained_ss"]] = float("nan")
    active = out["active_at_start"]
    out["monthly_churn_rate"] = out["churned_in_month"] / active.where(active > 0)
    out["provisional"] = out["month"].map({m: _provisional(params, report_month, m) for m in months})
    order = {s: i for i, s in enumerate([*branches, "bank"])}
    out = out.sort_values(["scope", "customers", "month"], kind="stable",
                          key=lambda s: s.map(order) if s.name == "scope" else s)  # fmt: skip
    return out[["scope", "customers", "month", *KPI_COLUMNS, "provisional", "aum_lost_ss", "aum_drained_ss"]
               ].reset_index(drop=True)  # fmt: skip


def _branches(source: Source) -> list[str]:
    return [r[0] for r in source.con.execute("SELECT branch_id FROM branches ORDER BY __row").fetchall()]


def _keep_branch(out: pd.DataFrame, branch: str | None, source: Source) -> pd.DataFrame:
    """Keep ``branch``'s rows and the bank's (all rows when ``branch`` is None)."""
    check_branch(source, branch)
    if branch is None:
        return out.reset_index(drop=True)
    return out[out["scope"].isin([branch, "bank"])].reset_index(drop=True)


def monthly_kpis(source: Source, params: Params | None = None, *, month: str,
                 branch: str | None = None) -> pd.DataFrame:  # fmt: skip
    """KPIs of one month for every branch and the bank, all customers and high-value ones.

    Parameters
    ----------
    source : Source
        A loaded source with a calendar (not a flat extract).
    params : Params, optional
        Churn definition and high-value tiers.
    month : str
        ``YYYY-MM``; must lie between the observation start and the as-of date.
    branch : str, optional
        Keep this branch's rows (and the bank's).

    Returns
    -------
    DataFrame
        One row per (scope, customers): ``scope`` is a branch_id or ``"bank"``,
        ``customers`` is ``"all"`` or ``"high_value"``; columns
        :data:`KPI_COLUMNS` plus ``month``.  Every branch appears, with zeros
        when it had no customers or no churn.

    Examples
    --------
    >>> monthly_kpis(src, month="2026-10").query("scope == 'bank'")  # doctest: +SKIP
    """
    params = params or Params()
    _check_month(source, month)
    out = _kpi_frame(source, params, month, [month])[["scope", "customers", "month", *KPI_COLUMNS]]
    return _keep_branch(out, branch, source)


def customer_month(source: Source, params: Params | None = None, *, month: str) -> pd.DataFrame:
    """The customers in play in ``month``, one row each, with the KPI definitions applied.

    The per-customer rows behind :func:`monthly_kpis`, for views that group
    them differently (e.g. by relationship manager).

    Parameters
    ----------
    source : Source
        A loaded source with a calendar (not a flat extract).
    params : Params, optional
        Churn definition and high-value tiers.
    month : str
        ``YYYY-MM``; must lie between the observation start and the as-of date.

    Returns
    -------
    DataFrame
        ``customer_id, branch_id, open_date, churn_date, churn_type,
        active_at_start, churned, aum_lost, aum_drained, tier, high_value``
        (``aum_lost``/``aum_drained`` are the churner's amounts, missing for
        non-churners and without balances).

    Examples
    --------
    >>> cm = customer_month(src, month="2026-10")  # doctest: +SKIP
    >>> cm.groupby("branch_id")["churned"].sum()  # doctest: +SKIP
    """
    params = params or Params()
    _check_month(source, month)
    df = source.con.execute(_panel_sql(source, params, month, [month])
                            + " ORDER BY cust.customer_id").df()  # fmt: skip
    df = df.rename(columns={"lost": "aum_lost", "drained": "aum_drained"})
    df.loc[~df["churned"], ["aum_lost", "aum_drained"]] = np.nan
    if not source.has("monthly_balances"):
        df[["aum_lost", "aum_drained"]] = np.nan
    return df[["customer_id", "branch_id", "open_date", "churn_date", "churn_type", "active_at_start", "churned",
               "aum_lost", "aum_drained", "tier", "high_value"]].reset_index(drop=True)  # fmt: skip


def kpi_trend(source: Source, params: Params | None = None, *, month: str, branch: str | None = None,
              months: int = 13) -> pd.DataFrame:  # fmt: skip
    """The KPIs of the ``months`` months ending at ``month``, as known at ``month``'s end.

    Every month is computed, in one SQL pass, from data dated on or before
    ``month``'s last day (nothing later): earlier months are shown as known at
    ``month``'s end, not as first published.  Under ``recorded`` churn the two
    are the same (each row equals that month's own :func:`monthly_kpis`);
    under ``asset_attrition`` the earlier months are more complete than their
    own reports were, since an attrition dated in a month is only confirmed
    ``k − 1`` months later.  The last ``k − 1`` months (``month`` included)
    can still gain churns in a later run and are flagged ``provisional``.
    Months that end before the observation start are skipped.

    Parameters
    ----------
    source : Source
        A loaded source with a calendar (not a flat extract).
    params : Params, optional
        Churn definition and high-value tiers.
    month : str
        The report month, ``YYYY-MM``; must lie between the observation start
        and the as-of date.
    branch : str, optional
        Keep this branch's rows (and the bank's); by default every branch.
    months : int, default 13
        How many months, ``month`` included.

    Returns
    -------
    DataFrame
        One row per (scope, customers, month), months ascending: ``scope``,
        ``customers`` (``all`` / ``high_value``), ``month``,
        :data:`KPI_COLUMNS`, ``provisional`` (bool).  Its rows for ``month``
        equal :func:`monthly_kpis`.

    Raises
    ------
    InputError
        ``month`` outside the data, ``months`` < 1, unknown branch, flat extract.

    Examples
    --------
    >>> t = kpi_trend(src, month="2026-10", branch="B001")  # doctest: +SKIP
    >>> t.query("scope == 'B001' and customers == 'all'")[["month", "monthly_churn_rate"]]  # doctest: +SKIP
    """
    params = params or Params()
    if months < 1:
        raise InputError(f"months must be at least 1, got {months}")
    _check_month(source, month)
    window = [m for m in (shift_month(month, -i) for i in range(months - 1, -1, -1)) if _in_data(source, m)]
    out = _kpi_frame(source, params, month, window)
    return _keep_branch(out.drop(columns=["aum_lost_ss", "aum_drained_ss"]), branch, source)


def _traffic_light(kpi: str, against: str, cur: pd.DataFrame, ref: pd.DataFrame, alpha: float) -> np.ndarray:
    """``better`` / ``same`` / ``worse`` / ``n/a`` of this month (``cur``) against ``ref`` (aligned rows).

    * ``monthly_churn_rate`` and ``churned_in_month``: ``same`` when the
      reference lies inside the exact (Garwood) ``1 − alpha`` Poisson interval
      of this month's churners (divided by ``active_at_start`` for the rate);
      lower than the interval's lower end is ``worse`` (churn went up), higher
      than its upper end ``better``.
    * ``aum_lost`` and ``aum_drained``: ``same`` when the difference is within
      ``z(1 − alpha/2) · sqrt(Σ xᵢ² + Σ yⱼ²)`` — the normal approximation of a
      difference of two compound-Poisson sums, ``xᵢ`` and ``yⱼ`` the churners'
      amounts of the two months; lower is ``better``.
    * ``active_at_start`` is context, not judged; against the bank only the
      rate is comparable (a branch's counts are not).  Both give ``n/a``, as
      does a missing value or reference.
    """
    n = len(cur)
    status = np.full(n, "n/a", dtype=object)
    if kpi == "active_at_start" or (against == "bank" and kpi != "monthly_churn_rate"):
        return status
    v, r = cur[kpi].to_numpy(float), ref[kpi].to_numpy(float)
    if kpi in ("monthly_churn_rate", "churned_in_month"):
        events = cur["churned_in_month"].to_numpy()
        # the Garwood interval of a count: one customer-month of person-time gives the count's interval
        bounds = {e: rate_row("", DAYS_PER_MONTH, int(e), alpha) for e in np.unique(events)}
        lo = np.array([bounds[e]["lower"] for e in events], dtype=float)
        hi = np.array([bounds[e]["upper"] for e in events], dtype=float)
        if kpi == "monthly_churn_rate":
            active = cur["active_at_start"].to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                lo, hi = lo / active, hi / active
        below, above = r < lo, r > hi
    else:
        z = stats.norm.ppf(1 - alpha / 2)
        tol = z * np.sqrt(cur[f"{kpi}_ss"].to_numpy(float) + ref[f"{kpi}_ss"].to_numpy(float))
        below, above = v - r > tol, r - v > tol
    known = ~(np.isnan(v) | np.isnan(r))
    status[known] = "same"
    status[known & below] = "worse"
    status[known & above] = "better"
    return status


def kpi_comparison(source: Source, params: Params | None = None, *, month: str, branch: str | None = None,
                   alpha: float = 0.05) -> pd.DataFrame:  # fmt: skip
    """Each KPI of ``month`` against the previous month, the same month last year and the bank.

    All figures are as known at ``month``'s end (see :func:`kpi_trend`).  The
    traffic light judges whether churn got better (lower) or worse, with
    ``same`` for differences that chance alone explains:

    * churn rate and churners: ``same`` when the reference lies inside the exact
      95% Poisson interval of this month's churners (over the customers active
      at the start, for the rate); e.g. 0 churners against 3 is ``same``;
    * AUM lost and drained: ``same`` when the difference is within 1.96 standard
      errors of a difference of two compound-Poisson sums
      (``sqrt(Σ amount²)`` over both months' churners);
    * ``n/a``: ``active_at_start`` (context, not judged), counts and amounts
      against the bank (sizes differ: only the rate is compared), the bank
      against itself, and a reference that is missing (a month before the data,
      or a rate with nobody active).

    Parameters
    ----------
    source : Source
        A loaded source with a calendar (not a flat extract).
    params : Params, optional
        Churn definition and high-value tiers.
    month : str
        The report month, ``YYYY-MM``.
    branch : str, optional
        Keep this branch's rows (and the bank's); by default every branch.
    alpha : float, default 0.05
        One minus the confidence level of the tolerance intervals.

    Returns
    -------
    DataFrame
        One row per (scope, customers, kpi, against): ``against`` is one of
        :data:`COMPARISONS`; ``month``, ``reference_month``, ``value``,
        ``reference`` (NaN when missing), ``difference`` (value − reference, in
        the KPI's unit), ``difference_pp`` (for the rate: in percentage points;
        NaN otherwise), ``status`` (``better`` / ``same`` / ``worse`` /
        ``n/a``) and ``provisional`` (either figure may still change).

    Examples
    --------
    >>> c = kpi_comparison(src, month="2026-10", branch="B001")  # doctest: +SKIP
    >>> c.query("scope == 'B001' and kpi == 'monthly_churn_rate'")  # doctest: +SKIP
    """
    params = params or Params()
    _check_month(source, month)
    refs = {"previous_month": shift_month(month, -1), "same_month_last_year": shift_month(month, -12), "bank": month}
    wanted = [m for m in (refs["same_month_last_year"], refs["previous_month"]) if _in_data(source, m)]
    frame = _kpi_frame(source, params, month, [*wanted, month])
    key = ["scope", "customers"]
    cur = frame[frame["month"] == month].reset_index(drop=True)
    rows = []
    for against, ref_month in refs.items():
        if against == "bank":
            bank = cur[cur["scope"] == "bank"].drop(columns="scope")
            ref = cur[key].merge(bank, on="customers", how="left")
            ref.loc[ref["scope"] == "bank", KPI_COLUMNS] = np.nan
        else:
            ref = cur[key].merge(frame[frame["month"] == ref_month], on=key, how="left")
        for kpi in KPI_COLUMNS:
            part = cur[key].copy()
            part["kpi"], part["against"] = kpi, against
            part["month"], part["reference_month"] = month, ref_month
            part["value"], part["reference"] = cur[kpi].astype(float), ref[kpi].astype(float)
            part["difference"] = part["value"] - part["reference"]
            part["difference_pp"] = part["difference"] * 100 if kpi == "monthly_churn_rate" else np.nan
            part["status"] = _traffic_light(kpi, against, cur, ref, alpha)
            part["provisional"] = cur["provisional"] | ref["provisional"].eq(True)
            rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    branches = _branches(source)
    orders = {col: {k: i for i, k in enumerate(seq)} for col, seq in (
        ("scope", [*branches, "bank"]), ("customers", ["all", "high_value"]), ("kpi", KPI_COLUMNS),
        ("against", COMPARISONS))}  # fmt: skip
    out = out.sort_values(list(orders), key=lambda s: s.map(orders[s.name]), kind="stable")
    return _keep_branch(out, branch, source)


def churn_breakdown(source: Source, params: Params | None = None, *, month: str, branch: str | None = None,
                    by: Breakdown) -> pd.DataFrame:  # fmt: skip
    """The churners of ``month`` by tier, segment, channel, churn type or recorded reason.

    Counts and AUM lost (as in :func:`monthly_kpis`) with their shares of the
    scope's churners.  For groups defined at the month's start (``tier``,
    ``segment``, ``channel``) also the churn rate among the customers active at
    the start in the group: ``churned_of_active / active_at_start`` (customers
    opened in the month are in the counts and shares but not in the rate;
    they have no start-of-month tier and fall under ``unknown``).  The tier is
    the one known on the month's first day (from the month before), never the
    tier at churn.  Churn type and reason describe the churn itself: only counts
    and shares, no denominator.  Segment and channel are the customer's values
    in the extract; a reason counts only when the recorded churn carrying it is
    dated by the month's end (under ``asset_attrition`` an attrition may come
    before it); the churn type follows :func:`~crmresearch.timelines.churn.churn_events`
    (under ``asset_attrition``: ``transfer`` unless a recorded churn says
    otherwise).  Missing values are grouped as ``unknown``.

    Parameters
    ----------
    source : Source
        A loaded source with a calendar (not a flat extract).
    params : Params, optional
        Churn definition and tiers.
    month : str
        The report month, ``YYYY-MM``.
    branch : str, optional
        Keep this branch's rows (and the bank's); by default every branch.
    by : {"tier", "segment", "channel", "churn_type", "reason"}
        The grouping (see :data:`BREAKDOWNS`).

    Returns
    -------
    DataFrame
        One row per (scope, group) with customers active at the start or
        churners (``churn_type`` / ``reason``: with churners): ``scope``,
        ``month``, ``by``, ``group``, ``churned_in_month``, ``share_of_churned``,
        ``aum_lost``, ``share_of_aum_lost`` (NaN without balances or when
        nothing was lost) and, for ``tier`` / ``segment`` / ``channel``,
        ``active_at_start``, ``churned_of_active``, ``churn_rate``.  Its
        ``churned_in_month`` sums to :func:`monthly_kpis`' per scope.  Tiers come
        in tier order (``unknown`` last), other groups by churners, most first.

    Raises
    ------
    InputError
        ``by`` unknown; the column (``customers.segment``, ``customers.channel``,
        ``customers.churn_reason``) or, for tiers, the ``monthly_balances``
        table not supplied; month outside the data; unknown branch.

    Examples
    --------
    >>> churn_breakdown(src, month="2026-10", branch="B001", by="tier")  # doctest: +SKIP
    """
    params = params or Params()
    if by not in BREAKDOWNS:
        raise InputError(f"by must be one of {', '.join(BREAKDOWNS)}; got {by!r}")
    _check_month(source, month)
    if by == "tier" and not source.has("monthly_balances"):
        raise InputError("a breakdown by tier needs the monthly_balances table, "
                         "which this source does not supply")  # fmt: skip
    extra: dict[str, str] = {}
    if by in _BY_COLUMN:
        col = _BY_COLUMN[by]
        if not source.has_column("customers", col):
            raise InputError(f"a breakdown by {by} needs the column customers.{col}, "
                             "which this source does not supply")  # fmt: skip
        as_of = date_lit(month_bounds(month)[1])
        expr = f"CASE WHEN c.churn_date <= {as_of} THEN c.{col} END" if by == "reason" else f"c.{col}"
        extra = {"grp": f"COALESCE(CAST({expr} AS VARCHAR), 'unknown')"}
    group = {"tier": "tier", "churn_type": "COALESCE(churn_type, 'unknown')"}.get(by, "grp")
    with_rate = by in ("tier", "segment", "channel")
    panel = _panel_sql(source, params, month, [month], extra)
    raw = source.con.execute(f"""
    SELECT branch_id, {group} AS "group",
           count(*) FILTER (WHERE active_at_start) AS active_at_start,
           count(*) FILTER (WHERE churned) AS churned_in_month,
           count(*) FILTER (WHERE churned AND active_at_start) AS churned_of_active,
           {_exact_sum("lost")} AS aum_lost
    FROM ({panel}) {"" if with_rate else "WHERE churned"} GROUP BY ALL""").df()
    sums = ["active_at_start", "churned_in_month", "churned_of_active", "aum_lost"]
    raw[sums] = raw[sums].astype(float).fillna(0.0)
    raw = raw[(raw["active_at_start"] > 0) | (raw["churned_in_month"] > 0)]
    bank = raw.groupby("group", as_index=False)[sums].sum().assign(scope="bank")
    out = pd.concat([raw.rename(columns={"branch_id": "scope"}), bank], ignore_index=True)
    for col in ("active_at_start", "churned_in_month", "churned_of_active"):
        out[col] = out[col].astype("int64")
    if not source.has("monthly_balances"):
        out["aum_lost"] = float("nan")
    totals = out.groupby("scope")[["churned_in_month", "aum_lost"]].transform("sum")
    for col, share in (("churned_in_month", "share_of_churned"), ("aum_lost", "share_of_aum_lost")):
        out[share] = out[col] / totals[col].where(totals[col] > 0)
    active = out["active_at_start"]
    out["churn_rate"] = out["churned_of_active"] / active.where(active > 0)
    out["month"], out["by"] = month, by
    branches = _branches(source)
    scope_order = {s: i for i, s in enumerate([*branches, "bank"])}
    out["_scope"] = out["scope"].map(scope_order)
    if by == "tier":
        tier_order = {t: i for i, t in enumerate([*params.tier_names, "unknown"])}
        out["_g"] = out["group"].map(tier_order)
        out = out.sort_values(["_scope", "_g"], kind="stable")
    else:
        out = out.sort_values(["_scope", "churned_in_month", "group"], ascending=[True, False, True],
                              kind="stable")  # fmt: skip
    cols = ["scope", "month", "by", "group", "churned_in_month", "share_of_churned", "aum_lost",
            "share_of_aum_lost"]  # fmt: skip
    if with_rate:
        cols += ["active_at_start", "churned_of_active", "churn_rate"]
    return _keep_branch(out[cols], branch, source)


@dataclass
class KpiResult(Renders):
    """The month's KPIs of one scope (a branch or the bank), with their comparisons and trend.

    What :func:`month_kpis` returns, and what a report's headline shows:
    the KPIs of all customers and of high-value ones, each against the
    previous month, the same month last year and the bank (traffic lights),
    and the churn rate over 13 months.

    Attributes
    ----------
    scope : str
        The branch_id, or ``"bank"``.
    month : str
        ``YYYY-MM``.
    kpis : DataFrame
        :func:`monthly_kpis` rows of the scope: one per ``customers``
        (``all``, ``high_value``), columns :data:`KPI_COLUMNS`.
    comparison : DataFrame or None
        :func:`kpi_comparison` rows of the scope.
    trend : DataFrame or None
        :func:`kpi_trend` rows of the scope and the bank.
    caveats : list of str
        What is missing (AUM without monthly balances) or provisional.

    Examples
    --------
    >>> k = month_kpis(src, month="2026-10", branch="B001")  # doctest: +SKIP
    >>> k.to_metrics()["kpis"]["monthly_churn_rate"]; k.plot(language="zh")  # doctest: +SKIP
    """

    _table_attr = "summary"

    scope: str
    month: str
    kpis: pd.DataFrame
    comparison: pd.DataFrame | None = None
    trend: pd.DataFrame | None = None
    caveats: list[str] = field(default_factory=list)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per KPI: ``kpi``, ``all`` and ``high_value`` (this month's values)."""
        k = self.kpis.set_index("customers")
        return pd.DataFrame({"kpi": KPI_COLUMNS,
                             **{who: [k.loc[who, c] if who in k.index else np.nan for c in KPI_COLUMNS]
                                for who in ("all", "high_value")}})  # fmt: skip

    def to_summary(self, language: str = "en"):
        """The KPIs as a :class:`~crmresearch.viz.summary.Summary`: one row per KPI, each in its own unit.

        Parameters
        ----------
        language : {"en", "zh"}

        Returns
        -------
        Summary

        Examples
        --------
        >>> print(month_kpis(src, month="2026-10").to_summary("zh").as_text())  # doctest: +SKIP
        """
        from crmresearch.viz.i18n import format_amount, format_count, format_percent, label
        from crmresearch.viz.summary import Summary, SummaryTable

        def fmt(kpi: str, v: float) -> str:
            if v is None or not np.isfinite(v):
                return "–"
            if kpi == "monthly_churn_rate":
                return format_percent(float(v), language, digits=2)
            return format_amount(float(v), language) if kpi.startswith("aum") else format_count(int(v), language)

        s = self.summary
        frame = pd.DataFrame({"kpi": [label(k, language) for k in s["kpi"]],
                              **{who: [fmt(k, v) for k, v in zip(s["kpi"], s[who], strict=True)]
                                 for who in ("all", "high_value")}})  # fmt: skip
        cols = {"kpi": (label("kpi", language), "text"), "all": (label("all", language), "text"),
                "high_value": (label("high_value", language), "text")}  # fmt: skip
        return Summary([SummaryTable(frame, cols, self._caption())], list(self.caveats), language)

    def to_metrics(self) -> dict:
        """metrics.json's ``kpis`` and ``kpis_high_value`` (exact counts and sums).

        Returns
        -------
        dict
            ``{"kpis": {...}, "kpis_high_value": {...}}``, each with :data:`KPI_COLUMNS`.

        Examples
        --------
        >>> month_kpis(src, month="2026-10", branch="B001").to_metrics()["kpis"]  # doctest: +SKIP
        {'active_at_start': 7904, 'churned_in_month': 41, 'monthly_churn_rate': 0.00518724696356, ...}
        """
        k = self.kpis.set_index("customers")
        out = {}
        for name, who in (("kpis", "all"), ("kpis_high_value", "high_value")):
            d = {c: json_number(k.loc[who, c]) for c in KPI_COLUMNS}
            for c in ("active_at_start", "churned_in_month"):
                d[c] = int(d[c])
            out[name] = d
        return out

    def plot(self, ax=None, language: str = "en", *, min_cell: int | None = None, series_label: str | None = None):
        """The monthly churn rate over the trend's months, against the bank's; returns the axes.

        Parameters
        ----------
        ax : matplotlib Axes, optional
        language : {"en", "zh"}
        min_cell : int, optional
            A month of fewer churners (or of fewer active customers, when any
            churned) is not plotted: its rate would give the count away.  The
            reports pass their minimum cell size.
        series_label : str, optional
            The scope's name in the legend (default: its ID).

        Returns
        -------
        matplotlib Axes

        Raises
        ------
        ValueError
            The result has no trend (``month_kpis(..., trend=False)``).

        Examples
        --------
        >>> month_kpis(src, month="2026-10", branch="B001").plot(language="zh", min_cell=10)  # doctest: +SKIP
        """
        from crmresearch.viz.i18n import label, text
        from crmresearch.viz.plots import trend_plot

        if self.trend is None:
            raise ValueError("this KPI result has no trend: call month_kpis(..., trend=True)")
        t = self.trend[(self.trend["customers"] == "all") & self.trend["scope"].isin([self.scope, "bank"])]
        if min_cell is not None and "churned_in_month" in t.columns:
            few = t["churned_in_month"].between(1, min_cell - 1)
            if "active_at_start" in t.columns:
                few |= t["active_at_start"].between(1, min_cell - 1) & (t["churned_in_month"] > 0)
            t = t.assign(monthly_churn_rate=t["monthly_churn_rate"].where(~few))
        wide = t.pivot_table(index="month", columns="scope", values="monthly_churn_rate", dropna=False).reset_index()
        common = {"value_format": "percent", "ylabel": label("monthly_churn_rate", language),
                  "title": text("trend_title", language), "ax": ax, "language": language}  # fmt: skip
        if self.scope != "bank" and "bank" in wide:
            return trend_plot(wide, self.scope, compare="bank", series_label=series_label or self.scope,
                              compare_label=label("bank", language), **common)  # fmt: skip
        return trend_plot(wide, "bank", series_label=label("bank", language), **common)

    def _caption(self) -> str:
        return f"KPIs of {self.scope}, {self.month}"


def month_kpis(source: Source, params: Params | None = None, *, month: str, branch: str | None = None,
               compare: bool = True, trend: bool = True) -> KpiResult:  # fmt: skip
    """The month's KPIs of a branch (or the bank) as a result that renders itself.

    Parameters
    ----------
    source : Source
        A loaded source with a calendar (not a flat extract).
    params : Params, optional
    month : str
        ``YYYY-MM``.
    branch : str, optional
        The branch; None for the bank.
    compare : bool
        Also compute :func:`kpi_comparison` (the traffic lights).
    trend : bool
        Also compute :func:`kpi_trend` (13 months; needed by ``.plot``).

    Returns
    -------
    KpiResult

    Examples
    --------
    >>> month_kpis(src, month="2026-10", branch="B001")  # doctest: +SKIP
    """
    params = params or Params()
    source.require("monthly KPIs")
    scope = branch or "bank"
    k = monthly_kpis(source, params, month=month, branch=branch)
    caveats = []
    if not source.has("monthly_balances"):
        caveats.append("AUM lost and drained are not available: monthly_balances was not supplied.")
    if params.churn.definition == "asset_attrition":
        caveats.append(f"Asset-attrition churns are confirmed {params.churn.asset_attrition.months - 1} "
                       "month(s) after their date: the latest months are provisional.")  # fmt: skip
    comp = kpi_comparison(source, params, month=month, branch=branch) if compare else None
    tr = kpi_trend(source, params, month=month, branch=branch) if trend else None
    return KpiResult(scope, month, k[k["scope"] == scope].reset_index(drop=True),
                     None if comp is None else comp[comp["scope"] == scope].reset_index(drop=True), tr, caveats)
