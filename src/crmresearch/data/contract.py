"""The data contract: load a bank's CRM extract and check every rule in one pass.

A *source* is a directory of ``<table>.parquet`` / ``<table>.csv`` files or a
DuckDB database file.  :func:`load_source` reads every table of the contract
into an in-memory DuckDB database, converts each column once to its contract
type (identifiers stay text: ``000123`` is not ``123``), checks every rule with
SQL (no row loops) and either returns a :class:`Source` or raises
:class:`ContractError` carrying a :class:`ValidationReport` with *all* the
violations found.  Each finding names the table, the column, the rule, the
number of rows and up to five example keys.

The contract itself is data (:data:`TABLES`): the single place where a column,
its type and its rules are declared.  ``docs/data-contract.md`` explains it
for users.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
import weakref
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import duckdb
import pandas as pd

from crmresearch.core.errors import InputError
from crmresearch.core.io import first_undecodable
from crmresearch.core.params import Params
from crmresearch.core.sql import ident as _q
from crmresearch.core.sql import literal as _lit

T = TypeVar("T")

__all__ = [
    "TABLES",
    "check_branch",
    "Column",
    "ContractError",
    "Finding",
    "Source",
    "TableSpec",
    "ValidationReport",
    "load_source",
    "validate_source",
]

ColType = Literal["id", "string", "date", "month", "float", "int", "bool"]
MAX_EXAMPLES = 5

CHURN_TYPES = ("transfer", "natural", "unknown")
SEVERITIES = ("low", "medium", "high")
EXIT_TYPES = ("resigned", "transferred", "retired", "dismissed")
ACTION_TYPES = ("call", "visit", "offer", "event", "other")
TRIGGERS = ("early_warning", "rm_exit", "complaint", "maturity", "proactive", "winback")
OUTCOMES = ("retained", "won_back", "lost", "pending")
PRODUCTS = (
    "current_account", "time_deposit", "wealth_management", "mutual_fund", "fund_sip",
    "insurance", "credit_card", "mortgage", "consumer_loan", "payroll", "mobile_banking",
    "online_banking", "third_party_custody", "precious_metals", "trust",
)  # fmt: skip
SEGMENTS = ("salaried", "business_owner", "executive", "affluent_retiree", "homemaker")
CHANNELS = ("walk_in", "existing", "outreach")

# The products whose holding is reported beside the product count (reports.md §3).
# To become a parameter (``Params.sticky_products``); the episodes' columns follow it.
STICKY_PRODUCTS: tuple[str, ...] = ("mobile_banking", "fund_sip", "payroll", "third_party_custody")


def sticky_covariate(product: str) -> str:
    """The episodes' column of a sticky product: ``holds_<product>``.

    Examples
    --------
    >>> sticky_covariate("payroll")
    'holds_payroll'
    """
    return f"holds_{product}"


STICKY_COVARIATES: tuple[str, ...] = tuple(sticky_covariate(p) for p in STICKY_PRODUCTS)


@dataclass(frozen=True)
class Column:
    """One column of the contract and the rules on its values.

    Attributes
    ----------
    name : str
        Column name.
    type : {'id', 'string', 'date', 'month', 'float', 'int', 'bool'}
        Contract type; identifiers stay text.
    required : bool
        The column must be present (optional columns may be absent).
    not_null, unique, non_empty : bool
        Value rules.
    allowed : tuple of str, optional
        The only values allowed.
    min_value, max_value : float, optional
        Bounds (``max_value="as_of_year"``: the extract's as-of year).
    pattern : str, optional
        Regular expression every value must match.
    not_before : str, optional
        Another date column of the same row this one may not precede.
    references : (table, column), optional
        Foreign key.
    null_unless : str, optional
        Must be null when this other column is null (or false).
    doc : str
        Description for users.

    Examples
    --------
    >>> c = TABLES["customers"].column("churn_date")
    >>> c.type, c.not_before
    ('date', 'open_date')
    >>> Column("segment", "string", required=False).not_null
    False
    """

    name: str
    type: ColType
    required: bool = True  # the column must be present
    not_null: bool = False
    unique: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | Literal["as_of_year"] | None = None
    pattern: str | None = None
    non_empty: bool = False
    not_before: str | None = None  # another column of the same row
    references: tuple[str, str] | None = None  # (table, column)
    null_unless: str | None = None  # must be null when this column is null
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract.

    Attributes
    ----------
    name : str
        Table (and file) name.
    required : bool
        Every source must supply it.
    columns : tuple of Column
        Its columns, in contract order.
    key : tuple of str
        Columns that name a row in findings.
    unique_together : tuple of str, optional
        Columns whose combination must be unique.
    needs : str, optional
        Another table this one needs when supplied.
    doc : str
        Description for users.

    Examples
    --------
    >>> spec = TABLES["monthly_balances"]
    >>> spec.required, spec.unique_together
    (False, ('customer_id', 'month'))
    >>> [c.name for c in TABLES["branches"].columns]
    ['branch_id', 'branch_name', 'region']
    """

    name: str
    required: bool
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # what an example names
    unique_together: tuple[str, ...] | None = None
    needs: str | None = None
    doc: str = ""

    def column(self, name: str) -> Column:
        """The column called ``name``.

        Parameters
        ----------
        name : str
            A column of this table.

        Returns
        -------
        Column

        Raises
        ------
        StopIteration
            The table has no such column.

        Examples
        --------
        >>> TABLES["customers"].column("churn_type").allowed
        ('transfer', 'natural', 'unknown')
        """
        return next(c for c in self.columns if c.name == name)


def _fk(table: str, column: str) -> tuple[str, str]:
    return (table, column)


TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "extract", False, key=("__row",),
            columns=(
                Column("as_of", "date", required=False, doc="the extract's as-of date"),
                Column("observation_start", "date", required=False,
                       doc="first day from which every churn is in the extract"),
            ),
            doc="one row: the extract's as-of date and observation start",
        ),
        TableSpec(
            "branches", True, key=("branch_id",),
            columns=(
                Column("branch_id", "id", not_null=True, unique=True,
                       pattern=r"^[A-Za-z0-9_-]{1,64}$"),
                Column("branch_name", "string", not_null=True, non_empty=True),
                Column("region", "string", required=False),
            ),
        ),
        TableSpec(
            "customers", True, key=("customer_id",),
            columns=(
                Column("customer_id", "id", not_null=True, unique=True),
                Column("branch_id", "id", not_null=True, references=_fk("branches", "branch_id")),
                Column("open_date", "date", not_null=True),
                Column("churn_date", "date", not_before="open_date"),
                Column("churn_type", "string", allowed=CHURN_TYPES, null_unless="churn_date"),
                Column("churn_reason", "string", required=False),
                Column("segment", "string", required=False),
                Column("channel", "string", required=False),
                Column("birth_year", "int", required=False, min_value=1900, max_value="as_of_year"),
                Column("name", "string", required=False, doc="personal data"),
                Column("n_products", "int", required=False, min_value=0),
            ),
        ),
        TableSpec(
            "product_holdings", False, key=("customer_id", "product", "start_date"),
            columns=(
                Column("customer_id", "id", not_null=True, references=_fk("customers", "customer_id")),
                Column("product", "string", not_null=True, non_empty=True),
                Column("start_date", "date", not_null=True),
                Column("end_date", "date", not_before="start_date"),
            ),
        ),
        TableSpec(
            "relationship_managers", False, key=("rm_id",),
            columns=(
                Column("rm_id", "id", not_null=True, unique=True),
                Column("branch_id", "id", not_null=True, references=_fk("branches", "branch_id")),
                Column("hire_date", "date", not_null=True),
                Column("exit_date", "date", not_before="hire_date"),
                Column("exit_type", "string", allowed=EXIT_TYPES),
            ),
        ),
        TableSpec(
            "rm_assignments", False, key=("customer_id", "rm_id", "start_date"),
            needs="relationship_managers",
            columns=(
                Column("customer_id", "id", not_null=True, references=_fk("customers", "customer_id")),
                Column("rm_id", "id", not_null=True,
                       references=_fk("relationship_managers", "rm_id")),
                Column("start_date", "date", not_null=True),
                Column("end_date", "date", not_before="start_date"),
            ),
        ),
        TableSpec(
            "monthly_balances", False, key=("customer_id", "month"),
            unique_together=("customer_id", "month"),
            columns=(
                Column("customer_id", "id", not_null=True, references=_fk("customers", "customer_id")),
                Column("month", "month", not_null=True),
                Column("aum", "float", not_null=True, min_value=0),
                Column("avg_daily_aum", "float", required=False, min_value=0),
                Column("txn_count", "int", not_null=True, min_value=0),
                Column("outflow", "float", required=False, min_value=0),
            ),
        ),
        TableSpec(
            "complaints", False, key=("complaint_id",),
            columns=(
                Column("complaint_id", "id", not_null=True, unique=True),
                Column("customer_id", "id", not_null=True, references=_fk("customers", "customer_id")),
                Column("complaint_date", "date", not_null=True),
                Column("severity", "string", not_null=True, allowed=SEVERITIES),
                Column("escalated", "bool", not_null=True),
                Column("escalated_date", "date", required=False, not_before="complaint_date"),
            ),
        ),
        TableSpec(
            "retention_actions", False, key=("action_id",),
            columns=(
                Column("action_id", "id", not_null=True, unique=True),
                Column("customer_id", "id", not_null=True, references=_fk("customers", "customer_id")),
                Column("action_date", "date", not_null=True),
                Column("action_type", "string", not_null=True, allowed=ACTION_TYPES),
                Column("rm_id", "id", required=False,
                       references=_fk("relationship_managers", "rm_id")),
                Column("trigger", "string", not_null=True, allowed=TRIGGERS),
                Column("outcome", "string", required=False, allowed=OUTCOMES),
            ),
        ),
    )
}  # fmt: skip

# The flat form of `customers` (contract: "Flat extracts").
FLAT_CUSTOMERS = TableSpec(
    "customers", True, key=("customer_id",),
    columns=(
        Column("customer_id", "id", not_null=True, unique=True),
        Column("branch_id", "id", not_null=True, references=_fk("branches", "branch_id")),
        Column("tenure_months", "float", not_null=True, min_value=0),
        Column("churned", "bool", not_null=True),
        Column("churn_type", "string", required=False, allowed=CHURN_TYPES, null_unless="churned"),
        Column("churn_reason", "string", required=False),
        Column("segment", "string", required=False),
        Column("channel", "string", required=False),
        Column("birth_year", "int", required=False, min_value=1900, max_value=2100),
        Column("name", "string", required=False, doc="personal data"),
        Column("n_products", "int", required=False, min_value=0),
    ),
)  # fmt: skip

CALENDAR_TABLES = ("product_holdings", "relationship_managers", "rm_assignments",
                   "monthly_balances", "complaints", "retention_actions", "extract")  # fmt: skip


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One violated rule (``severity='error'``) or one caution (``'warning'``).

    Attributes
    ----------
    table, column : str
        Where (``column`` None for a table-level rule).
    rule : str
        The rule's name (``not_null``, ``foreign_key``, ``date_order``, ...).
    n_rows : int
        Rows breaking it.
    examples : tuple of str
        Up to five of them, named by the table's key.
    message : str
        What is wrong, in plain words.
    severity : {'error', 'warning'}
        Errors make the source invalid; warnings do not.

    Examples
    --------
    >>> f = Finding("customers", "churn_date", "date_order", 2,
    ...             ("customer_id=C001", "customer_id=C007"), "must not be before open_date")
    >>> print(f)
    ERROR customers.churn_date [date_order] 2 rows: must not be before open_date;
    e.g. customer_id=C001, customer_id=C007
    """

    table: str
    column: str | None
    rule: str
    n_rows: int
    examples: tuple[str, ...] = ()
    message: str = ""
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.table + (f".{self.column}" if self.column else "")
        ex = f"; e.g. {', '.join(self.examples)}" if self.examples else ""
        rows = f"{self.n_rows:,} row{'s' if self.n_rows != 1 else ''}: " if self.n_rows else ""
        return f"{self.severity.upper()} {where} [{self.rule}] {rows}{self.message}{ex}"


@dataclass
class ValidationReport:
    """All findings of one validation pass, plus the extract's settings used.

    Attributes
    ----------
    source : str
        The source validated.
    findings : list of Finding
        Errors and warnings, in the order found.
    tables : dict
        Table -> rows read.
    settings : dict
        ``as_of`` and ``observation_start`` and how each was chosen.
    flat : bool
        The source is a flat extract.

    Examples
    --------
    >>> f = Finding("customers", "churn_date", "date_order", 2,
    ...             message="must not be before open_date")
    >>> r = ValidationReport("data/demo", [f], tables={"branches": 8, "customers": 24000})
    >>> r.ok, len(r.errors), len(r.warnings)
    (False, 1, 0)

    A real report comes from :func:`validate_source` or a :class:`ContractError`:

    >>> r = validate_source("data/demo")  # doctest: +SKIP
    """

    source: str
    findings: list[Finding] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows
    settings: dict[str, str] = field(default_factory=dict)  # as_of, observation_start, how chosen
    flat: bool = False

    @property
    def errors(self) -> list[Finding]:
        """The findings that make the source invalid."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """The cautions: legal data the user should know about."""
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def to_frame(self) -> pd.DataFrame:
        """The findings as a tidy DataFrame (one row per finding).

        Returns
        -------
        DataFrame
            ``severity, table, column, rule, n_rows, examples, message``.

        Examples
        --------
        >>> f = Finding("customers", "churn_date", "date_order", 2,
        ...             message="must not be before open_date")
        >>> ValidationReport("data/demo", [f]).to_frame()[["severity", "table", "rule", "n_rows"]]
          severity      table        rule  n_rows
        0    error  customers  date_order       2
        """
        cols = ["severity", "table", "column", "rule", "n_rows", "examples", "message"]
        return pd.DataFrame(
            [[f.severity, f.table, f.column, f.rule, f.n_rows, list(f.examples), f.message]
             for f in self.findings],
            columns=cols,
        )  # fmt: skip

    def to_text(self) -> str:
        """The report as text: tables read, settings, every finding and the verdict.

        Returns
        -------
        str
            What ``crmresearch validate`` prints.

        Examples
        --------
        >>> f = Finding("customers", "churn_date", "date_order", 2,
        ...             message="must not be before open_date")
        >>> print(ValidationReport("data/demo", [f], tables={"customers": 24000}).to_text())
        source: data/demo
        tables: customers (24,000 rows)
        ERROR customers.churn_date [date_order] 2 rows: must not be before open_date
        1 error(s), 0 warning(s): source is NOT valid
        """
        lines = [f"source: {self.source}" + (" (flat extract)" if self.flat else "")]
        lines.append("tables: " + (", ".join(f"{t} ({n:,} rows)" for t, n in self.tables.items()) or "none"))
        for key, value in self.settings.items():
            lines.append(f"{key}: {value}")
        for f in self.errors + self.warnings:
            lines.append(str(f))
        lines.append(
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s): "
            + ("source is valid" if self.ok else "source is NOT valid")
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


class ContractError(InputError):
    """The source breaks the data contract; ``.report`` holds every finding.

    Parameters
    ----------
    report : ValidationReport
        The failed validation; the message is its :meth:`~ValidationReport.to_text`.

    Examples
    --------
    >>> try:
    ...     src = load_source("data/broken")
    ... except ContractError as err:
    ...     print(err.report.to_frame())  # doctest: +SKIP

    >>> f = Finding("customers", "customer_id", "unique", 2, message="value must be unique")
    >>> ContractError(ValidationReport("data/broken", [f])).report.errors[0].rule
    'unique'
    """

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.to_text())


# --------------------------------------------------------------------------- source


@dataclass
class Source:
    """A loaded, validated source: typed tables in an in-memory DuckDB database.

    Attributes
    ----------
    path : Path
        Where the source was read from.
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

    path: Path
    con: duckdb.DuckDBPyConnection
    tables: dict[str, int]
    as_of: dt.date | None
    observation_start: dt.date | None
    flat: bool
    report: ValidationReport
    cache: dict = field(default_factory=dict, repr=False)  # derived tables, by the modules that build them

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
    """Whether the loaded ``table`` has ``column`` (optional columns may be absent)."""
    return bool(con.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = ? AND column_name = ?", [table, column]
    ).fetchall())  # fmt: skip


def default_memory_limit() -> str:
    """DuckDB's memory cap when ``engine.memory_limit`` is null: the smaller of 6 GB and 50% of RAM."""
    import psutil

    return f"{min(6 * 1024, int(psutil.virtual_memory().total * 0.5 / 1024**2))}MB"


def _connect(params: Params | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    eng = (params or Params()).engine
    if eng.threads:
        con.execute(f"SET threads = {int(eng.threads)}")
    con.execute(f"SET memory_limit = {_lit(eng.memory_limit or default_memory_limit())}")
    # spill to the system's temporary folder, never into the user's working directory
    # (one folder per connection inside this process's own, which goes at exit: crmresearch.batch.procs)
    from crmresearch.core.scratch import spill_dir

    spill = spill_dir()
    weakref.finalize(con, shutil.rmtree, spill, ignore_errors=True)
    con.execute(f"SET temp_directory = {_lit(spill)}")
    con.execute("SET preserve_insertion_order = true")
    try:  # DuckDB's own bar would interleave with ours; in Jupyter without ipywidgets it refuses the setting
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error:
        pass
    return con


class _Unreadable(Exception):
    """A table file that cannot be read; the message says why (it becomes an ``unreadable`` finding)."""


def _unreadable(report: ValidationReport, table: str, file: str, reason: str) -> None:
    report.findings.append(Finding(table, None, "unreadable", 0, message=f"{file}: {reason}"))


def _read_reason(exc: duckdb.Error, file: Path | None, kind: str) -> str:
    """One line saying why DuckDB could not read ``file`` (a ``kind`` file), from its error."""
    text = str(exc)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if line and fields:
        return (f"line {line[1]} has {fields[2]} field(s), the header has {fields[1]}; every row needs one "
                "field per column")  # fmt: skip
    if "Invalid unicode" in text or "not utf-8 encoded" in text:
        where = first_undecodable(file) if file is not None else None
        at = f"byte 0x{where[1]:02x} on line {where[0]}" if where else (f"line {line[1]}" if line else "")
        return f"not UTF-8 text{f' ({at})' if at else ''}; save it as UTF-8"
    if "magic bytes" in text or "too small to be a Parquet file" in text:
        return "not a complete Parquet file (truncated, or another format)"
    if "not a valid DuckDB database file" in text:
        return "not a valid DuckDB database file (corrupt, or another format)"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"cannot be read as {kind}: {re.sub(r'^[A-Za-z ]*Error: ', '', first)}"


def _csv_reader(csv_path: Path) -> str:
    """The ``read_csv`` of a table file: its own header, every column as text, every row checked.

    The header is read here, so DuckDB guesses nothing (its sniffer would skip
    leading rows of a ragged file, or take ``#`` for a comment); every row must
    have one field per header column and be UTF-8.
    """
    try:
        with csv_path.open("rb") as f:
            first = f.readline(1 << 20)
    except OSError as exc:
        raise _Unreadable(f"cannot be read ({exc.strerror or exc})") from None
    if not first:
        raise _Unreadable("empty file (0 bytes): a CSV table needs a header row")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"not UTF-8 text (byte 0x{first[exc.start]:02x} on line 1); save it as UTF-8") from None
    header = next(csv.reader([text.rstrip("\r\n")]), [])
    header = [h if h.strip() else f"column{i}" for i, h in enumerate(header)]  # a blank name: an extra column
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise _Unreadable(f"the header names column(s) {', '.join(map(repr, twice))} more than once")
    columns = ", ".join(f"{_lit(h)}: 'VARCHAR'" for h in header)
    # every column as text: identifiers keep their leading zeros, and
    # values that do not parse become findings instead of load errors
    return (f"read_csv({_lit(str(csv_path))}, header = true, skip = 0, auto_detect = false, "
            f"columns = {{{columns}}}, delim = ',', quote = '\"', escape = '\"', encoding = 'utf-8', "
            "strict_mode = true, null_padding = false)")  # fmt: skip


def _discover(path: Path, con: duckdb.DuckDBPyConnection, report: ValidationReport
              ) -> tuple[dict[str, str], dict[str, Path | None]] | None:  # fmt: skip
    """Map table name -> a SQL expression reading the raw table, and table name -> its file.

    A table file that cannot be read becomes an ``unreadable`` finding (and is
    left out); a DuckDB database that cannot be opened gives None.
    """
    known = list(TABLES)
    found: dict[str, str] = {}
    files: dict[str, Path | None] = {}
    if path.is_dir():
        for name in known:
            pq, csv_file = path / f"{name}.parquet", path / f"{name}.csv"
            if pq.exists() and csv_file.exists():
                report.findings.append(Finding(
                    name, None, "ambiguous_table", 0,
                    message=f"both {pq.name} and {csv_file.name} exist; keep one"))  # fmt: skip
                continue
            file = pq if pq.exists() else csv_file if csv_file.exists() else None
            if file is None:
                continue
            try:
                if not file.is_file():
                    raise _Unreadable("is a folder, not a file")
                if file is pq:
                    if file.stat().st_size == 0:
                        raise _Unreadable("empty file (0 bytes)")
                    found[name] = f"read_parquet({_lit(str(pq))}, file_row_number = true)"
                else:
                    found[name] = _csv_reader(csv_file)
            except _Unreadable as exc:
                _unreadable(report, name, str(file), str(exc))
                continue
            files[name] = file
    elif path.is_file() and path.suffix.lower() in {".duckdb", ".db", ".ddb"}:
        try:
            con.execute(f"ATTACH {_lit(str(path))} AS src (READ_ONLY)")
        except duckdb.Error as exc:
            why = "empty file (0 bytes)" if path.stat().st_size == 0 else _read_reason(exc, None, "a DuckDB database")
            _unreadable(report, path.name, str(path), why)
            return None
        present = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'src'"
        ).fetchall()}  # fmt: skip
        for name in known:
            if name in present:
                found[name] = f"src.main.{_q(name)}"
                files[name] = None
    else:
        raise FileNotFoundError(
            f"source {path} is neither a directory of <table>.parquet/.csv files "
            "nor a DuckDB database file (*.duckdb)"
        )
    for name in list(found):  # a file DuckDB cannot open (not Parquet, corrupt footer …) is a finding now
        try:
            con.execute(f"DESCRIBE SELECT * FROM {found[name]}").fetchall()
        except duckdb.Error as exc:
            _unreadable(report, name, _file_name(path, name, files[name]), _read_reason(exc, files[name], _kind(files[name])))
            del found[name], files[name]
    return found, files


def _kind(file: Path | None) -> str:
    return "a DuckDB table" if file is None else "Parquet" if file.suffix == ".parquet" else "CSV"


def _file_name(source: Path, table: str, file: Path | None) -> str:
    return str(file) if file is not None else f"{source} table {table}"


def _parse_expr(col: Column, raw: str, raw_type: str) -> tuple[str, str | None]:
    """SQL expression giving the typed value, and one flagging unparseable values."""
    varchar = raw_type.upper() in {"VARCHAR", "TEXT", "STRING"}
    t = col.type
    if t in ("id", "string"):
        if varchar:
            return f"NULLIF(TRIM({raw}), '')" if t == "id" else raw, None
        return f"CAST({raw} AS VARCHAR)", None
    if t == "date":
        if varchar:
            v = f"TRIM({raw})"
            expr = (f"CASE WHEN length({v}) = 10 AND {v}[5] = '-' AND {v}[8] = '-' "
                    f"THEN TRY_CAST({v} AS DATE) END")  # fmt: skip
        else:
            expr = f"TRY_CAST({raw} AS DATE)"
        return expr, expr
    if t == "month":
        if varchar:
            v = f"TRIM({raw})"
            expr = (f"CASE WHEN length({v}) = 7 AND {v}[5] = '-' "
                    f"THEN TRY_CAST({v} || '-01' AS DATE) END")  # fmt: skip
        else:
            expr = f"CAST(date_trunc('month', TRY_CAST({raw} AS DATE)) AS DATE)"
        return expr, expr
    if t == "int":
        if varchar:
            expr = (f"CASE WHEN regexp_full_match(TRIM({raw}), '[+-]?\\d+(\\.0+)?') "
                    f"THEN TRY_CAST(TRY_CAST(TRIM({raw}) AS DOUBLE) AS BIGINT) END")  # fmt: skip
        else:
            expr = (f"CASE WHEN TRY_CAST({raw} AS DOUBLE) = floor(TRY_CAST({raw} AS DOUBLE)) "
                    f"THEN TRY_CAST({raw} AS BIGINT) END")  # fmt: skip
        return expr, expr
    if t == "float":
        expr = f"TRY_CAST({raw} AS DOUBLE)"
        expr = f"CASE WHEN isfinite({expr}) THEN {expr} END"
        return expr, expr
    if t == "bool":
        if varchar:
            expr = (f"CASE lower(TRIM({raw})) WHEN 'true' THEN true WHEN 't' THEN true "
                    f"WHEN '1' THEN true WHEN 'yes' THEN true WHEN 'y' THEN true "
                    f"WHEN 'false' THEN false WHEN 'f' THEN false WHEN '0' THEN false "
                    f"WHEN 'no' THEN false WHEN 'n' THEN false END")  # fmt: skip
        else:
            expr = f"TRY_CAST({raw} AS BOOLEAN)"
        return expr, expr
    raise AssertionError(t)


class _Checker:
    """Runs the rules of one source as SQL, collecting findings."""

    def __init__(self, con: duckdb.DuckDBPyConnection, report: ValidationReport):
        self.con = con
        self.report = report

    def _key_expr(self, spec: TableSpec, alias: str = "") -> str:
        pre = f"{alias}." if alias else ""
        parts = []
        types = {c.name: c.type for c in spec.columns}
        for k in spec.key:
            if k == "__row":
                parts.append(f"'row ' || {pre}__row")
            elif types.get(k) == "month":
                parts.append(f"'{k}=' || COALESCE(strftime({pre}{_q(k)}, '%Y-%m'), 'NULL')")
            else:
                parts.append(f"'{k}=' || COALESCE(CAST({pre}{_q(k)} AS VARCHAR), 'NULL')")
        key = " || ', ' || ".join(parts)
        if spec.key != ("__row",):
            key = f"CASE WHEN {pre}{_q(spec.key[0])} IS NULL THEN 'row ' || {pre}__row ELSE {key} END"
        return key

    def batch(self, spec: TableSpec, rules: list[tuple[str | None, str, str, str]]) -> None:
        """Check many row-level rules ``(column, rule, where, message)`` of one table in one scan."""
        if not rules:
            return
        aggs = ", ".join(f"count(*) FILTER (WHERE {w}), min_by(__row, __row, {MAX_EXAMPLES}) FILTER (WHERE {w})"
                         for _, _, w, _ in rules)  # fmt: skip
        row = self.con.execute(f"SELECT {aggs} FROM {_q(spec.name)}").fetchone()
        failing = {r for i in range(len(rules)) for r in (row[2 * i + 1] or ())}
        keys: dict[int, str] = {}
        if failing:  # render example keys for the few failing rows only
            keys = dict(self.con.execute(
                f"SELECT __row, {self._key_expr(spec)} FROM {_q(spec.name)} "
                f"WHERE __row IN ({', '.join(str(int(r)) for r in failing)})").fetchall())  # fmt: skip
        for i, (column, rule, _, message) in enumerate(rules):
            n, rows = row[2 * i], row[2 * i + 1]
            if n:
                ex = tuple(keys[r] for r in sorted(rows))
                self.report.findings.append(Finding(spec.name, column, rule, int(n), ex, message))

    def check(self, spec: TableSpec, column: str | None, rule: str, where: str, message: str,
              *, severity: Literal["error", "warning"] = "error", from_: str | None = None,
              key: str | None = None) -> int:  # fmt: skip
        src = from_ or _q(spec.name)
        key = key or self._key_expr(spec)
        n, ex = self.con.execute(
            f"SELECT count(*), list(k ORDER BY r)[1:{MAX_EXAMPLES}] FROM "
            f"(SELECT {key} AS k, __row AS r FROM {src} WHERE {where})"
        ).fetchone()
        if n:
            self.report.findings.append(
                Finding(spec.name, column, rule, int(n), tuple(ex or ()), message, severity)
            )
        return int(n)


def _load_tables(con: duckdb.DuckDBPyConnection, found: dict[str, str], report: ValidationReport,
                 flat: bool) -> dict[str, TableSpec]:  # fmt: skip
    """Create one typed table per present contract table; record type findings."""
    specs: dict[str, TableSpec] = {}
    for name, reader in found.items():
        spec = FLAT_CUSTOMERS if (flat and name == "customers") else TABLES[name]
        raw_name = f"__raw_{name}"
        if "read_csv" in reader:
            con.execute(f"CREATE TEMP TABLE {raw_name} AS SELECT *, "
                        f"CAST(row_number() OVER () AS BIGINT) AS __row FROM {reader}")  # fmt: skip
        elif "read_parquet" in reader:
            con.execute(f"CREATE TEMP VIEW {raw_name} AS SELECT * EXCLUDE (file_row_number), "
                        f"file_row_number + 1 AS __row FROM {reader}")  # fmt: skip
        else:
            con.execute(f"CREATE TEMP VIEW {raw_name} AS SELECT *, rowid + 1 AS __row FROM {reader}")
        desc = con.execute(f"DESCRIBE {raw_name}").fetchall()
        raw_types = {r[0]: r[1] for r in desc}
        # column names are matched exactly; a near miss (case, spaces) is named
        lowered = {c.strip().lower(): c for c in raw_types}
        selects: list[str] = ["__row"]
        type_checks: list[tuple[Column, str, str]] = []
        present_cols: list[Column] = []
        for col in spec.columns:
            if col.name not in raw_types:
                near = lowered.get(col.name)
                if col.required:
                    hint = f" (found {near!r}: names are case-sensitive)" if near else ""
                    report.findings.append(Finding(
                        name, col.name, "missing_column", 0,
                        message=f"required column is missing{hint}"))  # fmt: skip
                continue
            raw = _q(col.name)
            expr, check = _parse_expr(col, raw, raw_types[col.name])
            selects.append(f"{expr} AS {raw}")
            present_cols.append(col)
            if check is not None:
                type_checks.append((col, raw, check))
            if col.type == "id" and raw_types[col.name].upper() not in {"VARCHAR", "TEXT"}:
                report.findings.append(Finding(
                    name, col.name, "id_not_text", 0, severity="warning",
                    message=f"identifier stored as {raw_types[col.name]}; read as text, but any "
                            "leading zeros were already lost in the file"))  # fmt: skip
        spec_names = {c.name for c in spec.columns}
        extras = [c for c in raw_types if c not in spec_names and c not in ("__row",)]
        selects += [_q(c) for c in extras]  # extra columns are kept, untouched
        con.execute(f"CREATE TABLE {_q(name)} AS SELECT {', '.join(selects)} FROM {raw_name}")
        if type_checks:
            # a value that does not parse becomes NULL: only columns with NULLs need the raw re-read
            nulls = con.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE {raw} IS NULL)"
                                                      for _, raw, _ in type_checks) + f" FROM {_q(name)}").fetchone()  # fmt: skip
            type_checks = [tc for tc, n in zip(type_checks, nulls, strict=True) if n]
        counts: tuple = ()
        if type_checks:
            conds = [f"{raw} IS NOT NULL AND {check} IS NULL" for _, raw, check in type_checks]
            aggs = ", ".join(
                f"count(*) FILTER (WHERE {w}), "
                f"min_by('row ' || __row || ': ' || CAST({raw} AS VARCHAR), __row, {MAX_EXAMPLES}) FILTER (WHERE {w})"
                for w, (_, raw, _) in zip(conds, type_checks, strict=True))  # fmt: skip
            counts = con.execute(f"SELECT {aggs} FROM {raw_name}").fetchone()
        for i, (col, _raw, _check) in enumerate(type_checks):
            n, ex = counts[2 * i], counts[2 * i + 1]
            if n:
                want = {"date": "a date YYYY-MM-DD", "month": "a month YYYY-MM", "int": "a whole number",
                        "float": "a finite number", "bool": "true/false"}[col.type]  # fmt: skip
                report.findings.append(Finding(name, col.name, "type", int(n), tuple(ex),
                                               f"value is not {want}"))
        con.execute(f"DROP {'TABLE' if 'read_csv' in reader else 'VIEW'} {raw_name}")
        present = {c.name for c in present_cols}
        key = tuple(k for k in spec.key if k in present) or ("__row",)
        together = spec.unique_together if spec.unique_together and set(spec.unique_together) <= present else None
        specs[name] = TableSpec(name, spec.required, tuple(present_cols), key, together, spec.needs, spec.doc)
        report.tables[name] = con.execute(f"SELECT count(*) FROM {_q(name)}").fetchone()[0]
    return specs


def _load_readable(con: duckdb.DuckDBPyConnection, source: Path, found: dict[str, str],
                   files: dict[str, Path | None], report: ValidationReport, flat: bool) -> dict[str, TableSpec]:  # fmt: skip
    """:func:`_load_tables`, one table at a time: a table whose file turns out unreadable while it is
    read in full (a ragged row, a byte that is not UTF-8, a corrupt page) becomes an ``unreadable``
    finding and is left out; the other tables are still loaded and checked."""
    specs: dict[str, TableSpec] = {}
    for name, reader in found.items():
        n_findings = len(report.findings)
        try:
            specs.update(_load_tables(con, {name: reader}, report, flat))
        except duckdb.Error as exc:
            del report.findings[n_findings:]  # nothing found in a half-read table counts
            for obj in (f"__raw_{name}", name):
                kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = ?",
                                   [obj]).fetchone()  # fmt: skip
                if kind is not None:
                    con.execute(f"DROP {'VIEW' if kind[0] == 'VIEW' else 'TABLE'} {_q(obj)}")
            file = files[name]
            _unreadable(report, name, _file_name(source, name, file), _read_reason(exc, file, _kind(file)))
    return specs


def _extract_settings(con: duckdb.DuckDBPyConnection, specs: dict[str, TableSpec],
                      report: ValidationReport) -> tuple[dt.date | None, dt.date | None]:  # fmt: skip
    """as_of and observation_start: from the extract table or their defaults."""
    as_of = obs = None
    if "extract" in specs:
        n = report.tables["extract"]
        if n != 1:
            report.findings.append(Finding("extract", None, "one_row", n,
                                           message=f"must hold exactly one row, holds {n}"))
        else:
            cols = {c.name for c in specs["extract"].columns}
            row = con.execute(
                "SELECT " + ", ".join(
                    (f"{c}" if c in cols else f"CAST(NULL AS DATE) AS {c}")
                    for c in ("as_of", "observation_start")) + " FROM extract"
            ).fetchone()  # fmt: skip
            as_of, obs = row
    # latest date in the data, and the last balance month's end
    dates: list[str] = []
    for tname, spec in specs.items():
        if tname == "extract":
            continue
        for c in spec.columns:
            if c.type == "date":
                dates.append(f"SELECT max({_q(c.name)}) AS d FROM {_q(tname)}")
            if c.type == "month":
                dates.append(f"SELECT CAST(last_day(max({_q(c.name)})) AS DATE) AS d FROM {_q(tname)}")
    latest = con.execute(f"SELECT max(d) FROM ({' UNION ALL '.join(dates)})").fetchone()[0] if dates else None
    if as_of is None:
        as_of = latest
        how = ("default: the latest date in the data"
               + (", counting each balance month's end" if "monthly_balances" in specs else ""))  # fmt: skip
    else:
        how = "from the extract table"
    report.settings["as_of"] = f"{as_of} ({how})"
    if obs is None:
        if "monthly_balances" in specs and report.tables.get("monthly_balances"):
            obs = con.execute("SELECT min(month) FROM monthly_balances").fetchone()[0]
            how = "default: the first day of the earliest balance month"
        elif "customers" in specs and any(c.name == "open_date" for c in specs["customers"].columns):
            obs = con.execute("SELECT min(open_date) FROM customers").fetchone()[0]
            how = "default: the earliest open date (no balances supplied)"
        else:
            how = "unknown"
    else:
        how = "from the extract table"
    report.settings["observation_start"] = f"{obs} ({how})"
    if as_of is not None and obs is not None and obs > as_of:
        report.findings.append(Finding(
            "extract", "observation_start", "not_after_as_of", 1,
            message=f"observation_start {obs} is after as_of {as_of}"))  # fmt: skip
    return as_of, obs


def _repeat_screen(spec: TableSpec, t: str) -> str:
    """A fast query that is 0 when the ``unique_together`` key surely has no repeats.

    The exact check (a group-by over tens of millions of keys) runs only when
    the screen is positive.  For a key of (something, month), each group's
    months are a bit set (month number modulo 120 in a 128-bit integer): a
    repeated month, or months exactly 10 years apart, make the bit count
    smaller than the row count.  Other keys compare a hash count.
    """
    assert spec.unique_together
    types = {c.name: c.type for c in spec.columns}
    months = [c for c in spec.unique_together if types.get(c) == "month"]
    if len(months) == 1:
        m = _q(months[0])
        others = ", ".join(_q(c) for c in spec.unique_together if c != months[0])
        return (f"SELECT COALESCE(sum(n - u), 0) FROM (SELECT count(*) AS n, bit_count(bit_or("
                f"CAST(1 AS HUGEINT) << CAST((year({m}) * 12 + month({m})) % 120 AS INTEGER))) AS u "
                f"FROM {t} WHERE {m} IS NOT NULL GROUP BY {others})")  # fmt: skip
    cols = ", ".join(_q(c) for c in spec.unique_together)
    return f"SELECT count(*) - count(DISTINCT hash({cols})) FROM {t}"


def _run_rules(con: duckdb.DuckDBPyConnection, specs: dict[str, TableSpec], report: ValidationReport,
               as_of: dt.date | None, obs: dt.date | None) -> None:  # fmt: skip
    ck = _Checker(con, report)
    for tname, spec in specs.items():
        t = _q(tname)
        # row-level rules of this table: (column, rule, where, message), checked in one scan
        rules: list[tuple[str | None, str, str, str]] = []
        add = rules.append
        for col in spec.columns:
            c = _q(col.name)
            if col.not_null:
                add((col.name, "not_null", f"{c} IS NULL", "value is required"))
            if col.non_empty:
                add((col.name, "non_empty", f"TRIM({c}) = ''", "value must not be empty"))
            if col.pattern:
                add((col.name, "pattern",
                         f"{c} IS NOT NULL AND NOT regexp_full_match({c}, {_lit(col.pattern[1:-1])})",
                         "must be 1-64 characters of A-Z a-z 0-9 _ - (it becomes a file name)"))  # fmt: skip
            if col.unique:
                add((col.name, "unique",
                         f"{c} IN (SELECT {c} FROM {t} WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1)",
                         "value must be unique; duplicated rows shown"))  # fmt: skip
            if col.allowed:
                allowed = ", ".join(_lit(a) for a in col.allowed)
                add((col.name, "allowed_values", f"{c} IS NOT NULL AND {c} NOT IN ({allowed})",
                         f"must be one of {', '.join(col.allowed)}"))  # fmt: skip
            if col.min_value is not None:
                add((col.name, "min_value", f"{c} < {col.min_value}",
                         f"must be >= {col.min_value:g}"))
            if col.max_value is not None:
                mx = as_of.year if (col.max_value == "as_of_year" and as_of) else (
                    None if col.max_value == "as_of_year" else col.max_value)  # fmt: skip
                if mx is not None:
                    add((col.name, "max_value", f"{c} > {mx}", f"must be <= {mx}"))
            if col.not_before and col.not_before in {x.name for x in spec.columns}:
                add((col.name, "date_order", f"{c} < {_q(col.not_before)}",
                         f"must not be before {col.not_before}"))
            ref_cols = {x.name: x for x in spec.columns}
            if col.null_unless and col.null_unless in ref_cols:
                ref = _q(col.null_unless)
                if ref_cols[col.null_unless].type == "bool":
                    add((col.name, "null_unless", f"{c} IS NOT NULL AND NOT COALESCE({ref}, false)",
                             f"must be null unless {col.null_unless} is true"))  # fmt: skip
                else:
                    add((col.name, "null_unless", f"{c} IS NOT NULL AND {ref} IS NULL",
                             f"must be null when {col.null_unless} is null"))  # fmt: skip
            if col.references:
                rt, rc = col.references
                if rt in specs:
                    add((col.name, "foreign_key",
                             f"{c} IS NOT NULL AND {c} NOT IN (SELECT {_q(rc)} FROM {_q(rt)} WHERE {_q(rc)} IS NOT NULL)",
                             f"must exist in {rt}.{rc}"))  # fmt: skip
                elif col.required or col.not_null:
                    pass  # the missing table is reported once below
            if as_of is not None and col.type in ("date", "month") and tname != "extract":
                last = f"CAST(last_day({c}) AS DATE)" if col.type == "month" else c
                what = "the month ends" if col.type == "month" else "date is"
                add((col.name, "not_after_as_of", f"{last} > DATE '{as_of}'",
                         f"{what} after the extract's as-of date {as_of}"))
        ck.batch(spec, rules)
        if spec.unique_together:
            cols = ", ".join(_q(c) for c in spec.unique_together)
            dup = con.execute(_repeat_screen(spec, t)).fetchone()[0]
        if spec.unique_together and dup:
            ck.check(spec, "+".join(spec.unique_together), "unique",
                     f"({cols}) IN (SELECT ({cols}) FROM {t} GROUP BY {cols} HAVING count(*) > 1)",
                     "one row per " + " and ".join(spec.unique_together) + " at most")  # fmt: skip
    # one RM per customer per day: no overlapping assignments
    if "rm_assignments" in specs and {"customer_id", "start_date", "end_date"} <= {
            c.name for c in specs["rm_assignments"].columns}:  # fmt: skip
        # compare with the latest end of all earlier assignments, not only the previous one
        ck.check(
            specs["rm_assignments"], "start_date", "no_overlap", "prev_end >= start_date",
            "assignment overlaps an earlier one of the same customer (at most one RM on any day)",
            from_=("(SELECT *, max(COALESCE(end_date, DATE '9999-12-31')) OVER (PARTITION BY customer_id "
                   "ORDER BY start_date, __row ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end "
                   "FROM rm_assignments WHERE customer_id IS NOT NULL AND start_date IS NOT NULL)"),
        )  # fmt: skip
    # warnings: things that are legal but that the user should know
    def has(table: str, *cols: str) -> bool:
        return table in specs and set(cols) <= {c.name for c in specs[table].columns}

    if has("monthly_balances", "customer_id") and has("customers", "customer_id"):
        ck.check(specs["customers"], "customer_id", "no_balances",
                 "customer_id NOT IN (SELECT customer_id FROM monthly_balances WHERE customer_id IS NOT NULL)",
                 "customer has no monthly balances at all", severity="warning")  # fmt: skip
    if has("complaints", "escalated"):
        has_esc_date = any(c.name == "escalated_date" for c in specs["complaints"].columns)
        where = "escalated" + (" AND escalated_date IS NULL" if has_esc_date else "")
        ck.check(specs["complaints"], "escalated_date", "escalation_dated_by_complaint", where,
                 "escalated complaint without escalated_date: the escalation counts from "
                 "complaint_date", severity="warning")  # fmt: skip
    if obs is not None and has("customers", "churn_date"):
        ck.check(specs["customers"], "churn_date", "churned_before_observation_start",
                 f"churn_date < DATE '{obs}'",
                 f"churned before the observation start {obs}: not in follow-up, left out of the "
                 "survival data", severity="warning")  # fmt: skip


def _validate(path: Path, params: Params | None) -> tuple[duckdb.DuckDBPyConnection, ValidationReport,
                                                          dt.date | None, dt.date | None]:  # fmt: skip
    report = ValidationReport(source=str(path))
    con = _connect(params)
    try:
        discovered = _discover(path, con, report)
        if discovered is None:  # the database itself cannot be opened: that is the one finding
            return con, report, None, None
        found, files = discovered
        unreadable = {f.table for f in report.findings if f.rule == "unreadable"}
        for name, spec in TABLES.items():
            if spec.required and name not in found and name not in unreadable:
                report.findings.append(Finding(name, None, "missing_table", 0,
                                               message="required table is missing"))
            if spec.needs and name in found and spec.needs not in found:
                report.findings.append(Finding(name, None, "needs_table", 0,
                                               message=f"needs the {spec.needs} table, which is missing"))
        flat = False
        if "customers" in found:
            cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {found['customers']}").fetchall()}
            flat = "open_date" not in cols and ("tenure_months" in cols or "churned" in cols)
        report.flat = flat
        if flat:
            for name in [t for t in found if t in CALENDAR_TABLES]:
                report.findings.append(Finding(
                    name, None, "flat_calendar_table", 0, severity="warning",
                    message="a flat extract has no calendar: this table is ignored"))  # fmt: skip
                del found[name]
        specs = _load_readable(con, path, found, files, report, flat)
        if flat:
            as_of = obs = None
            report.settings["calendar"] = ("none (flat extract): no dates, so no monthly KPIs and "
                                           "no time-varying covariates")  # fmt: skip
        else:
            as_of, obs = _extract_settings(con, specs, report)
        _run_rules(con, specs, report, as_of, obs)
    except BaseException:
        con.close()
        raise
    return con, report, as_of, obs


def load_source(path: str | Path, params: Params | None = None) -> Source:
    """Load and validate a source; raise on any contract violation.

    Parameters
    ----------
    path : str or Path
        A directory of ``<table>.parquet`` / ``<table>.csv`` files or a DuckDB
        database file.
    params : Params, optional
        Engine settings (threads, memory limit).

    Returns
    -------
    Source
        Typed tables in an in-memory DuckDB database, with the extract's
        ``as_of`` and ``observation_start``.

    Raises
    ------
    ContractError
        The source breaks the contract; ``err.report`` lists every violation.
    FileNotFoundError
        ``path`` is not a source.

    Examples
    --------
    >>> src = load_source("data/demo")  # doctest: +SKIP
    >>> src.as_of, src.observation_start  # doctest: +SKIP
    (datetime.date(2026, 10, 31), datetime.date(2023, 11, 1))
    >>> from crmresearch.core.params import load_params
    >>> p = load_params(overrides={"engine.threads": 2})
    >>> src = load_source("data/demo", p)  # doctest: +SKIP
    """
    path = Path(path)
    con, report, as_of, obs = _validate(path, params)
    if not report.ok:
        con.close()
        raise ContractError(report)
    return Source(path, con, dict(report.tables), as_of, obs, report.flat, report)


def validate_source(path: str | Path, params: Params | None = None) -> ValidationReport:
    """Check a source against the contract and return every finding (never raises for data).

    Parameters
    ----------
    path : str or Path
        A directory of ``<table>.parquet`` / ``<table>.csv`` files or a DuckDB
        database file.
    params : Params, optional
        Engine settings (threads, memory limit).

    Returns
    -------
    ValidationReport
        Every error and warning; ``report.ok`` says whether
        :func:`load_source` would accept the source.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a source.

    Examples
    --------
    >>> report = validate_source("data/demo")  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    True
    >>> report.to_frame().query("severity == 'warning'")  # doctest: +SKIP
    """
    con, report, _, _ = _validate(Path(path), params)
    con.close()
    return report


def iter_rules() -> Iterable[tuple[str, str | None, str]]:
    """Every (table, column, rule) that the contract declares: used by docs and tests."""
    for spec in (*TABLES.values(), FLAT_CUSTOMERS):
        for c in spec.columns:
            for rule, on in (("not_null", c.not_null), ("unique", c.unique), ("allowed_values", c.allowed),
                             ("min_value", c.min_value is not None), ("max_value", c.max_value is not None),
                             ("pattern", c.pattern), ("non_empty", c.non_empty),
                             ("date_order", c.not_before), ("foreign_key", c.references),
                             ("null_unless", c.null_unless)):  # fmt: skip
                if on:
                    yield spec.name, c.name, rule


def check_branch(source: Source, branch: str | None) -> None:
    """Raise an :class:`~crmresearch.core.errors.InputError` listing the known branches when
    ``branch`` is not one of the source's (nothing happens for None).

    Examples
    --------
    >>> check_branch(load_source("data/demo"), "NOPE")  # doctest: +SKIP
    Traceback (most recent call last):
    crmresearch.core.errors.InputError: unknown branch 'NOPE'; known: B001, B002, ...
    """
    if branch is None:
        return
    known = [r[0] for r in source.con.execute("SELECT branch_id FROM branches ORDER BY __row").fetchall()]
    if branch not in known:
        raise InputError(f"unknown branch {branch!r}; known: {', '.join(known[:20])}"
                         + (" ..." if len(known) > 20 else ""))  # fmt: skip
