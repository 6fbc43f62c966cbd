"""Survival data: the customer table and counting-process episodes.

Time scale
----------
Tenure in days since ``open_date``.  A customer is at risk on every day from
``open_date`` through the churn (or as-of) date inclusive, so day ``D`` of the
calendar is tenure interval ``(D - open_date, D - open_date + 1]``: the open
day is ``(0, 1]`` and a customer who churned on their open day has
``duration = 1``.  A customer opened before the observation start enters
follow-up on that day: ``entry = observation_start - open_date`` (delayed
entry).  An episode covering calendar days ``a .. b`` is ``start = a -
open_date``, ``stop = b - open_date + 1``, the ``(start, stop]`` convention of
lifelines' ``CoxTimeVaryingFitter`` and R's ``Surv(start, stop, event)``.

No look-ahead
-------------
Each covariate builder (:mod:`.coverage`, :mod:`.rm_turnover`,
:mod:`.complaints`, :mod:`.activity`, :mod:`.retention`) turns records into
change points ``(customer_id, d, value)``, where ``value`` is computed only
from records dated on or before ``d`` (monthly figures from months closed
before ``d``), and every record dated after the as-of date is discarded
before anything else.  This module then carries each covariate forward from
its latest change point on or before an episode's first day (a window
function ordered by date, ``last_value(... IGNORE NULLS)`` over *preceding*
rows only).  Nothing is ever carried backwards, and no value depends on the
churn itself.  ``tests/survival/test_survival.py`` checks this by truncating the data
at a date and comparing the episodes before it.

Covariates missing because their table was not supplied are ``NULL``
(unknown), never 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from crmresearch.core.calendar import DAYS_PER_MONTH
from crmresearch.core.errors import InputError
from crmresearch.core.io import write_relation
from crmresearch.core.params import Params
from crmresearch.core.sql import ident
from crmresearch.data.contract import Source
from crmresearch.timelines.activity import monthly_state_changes
from crmresearch.timelines.churn import churn_events
from crmresearch.timelines.complaints import escalation_changes
from crmresearch.timelines.contacts import contact_changes
from crmresearch.timelines.context import Context, date_lit
from crmresearch.timelines.products import (
    STICKY_COVARIATES,
    product_count_changes,
    sticky_product_changes,
)
from crmresearch.timelines.rm_exposure import exposure_changes, orphaned_band_changes

__all__ = [
    "COVARIATES",
    "SHARED_CHANGES",
    "change_points",
    "change_queries",
    "context",
    "customer_table",
    "episode_frame",
    "materialize",
    "episodes",
    "write_survival_table",
]


# name -> (builder, SQL type, value before the first change point)
COVARIATES: dict[str, tuple[str, str, str]] = {
    "n_products": ("product_holdings", "INTEGER", "0"),
    **{name: ("product_holdings", "INTEGER", "0") for name in STICKY_COVARIATES},
    "rm_turnover_exposed": ("rm_assignments", "INTEGER", "0"),
    "orphaned": ("rm_assignments", "INTEGER", "0"),
    "orphaned_band": ("rm_assignments", "VARCHAR", "'none'"),
    "complaint_escalated_90d": ("complaints", "INTEGER", "0"),
    "dormant": ("monthly_balances", "INTEGER", "0"),
    "tier": ("monthly_balances", "VARCHAR", "'unknown'"),
    "retention_contact_90d": ("retention_actions", "INTEGER", "0"),
}
_BUILDERS = (product_count_changes, sticky_product_changes, exposure_changes, orphaned_band_changes,
             escalation_changes, monthly_state_changes, contact_changes)  # fmt: skip
# The builders whose change points other analyses read too (the early warnings' no_transaction and
# product_drop rules): made once into a table by change_points, read by the episodes and by them.
SHARED_CHANGES = (product_count_changes, monthly_state_changes)
# Covariates computed from a carried column instead of carried themselves (fewer columns
# through the window): the sticky indicators from one bit mask, orphaned from its band.
_DERIVED: dict[str, str] = {
    **{name: f"(sticky_mask >> {k}) & 1" for k, name in enumerate(STICKY_COVARIATES)},
    "orphaned": "CAST(orphaned_band <> 'none' AS INTEGER)",
}
_CARRIED: dict[str, tuple[str, str, str]] = {
    "sticky_mask": ("product_holdings", "INTEGER", "0"),
    **{n: v for n, v in COVARIATES.items() if n not in _DERIVED},
}


def context(source: Source, params: Params | None = None, as_of: dt.date | None = None) -> Context:
    """The builders' context for ``source`` censored at ``as_of`` (default: the extract's).

    Raises
    ------
    InputError
        The source is a flat extract, or ``as_of`` lies outside
        [observation_start, extract as-of].

    Examples
    --------
    >>> ctx = context(load_source("data/demo"), as_of=dt.date(2026, 6, 30))  # doctest: +SKIP
    """
    if not source.can("calendar"):
        raise InputError("this is a flat extract (no dates): it has a customer table but no "
                         "calendar, so no episodes or time-varying covariates")  # fmt: skip
    as_of = as_of or source.as_of
    if as_of > source.as_of:
        raise InputError(f"as-of {as_of} is after the extract's as-of date {source.as_of}: "
                         "nothing is known about that time")  # fmt: skip
    if as_of < source.observation_start:
        raise InputError(f"as-of {as_of} is before the observation start {source.observation_start}")
    return Context(source.con, frozenset(source.tables), params or Params(), as_of, source.observation_start)


def _customers_sql(ctx: Context) -> str:
    """Customers in follow-up at the as-of date, with entry, end and event."""
    obs = date_lit(ctx.observation_start)
    as_of = ctx.as_of_sql
    return f"""
    SELECT c.customer_id, c.branch_id, c.open_date,
           greatest(c.open_date, {obs}) AS entry_date,
           COALESCE(ch.churn_date, {as_of}) AS end_date,
           ch.churn_date IS NOT NULL AS event,
           ch.churn_type
    FROM customers c LEFT JOIN ({churn_events(ctx)}) ch USING (customer_id)
    WHERE c.open_date <= {as_of}
      AND COALESCE(ch.churn_date, {as_of}) >= greatest(c.open_date, {obs})"""


def _episodes_sql(ctx: Context, cust: str, changes: Callable[[Callable], str | None]) -> str:
    """Episodes of the customers in table ``cust`` (built by :func:`_customers_sql`).

    ``changes(builder)`` is the query of a builder's change points (:func:`change_queries`).
    """
    parts = [changes(b) for b in _BUILDERS]
    parts = [p for p in parts if p is not None]
    present = {name for name, (table, _, _) in _CARRIED.items() if ctx.has(table)
               and (table != "rm_assignments" or ctx.has("relationship_managers"))}  # fmt: skip
    names = list(_CARRIED)
    # entry rows first (they fix every column's type), then each builder's change points
    entry = "SELECT customer_id, entry_date AS d, " + ", ".join(
        f"CAST(NULL AS {_CARRIED[n][1]}) AS {n}" for n in names) + f" FROM {cust}"  # fmt: skip
    changes = " UNION ALL BY NAME ".join([entry, *(f"SELECT * FROM ({p})" for p in parts)])

    def val(n: str) -> str:
        default = _CARRIED[n][2] if n in present else f"CAST(NULL AS {_CARRIED[n][1]})"
        return f"COALESCE({n}, {default}) AS {n}"

    def out(n: str) -> str:
        return f"CAST({_DERIVED[n]} AS {COVARIATES[n][1]}) AS {n}" if n in _DERIVED else n

    carried = ", ".join(f"last_value({n} IGNORE NULLS) OVER w AS {n}" for n in names)
    # Every builder emits only the days its covariate really changes, so each
    # change day after the entry day starts a new spell: no merging needed.
    # Several rows may share a day; the last of them (next_d > d) has seen them
    # all, so it alone is kept.
    return f"""
    WITH pts AS (SELECT customer_id, d, lead(d) OVER w AS next_d, {carried} FROM ({changes})
                 WINDOW w AS (PARTITION BY customer_id ORDER BY d ROWS UNBOUNDED PRECEDING)),
    cut AS (
        SELECT p.customer_id, c.branch_id, c.open_date, c.end_date, c.event, p.d AS d_from,
               least(COALESCE(CAST(p.next_d - 1 AS DATE), c.end_date), c.end_date) AS d_to,
               {', '.join(val(n) for n in names)}
        FROM pts p JOIN {cust} c USING (customer_id)
        WHERE p.d >= c.entry_date AND p.d <= c.end_date AND (p.next_d IS NULL OR p.next_d > p.d)
    )
    SELECT customer_id, branch_id,
           CAST(d_from - open_date AS INTEGER) AS start,
           CAST(d_to - open_date + 1 AS INTEGER) AS stop,
           CAST(event AND d_to = end_date AS INTEGER) AS event,
           {', '.join(out(n) for n in COVARIATES)},
           d_from AS start_date, d_to AS stop_date
    FROM cut"""


def materialize(source: Source, ctx: Context) -> tuple[str, str]:
    """Build the customers-in-follow-up and episodes tables once per (as-of, parameters).

    Both are kept as temporary tables in the source's DuckDB connection (an
    earlier as-of of the ``recorded`` churn definition as views cutting a later
    build: :func:`_later_build`), so
    the customer table, the episodes, their writers and the analyses that
    query them in SQL share one computation.

    Parameters
    ----------
    source : Source
        A loaded (dated) source.
    ctx : Context
        Its context for an as-of date and parameters (:func:`context`).

    Returns
    -------
    (str, str)
        The names of the customers and episodes temporary tables.

    Examples
    --------
    >>> ctx = context(src, params, as_of)          # doctest: +SKIP
    >>> cust, ep = materialize(src, ctx)           # doctest: +SKIP
    >>> src.con.execute(f"SELECT count(*) FROM {ep}").fetchone()  # doctest: +SKIP
    """
    settings = ctx.params.model_dump_json()
    key = (ctx.as_of, settings)
    cache = source.cache.setdefault("survival", {})
    if key not in cache:
        n = len(cache)
        cust, ep = f"__sv_cust_{n}", f"__sv_ep_{n}"
        later = _later_build(cache, ctx, settings)
        if later is not None:  # the same days' follow-up, already built to a later as-of: cut it
            ctx.con.execute(f"CREATE TEMP VIEW {cust} AS {_truncated_customers_sql(later[0], ctx.as_of_sql)}")
            ctx.con.execute(f"CREATE TEMP VIEW {ep} AS {_truncated_episodes_sql(later[1], ctx.as_of_sql)}")
        else:
            ctx.con.execute(f"CREATE TEMP TABLE {cust} AS {_customers_sql(ctx)}")
            ctx.con.execute(f"CREATE TEMP TABLE {ep} AS {_episodes_sql(ctx, cust, change_queries(source, ctx))}")
        cache[key] = (cust, ep)
    return cache[key]


def change_points(source: Source, ctx: Context, builder: Callable[[Context], str | None]) -> str | None:
    """A builder's change points as a temporary table, computed once per (builder, as-of, parameters).

    The episodes and the early warnings read the same change points (a
    customer's dormancy and tier each month, the number of products held):
    the builders of :data:`SHARED_CHANGES` are run once into a table that
    both query (at a million customers the monthly states are one sorted
    pass over 11M balance rows), instead of once inside each query.

    Parameters
    ----------
    source : Source
        A loaded (dated) source; the tables live in its connection and are
        remembered in its cache.
    ctx : Context
        Its context for an as-of date and parameters (:func:`context`).
    builder : callable
        A change-point builder of :mod:`crmresearch.timelines`
        (``builder(ctx)`` is its query, or None when its table is missing).

    Returns
    -------
    str or None
        The temporary table's name; None when the builder has nothing to
        read.

    Examples
    --------
    >>> from crmresearch.timelines.activity import monthly_state_changes
    >>> t = change_points(src, context(src), monthly_state_changes)  # doctest: +SKIP
    >>> src.con.execute(f"SELECT count(*) FROM {t}").fetchone()  # doctest: +SKIP
    """
    key = (f"{builder.__module__}.{builder.__qualname__}", ctx.as_of, ctx.params.model_dump_json())
    cache = source.cache.setdefault("change_points", {})
    if key not in cache:
        sql = builder(ctx)
        name = None
        if sql is not None:
            name = f"__sv_chg_{len(cache)}"
            ctx.con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        cache[key] = name
    return cache[key]


def change_queries(source: Source, ctx: Context) -> Callable[[Callable], str | None]:
    """The query of each builder's change points: its :func:`change_points` table when shared, else its own.

    Parameters
    ----------
    source : Source
        A loaded (dated) source.
    ctx : Context
        Its context for an as-of date and parameters (:func:`context`).

    Returns
    -------
    callable
        ``query(builder)``: ``SELECT * FROM`` the table for a builder of
        :data:`SHARED_CHANGES`, ``builder(ctx)`` for the others; None when
        the builder has nothing to read.

    Examples
    --------
    >>> from crmresearch.timelines.activity import monthly_state_changes
    >>> change_queries(src, context(src))(monthly_state_changes)  # doctest: +SKIP
    'SELECT * FROM __sv_chg_1'
    """
    def query(builder: Callable[[Context], str | None]) -> str | None:
        if builder not in SHARED_CHANGES:
            return builder(ctx)
        table = change_points(source, ctx, builder)
        return None if table is None else f"SELECT * FROM {table}"

    return query


def _later_build(cache: dict, ctx: Context, settings: str) -> tuple[str, str] | None:
    """A materialisation at a later as-of with the same parameters whose truncation is this one's, if any.

    The builders look at no record dated after the day they describe (module
    docstring, "No look-ahead"), so the follow-up up to day ``t`` built at a
    later as-of equals the follow-up built at ``t``, cut at ``t`` (checked by
    ``tests/survival/test_episodes.py``).  Only the churn itself can differ:
    a ``recorded`` churn is known on its date, but an ``asset_attrition`` is
    confirmed months after its date, so a churn dated before ``t`` may not be
    known at ``t`` yet; that definition is always built from scratch.
    """
    if ctx.params.churn.definition != "recorded":
        return None
    built = [(as_of, tables) for (as_of, s), tables in cache.items() if s == settings and as_of > ctx.as_of]
    # the earliest later one: the fewest rows to cut (a cut of a cut is a view of a view)
    return min(built, key=lambda x: x[0])[1] if built else None


def _truncated_customers_sql(cust: str, as_of: str) -> str:
    """:func:`_customers_sql` at ``as_of`` from its table at a later as-of."""
    return f"""
    SELECT customer_id, branch_id, open_date, entry_date,
           least(end_date, {as_of}) AS end_date,
           event AND end_date <= {as_of} AS event,
           CASE WHEN end_date <= {as_of} THEN churn_type END AS churn_type
    FROM {cust} WHERE open_date <= {as_of}"""


def _truncated_episodes_sql(ep: str, as_of: str) -> str:
    """:func:`_episodes_sql` at ``as_of`` from its table at a later as-of: days after it left out."""
    return f"""
    SELECT * REPLACE (
           CAST(stop - (stop_date - least(stop_date, {as_of})) AS INTEGER) AS stop,
           CAST(event = 1 AND stop_date <= {as_of} AS INTEGER) AS event,
           least(stop_date, {as_of}) AS stop_date)
    FROM {ep} WHERE start_date <= {as_of}"""


def _customer_table_sql(ctx: Context, cust_table: str, ep_table: str) -> str:
    cols = {c for c in ("churn_reason", "segment", "channel", "birth_year")
            if ctx.has_column("customers", c)}  # fmt: skip
    attr = ", ".join(
        (f"k.{c}" if c in cols else f"CAST(NULL AS {'BIGINT' if c == 'birth_year' else 'VARCHAR'}) AS {c}")
        for c in ("segment", "channel", "birth_year")
    )  # fmt: skip
    reason = "CASE WHEN c.event AND k.churn_reason IS NOT NULL THEN k.churn_reason END" if "churn_reason" in cols \
        else "CAST(NULL AS VARCHAR)"  # fmt: skip
    age = "year(c.entry_date) - k.birth_year" if "birth_year" in cols else "CAST(NULL AS BIGINT)"
    return f"""
    WITH c AS (SELECT * FROM {cust_table})
    SELECT c.customer_id, c.branch_id, c.open_date, c.entry_date, c.end_date,
           CAST(c.entry_date - c.open_date AS INTEGER) AS entry,
           CAST(c.end_date - c.open_date + 1 AS INTEGER) AS duration,
           CAST(c.event AS INTEGER) AS event,
           CASE WHEN c.event THEN c.churn_type END AS churn_type,
           {reason} AS churn_reason,
           {attr}, CAST({age} AS INTEGER) AS age,
           s.tier_at_entry, s.n_products_at_entry
    FROM c JOIN customers k ON k.customer_id = c.customer_id
    LEFT JOIN (SELECT customer_id, start, n_products AS n_products_at_entry, tier AS tier_at_entry
               FROM {ep_table}) s ON s.customer_id = c.customer_id
                                  AND s.start = CAST(c.entry_date - c.open_date AS INTEGER)
    ORDER BY c.customer_id"""


def _flat_customer_table_sql(source: Source) -> str:
    cols = {r[0] for r in source.con.execute("DESCRIBE customers").fetchall()} - {"__row", "name"}
    fixed = ["customer_id", "branch_id", "tenure_months", "churned", "churn_type", "churn_reason",
             "segment", "channel", "birth_year", "age", "n_products"]  # fmt: skip
    extras = sorted(cols - set(fixed))

    def opt(c: str, typ: str) -> str:
        return ident(c) if c in cols else f"CAST(NULL AS {typ})"

    churn_type = ("CASE WHEN churned THEN COALESCE(churn_type, 'unknown') END" if "churn_type" in cols
                  else "CASE WHEN churned THEN 'unknown' END")  # fmt: skip
    return f"""
    SELECT customer_id, branch_id,
           CAST(NULL AS DATE) AS open_date, CAST(NULL AS DATE) AS entry_date, CAST(NULL AS DATE) AS end_date,
           0.0 AS entry, tenure_months * {DAYS_PER_MONTH} AS duration, tenure_months,
           CAST(churned AS INTEGER) AS event, {churn_type} AS churn_type,
           {opt("churn_reason", "VARCHAR")} AS churn_reason, {opt("segment", "VARCHAR")} AS segment,
           {opt("channel", "VARCHAR")} AS channel, {opt("birth_year", "BIGINT")} AS birth_year,
           CAST({opt("age", "INTEGER")} AS INTEGER) AS age,
           'unknown' AS tier_at_entry, {opt("n_products", "BIGINT")} AS n_products_at_entry
           {''.join(', ' + ident(e) for e in extras)}
    FROM customers ORDER BY customer_id"""


def customer_table(source: Source, params: Params | None = None, *, as_of: dt.date | None = None
                   ) -> pd.DataFrame:  # fmt: skip
    """One row per customer in follow-up: entry, duration, event and baseline attributes.

    Parameters
    ----------
    source : Source
        A loaded source.
    params : Params, optional
        Churn definition, windows and tiers (default: the built-in defaults).
    as_of : datetime.date, optional
        Censoring date (default: the extract's as-of date).  Customers who
        opened after it are left out, churns after it are censored, and no
        record dated after it is read.

    Returns
    -------
    DataFrame
        ``customer_id, branch_id, open_date, entry_date, end_date, entry,
        duration, event, churn_type, churn_reason, segment, channel,
        birth_year, age, tier_at_entry, n_products_at_entry``.  ``entry`` and
        ``duration`` are days of tenure at the start and end of follow-up
        (``duration = end_date - open_date + 1``); ``event`` is 1 for a churn
        by the as-of date.  Customers who churned before the observation
        start are not in follow-up and are left out.

        For a flat extract: no dates, ``entry = 0``, ``duration =
        tenure_months * 30.4375`` days (tenure read as tenure at exit for
        churners), plus ``tenure_months`` and the source's extra columns
        (never ``name``).

    Examples
    --------
    >>> cust = customer_table(load_source("data/demo"))  # doctest: +SKIP
    >>> cust[["entry", "duration", "event"]].describe()  # doctest: +SKIP
    """
    if not source.can("calendar"):
        return source.con.execute(_flat_customer_table_sql(source)).df()
    ctx = context(source, params, as_of)
    return ctx.con.execute(_customer_table_sql(ctx, *materialize(source, ctx))).df()


def episodes(source: Source, params: Params | None = None, *, as_of: dt.date | None = None
             ) -> pd.DataFrame:  # fmt: skip
    """Counting-process episodes on the tenure time scale, split at every covariate change.

    Parameters
    ----------
    source, params, as_of
        As for :func:`customer_table`.

    Returns
    -------
    DataFrame
        One row per (customer, spell of constant covariates):
        ``customer_id, branch_id, start, stop, event`` (tenure days, the
        ``(start, stop]`` convention; ``event`` = 1 on a churner's last
        episode only), the covariates ``n_products``, the sticky-product
        indicators ``holds_mobile_banking, holds_fund_sip, holds_payroll,
        holds_third_party_custody`` (1 on the days the product is held;
        :data:`crmresearch.timelines.products.STICKY_PRODUCTS`),
        ``rm_turnover_exposed, orphaned, orphaned_band,
        complaint_escalated_90d, dormant, tier, retention_contact_90d``
        (:data:`COVARIATES`, in that order), and the calendar days ``start_date,
        stop_date`` the episode covers (inclusive).  A customer opened before
        the observation start has a first episode starting at their tenure
        on that day.  Ready for ``lifelines.CoxTimeVaryingFitter(...).fit(df,
        id_col="customer_id", start_col="start", stop_col="stop",
        event_col="event")``.

    Examples
    --------
    >>> ep = episodes(load_source("data/demo"), as_of=dt.date(2026, 6, 30))  # doctest: +SKIP
    >>> ep.groupby("n_products")["event"].sum()  # doctest: +SKIP
    """
    ctx = context(source, params, as_of)
    _, ep = materialize(source, ctx)
    return ctx.con.execute(f"SELECT * FROM {ep} ORDER BY customer_id, start").df()


def episode_frame(source: Source, params: Params | None = None, *, as_of: dt.date | None = None,
                  columns: Sequence[str], customer_columns: Sequence[str] = (), branch: str | None = None,
                  overlapping: tuple[dt.date, dt.date] | None = None) -> pd.DataFrame:  # fmt: skip
    """Some columns of :func:`episodes`, with customer-table columns beside them: what a model reads.

    The same rows, in the same order (customer, start), as :func:`episodes`
    merged with :func:`customer_table` on ``customer_id``, but only the
    columns asked for are read out of the engine, the join and the branch
    and window filters run there: at a million customers a model needs a
    few of the episodes' two dozen columns, and pandas never holds the rest.

    Parameters
    ----------
    source, params, as_of
        As for :func:`customer_table`.
    columns : sequence of str
        Columns of :func:`episodes`.
    customer_columns : sequence of str
        Columns of :func:`customer_table` to add (e.g. ``segment``, ``churn_type``).
    branch : str, optional
        Only this branch's episodes.
    overlapping : (date, date), optional
        Only the episodes overlapping the window: ``stop_date > first`` and
        ``start_date <= last``.

    Returns
    -------
    DataFrame
        ``columns`` then ``customer_columns``.

    Examples
    --------
    >>> episode_frame(src, as_of=dt.date(2026, 10, 31), columns=["start", "stop", "event", "tier"],
    ...               customer_columns=["segment"], branch="B001")  # doctest: +SKIP
    """
    ctx = context(source, params, as_of)
    cust, ep = materialize(source, ctx)
    known = [r[0] for r in ctx.con.execute(f"DESCRIBE {ep}").fetchall()]
    for c in columns:
        if c not in known:
            raise InputError(f"episodes have no column {c!r} (columns: {', '.join(known)})")
    sel = [f"e.{ident(c)}" for c in columns]
    join = ""
    if customer_columns:
        sel += [f"k.{ident(c)}" for c in customer_columns]
        join = f"LEFT JOIN ({_customer_table_sql(ctx, cust, ep)}) k ON k.customer_id = e.customer_id"
    where, args = [], []
    if branch is not None:
        where.append("e.branch_id = ?")
        args.append(branch)
    if overlapping is not None:
        where.append("e.stop_date > ? AND e.start_date <= ?")
        args += [overlapping[0], overlapping[1]]
    cond = ("WHERE " + " AND ".join(where)) if where else ""
    return ctx.con.execute(f"SELECT {', '.join(sel)} FROM {ep} e {join} {cond} ORDER BY e.customer_id, e.start",
                           args).df()  # fmt: skip


def write_survival_table(source: Source, params: Params, out: str | Path, *, as_of: dt.date | None = None,
                         episodes: bool = False) -> tuple[str, int]:  # fmt: skip
    """Write the customer table or the episodes to ``out`` (.parquet or .csv), atomically.

    Returns
    -------
    (str, int)
        What was written ("customer table" or "episodes") and its row count.

    Examples
    --------
    >>> write_survival_table(src, Params(), "episodes.parquet", episodes=True)  # doctest: +SKIP
    ('episodes', 2412345)
    """
    if not source.can("calendar"):
        if episodes:
            context(source, params, as_of)  # raises the flat-extract error
        sql = _flat_customer_table_sql(source)
    else:
        ctx = context(source, params, as_of)
        cust, ep = materialize(source, ctx)
        sql = f"SELECT * FROM {ep} ORDER BY customer_id, start" if episodes else _customer_table_sql(ctx, cust, ep)
    n = write_relation(source.con, sql, out)
    return ("episodes" if episodes else "customer table"), int(n)

