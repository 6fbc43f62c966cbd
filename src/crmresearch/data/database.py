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
    """The URI with libpq's ``connect_timeout`` and TCP keepalives set (those it does not set itself).

    The keepalives (idle 30 s, then 3 probes 10 s apart) end a read whose
    server or network went silent, instead of waiting for ever.

    Examples
    --------
    >>> _with_timeout("postgresql://crm@db/crm?connect_timeout=5", 600)
    'postgresql://crm@db/crm?connect_timeout=5&keepalives_idle=30&keepalives_interval=10&keepalives_count=3'
    """
    parts = urlsplit(uri)
    given = {k for k, _ in parse_qsl(parts.query)}
    wanted = {"connect_timeout": int(seconds), "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
    add = "&".join(f"{k}={v}" for k, v in wanted.items() if k not in given and "service" not in given)
    if not add:
        return uri
    query = (parts.query + "&" if parts.query else "") + add
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
    """What is read from a database: one Arrow table per contract table found, and its digest.

    The tables arrive in the contract's order while the caller works on
    those already here (:meth:`table` waits for one); :meth:`wait` waits for
    them all.

    Attributes
    ----------
    uri : str
        The URI as it may be shown (password masked).
    tables : dict of str to pyarrow.Table
        Contract table -> its rows (those arrived), with the contract's column
        names (and the extras kept) and a ``__row`` column (1, 2, ... in the
        order read).
    names : list of str
        Every contract table the database has, in the contract's order.
    order : list of str
        The same, in the order they are read (the largest first).
    columns : dict of str to list of str
        Each table's columns (known before its rows arrive).
    missing : dict of str to str
        Contract tables the database does not have -> the name looked up.
    absent_columns : dict of str to list of str
        Mapped columns whose bank column is missing, per table.
    seconds : dict of str to float
        ``transfer`` (reading from the server, once every table is here) and
        ``digest``.

    Examples
    --------
    >>> read = read_database("postgresql://crm@localhost/bank")  # doctest: +SKIP
    >>> read.uri, read.table("customers").num_rows  # doctest: +SKIP
    ('postgresql://crm@localhost/bank', 24000)
    """

    uri: str
    tables: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    columns: dict[str, list[str]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    absent_columns: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    mapping: SourceMapping | None = None
    _pending: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    _fail: Any = field(default=None, repr=False)
    _fingerprint: str = field(default="", repr=False)
    _released: bool = field(default=False, repr=False)

    def __str__(self) -> str:
        return self.uri

    def table(self, name: str) -> Any:
        """One table, once it has arrived (waits for it).

        Parameters
        ----------
        name : str
            A contract table of :attr:`names`.

        Returns
        -------
        pyarrow.Table

        Raises
        ------
        DatabaseError
            Its read failed (one line: timed out, connection lost ...).

        Examples
        --------
        >>> read.table("branches").column_names  # doctest: +SKIP
        ['branch_id', 'branch_name', 'region', '__row']
        """
        if name not in self.tables:
            if name not in self._pending:
                raise RuntimeError(f"{self.uri}: table {name} was handed to the loader and released")
            try:
                chunks = [f.result() for f in self._pending.pop(name)]
            except _TaskError as err:
                raise self._fail(err.step, err.cause) from None
            import pyarrow as pa

            t = pa.concat_tables(chunks) if len(chunks) > 1 else chunks[0]
            t = t.append_column("__row", pa.array(range(1, t.num_rows + 1), pa.int64()))
            self.tables[name] = _strip(t)
        return self.tables[name]

    def wait(self) -> DatabaseRead:
        """Wait for every table (and the end of the transaction).

        Returns
        -------
        DatabaseRead
            This read.

        Examples
        --------
        >>> read_database("postgresql://crm@localhost/bank", wait=False).wait().seconds  # doctest: +SKIP
        {'transfer': 3.1}
        """
        for name in self.names:
            self.table(name)
        done = self._pending.pop("__commit__", None)
        if done is not None:
            try:
                done[0].result()
            except _TaskError as err:
                raise self._fail(err.step, err.cause) from None
        return self

    def release(self) -> None:
        """Forget the tables (the loader holds them now); the fingerprint stays if it was computed.

        Examples
        --------
        >>> read.release()  # doctest: +SKIP
        """
        self.tables, self._released = {}, True

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the row counts, column names and types and an order-independent hash of every row.

        Equal for an unchanged database; computed once, when first asked
        (which waits for every table).
        """
        if not self._fingerprint:
            if self._released:
                raise RuntimeError(f"{self.uri}: the tables were handed to the loader before the fingerprint")
            self.wait()
            t = time.perf_counter()
            self._fingerprint = _digest(self.tables)
            self.seconds["digest"] = round(time.perf_counter() - t, 3)
        return self._fingerprint


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


def _plan(cur: Any, relations: dict[str, str | None], mapping: SourceMapping, read: DatabaseRead,
          doing: list[str]) -> list[tuple[str, str, str]]:  # fmt: skip
    """The reads to make: ``(table, step, sql)``, a large plain table as consecutive block ranges (ctid).

    ``doing[0]`` says which table is being looked at (for the message if its query fails).
    """
    tasks: list[tuple[str, str, str]] = []
    sizes: dict[str, int] = {}
    for name, relation in relations.items():
        if relation is None:
            read.missing[name] = mapping.bank_name(name)
            continue
        step = f"reading {mapping.bank_name(name)} (the contract's {name})"
        doing[0] = step
        sql, absent = _select(cur, name, relation, mapping)
        read.columns[name] = _fetch(cur, sql + " LIMIT 0").schema.names
        if absent:
            read.absent_columns[name] = absent
        blocks = 0
        if not relation.startswith("("):
            kind = _fetch(cur, "SELECT c.relkind::text AS k, pg_relation_size(c.oid) / "
                               "current_setting('block_size')::int AS b FROM pg_class c "
                               f"WHERE c.oid = to_regclass({literal(relation)})").to_pylist()  # fmt: skip
            blocks = int(kind[0]["b"]) if kind and kind[0]["k"] in ("r", "m") else 0
        sizes[name] = blocks
        n = min(8, blocks // _CHUNK_BLOCKS)
        if n < 2:
            tasks.append((name, step, sql))
            continue
        cuts = [blocks * i // n for i in range(n)] + [None]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            where = f" WHERE __t.ctid >= '({lo},0)'::tid" + (f" AND __t.ctid < '({hi},0)'::tid" if hi else "")
            tasks.append((name, step, sql + where))
    # the largest tables first: the loader loads each table as it arrives, while the rest are in transfer
    read.order = sorted(sizes, key=lambda n: -sizes[n])
    rank = {n: i for i, n in enumerate(read.order)}
    return sorted(tasks, key=lambda t: rank[t[0]])  # stable: a table's block ranges stay in order


class _TaskError(Exception):
    """A read of :func:`_start` that failed, with what it was reading."""

    def __init__(self, step: str, cause: BaseException):
        super().__init__(step)
        self.step, self.cause = step, cause


def _start(uri: str, conn: Any, cur: Any, tasks: list[tuple[str, str, str]], timeout: int, connections: int,
           read: DatabaseRead, t0: float) -> None:  # fmt: skip
    """Start the reads in the background: in order on this connection, or on ``connections`` sharing its snapshot.

    Each read's future goes to ``read._pending`` under its table (chunks in
    order); the transaction is committed and every connection closed when
    all are done (``read._pending["__commit__"]``).
    """
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor

    futures: list[Future] = [Future() for _ in tasks]
    for (name, _, _), f in zip(tasks, futures, strict=True):
        read._pending.setdefault(name, []).append(f)
    commit: Future = Future()
    read._pending["__commit__"] = [commit]
    parallel = connections > 1 and len(tasks) > 1
    snapshot = _fetch(cur, "SELECT pg_export_snapshot() AS s").to_pylist()[0]["s"] if parallel else None
    local = threading.local()
    opened: list[Any] = []
    lock = threading.Lock()

    def fetch(i: int) -> None:
        name, what, sql = tasks[i]
        try:
            c = cur
            if parallel:
                if not hasattr(local, "cur"):
                    extra = _connect(uri, timeout)
                    with lock:
                        opened.append(extra)
                    local.cur = extra.cursor()
                    _begin(local.cur, timeout, snapshot)
                c = local.cur
            futures[i].set_result(_fetch(c, sql))
        except BaseException as exc:  # the reader of this table says it, as one line
            futures[i].set_exception(_TaskError(what, exc))

    def run() -> None:
        try:
            if parallel:
                with ThreadPoolExecutor(connections) as pool:
                    for i in range(len(tasks)):
                        pool.submit(fetch, i)
            else:
                for i in range(len(tasks)):
                    fetch(i)
                    if futures[i].exception() is not None:
                        break  # the connection may be gone: the later reads are not made
            failed = next((f.exception() for f in futures if f.done() and f.exception()), None)
            for f in futures:
                if not f.done():
                    f.set_exception(failed)
            if failed is None:
                cur.execute("COMMIT")
            read.seconds["transfer"] = round(time.perf_counter() - t0, 3)
            commit.set_result(None)
        except BaseException as exc:
            commit.set_exception(_TaskError("ending the read", exc))
        finally:
            for c in [*opened, conn]:
                try:
                    c.close()
                except Exception:  # a dropped connection cannot be closed cleanly
                    pass

    threading.Thread(target=run, name="crmresearch-db-read", daemon=True).start()


def read_database(uri: str, mapping: SourceMapping | None = None, *, timeout: int = 600,
                  connections: int | None = None, wait: bool = True) -> DatabaseRead:
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
    wait : bool
        Wait for every table (default); with False the tables arrive in the
        background while the caller loads those already here
        (:meth:`DatabaseRead.table`).
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
    mapping = mapping or SourceMapping()
    connections = connections if connections is not None else min(4, max(2, os.cpu_count() or 2))
    shown = mask_uri(uri)
    t0 = time.perf_counter()
    conn = _connect(uri, timeout)
    read = DatabaseRead(uri=shown, mapping=mapping)

    def fail(step: str, exc: BaseException) -> DatabaseError:
        if isinstance(exc, DatabaseError):
            return exc
        why = _reason(exc, uri)
        if "statement timeout" in why:
            return DatabaseError(f"{shown}: {step} timed out after {timeout} s "
                                 "(engine.database_timeout_seconds); nothing was written")  # fmt: skip
        if any(s in why for s in ("terminating connection", "server closed the connection", "connection to server",
                                  "no connection to the server", "SSL SYSCALL", "could not receive data")):  # fmt: skip
            return DatabaseError(f"{shown}: the connection was lost while {step}: {why}; nothing was written")
        return DatabaseError(f"{shown}: {step} failed: {why}")

    read._fail = fail
    step = ["starting the read"]
    try:
        cur = conn.cursor()
        _begin(cur, timeout)
        step[0] = "looking up the tables"
        tasks = _plan(cur, _relations(cur, mapping), mapping, read, step)
        read.names = [n for n in TABLES if n in read.order]
        _start(uri, conn, cur, tasks, timeout, connections, read, t0)
    except Exception as exc:
        try:
            conn.close()
        except Exception:
            pass
        raise fail(step[0], exc) from None
    return read.wait() if wait else read


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
