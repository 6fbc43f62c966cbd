"""Product coverage: the number of distinct products a customer holds each day,
and whether they hold each of the "sticky" products.

Coverage is a time-varying covariate.  A holding counts from its
``start_date`` through its ``end_date`` inclusive (the contract's convention),
so a dropped product stops counting the day after its end date.  Holdings of
the same product that overlap or adjoin are merged first, so a product held
twice at once counts once ("distinct products").  Only holdings that started
on or before the as-of date are read, and an end date after it is treated as
still held: the count on a day uses only records dated on or before that day.

The sticky products (:data:`STICKY_PRODUCTS`: mobile banking, fund SIP,
payroll, third-party custody; ``reports.md`` §3) each get a 0/1 covariate
``holds_<product>`` (:func:`sticky_covariate`), 1 on the days the customer
holds that product, under the same merging and as-of rules.
"""

from __future__ import annotations

from crmresearch.core.sql import literal
from crmresearch.data.contract import STICKY_COVARIATES, STICKY_PRODUCTS, sticky_covariate
from crmresearch.timelines.context import Context, count_changes

__all__ = ["STICKY_COVARIATES", "STICKY_PRODUCTS", "product_count_changes", "sticky_covariate",
           "sticky_product_changes"]  # fmt: skip

def _merged_holdings_sql(ctx: Context, products: tuple[str, ...] | None = None) -> str:
    """Holdings merged per (customer, product): ``customer_id, product, d_from, d_to``.

    Overlapping or adjoining holdings of a product become one interval
    (``d_to`` NULL while held at the as-of date), so the intervals of a
    (customer, product) neither overlap nor touch.  ``products`` restricts
    the products read (default: all).
    """
    as_of = ctx.as_of_sql
    only = f" AND product IN ({', '.join(literal(p) for p in products)})" if products is not None else ""
    return f"""
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
                FROM product_holdings WHERE start_date <= {as_of}{only}
            )
        )
    ) GROUP BY customer_id, product, island"""


def product_count_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, n_products)``; None without product_holdings.

    Examples
    --------
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/bank"))          # doctest: +SKIP
    >>> ctx.con.execute(product_count_changes(ctx)).df()  # doctest: +SKIP
    """
    if not ctx.has("product_holdings"):
        return None
    return count_changes(_merged_holdings_sql(ctx), "n_products")


def sticky_product_changes(ctx: Context, products: tuple[str, ...] = STICKY_PRODUCTS) -> str | None:
    """Change points ``(customer_id, d, sticky_mask)``; None without product_holdings.

    ``sticky_mask`` has bit ``k`` set on the days the customer holds
    ``products[k]`` (the episodes decode it into ``holds_<product>``
    columns: one carried column instead of one per product).  A merged
    holding interval adds its bit on its first day and removes it the day
    after its last; a product's merged intervals never touch, so the running
    sum of these changes is the mask, and only days where it changes are
    emitted.

    Examples
    --------
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/bank"))            # doctest: +SKIP
    >>> ctx.con.execute(sticky_product_changes(ctx)).df()  # doctest: +SKIP
    """
    if not ctx.has("product_holdings"):
        return None
    merged = _merged_holdings_sql(ctx, products)
    bit = "CASE product " + " ".join(f"WHEN {literal(p)} THEN {1 << k}" for k, p in enumerate(products)) + " END"
    flips = f"""
    SELECT customer_id, d_from AS d, {bit} AS delta FROM ({merged})
    UNION ALL
    SELECT customer_id, CAST(d_to + 1 AS DATE) AS d, -({bit}) AS delta FROM ({merged}) WHERE d_to IS NOT NULL"""
    return f"""
    SELECT customer_id, d, CAST(running AS INTEGER) AS sticky_mask FROM (
        SELECT customer_id, d, delta,
               sum(delta) OVER (PARTITION BY customer_id ORDER BY d ROWS UNBOUNDED PRECEDING) AS running
        FROM (SELECT customer_id, d, sum(delta) AS delta FROM ({flips}) GROUP BY customer_id, d)
    ) WHERE delta <> 0"""
