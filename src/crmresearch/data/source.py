"""The loaded, validated source: typed DuckDB tables behind one interface, whatever the kind of source."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from crmresearch.core.sql import ident as _q
from crmresearch.data import capabilities
from crmresearch.data.findings import ValidationReport
from crmresearch.data.spec import T

__all__ = ["Source", "Supplied", "default_memory_limit", "table_has_column"]


# --------------------------------------------------------------------------- source


class Supplied:
    """What a source supplied: ``has(table)`` and ``has_column(table, column)``, the one rule for both.

    Mixed into :class:`Source` and :class:`crmresearch.timelines.context.Context`
    (which is built from a source): a class with ``tables`` (names, or names
    to row counts) and ``con`` (the DuckDB connection holding them) gets both.

    Examples
    --------
    >>> class Tables(Supplied):
    ...     def __init__(self):
    ...         self.con = duckdb.connect()
    ...         self.con.execute("CREATE TABLE complaints (customer_id VARCHAR)")
    ...         self.tables = {"complaints": 0}
    >>> t = Tables()
    >>> t.has("complaints"), t.has("monthly_balances"), t.has_column("complaints", "customer_id")
    (True, False, True)
    """

    tables: dict[str, int] | frozenset[str]
    con: duckdb.DuckDBPyConnection

    def has(self, table: str) -> bool:
        """Whether ``table`` was supplied.

        Parameters
        ----------
        table : str
            A contract table name.

        Returns
        -------
        bool

        Examples
        --------
        >>> src = load_source("data/demo")  # doctest: +SKIP
        >>> src.has("complaints")  # doctest: +SKIP
        True
        """
        return table in self.tables

    def has_column(self, table: str, column: str) -> bool:
        """Whether ``table`` was supplied with ``column``.

        Parameters
        ----------
        table : str
            A contract table name.
        column : str
            One of its columns (optional columns may be absent).

        Returns
        -------
        bool
            False when the table itself is missing.

        Examples
        --------
        >>> src = load_source("data/demo")  # doctest: +SKIP
        >>> src.has_column("monthly_balances", "outflow")  # doctest: +SKIP
        True
        """
        return self.has(table) and table_has_column(self.con, table, column)


@dataclass
class Source(Supplied):
    """A loaded, validated source: typed tables in an in-memory DuckDB database.

    Attributes
    ----------
    path : Path or str
        Where the source was read from (a database: its URI, password masked).
    con : duckdb.DuckDBPyConnection
        Holds one table per contract table present, with contract types
        (identifiers VARCHAR, dates DATE, months DATE of the month's first day).
    tables : dict
        Present table names and their row counts.
    as_of, observation_start : datetime.date or None
        The extract's settings (``None`` for a flat extract: it has no calendar).
    flat : bool
        True for a flat extract (``customers`` with ``tenure_months`` / ``churned``).
    report : ValidationReport
        The findings of the load (warnings only, since it succeeded).

    Examples
    --------
    >>> src = load_source("data/demo")  # doctest: +SKIP
    >>> src.as_of, src.flat, src.tables["customers"]  # doctest: +SKIP
    (datetime.date(2026, 10, 31), False, 24000)
    >>> src.sql("SELECT count(*) AS n FROM customers WHERE churn_date IS NULL")  # doctest: +SKIP
    >>> src.close()  # doctest: +SKIP
    """

    path: Path | str
    con: duckdb.DuckDBPyConnection
    tables: dict[str, int]
    as_of: dt.date | None
    observation_start: dt.date | None
    flat: bool
    report: ValidationReport
    cache: dict = field(default_factory=dict, repr=False)  # derived tables, by the modules that build them

    def with_tables(self, con: duckdb.DuckDBPyConnection, tables: dict[str, int]) -> Source:
        """The same source (kind, dates, validation) over other tables: a branch's slice of it.

        Parameters
        ----------
        con : duckdb.DuckDBPyConnection
            The connection holding the tables.
        tables : dict of str to int
            Table name to row count.

        Returns
        -------
        Source
            With an empty cache of its own.

        Examples
        --------
        >>> part = src.with_tables(con, {"customers": 812, "branches": 1})  # doctest: +SKIP
        >>> part.can("calendar") == src.can("calendar")  # doctest: +SKIP
        True
        """
        return Source(self.path, con, tables, self.as_of, self.observation_start, self.flat, self.report)

    def can(self, question: str) -> bool:
        """Whether this source can answer ``question``: ``"calendar"`` (dated events) or an analysis's name.

        The one call the analyses make instead of testing which kind of
        source they have (:mod:`crmresearch.data.capabilities`).

        Parameters
        ----------
        question : str
            ``"calendar"`` or a name of :data:`~crmresearch.data.capabilities.ANALYSES`.

        Returns
        -------
        bool

        Examples
        --------
        >>> src = load_source("data/demo")  # doctest: +SKIP
        >>> src.can("calendar")  # doctest: +SKIP
        True
        """
        return capabilities.can(self, question)

    @property
    def time_unit(self) -> str:
        """The unit of this source's durations: ``"days"`` (dated) or ``"months"`` (flat extract).

        See :func:`crmresearch.data.capabilities.time_unit`.

        Examples
        --------
        >>> load_source("data/bank-flat").time_unit  # doctest: +SKIP
        'months'
        """
        return capabilities.time_unit(self)

    def require(self, analysis: str) -> None:
        """Raise the plain-words :class:`InputError` when this source cannot run ``analysis``.

        Parameters
        ----------
        analysis : str
            A name of :data:`~crmresearch.data.capabilities.ANALYSES`.

        Raises
        ------
        InputError
            Why the analysis cannot run here (:data:`~crmresearch.data.capabilities.FLAT_REASONS`).

        Examples
        --------
        >>> load_source("data/bank-flat").require("lifecycle")  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        crmresearch.core.errors.InputError: lifecycle cannot run on the flat extract data/bank-flat: ...
        """
        capabilities.require(self, analysis)

    def df(self, table: str) -> pd.DataFrame:
        """A table as a pandas DataFrame (identifiers as str, dates as datetime64).

        Parameters
        ----------
        table : str
            A table of the source.

        Returns
        -------
        DataFrame
            Every row and column, without the internal ``__row`` column.

        Examples
        --------
        >>> src = load_source("data/demo")  # doctest: +SKIP
        >>> src.df("branches").head()  # doctest: +SKIP
        """
        return self.con.execute(f"SELECT * EXCLUDE (__row) FROM {_q(table)}").df()

    def memo(self, name: str, key: Hashable, compute: Callable[[], T]) -> T:
        """A derived result computed once per source and key, then reused.

        A report asks for the same analysis from several sections (the
        warnings for the headline, the retention section and the RM table;
        product coverage for metrics.json and §3): the analysis runs once.
        The key must hold everything the result depends on besides the
        source's data (parameters, as-of date, branch …); callers must not
        change the object returned.

        Parameters
        ----------
        name : str
            The analysis (one cache per name).
        key : hashable
            What the result depends on.
        compute : callable
            Computes the result on a miss.

        Returns
        -------
        object
            ``compute()``'s result, from the cache when present.

        Examples
        --------
        >>> src = load_source("data/demo")  # doctest: +SKIP
        >>> src.memo("n", "all", lambda: len(src.df("customers")))  # doctest: +SKIP
        24000
        """
        cache = self.cache.setdefault(f"memo:{name}", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def clear_cache(self) -> None:
        """Forget every derived result (memos, survival tables): call it after changing a table in place.

        Analyses treat a loaded source as read-only and reuse what they
        derived from it (:meth:`memo`); a caller who updates a table through
        :attr:`con` must clear the cache, or later analyses see the old data.

        Examples
        --------
        >>> src.con.execute("UPDATE retention_actions SET action_date = DATE '2024-04-25'")  # doctest: +SKIP
        >>> src.clear_cache()  # doctest: +SKIP
        """
        for tables in self.cache.get("survival", {}).values():
            for t in tables:
                self.con.execute(f"DROP TABLE IF EXISTS {t}")
        for t in self.cache.get("change_points", {}).values():
            if t is not None:
                self.con.execute(f"DROP TABLE IF EXISTS {t}")
        for k in [k for k in self.cache if k != "slice_of"]:
            del self.cache[k]

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """Run SQL against the source's tables and return a DataFrame.

        Every table has an internal ``__row`` column (the row's position in the
        file, used to name rows in findings); ``SELECT *`` returns it too.

        Parameters
        ----------
        query : str
            DuckDB SQL over the source's tables; ``?`` marks a parameter.
        params : list, optional
            Values of the ``?`` parameters.

        Returns
        -------
        DataFrame

        Examples
        --------
        >>> src = load_source("data/demo")  # doctest: +SKIP
        >>> src.sql("SELECT count(*) AS n FROM customers WHERE branch_id = ?",
        ...         ["B001"])  # doctest: +SKIP
             n
        0  3000
        """
        return self.con.execute(query, params or []).df()

    def close(self) -> None:
        """Close the DuckDB connection (and free its memory); the source is unusable after.

        Examples
        --------
        >>> src = load_source("data/demo")  # doctest: +SKIP
        >>> src.close()  # doctest: +SKIP
        """
        self.con.close()


def table_has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether the loaded ``table`` has ``column`` (optional columns may be absent).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
    table : str
    column : str

    Returns
    -------
    bool

    Examples
    --------
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE complaints (customer_id VARCHAR)")
    >>> table_has_column(con, "complaints", "customer_id"), table_has_column(con, "complaints", "escalated_date")
    (True, False)
    """
    return bool(con.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = ? AND column_name = ?", [table, column]
    ).fetchall())  # fmt: skip


def default_memory_limit() -> str:
    """DuckDB's memory cap when ``engine.memory_limit`` is null: the smaller of 6 GB and 50% of RAM.

    Returns
    -------
    str
        A DuckDB size, in MB.

    Examples
    --------
    >>> default_memory_limit().endswith("MB")
    True
    """
    import psutil

    return f"{min(6 * 1024, int(psutil.virtual_memory().total * 0.5 / 1024**2))}MB"
