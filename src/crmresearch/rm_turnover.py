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
* the *handover gap* is ``next_start - exit_date`` in days.

No look-ahead: exposure and orphaned on day ``t`` use only exits and
assignment starts dated on or before ``t``.  The handover gap is only known
once the next assignment starts, so it is returned by :func:`handovers` for
description and never used as a covariate (grouping customers by their
eventual gap would give long gaps immortal time).
"""

from __future__ import annotations

import pandas as pd

from .timeline import Context, indicator_changes

__all__ = ["exposure_changes", "handovers", "orphaned_changes"]


def _exits_sql(ctx: Context) -> str:
    """One row per (customer, RM exit) for customers assigned to the RM on the exit date."""
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


def _has_rm(ctx: Context) -> bool:
    return ctx.has("rm_assignments") and ctx.has("relationship_managers")


def exposure_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, rm_turnover_exposed)``; None without RM tables."""
    if not _has_rm(ctx):
        return None
    w = ctx.params.windows.rm_turnover_days
    intervals = f"""
    SELECT customer_id, CAST(exit_date + 1 AS DATE) AS d_from, CAST(exit_date + {w} AS DATE) AS d_to
    FROM ({_exits_sql(ctx)})"""
    return indicator_changes(intervals, "rm_turnover_exposed")


def orphaned_changes(ctx: Context) -> str | None:
    """Change points ``(customer_id, d, orphaned)``; None without RM tables."""
    if not _has_rm(ctx):
        return None
    intervals = f"""
    SELECT customer_id, CAST(exit_date + 1 AS DATE) AS d_from, CAST(next_start - 1 AS DATE) AS d_to
    FROM ({_exits_sql(ctx)}) WHERE next_start IS NULL OR next_start > exit_date + 1"""
    return indicator_changes(intervals, "orphaned")


def handovers(ctx: Context) -> pd.DataFrame:
    """One row per customer orphaned by an RM exit on or before the as-of date.

    Returns
    -------
    DataFrame
        ``customer_id, rm_id, exit_date, exit_type, next_start,
        handover_gap_days`` (``next_start`` and the gap are missing while the
        customer is still orphaned at the as-of date).
    """
    if not _has_rm(ctx):
        return pd.DataFrame(columns=["customer_id", "rm_id", "exit_date", "exit_type", "next_start",
                                     "handover_gap_days"])  # fmt: skip
    return ctx.con.execute(f"""
        SELECT customer_id, rm_id, exit_date, exit_type, next_start,
               CAST(next_start - exit_date AS INTEGER) AS handover_gap_days
        FROM ({_exits_sql(ctx)}) ORDER BY exit_date, customer_id""").df()

