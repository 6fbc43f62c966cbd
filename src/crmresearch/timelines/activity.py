"""Monthly activity: dormancy and AUM tier, from ``monthly_balances``.

Monthly figures become known when their month closes, so the state computed
from month ``m`` applies from the first day of month ``m + 1`` until the next
month's figures replace it.  Only months that closed on or before the as-of
date are read.

* ``dormant``: the last ``dormancy_months`` closed months (default 2) are all
  present with ``txn_count = 0``.
* ``tier``: the tier (parameter ``tiers``) of the month's ``avg_daily_aum``,
  or of its month-end ``aum`` when ``avg_daily_aum`` is not supplied;
  ``unknown`` before the customer's first closed month.

A month missing from the data makes the state unknown (``dormant = 0``,
``tier = unknown``) from the first day of the month after it, until a later
month is present again: a gap is not taken as activity or inactivity.
"""

from __future__ import annotations

from crmresearch.core.params import Params
from crmresearch.core.sql import literal
from crmresearch.timelines.context import Context

__all__ = ["monthly_state_changes", "tier_case"]


def tier_case(params: Params, amount: str) -> str:
    """SQL CASE expression giving the tier name of ``amount``.

    Parameters
    ----------
    params : Params
        Its ``tiers`` (lowest first) define the bands.
    amount : str
        A SQL expression (a column name or a number).

    Returns
    -------
    str
        ``CASE WHEN ... END``: the highest tier whose ``min_aum`` the amount
        reaches, ``unknown`` for NULL.

    Examples
    --------
    >>> import duckdb
    >>> case = tier_case(Params(), "aum")
    >>> duckdb.connect().sql(f"SELECT aum, {case} AS tier FROM (VALUES (5000), (250000), (NULL)) "
    ...                      "t(aum)").fetchall()
    [(5000, 'mass'), (250000, 'key'), (None, 'unknown')]
    """
    parts = [f"WHEN {amount} >= {t.min_aum!r} THEN {literal(t.name)}" for t in reversed(params.tiers)]
    return f"CASE {' '.join(parts)} ELSE 'unknown' END"


def monthly_state_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, dormant, tier)``; None without monthly_balances.

    One sorted pass over the balances (window functions over ROWS, months as
    integers), emitting a row only where the state changes.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`).

    Returns
    -------
    str or None
        A query; the state of month ``m`` applies from the first day of month
        ``m + 1`` (see the module for the rules).  None when the source has
        no monthly_balances table.

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> ctx.con.execute(monthly_state_changes(ctx)).df().head()  # doctest: +SKIP
    """
    if not ctx.has("monthly_balances"):
        return None
    k = ctx.params.dormancy_months
    amount = "COALESCE(avg_daily_aum, aum)" if ctx.has_column("monthly_balances", "avg_daily_aum") else "aum"
    as_of = ctx.as_of_sql
    # mi: months since year 0, so consecutive months differ by exactly 1
    last_closed = f"(year({as_of} + 1) * 12 + month({as_of} + 1) - 1)"
    return f"""
    WITH m AS (
        SELECT customer_id, year(month) * 12 + month(month) AS mi,
               CAST(txn_count = 0 AS INTEGER) AS z, {tier_case(ctx.params, amount)} AS tier
        FROM monthly_balances WHERE CAST(last_day(month) AS DATE) <= {as_of}
    ), f AS (
        -- one sorted pass: this row's state and the previous row's, side by side
        SELECT customer_id, mi, tier,
               CASE WHEN lag(mi, {k - 1}, -1) OVER w = mi - {k - 1}
                         AND sum(z) OVER (w ROWS BETWEEN {k - 1} PRECEDING AND CURRENT ROW) = {k}
                    THEN 1 ELSE 0 END AS dormant,
               CASE WHEN lag(mi, {k}, -1) OVER w = mi - {k}
                         AND sum(z) OVER (w ROWS BETWEEN {k} PRECEDING AND 1 PRECEDING) = {k}
                    THEN 1 ELSE 0 END AS p_dormant,
               lag(tier) OVER w AS p_tier,
               lag(mi) OVER w AS prev_mi, lead(mi) OVER w AS next_mi
        FROM m WINDOW w AS (PARTITION BY customer_id ORDER BY mi)
    ), pts AS (
        -- the state of month mi applies from the first day of month mi + 1
        SELECT customer_id, mi + 1 AS ci, dormant, tier FROM f
        WHERE prev_mi IS NULL OR prev_mi <> mi - 1 OR p_dormant <> dormant OR p_tier <> tier
        UNION ALL
        -- a missing month (closed, no row): the state is unknown from the first day after it
        SELECT customer_id, mi + 2 AS ci, 0 AS dormant, 'unknown' AS tier FROM f
        WHERE (next_mi IS NULL OR next_mi > mi + 1) AND mi + 1 <= {last_closed}
          AND (dormant <> 0 OR tier <> 'unknown')
    )
    SELECT customer_id, make_date(CAST((ci - 1) // 12 AS BIGINT), CAST((ci - 1) % 12 + 1 AS BIGINT), 1) AS d,
           dormant, tier
    FROM pts"""
