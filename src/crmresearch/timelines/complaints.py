"""Complaints: the escalated-complaint covariate.

``complaint_escalated_90d`` is 1 on the day a complaint is escalated and on
the following ``windows.complaint_days - 1`` days (90 days in all by
default).  The escalation is dated by ``escalated_date`` when supplied, else
by ``complaint_date`` (the contract's rule; validation warns when it
happens).  Only escalations dated on or before the as-of date are read.
"""

from __future__ import annotations

from crmresearch.timelines.context import Context, indicator_changes

__all__ = ["escalation_changes", "escalation_date"]


def escalation_date(ctx: Context) -> str:
    """SQL expression dating an escalation: ``escalated_date``, else ``complaint_date``.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`).

    Returns
    -------
    str
        ``COALESCE(escalated_date, complaint_date)`` when the source has the
        optional ``escalated_date`` column, else ``complaint_date``.

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> escalation_date(ctx)  # doctest: +SKIP
    'COALESCE(escalated_date, complaint_date)'
    """
    if ctx.has_column("complaints", "escalated_date"):
        return "COALESCE(escalated_date, complaint_date)"
    return "complaint_date"


def escalation_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, complaint_escalated_90d)``; None without complaints.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`).

    Returns
    -------
    str or None
        A query: ``complaint_escalated_90d`` is 1 from the escalation's date
        for ``windows.complaint_days`` days, merged over overlapping
        escalations; None when the source has no complaints table.

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> ctx.con.execute(escalation_changes(ctx)).df().head()  # doctest: +SKIP
    """
    if not ctx.has("complaints"):
        return None
    w = ctx.params.windows.complaint_days
    dated = escalation_date(ctx)
    intervals = f"""
    SELECT customer_id, {dated} AS d_from, CAST({dated} + {w - 1} AS DATE) AS d_to
    FROM complaints WHERE escalated AND {dated} <= {ctx.as_of_sql}"""
    return indicator_changes(intervals, "complaint_escalated_90d")
