"""Product coverage: the number of distinct products a customer holds each day.

Coverage is a time-varying covariate.  A holding counts from its
``start_date`` through its ``end_date`` inclusive (the contract's convention),
so a dropped product stops counting the day after its end date.  Holdings of
the same product that overlap or adjoin are merged first, so a product held
twice at once counts once ("distinct products").  Only holdings that started
on or before the as-of date are read, and an end date after it is treated as
still held: the count on a day uses only records dated on or before that day.
"""

from __future__ import annotations

from .timeline import Context, count_changes

__all__ = ["product_count_changes"]


def product_count_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, n_products)``; None without product_holdings."""
    if not ctx.has("product_holdings"):
        return None
    as_of = ctx.as_of_sql
    merged = f"""
    SELECT customer_id, product, min(s) AS d_from,
           CASE WHEN max(e) >= {as_of} THEN NULL ELSE max(e) END AS d_to
    FROM (
        SELECT *, sum(new_island) OVER (PARTITION BY customer_id, product ORDER BY s, e
                                        ROWS UNBOUNDED PRECEDING) AS island
        FROM (
            SELECT *, CASE WHEN s <= max(e) OVER (PARTITION BY customer_id, product ORDER BY s, e
                                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) + 1
                           THEN 0 ELSE 1 END AS new_island
            FROM (
                SELECT customer_id, product, start_date AS s,
                       COALESCE(end_date, DATE '9999-12-30') AS e
                FROM product_holdings WHERE start_date <= {as_of}
            )
        )
    ) GROUP BY customer_id, product, island"""
    return count_changes(merged, "n_products")
