"""A source mapping: the bank's own table, column and code names, mapped to the contract's.

``--mapping FILE.yaml`` works for every kind of source (a folder of
Parquet/CSV files, a DuckDB file, a PostgreSQL database).  For each contract
table it names the bank's table or view (``from``) or an SQL query
(``query``); for each contract column the bank's column (``column``) or an
SQL expression (``expr``), and optionally a map of the bank's code values to
the contract's (``codes``).  A contract column the mapping does not name is
read from the bank's column of the same name, and a contract table it does
not name is read as usual, so a mapping lists only what differs.  The SQL
(queries, expressions) is in the source's own dialect: PostgreSQL's for a
database, DuckDB's for files (where each file is a table named by its stem).

The mapping only *renames*: the mapped tables then go through the very same
load and validation as an unmapped source (:mod:`crmresearch.data.loader`).
``docs/data-contract.md`` ("Mapping the bank's names") explains every key.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crmresearch.core.errors import InputError
from crmresearch.core.io import read_yaml
from crmresearch.core.sql import ident, literal
from crmresearch.data.spec import FLAT_CUSTOMERS, TABLES

__all__ = ["ColumnMap", "MappingError", "SourceMapping", "TableMap", "load_source_mapping"]


class MappingError(InputError):
    """A source mapping is invalid; the message names the file and the key.

    Examples
    --------
    >>> str(MappingError("m.yaml: tables.custmers: unknown contract table"))
    'm.yaml: tables.custmers: unknown contract table'
    """


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ColumnMap(_Model):
    """How one contract column is made: the bank's ``column`` or an ``expr``, and its ``codes``.

    Examples
    --------
    >>> ColumnMap(column="exit_code", codes={"T": "transfer", "N": "natural"}).sql()
    'CASE CAST("exit_code" AS text) WHEN \\'T\\' THEN \\'transfer\\' WHEN \\'N\\' THEN \\'natural\\' ELSE CAST("exit_code" AS text) END'
    """

    column: str | None = Field(None, min_length=1)
    expr: str | None = Field(None, min_length=1)
    codes: dict[str, str] | None = None

    @field_validator("codes", mode="before")
    @classmethod
    def _text_codes(cls, v: Any) -> Any:
        if isinstance(v, dict):
            bad = [k for k, x in v.items() if isinstance(k, bool) or isinstance(x, bool)]
            if bad:
                raise ValueError("YAML reads unquoted yes/no/true/false as booleans; quote the codes")
            return {str(k): str(x) for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _one_way(self) -> ColumnMap:
        if (self.column is None) == (self.expr is None):
            raise ValueError("give exactly one of 'column' (the bank's column) and 'expr' (an SQL expression)")
        return self

    def sql(self) -> str:
        """The SQL giving the contract column's value (the bank's codes mapped).

        Returns
        -------
        str

        Examples
        --------
        >>> ColumnMap(expr="opened_on::date").sql()
        '(opened_on::date)'
        """
        base = ident(self.column) if self.column is not None else f"({self.expr})"
        if not self.codes:
            return base
        text = f"CAST({base} AS text)"
        whens = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in self.codes.items())
        return f"CASE {text} {whens} ELSE {text} END"


class TableMap(_Model):
    """Where one contract table comes from: the bank's table or view (``from``) or a ``query``.

    Examples
    --------
    >>> t = TableMap.model_validate({"from": "crm_clients", "columns": {"customer_id": "client_no"}})
    >>> t.source, t.columns["customer_id"].column
    ('"crm_clients"', 'client_no')
    """

    from_: str | None = Field(None, alias="from", min_length=1)
    query: str | None = Field(None, min_length=1)
    columns: dict[str, ColumnMap] = Field(default_factory=dict)
    extras: list[str] = Field(default_factory=list, description="the bank's other columns to keep, as they are")

    @field_validator("columns", mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({"column": x} if isinstance(x, str) else x) for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _one_source(self) -> TableMap:
        if self.from_ is not None and self.query is not None:
            raise ValueError("give at most one of 'from' (a table or view) and 'query'")
        return self

    @property
    def source(self) -> str | None:
        """The relation to read from (a quoted, possibly schema-qualified name, or the query), or None."""
        if self.query is not None:
            return f"({self.query.strip().rstrip(';')})"
        if self.from_ is not None:
            return ".".join(ident(p) for p in self.from_.split("."))
        return None


class SourceMapping(_Model):
    """A whole mapping: ``description`` and, per contract table, a :class:`TableMap`.

    Examples
    --------
    >>> m = SourceMapping.model_validate({"tables": {"branches": {"from": "org_units"}}})
    >>> m.bank_name("branches"), m.bank_name("customers")
    ('org_units', 'customers')
    """

    description: str = ""
    tables: dict[str, TableMap] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _contract_names(self) -> SourceMapping:
        for name, tmap in self.tables.items():
            if name not in TABLES:
                raise ValueError(f"tables.{name}: unknown contract table (known: {', '.join(TABLES)})")
            known = [c.name for c in TABLES[name].columns]
            if name == "customers":
                known += [c.name for c in FLAT_CUSTOMERS.columns if c.name not in known]
            for col in tmap.columns:
                if col not in known:
                    raise ValueError(f"tables.{name}.columns.{col}: unknown column of the contract's {name} "
                                     f"table (known: {', '.join(known)})")  # fmt: skip
        return self

    def bank_name(self, table: str) -> str:
        """The bank's name of a contract table (a query shows as ``(query)``).

        Examples
        --------
        >>> SourceMapping().bank_name("customers")
        'customers'
        """
        t = self.tables.get(table)
        if t is None or (t.from_ is None and t.query is None):
            return table
        return t.from_ if t.from_ is not None else "(query)"

    def select(self, table: str, available: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
        """The SELECT list reading ``table`` from its bank relation, and the mapped columns that are absent.

        Parameters
        ----------
        table : str
            A contract table.
        available : list of str
            The bank relation's columns.

        Returns
        -------
        (list of (str, str), list of str)
            ``(expr, name)`` items (contract columns present, then the kept
            extras), and ``"contract_col (bank column X)"`` for each
            contract column whose bank column is missing.

        Examples
        --------
        >>> m = SourceMapping.model_validate({"tables": {"branches": {"columns": {"branch_id": "unit_no"}}}})
        >>> m.select("branches", ["unit_no", "branch_name"])
        ([('"unit_no"', 'branch_id'), ('"branch_name"', 'branch_name')], [])
        """
        tmap = self.tables.get(table, TableMap())
        have = set(available)
        names = [c.name for c in TABLES[table].columns]
        if table == "customers":
            names += [c.name for c in FLAT_CUSTOMERS.columns if c.name not in names]
        items: list[tuple[str, str]] = []
        absent: list[str] = []
        for name in names:
            cmap = tmap.columns.get(name)
            if cmap is None:
                if name in have:
                    items.append((ident(name), name))
                continue
            if cmap.column is not None and cmap.column not in have:
                absent.append(f"{name} (the bank's column {cmap.column})")
                continue
            items.append((cmap.sql(), name))
        for extra in tmap.extras:
            if extra not in have:
                absent.append(f"{extra} (a kept extra column)")
            elif extra not in names:
                items.append((ident(extra), extra))
        return items, absent

    @property
    def digest(self) -> str:
        """SHA-256 of the mapping's content (part of a source's fingerprint)."""
        return hashlib.sha256(self.model_dump_json(by_alias=True).encode()).hexdigest()


def load_source_mapping(path: str | Path | SourceMapping | None) -> SourceMapping | None:
    """Read and check a source mapping YAML (None stays None).

    Parameters
    ----------
    path : str, Path, SourceMapping or None

    Returns
    -------
    SourceMapping or None

    Raises
    ------
    MappingError
        The file cannot be read or names an unknown contract table or column
        (the message names the file and the key).

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "m.yaml"
    >>> _ = f.write_text("tables: {custmers: {from: clients}}")
    >>> load_source_mapping(f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crmresearch.data.mapping.MappingError: mapping .../m.yaml: tables.custmers: unknown contract table (known: ...)
    """
    if path is None or isinstance(path, SourceMapping):
        return path
    raw = read_yaml(path, "mapping", MappingError)
    try:
        return SourceMapping.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise MappingError(f"mapping {path}: {where + ': ' if where else ''}{msg}") from None
