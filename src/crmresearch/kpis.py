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

Under the ``asset_attrition`` churn definition, month ``M`` counts the
churns confirmed by ``M``'s last day (a later run may add churns to ``M``:
the contract's "provisional" months).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from .activity import tier_case
from .churn import churn_events
from .contract import Source
from .errors import InputError
from .params import Params
from .timeline import Context, date_lit

__all__ = ["KPI_COLUMNS", "month_bounds", "monthly_kpis"]

KPI_COLUMNS = ["active_at_start", "churned_in_month", "monthly_churn_rate", "aum_lost", "aum_drained"]


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of a ``YYYY-MM`` month.

    Raises
    ------
    InputError
        ``month`` is not ``YYYY-MM``.
    """
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise InputError(f"month must be YYYY-MM, got {month!r}") from None
    if len(month) != 7:
        raise InputError(f"month must be YYYY-MM, got {month!r}")
    last = (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()
    return first, last


def _month_sql(source: Source, params: Params, month: str) -> str:
    first, last = month_bounds(month)
    ctx = Context(source.con, frozenset(source.tables), params, last, source.observation_start or first)
    m0, m1 = date_lit(first), date_lit(last)
    balances = source.has("monthly_balances")
    amount = ("COALESCE(avg_daily_aum, aum)" if source.has_column("monthly_balances", "avg_daily_aum")
              else "aum")  # fmt: skip
    hv = ", ".join(f"'{t}'" for t in params.high_value_tiers)
    tier_prev = (f"""(SELECT {tier_case(params, amount)} FROM monthly_balances b
                    WHERE b.customer_id = c.customer_id AND b.month = CAST({m0} - INTERVAL 1 MONTH AS DATE))"""
                 if balances else "NULL")  # fmt: skip
    money = ("""
        , (SELECT arg_max(b.aum, b.month) FROM monthly_balances b WHERE b.customer_id = c.customer_id
             AND b.month < date_trunc('month', ch.churn_date)
             AND b.month >= date_trunc('month', ch.churn_date) - INTERVAL 12 MONTH) AS lost
        , (SELECT max(b.aum) FROM monthly_balances b WHERE b.customer_id = c.customer_id
             AND b.month < date_trunc('month', ch.churn_date)
             AND b.month >= date_trunc('month', ch.churn_date) - INTERVAL 12 MONTH) AS drained"""
             if balances else ", NULL AS lost, NULL AS drained")  # fmt: skip
    return f"""
    WITH ch AS ({churn_events(ctx)}),
    c AS (
        SELECT c.customer_id, c.branch_id, c.open_date, ch.churn_date,
               COALESCE({tier_prev} IN ({hv}), false) AS high_value
               {money}
        FROM customers c LEFT JOIN ch USING (customer_id)
        WHERE c.open_date <= {m1}
    )
    SELECT branch_id, high_value,
           count(*) FILTER (WHERE open_date < {m0} AND (churn_date IS NULL OR churn_date >= {m0})) AS active_at_start,
           count(*) FILTER (WHERE churn_date BETWEEN {m0} AND {m1}) AS churned_in_month,
           sum(COALESCE(lost, 0)) FILTER (WHERE churn_date BETWEEN {m0} AND {m1}) AS aum_lost,
           sum(COALESCE(drained, 0)) FILTER (WHERE churn_date BETWEEN {m0} AND {m1}) AS aum_drained
    FROM c GROUP BY branch_id, high_value"""


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
    if source.flat:
        raise InputError("monthly KPIs need dates; a flat extract has none")
    first, last = month_bounds(month)
    if last > source.as_of or last < source.observation_start:
        raise InputError(f"month {month} is outside the data: months from {source.observation_start:%Y-%m} "
                         f"to {source.as_of:%Y-%m} (the last one must have closed by the as-of date "
                         f"{source.as_of})")  # fmt: skip
    raw = source.con.execute(_month_sql(source, params, month)).df()
    branches = source.df("branches")["branch_id"].tolist()
    full = pd.MultiIndex.from_product([branches, [False, True]], names=["branch_id", "high_value"])
    g = raw.set_index(["branch_id", "high_value"]).reindex(full).fillna(0)
    if not source.has("monthly_balances"):
        g[["aum_lost", "aum_drained"]] = float("nan")
    rows = []
    for scope, sub in [*((b, g.loc[b]) for b in branches), ("bank", g.groupby(level="high_value").sum(min_count=1))]:
        for label, part in (("all", sub.sum(min_count=1)), ("high_value", sub.loc[True])):
            rows.append({"scope": scope, "customers": label, "month": month,
                         "active_at_start": int(part["active_at_start"]),
                         "churned_in_month": int(part["churned_in_month"]),
                         "aum_lost": part["aum_lost"], "aum_drained": part["aum_drained"]})  # fmt: skip
    out = pd.DataFrame(rows)
    out["monthly_churn_rate"] = out["churned_in_month"] / out["active_at_start"].where(out["active_at_start"] > 0)
    out = out[["scope", "customers", "month", *KPI_COLUMNS]]
    if branch is not None:
        if branch not in branches:
            raise InputError(f"unknown branch {branch!r}; known: {', '.join(branches[:20])}"
                             + (" ..." if len(branches) > 20 else ""))  # fmt: skip
        out = out[out["scope"].isin([branch, "bank"])].reset_index(drop=True)
    return out
