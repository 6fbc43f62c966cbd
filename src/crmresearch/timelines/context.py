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

from crmresearch.core.params import Params
from crmresearch.data.source import Supplied

__all__ = ["Context", "count_changes", "indicator_changes", "date_lit"]

OPEN_END = "DATE '9999-12-30'"


def date_lit(d: dt.date) -> str:
    """A SQL DATE literal.

    Parameters
    ----------
    d : datetime.date
        The day.

    Returns
    -------
    str
        ``DATE 'YYYY-MM-DD'``, to paste into a DuckDB query.

    Examples
    --------
    >>> import datetime as dt
    >>> date_lit(dt.date(2026, 10, 31))
    "DATE '2026-10-31'"
    """
    return f"DATE '{d.isoformat()}'"


@dataclass(frozen=True)
class Context(Supplied):
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

    Examples
    --------
    Usually built from a loaded source by :func:`crmresearch.survival.episodes.context`:

    >>> from crmresearch.survival.episodes import context
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP

    or by hand, e.g. in a test:

    >>> import datetime as dt
    >>> import duckdb
    >>> from crmresearch.core.params import Params
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE complaints (customer_id VARCHAR, complaint_date DATE)")
    >>> ctx = Context(con, frozenset({"complaints"}), Params(), dt.date(2026, 10, 31),
    ...               dt.date(2024, 1, 1))
    >>> ctx.as_of_sql
    "DATE '2026-10-31'"
    """

    con: duckdb.DuckDBPyConnection
    tables: frozenset[str]
    params: Params
    as_of: dt.date
    observation_start: dt.date

    @property
    def as_of_sql(self) -> str:
        """The as-of date as a SQL DATE literal (:func:`date_lit`)."""
        return date_lit(self.as_of)


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

    Examples
    --------
    >>> import duckdb
    >>> intervals = '''SELECT * FROM (VALUES ('C1', DATE '2026-01-01', DATE '2026-01-31'),
    ...                                      ('C1', DATE '2026-01-15', NULL))
    ...                t(customer_id, d_from, d_to)'''
    >>> duckdb.connect().sql(count_changes(intervals, "n") + " ORDER BY d").df()
      customer_id          d  n
    0          C1 2026-01-01  1
    1          C1 2026-01-15  2
    2          C1 2026-02-01  1
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
        A query with columns ``customer_id, d, <value>``: 1 from the first day
        of a spell, 0 from the day after it ends.

    Examples
    --------
    >>> import duckdb
    >>> intervals = '''SELECT * FROM (VALUES ('C1', DATE '2026-01-01', DATE '2026-01-31'),
    ...                                      ('C1', DATE '2026-01-20', DATE '2026-02-10'),
    ...                                      ('C1', DATE '2026-03-01', DATE '2026-03-31'))
    ...                t(customer_id, d_from, d_to)'''
    >>> duckdb.connect().sql(indicator_changes(intervals, "flag") + " ORDER BY d").df()
      customer_id          d  flag
    0          C1 2026-01-01     1
    1          C1 2026-02-11     0
    2          C1 2026-03-01     1
    3          C1 2026-04-01     0
    """
    return f"""
    SELECT customer_id, d, {value} FROM (
        SELECT customer_id, d, CAST(n > 0 AS INTEGER) AS {value},
               lag(CAST(n > 0 AS INTEGER)) OVER (PARTITION BY customer_id ORDER BY d) AS prev
        FROM ({count_changes(intervals_sql, "n")})
    ) WHERE prev IS NULL OR prev <> {value}"""
