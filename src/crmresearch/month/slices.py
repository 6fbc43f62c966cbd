"""One branch's slice of a source: its customers and their rows, the shared tables, no names.

The month bundle writes every branch's slice as Parquet partitions
(:mod:`crmresearch.month.bundle`); :func:`slice_source` builds one in memory
(what ``crmresearch metrics --branch`` computes on).  Both keep the same
tables and columns, defined here once.
"""

from __future__ import annotations

from crmresearch.core.params import Params
from crmresearch.core.sql import ident, idents
from crmresearch.data.contract import Source, _connect

__all__ = ["DROPPED_COLUMNS", "SHARED_TABLES", "slice_source"]

#: tables shared by every slice (no customer rows in them)
SHARED_TABLES = ("branches", "relationship_managers", "extract")
#: columns never copied into a slice: personal data the reports do not need
DROPPED_COLUMNS = {"customers": ("name",)}


def _customer_tables(source: Source) -> list[str]:
    from crmresearch.data.contract import table_has_column

    return [t for t in source.tables if t != "customers" and t not in SHARED_TABLES
            and table_has_column(source.con, t, "customer_id")]  # fmt: skip


def _columns(source: Source, table: str) -> list[str]:
    """The columns of ``table`` that go into a slice (every column, extra ones too, but personal data)."""
    drop = DROPPED_COLUMNS.get(table, ())
    return [r[0] for r in source.con.execute(f"DESCRIBE {ident(table)}").fetchall() if r[0] not in drop]


def slice_source(source: Source, branch: str, params: Params | None = None) -> Source:
    """One branch's slice of a source, in memory: its customers and their rows, the shared tables.

    The slice keeps every branch and every relationship manager (staff and
    branch lists, no customers), the extract's settings and, of each
    customer-level table, the rows of the branch's customers; customer names
    are dropped.

    Parameters
    ----------
    source : Source
        A validated source.
    branch : str
        A branch ID of the source.
    params : Params, optional
        Engine settings of the new in-memory database.

    Returns
    -------
    Source

    Examples
    --------
    >>> b1 = slice_source(src, "B001")  # doctest: +SKIP
    >>> b1.sql("SELECT DISTINCT branch_id FROM customers")  # doctest: +SKIP
    """
    from crmresearch.data.contract import check_branch

    check_branch(source, branch)
    con = _connect(params)
    counts = {}
    for t in source.tables:
        cols = idents(_columns(source, t))
        if t == "customers":
            q, args = f"SELECT {cols} FROM customers WHERE branch_id = ?", [branch]
        elif t in _customer_tables(source):
            q, args = (f"SELECT {cols} FROM {ident(t)} WHERE customer_id IN "
                       "(SELECT customer_id FROM customers WHERE branch_id = ?)"), [branch]  # fmt: skip
        else:
            q, args = f"SELECT {cols} FROM {ident(t)}", None
        rel = source.con.sql(q, params=args).to_arrow_table()
        con.register("__slice", rel)
        con.execute(f"CREATE TABLE {ident(t)} AS SELECT * FROM __slice")
        con.unregister("__slice")
        counts[t] = rel.num_rows
    out = source.with_tables(con, counts)
    out.cache["slice_of"] = branch
    return out
