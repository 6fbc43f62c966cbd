"""Relationship-manager turnover: exposure, orphaned spells and handover gaps.

Definitions (data contract):

* an RM *exit* is ``relationship_managers.exit_date`` (the RM's last day);
* a customer is *exposed to RM turnover* on the ``windows.rm_turnover_days``
  days after the exit (days ``exit+1 .. exit+window``) of the RM assigned to
  them *on the exit date* (an assignment with ``start_date <= exit_date <=
  end_date``, or open-ended);
* a customer is *orphaned* from the day after that exit until the day before
  their next assignment starts (still orphaned at the as-of date when none
  has started yet);
* the *handover gap* is ``next_start - exit_date`` in days;
* *days orphaned so far* on day ``t`` is ``t - (exit_date + 1)`` (0 on the
  first day without an RM); :data:`ORPHAN_BANDS` groups it into 0–7, 8–30
  and 31+, the ``orphaned_band`` covariate (``none`` when not orphaned).

No look-ahead: exposure and orphaned on day ``t`` use only exits and
assignment starts dated on or before ``t``.  The handover gap is only known
once the next assignment starts, so it is returned by :func:`handovers` for
description and never used as a covariate (grouping customers by their
eventual gap would give long gaps immortal time); the band of days orphaned
*so far* is known each day and is the covariate instead.
"""

from __future__ import annotations

import pandas as pd

from crmresearch.core.calendar import ORPHAN_BANDS
from crmresearch.timelines.context import Context, indicator_changes

__all__ = ["ORPHAN_BANDS", "exits_sql", "exposure_changes", "handovers", "has_rm_tables",
           "orphaned_band_changes", "orphaned_changes"]



def exits_sql(ctx: Context) -> str:
    """One row per (customer, RM exit) for customers assigned to the RM on the exit date.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`).

    Returns
    -------
    str
        A query ``customer_id, rm_id, exit_date, exit_type, next_start``:
        exits on or before the as-of date; ``next_start`` is the start of the
        customer's next assignment, NULL while none has started by the as-of
        date.

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> ctx.con.execute(exits_sql(ctx)).df().head()  # doctest: +SKIP
    """
    as_of = ctx.as_of_sql
    return f"""
    SELECT a.customer_id, m.rm_id, m.exit_date, m.exit_type,
           (SELECT min(n.start_date) FROM rm_assignments n
             WHERE n.customer_id = a.customer_id AND n.start_date > m.exit_date
               AND n.start_date <= {as_of}) AS next_start
    FROM rm_assignments a
    JOIN relationship_managers m ON a.rm_id = m.rm_id
    WHERE m.exit_date IS NOT NULL AND m.exit_date <= {as_of}
      AND a.start_date <= m.exit_date AND (a.end_date IS NULL OR a.end_date >= m.exit_date)"""


def has_rm_tables(ctx: Context) -> bool:
    """Both RM tables were supplied.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`).

    Returns
    -------
    bool
        True when the source has ``rm_assignments`` and ``relationship_managers``.

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> has_rm_tables(ctx)  # doctest: +SKIP
    True
    """
    return ctx.has("rm_assignments") and ctx.has("relationship_managers")


def exposure_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, rm_turnover_exposed)``; None without RM tables.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`).

    Returns
    -------
    str or None
        A query: ``rm_turnover_exposed`` is 1 on days ``exit + 1 .. exit +
        windows.rm_turnover_days`` after the exit of the customer's RM.

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> ctx.con.execute(exposure_changes(ctx)).df().head()  # doctest: +SKIP
    """
    if not has_rm_tables(ctx):
        return None
    w = ctx.params.windows.rm_turnover_days
    intervals = f"""
    SELECT customer_id, CAST(exit_date + 1 AS DATE) AS d_from, CAST(exit_date + {w} AS DATE) AS d_to
    FROM ({exits_sql(ctx)})"""
    return indicator_changes(intervals, "rm_turnover_exposed")


def orphaned_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, orphaned)``; None without RM tables.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`).

    Returns
    -------
    str or None
        A query: ``orphaned`` is 1 from the day after the RM's exit until the
        day before the next assignment starts.

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> ctx.con.execute(orphaned_changes(ctx)).df().head()  # doctest: +SKIP
    """
    if not has_rm_tables(ctx):
        return None
    intervals = f"""
    SELECT customer_id, CAST(exit_date + 1 AS DATE) AS d_from, CAST(next_start - 1 AS DATE) AS d_to
    FROM ({exits_sql(ctx)}) WHERE next_start IS NULL OR next_start > exit_date + 1"""
    return indicator_changes(intervals, "orphaned")


def orphaned_band_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, orphaned_band)``; None without RM tables.

    The band of days orphaned so far (:data:`ORPHAN_BANDS`), ``none`` from
    the day the next assignment starts.  A band starts only while the
    customer is still orphaned, so every (customer, day) has one value.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`).

    Returns
    -------
    str or None
        A query with ``orphaned_band`` one of the :data:`ORPHAN_BANDS` keys or
        ``none``.

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> ctx.con.execute(orphaned_band_changes(ctx)).df().head()  # doctest: +SKIP
    """
    if not has_rm_tables(ctx):
        return None
    starts = " UNION ALL ".join(
        f"SELECT customer_id, CAST(exit_date + {1 + lo} AS DATE) AS d, '{band}' AS orphaned_band, next_start "
        f"FROM x" for band, (lo, _) in ORPHAN_BANDS.items()
    )  # fmt: skip
    return f"""
    WITH x AS ({exits_sql(ctx)})
    SELECT customer_id, d, orphaned_band FROM ({starts})
    WHERE (next_start IS NULL OR d < next_start) AND d <= {ctx.as_of_sql}
    UNION ALL
    SELECT customer_id, next_start AS d, 'none' AS orphaned_band FROM x
    WHERE next_start IS NOT NULL AND next_start > exit_date + 1"""


def handovers(ctx: Context) -> pd.DataFrame:
    """One row per customer orphaned by an RM exit on or before the as-of date.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`).

    Returns
    -------
    DataFrame
        ``customer_id, rm_id, exit_date, exit_type, next_start,
        handover_gap_days`` (``next_start`` and the gap are missing while the
        customer is still orphaned at the as-of date).

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> handovers(ctx)["handover_gap_days"].describe()  # doctest: +SKIP
    """
    if not has_rm_tables(ctx):
        return pd.DataFrame(columns=["customer_id", "rm_id", "exit_date", "exit_type", "next_start",
                                     "handover_gap_days"])  # fmt: skip
    return ctx.con.execute(f"""
        SELECT customer_id, rm_id, exit_date, exit_type, next_start,
               CAST(next_start - exit_date AS INTEGER) AS handover_gap_days
        FROM ({exits_sql(ctx)}) ORDER BY exit_date, customer_id""").df()

