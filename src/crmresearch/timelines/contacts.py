"""The retention loop: contacts made to keep customers.

For now this module defines the ``retention_contact_90d`` covariate: 1 on the
day of a retention action and the following ``windows.retention_contact_days
- 1`` days.  Win-back attempts (made after a customer left) are not retention
contacts and are left out.  Only actions dated on or before the as-of date are
read.
"""

from __future__ import annotations

from crmresearch.timelines.context import Context, indicator_changes

__all__ = ["contact_changes"]


def contact_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, retention_contact_90d)``; None without retention_actions.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`).

    Returns
    -------
    str or None
        A query: ``retention_contact_90d`` is 1 from a retention action's date
        for ``windows.retention_contact_days`` days (win-backs left out);
        None when the source has no retention_actions table.

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> ctx.con.execute(contact_changes(ctx)).df().head()  # doctest: +SKIP
    """
    if not ctx.has("retention_actions"):
        return None
    w = ctx.params.windows.retention_contact_days
    intervals = f"""
    SELECT customer_id, action_date AS d_from, CAST(action_date + {w - 1} AS DATE) AS d_to
    FROM retention_actions WHERE trigger <> 'winback' AND action_date <= {ctx.as_of_sql}"""
    return indicator_changes(intervals, "retention_contact_90d")
