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

from .params import Params
from .timeline import Context

__all__ = ["monthly_state_changes", "tier_case"]


def tier_case(params: Params, amount: str) -> str:
    """SQL CASE expression giving the tier name of ``amount``."""
    parts = [f"WHEN {amount} >= {t.min_aum!r} THEN '{t.name}'" for t in reversed(params.tiers)]
    return f"CASE {' '.join(parts)} ELSE 'unknown' END"


def monthly_state_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, dormant, tier)``; None without monthly_balances."""
    if not ctx.has("monthly_balances"):
        return None
    k = ctx.params.dormancy_months
    amount = "COALESCE(avg_daily_aum, aum)" if ctx.has_column("monthly_balances", "avg_daily_aum") else "aum"
    closed = f"CAST(last_day(month) AS DATE) <= {ctx.as_of_sql}"
    return f"""
    WITH m AS (
        SELECT customer_id, month,
               CAST(count(*) FILTER (WHERE txn_count = 0) OVER (
                    PARTITION BY customer_id ORDER BY month
                    RANGE BETWEEN INTERVAL {k - 1} MONTH PRECEDING AND CURRENT ROW) = {k} AS INTEGER) AS dormant,
               {tier_case(ctx.params, amount)} AS tier,
               lead(month) OVER (PARTITION BY customer_id ORDER BY month) AS next_month
        FROM monthly_balances WHERE {closed}
    ), pts AS (
        SELECT customer_id, CAST(month + INTERVAL 1 MONTH AS DATE) AS d, dormant, tier FROM m
        UNION ALL
        -- a missing month: the state is unknown from the first day after it
        SELECT customer_id, CAST(month + INTERVAL 2 MONTH AS DATE) AS d, 0 AS dormant, 'unknown' AS tier
        FROM m
        WHERE (next_month IS NULL OR next_month > month + INTERVAL 1 MONTH)
          AND CAST(last_day(month + INTERVAL 1 MONTH) AS DATE) <= {ctx.as_of_sql}
    )
    SELECT customer_id, d, dormant, tier FROM (
        SELECT *, lag(dormant) OVER w AS p_dormant, lag(tier) OVER w AS p_tier FROM pts
        WINDOW w AS (PARTITION BY customer_id ORDER BY d)
    ) WHERE p_dormant IS NULL OR p_dormant <> dormant OR p_tier <> tier"""
