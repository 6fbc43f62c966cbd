"""Churn definitions (data contract): when, and how, a customer left.

* ``recorded``: ``customers.churn_date`` on or before the as-of date.
* ``asset_attrition``: the end of the first month of the first run of ``k``
  consecutive months whose month-end AUM is below ``fraction`` of the
  customer's *reference AUM* (the maximum month-end AUM over the
  ``reference_months`` months before the run's first month), provided that
  reference was at least ``min_reference_aum``.  Every month of the run is
  compared with the reference of the run's first month.  A run counts only
  once it is confirmed: its last month closed on or before the as-of date (so
  an attrition is known ``k - 1`` months after its date).  A recorded churn
  date earlier than the attrition date still counts.  The churn type is the
  recorded one when the customer has a recorded churn by the as-of date, else
  ``transfer``.  Months must be consecutive calendar months present in the
  data; a missing month breaks a run.
"""

from __future__ import annotations

from crmresearch.timelines.context import Context

__all__ = ["churn_events"]


def _recorded(ctx: Context) -> str:
    return f"""
    SELECT customer_id, churn_date, COALESCE(churn_type, 'unknown') AS churn_type
    FROM customers WHERE churn_date IS NOT NULL AND churn_date <= {ctx.as_of_sql}"""


def _attrition(ctx: Context) -> str:
    p = ctx.params.churn.asset_attrition
    k, frac, ref_m, min_ref = p.months, p.fraction, p.reference_months, p.min_reference_aum
    as_of = ctx.as_of_sql
    return f"""
    WITH b AS (
        SELECT customer_id, month, aum,
               max(aum) OVER (PARTITION BY customer_id ORDER BY month
                              RANGE BETWEEN INTERVAL {ref_m} MONTH PRECEDING AND INTERVAL 1 MONTH PRECEDING) AS ref,
               max(aum) OVER (PARTITION BY customer_id ORDER BY month
                              RANGE BETWEEN CURRENT ROW AND INTERVAL {k - 1} MONTH FOLLOWING) AS run_max,
               count(*) OVER (PARTITION BY customer_id ORDER BY month
                              RANGE BETWEEN CURRENT ROW AND INTERVAL {k - 1} MONTH FOLLOWING) AS run_len
        FROM monthly_balances WHERE CAST(last_day(month) AS DATE) <= {as_of}
    ), att AS (
        SELECT customer_id, min(CAST(last_day(month) AS DATE)) AS attrition_date
        FROM b
        WHERE ref >= {min_ref} AND run_len = {k} AND run_max < {frac} * ref
        GROUP BY customer_id
    ), rec AS ({_recorded(ctx)})
    SELECT customer_id,
           CASE WHEN rec.churn_date IS NOT NULL AND (att.attrition_date IS NULL
                     OR rec.churn_date <= att.attrition_date) THEN rec.churn_date
                ELSE att.attrition_date END AS churn_date,
           COALESCE(rec.churn_type, 'transfer') AS churn_type
    FROM att FULL OUTER JOIN rec USING (customer_id)"""


def churn_events(ctx: Context) -> str:
    """A query ``(customer_id, churn_date, churn_type)`` of churns known by the as-of date.

    Parameters
    ----------
    ctx : Context
        The builders' context; ``ctx.params.churn.definition`` chooses the
        definition (``recorded`` or ``asset_attrition``, see the module).

    Returns
    -------
    str
        A query with one row per churned customer.

    Raises
    ------
    InputError
        ``asset_attrition`` was asked for but the source has no monthly_balances.

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> ctx.con.execute(churn_events(ctx)).df().churn_type.value_counts()  # doctest: +SKIP
    >>> from crmresearch.core.params import load_params
    >>> p = load_params(overrides={"churn.definition": "asset_attrition"})
    >>> ctx = context(load_source("data/demo"), p)  # doctest: +SKIP
    >>> ctx.con.execute(churn_events(ctx)).df()  # doctest: +SKIP
    """
    if ctx.params.churn.definition == "recorded":
        return _recorded(ctx)
    if not ctx.has("monthly_balances"):
        from crmresearch.core.errors import InputError

        raise InputError("churn definition 'asset_attrition' needs the monthly_balances table, "
                         "which this source does not supply")  # fmt: skip
    return _attrition(ctx)
