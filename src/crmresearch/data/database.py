"""A PostgreSQL database as a source: read the contract's tables to Arrow in one consistent snapshot.

A SOURCE given as a libpq URI (``postgresql://user@host:port/dbname``) is
read here with the ADBC PostgreSQL driver (libpq, binary COPY, straight to
Arrow) and then handed to the same DuckDB load and validation as a folder of
files (:mod:`crmresearch.data.loader`): every contract rule and every analysis
is the same code.  :func:`read_database`

* opens one connection (the password from the URI, ``PGPASSWORD``,
  ``~/.pgpass`` or a service file: libpq's own rules) and reads every table in
  one ``REPEATABLE READ READ ONLY`` transaction, so the tables agree even
  while the warehouse is being loaded;
* looks each table up on the connection's ``search_path`` (libpq's
  ``options=-csearch_path%3Dcrm`` chooses a schema), or where a
  :class:`~crmresearch.data.mapping.SourceMapping` says;
* reads only the contract's columns plus the extra columns kept (every
  identifier quoted);
* digests what it read (row counts, column names and types, and an
  order-independent hash of every row), which is the source's fingerprint:
  an unchanged database skips every report on a rerun.

Credentials never leave this module: :func:`mask_uri` is how a URI is shown,
and every error is one line (:class:`DatabaseError`) with the password
replaced by ``***``.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from crmresearch.core.errors import InputError
from crmresearch.core.sql import ident, literal
from crmresearch.data.mapping import SourceMapping
from crmresearch.data.spec import TABLES

__all__ = ["DatabaseError", "DatabaseRead", "is_database", "mask_uri", "read_database", "write_tables"]

SCHEMES = ("postgresql://", "postgres://")
# Arrow types the loader reads as they come; any other PostgreSQL type is read as its text
_PLAIN = {"text", "varchar", "bpchar", "char", "name", "date", "timestamp", "int2", "int4", "int8",
          "float4", "float8", "bool"}  # fmt: skip


class DatabaseError(InputError):
    """The database could not be read; one line saying why, with the password masked.

    Examples
    --------
    >>> str(DatabaseError("cannot connect to postgresql://crm:***@db:5432/crm: connection refused"))
    'cannot connect to postgresql://crm:***@db:5432/crm: connection refused'
    """


def is_database(source: object) -> bool:
    """Whether ``source`` is a PostgreSQL URI (rather than a path).

    Examples
    --------
    >>> is_database("postgresql://crm@localhost/bank"), is_database("data/demo")
    (True, False)
    """
    return isinstance(source, str) and source.startswith(SCHEMES)


def mask_uri(uri: str) -> str:
    """The URI as it may be shown: its password (in the user part or a ``password=`` parameter) as ``***``.

    Examples
    --------
    >>> mask_uri("postgresql://crm:s3cret@db.bank:5432/crm?options=-csearch_path%3Dcrm")
    'postgresql://crm:***@db.bank:5432/crm?options=-csearch_path%3Dcrm'
    >>> mask_uri("postgresql:///crm?password=s3cret&sslmode=require")
    'postgresql:///crm?password=***&sslmode=require'
    """
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            netloc = user.split(":", 1)[0] + ":***@" + host
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k == "password" for k, _ in pairs):
            query = "&".join(f"{k}=***" if k == "password" else urlencode({k: v}, quote_via=quote, safe="=-")
                             for k, v in pairs)  # fmt: skip
    return _unsplit(parts.scheme, netloc, parts.path, query, parts.fragment)


def _unsplit(scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    """``urlunsplit`` that keeps the ``//`` of an empty host (``postgresql:///?service=crm``)."""
    text = urlunsplit((scheme, netloc or "h", path, query, fragment))
    return text.replace(f"{scheme}://h", f"{scheme}://", 1) if not netloc else text


def _secrets(uri: str) -> list[str]:
    """Every form in which a password of ``uri`` (or ``PGPASSWORD``) could appear in a message."""
    parts = urlsplit(uri)
    found = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    found += [v for k, v in parse_qsl(parts.query) if k == "password"]
    if os.environ.get("PGPASSWORD"):
        found.append(os.environ["PGPASSWORD"])
    return sorted({s for s in found if s}, key=len, reverse=True)


def _redact(text: str, uri: str) -> str:
    text = text.replace(uri, mask_uri(uri))
    for s in _secrets(uri):
        text = text.replace(s, "***")
    return text


def _with_timeout(uri: str, seconds: int) -> str:
    """The URI with libpq's ``connect_timeout`` set (unless it already is)."""
    parts = urlsplit(uri)
    if any(k == "connect_timeout" for k, _ in parse_qsl(parts.query)):
        return uri
    query = (parts.query + "&" if parts.query else "") + f"connect_timeout={int(seconds)}"
    return _unsplit(parts.scheme, parts.netloc, parts.path, query, parts.fragment)


def _reason(exc: BaseException, uri: str) -> str:
    """libpq's message in one line, without the driver's prefixes and the SQLSTATE."""
    text = str(exc)
    text = re.sub(r"^[A-Z_]+: \[libpq\] ", "", text)
    text = re.sub(r"^(Failed to connect|Failed to execute query|Execution error \[[A-Z_]+\]): ", "", text)
    text = re.sub(r"(could not begin COPY: )", "", text)
    text = re.sub(r"\s*Query was: .*$", "", text, flags=re.S)
    text = re.sub(r"\.?\s*SQLSTATE: \w+\s*$", "", text)
    text = re.sub(r"\b(ERROR|FATAL):\s+", "", text)
    text = " ".join(text.split())
    return _redact(text, uri).rstrip(".") or type(exc).__name__


def _connect(uri: str, seconds: int) -> Any:
    try:
        import adbc_driver_postgresql.dbapi as pg
    except ImportError:  # pragma: no cover - the extra is part of the test install
        raise DatabaseError("reading a PostgreSQL source needs the ADBC driver: "
                            "pip install 'crmresearch[postgresql]'") from None  # fmt: skip
    try:
        return pg.connect(_with_timeout(uri, seconds), autocommit=True)
    except Exception as exc:  # the driver's errors: OperationalError, ProgrammingError ...
        why = _reason(exc, uri)
        if "Connection refused" in why:
            why = "connection refused (is the server running on that host and port?)"
        elif "timeout expired" in why:
            why = f"no answer within {seconds} s (engine.database_timeout_seconds)"
        raise DatabaseError(f"cannot connect to {mask_uri(uri)}: {why}") from None


@dataclass
class DatabaseRead:
    """What was read from a database: one Arrow table per contract table found, and its digest.

    Attributes
    ----------
    uri : str
        The URI as it may be shown (password masked).
    tables : dict of str to pyarrow.Table
        Contract table -> its rows, with the contract's column names (and the
        extras kept) and a ``__row`` column (1, 2, ... in the order read).
    missing : dict of str to str
        Contract tables the database does not have -> the name looked up.
    absent_columns : dict of str to list of str
        Mapped columns whose bank column is missing, per table.
    fingerprint : str
        SHA-256 of the row counts, column names and types and an
        order-independent hash of every row: equal for an unchanged database.
    seconds : dict of str to float
        ``transfer`` (reading from the server) and ``digest``.

    Examples
    --------
    >>> read = read_database("postgresql://crm@localhost/bank")  # doctest: +SKIP
    >>> read.uri, read.tables["customers"].num_rows  # doctest: +SKIP
    ('postgresql://crm@localhost/bank', 24000)
    """

    uri: str
    tables: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    absent_columns: dict[str, list[str]] = field(default_factory=dict)
    fingerprint: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    mapping: SourceMapping | None = None

    def __str__(self) -> str:
        return self.uri


def _fetch(cur: Any, sql: str) -> Any:
    cur.execute(sql)
    return cur.fetch_arrow_table()


def _relations(cur: Any, mapping: SourceMapping) -> dict[str, str | None]:
    """Contract table -> the relation to read it from (None: not in the database)."""
    rel: dict[str, str | None] = {}
    names: dict[str, str] = {}
    for name in TABLES:
        tmap = mapping.tables.get(name)
        if tmap is not None and tmap.query is not None:
            rel[name] = tmap.source
        else:
            names[name] = tmap.source if tmap is not None and tmap.source else ident(name)
    if names:
        probe = ", ".join(f"to_regclass({literal(q)}) IS NOT NULL AS {ident(n)}" for n, q in names.items())
        found = _fetch(cur, f"SELECT {probe}").to_pylist()[0]
        rel.update({n: (q if found[n] else None) for n, q in names.items()})
    return {n: rel[n] for n in TABLES}  # in the contract's order, as a folder's tables


def _select(cur: Any, name: str, relation: str, mapping: SourceMapping) -> tuple[str, list[str]]:
    """The query reading one table (only the columns used; odd types as text), and its absent columns."""
    head = _fetch(cur, f"SELECT * FROM {relation} AS __t LIMIT 0").schema
    mapped = mapping.tables.get(name)
    if mapped is None:  # an unmapped table: its extra columns are all kept, as from a file
        items: list[tuple[str, str]] = [(ident(c), c) for c in head.names]
        absent: list[str] = []
    else:
        items, absent = mapping.select(name, list(head.names))
    if not items:
        return f"SELECT FROM {relation} AS __t", absent
    shape = _fetch(cur, "SELECT " + ", ".join(f"{e} AS {ident(n)}" for e, n in items)
                   + f" FROM {relation} AS __t LIMIT 0").schema  # fmt: skip
    out = []
    for (expr, name_), f in zip(items, shape, strict=True):
        pg_type = (f.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
        if pg_type == "timestamptz":  # at the session's time zone, as a local date-time
            expr = f"CAST(({expr}) AS timestamp)"
        elif pg_type not in _PLAIN:  # numeric, uuid, json, enums ...: their text, read by the contract's rules
            expr = f"CAST(({expr}) AS text)"
        out.append(f"{expr} AS {ident(name_)}")
    return f"SELECT {', '.join(out)} FROM {relation} AS __t", absent


def _digest(tables: dict[str, Any]) -> str:
    """Row counts, schemas and an order-independent hash of every row (hashed by DuckDB, in parallel)."""
    import duckdb

    h = hashlib.sha256()
    con = duckdb.connect(":memory:")
    try:
        for name in sorted(tables):
            t = tables[name]
            cols = [c for c in t.column_names if c != "__row"]
            con.register("__t", t)
            row = ", ".join(ident(c) for c in cols)
            n, s = con.execute(f"SELECT count(*), CAST(sum(CAST(hash({row}) AS HUGEINT)) AS VARCHAR) FROM __t"
                               if cols else "SELECT count(*), '' FROM __t").fetchall()[0]  # fmt: skip
            con.unregister("__t")
            schema = ";".join(f"{c}:{t.schema.field(c).type}" for c in cols)
            h.update(f"{name}\0{n}\0{schema}\0{s}\n".encode())
    finally:
        con.close()
    return h.hexdigest()


def _begin(cur: Any, timeout: int, snapshot: str | None = None) -> None:
    """Open the read-only, repeatable-read transaction (importing ``snapshot``, that of the first connection)."""
    cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if snapshot is not None:
        cur.execute(f"SET TRANSACTION SNAPSHOT {literal(snapshot)}")
    cur.execute(f"SET LOCAL statement_timeout = {int(timeout) * 1000}")
    cur.execute("SET LOCAL synchronize_seqscans = off")  # every read of a table starts at its first row


# a plain table of at least this many 8 kB blocks is read in block ranges, on several connections
_CHUNK_BLOCKS = 2048


def _plan(cur: Any, relations: dict[str, str | None], mapping: SourceMapping, read: DatabaseRead
          ) -> list[tuple[str, str, str]]:  # fmt: skip
    """The reads to make: ``(table, step, sql)``, a large plain table as consecutive block ranges (ctid)."""
    tasks: list[tuple[str, str, str]] = []
    for name, relation in relations.items():
        if relation is None:
            read.missing[name] = mapping.bank_name(name)
            continue
        step = f"reading {mapping.bank_name(name)} (the contract's {name})"
        sql, absent = _select(cur, name, relation, mapping)
        if absent:
            read.absent_columns[name] = absent
        blocks = 0
        if not relation.startswith("("):
            kind = _fetch(cur, "SELECT c.relkind::text AS k, pg_relation_size(c.oid) / "
                               "current_setting('block_size')::int AS b FROM pg_class c "
                               f"WHERE c.oid = to_regclass({literal(relation)})").to_pylist()  # fmt: skip
            blocks = int(kind[0]["b"]) if kind and kind[0]["k"] in ("r", "m") else 0
        n = min(8, blocks // _CHUNK_BLOCKS)
        if n < 2:
            tasks.append((name, step, sql))
            continue
        cuts = [blocks * i // n for i in range(n)] + [None]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            where = f" WHERE __t.ctid >= '({lo},0)'::tid" + (f" AND __t.ctid < '({hi},0)'::tid" if hi else "")
            tasks.append((name, step, sql + where))
    return tasks


class _TaskError(Exception):
    """A read of :func:`_transfer` that failed, with what it was reading."""

    def __init__(self, step: str, cause: BaseException):
        super().__init__(step)
        self.step, self.cause = step, cause


def _transfer(uri: str, cur: Any, tasks: list[tuple[str, str, str]], step: list[str], timeout: int,
              connections: int) -> list[Any]:  # fmt: skip
    """Run the reads, in order on this connection or on ``connections`` sharing its snapshot; Arrow tables."""
    if connections < 2 or len(tasks) < 2:
        out = []
        for _name, what, sql in tasks:
            step[0] = what
            out.append(_fetch(cur, sql))
        return out
    import threading
    from concurrent.futures import ThreadPoolExecutor

    snapshot = _fetch(cur, "SELECT pg_export_snapshot() AS s").to_pylist()[0]["s"]
    local = threading.local()
    opened: list[Any] = []
    lock = threading.Lock()

    def run(task: tuple[str, str, str]) -> Any:
        if not hasattr(local, "cur"):
            conn = _connect(uri, timeout)
            with lock:
                opened.append(conn)
            local.cur = conn.cursor()
            _begin(local.cur, timeout, snapshot)
        try:
            return _fetch(local.cur, task[2])
        except Exception as exc:
            raise _TaskError(task[1], exc) from None

    pool = ThreadPoolExecutor(connections)
    try:
        futures = [pool.submit(run, t) for t in tasks]
        try:
            return [f.result() for f in futures]
        except _TaskError as err:  # the first read (in order) that failed says what failed
            step[0] = err.step
            raise err.cause from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure, the reads not started are not made
        for conn in opened:
            try:
                conn.close()
            except Exception:
                pass


def read_database(uri: str, mapping: SourceMapping | None = None, *, timeout: int = 600,
                  connections: int | None = None) -> DatabaseRead:
    """Read the contract's tables from a PostgreSQL database, in one read-only snapshot.

    Parameters
    ----------
    uri : str
        A libpq URI, ``postgresql://user@host:port/dbname`` (a password in it,
        in ``PGPASSWORD``, ``~/.pgpass`` or a service file).
    mapping : SourceMapping, optional
        The bank's names for the contract's tables, columns and codes.
    timeout : int
        Seconds to connect, and seconds each read may take
        (``engine.database_timeout_seconds``).
    connections : int, optional
        Connections reading at once (default: the number of cores, 2 to 4):
        the others import the first one's snapshot (``pg_export_snapshot``),
        so every table is still read as of one moment; a large plain table is
        read as consecutive block ranges, put back in order.

    Returns
    -------
    DatabaseRead

    Raises
    ------
    DatabaseError
        One line: the connection is refused, authentication fails, the
        database does not exist, the read times out or the connection drops,
        or a mapped query fails.  A missing table or column is not an error
        here: the validation report lists it.

    Examples
    --------
    >>> read = read_database("postgresql://crm@localhost:5432/bank?options=-csearch_path%3Dcrm")  # doctest: +SKIP
    >>> sorted(read.tables)[:2], read.fingerprint[:12]  # doctest: +SKIP
    (['branches', 'complaints'], '5be0c2d9a1f3')
    """
    import pyarrow as pa

    mapping = mapping or SourceMapping()
    connections = connections if connections is not None else min(4, max(2, os.cpu_count() or 2))
    shown = mask_uri(uri)
    t0 = time.perf_counter()
    conn = _connect(uri, timeout)
    read = DatabaseRead(uri=shown, mapping=mapping)
    step = ["starting the read"]
    try:
        cur = conn.cursor()
        _begin(cur, timeout)
        step[0] = "looking up the tables"
        tasks = _plan(cur, _relations(cur, mapping), mapping, read)
        parts = _transfer(uri, cur, tasks, step, timeout, connections)
        for name in dict.fromkeys(n for n, _, _ in tasks):
            chunks = [t for (n, _, _), t in zip(tasks, parts, strict=True) if n == name]
            t = pa.concat_tables(chunks) if len(chunks) > 1 else chunks[0]
            t = t.append_column("__row", pa.array(range(1, t.num_rows + 1), pa.int64()))
            read.tables[name] = t
        cur.execute("COMMIT")
        cur.close()
    except DatabaseError:
        raise
    except Exception as exc:
        why = _reason(exc, uri)
        if "statement timeout" in why:
            raise DatabaseError(f"{shown}: {step[0]} timed out after {timeout} s "
                                "(engine.database_timeout_seconds); nothing was written") from None  # fmt: skip
        if any(s in why for s in ("terminating connection", "server closed the connection", "connection to server",
                                  "no connection to the server", "SSL SYSCALL", "could not receive data")):  # fmt: skip
            raise DatabaseError(f"{shown}: the connection was lost while {step[0]}: {why}; nothing was written") from None
        raise DatabaseError(f"{shown}: {step[0]} failed: {why}") from None
    finally:
        try:
            conn.close()
        except Exception:  # a dropped connection cannot be closed cleanly
            pass
    read.tables = {n: _strip(t) for n, t in read.tables.items()}
    read.seconds["transfer"] = round(time.perf_counter() - t0, 3)
    t1 = time.perf_counter()
    read.fingerprint = _digest(read.tables)
    read.seconds["digest"] = round(time.perf_counter() - t1, 3)
    return read


def _strip(table: Any) -> Any:
    """The table without the driver's per-field metadata (types stay)."""
    import pyarrow as pa

    return table.cast(pa.schema([pa.field(f.name, f.type, f.nullable) for f in table.schema]))


def write_tables(uri: str, tables: dict[str, Any], *, force: bool = False, timeout: int = 600) -> None:
    """Write data frames as tables of a PostgreSQL database, all or nothing (one transaction).

    Parameters
    ----------
    uri : str
        A libpq URI; the tables go to the first schema of its ``search_path``.
    tables : dict of str to DataFrame
        Table name -> rows.
    force : bool
        Replace tables that exist; without it an existing table is an error.
    timeout : int
        Seconds to connect.

    Raises
    ------
    DatabaseError
        The database cannot be reached or written, or a table exists (without ``force``).

    Examples
    --------
    >>> write_tables("postgresql://crm@localhost/bank", {"branches": branches_df})  # doctest: +SKIP
    """
    import pyarrow as pa

    conn = _connect(uri, timeout)
    shown = mask_uri(uri)
    try:
        cur = conn.cursor()
        names = list(tables)
        probe = ", ".join(f"to_regclass({literal(ident(n))}) IS NOT NULL AS {ident(n)}" for n in names)
        there = [n for n, v in _fetch(cur, f"SELECT {probe}").to_pylist()[0].items() if v]
        if there and not force:
            raise DatabaseError(f"{shown} already has table(s) {', '.join(there)}; pass --force to replace them")
        cur.execute("BEGIN")
        for name in there:
            cur.execute(f"DROP TABLE {ident(name)}")
        for name, df in tables.items():
            cur.adbc_ingest(name, pa.Table.from_pandas(df, preserve_index=False), mode="create")
        cur.execute("COMMIT")
        cur.close()
    except DatabaseError:
        raise
    except Exception as exc:
        raise DatabaseError(f"{shown}: writing the tables failed: {_reason(exc, uri)}; nothing was written") from None
    finally:
        try:
            conn.close()
        except Exception:
            pass
