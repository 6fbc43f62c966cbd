"""Shared building blocks for time-varying covariates on the calendar.

Every covariate builder (coverage, RM turnover, complaints, activity,
retention) describes its covariate as *change points*: rows
``(customer_id, d, value)`` meaning "from day ``d`` on, the value is
``value``", derived only from records dated on or before ``d``.  The survival
module merges them into episodes.  This module holds the two generic rules
used by several builders, so each is written once:

* :func:`indicator_changes`: a 0/1 covariate that is 1 inside any of a set of
  (possibly overlapping) date intervals;
* :func:`count_changes`: a count that goes up at interval starts and down the
  day after interval ends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from .contract import table_has_column
from .params import Params

__all__ = ["Context", "count_changes", "indicator_changes", "date_lit"]

OPEN_END = "DATE '9999-12-30'"


def date_lit(d: dt.date) -> str:
    """A SQL DATE literal."""
    return f"DATE '{d.isoformat()}'"


@dataclass(frozen=True)
class Context:
    """What every builder needs: the typed tables, the parameters and the as-of date.

    Attributes
    ----------
    con : duckdb.DuckDBPyConnection
        Connection holding the source's typed tables.
    tables : frozenset of str
        Tables present in the source.
    params : Params
        Validated parameters.
    as_of : datetime.date
        Nothing dated after this day is used (and monthly figures only for
        months that closed on or before it).
    observation_start : datetime.date
        Start of follow-up for customers opened before it (delayed entry).
    """

    con: duckdb.DuckDBPyConnection
    tables: frozenset[str]
    params: Params
    as_of: dt.date
    observation_start: dt.date

    @property
    def as_of_sql(self) -> str:
        return date_lit(self.as_of)

    def has(self, table: str) -> bool:
        return table in self.tables

    def has_column(self, table: str, column: str) -> bool:
        return table in self.tables and table_has_column(self.con, table, column)


def count_changes(intervals_sql: str, value: str) -> str:
    """Change points of a count of intervals covering each day.

    Parameters
    ----------
    intervals_sql : str
        A query with columns ``customer_id, d_from, d_to`` (inclusive dates;
        ``d_to`` NULL for open-ended intervals).
    value : str
        Name of the output column.

    Returns
    -------
    str
        A query with columns ``customer_id, d, <value>``: the count from day
        ``d`` on, one row per day on which it changes (days where starts and
        ends cancel out give no row).
    """
    return f"""
    SELECT customer_id, d, CAST(running AS INTEGER) AS {value} FROM (
        SELECT customer_id, d, delta,
               sum(delta) OVER (PARTITION BY customer_id ORDER BY d ROWS UNBOUNDED PRECEDING) AS running
        FROM (
            SELECT customer_id, d, sum(delta) AS delta FROM (
                SELECT customer_id, d_from AS d, 1 AS delta FROM ({intervals_sql})
                UNION ALL
                SELECT customer_id, CAST(d_to + 1 AS DATE) AS d, -1 AS delta
                FROM ({intervals_sql}) WHERE d_to IS NOT NULL
            ) GROUP BY customer_id, d
        )
    ) WHERE delta <> 0"""


def indicator_changes(intervals_sql: str, value: str) -> str:
    """Change points of a 0/1 covariate that is 1 inside any interval.

    Same input as :func:`count_changes`; overlapping or adjoining intervals
    merge into one spell.  Only days where the indicator flips are returned.
    """
    return f"""
    SELECT customer_id, d, {value} FROM (
        SELECT customer_id, d, CAST(n > 0 AS INTEGER) AS {value},
               lag(CAST(n > 0 AS INTEGER)) OVER (PARTITION BY customer_id ORDER BY d) AS prev
        FROM ({count_changes(intervals_sql, "n")})
    ) WHERE prev IS NULL OR prev <> {value}"""
