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
from pathlib import Path

import duckdb

from crmresearch.core.errors import InputError
from crmresearch.core.io import first_undecodable
from crmresearch.core.params import Params
from crmresearch.core.sql import ident as _q
from crmresearch.core.sql import literal as _lit
from crmresearch.data.database import DatabaseRead, is_database, read_database
from crmresearch.data.findings import ContractError, Finding, ValidationReport
from crmresearch.data.mapping import SourceMapping, load_source_mapping
from crmresearch.data.rules import _run_rules
from crmresearch.data.source import Source, default_memory_limit
from crmresearch.data.spec import (
    CALENDAR_TABLES,
    FLAT_CUSTOMERS,
    MAX_EXAMPLES,
    TABLES,
    Column,
    TableSpec,
)

__all__ = ["check_branch", "load_source", "validate_source"]



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


def _discover(path: Path | DatabaseRead, con: duckdb.DuckDBPyConnection, report: ValidationReport,
              mapping: SourceMapping | None = None, hints: dict | None = None
              ) -> tuple[dict[str, str], dict[str, Path | None]] | None:  # fmt: skip
    """Map table name -> a SQL expression reading the raw table, and table name -> its file.

    A table file that cannot be read becomes an ``unreadable`` finding (and is
    left out); a DuckDB database that cannot be opened gives None.  A
    database read (:class:`DatabaseRead`) gives its Arrow tables; a
    ``mapping`` makes each mapped table from the bank's names
    (:func:`_apply_mapping`).
    """
    if isinstance(path, DatabaseRead):
        return _discover_read(path, con, report, hints if hints is not None else {})
    known = list(TABLES)
    found: dict[str, str] = {}
    files: dict[str, Path | None] = {}
    mapped = set(mapping.tables) if mapping is not None else set()
    if path.is_dir():
        for name in known:
            if name in mapped:
                continue
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
            if name in present and name not in mapped:
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
    if mapping is not None and mapping.tables:
        _apply_mapping(path, con, report, mapping, found, files, hints if hints is not None else {})
        found = {n: found[n] for n in TABLES if n in found}  # in the contract's order, mapped or not
    return found, files


def _discover_read(read: DatabaseRead, con: duckdb.DuckDBPyConnection, report: ValidationReport,
                   hints: dict) -> tuple[dict[str, str], dict[str, Path | None]]:  # fmt: skip
    """The tables of a database read, to be registered in DuckDB (zero-copy) as ``__db_<table>`` when they arrive.

    The read goes on in the background: a table is registered
    (:func:`_arrived`) just before it is loaded, while the later ones are
    still being transferred.
    """
    found: dict[str, str] = {}
    files: dict[str, Path | None] = {}
    for name in read.names:
        found[name], files[name] = _q(f"__db_{name}"), None
    for name, bank in read.missing.items():
        if bank != name:
            hints[(name, None)] = f" (mapped from the bank's {bank}, which the database does not have)"
    for name, absent in read.absent_columns.items():
        _absent_findings(report, name, absent, hints)
    return found, files


def _arrived(con: duckdb.DuckDBPyConnection, source: Path | DatabaseRead, name: str) -> None:
    """Register a database read's table in DuckDB once it has arrived (waits for it; files: nothing to do)."""
    if not isinstance(source, DatabaseRead):
        return
    view = f"__db_{name}"
    if not con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = ? UNION ALL "
                       "SELECT 1 FROM duckdb_tables() WHERE table_name = ?", [view, view]).fetchall():  # fmt: skip
        table = source.table(name)
        source.tables.pop(name, None)  # DuckDB holds it now; it goes when the typed table is built
        source._released = True
        con.register(view, table)


def _absent_findings(report: ValidationReport, table: str, absent: list[str], hints: dict) -> None:
    """Mapped columns whose bank column is missing: a hint on ``missing_column``, else a warning."""
    spec_required = {c.name for c in TABLES[table].columns if c.required}
    for item in absent:
        col, _, why = item.partition(" (")
        if col in spec_required:
            hints[(table, col)] = f" (mapped from {why.rstrip(')')}, which is missing)"
        else:
            report.findings.append(Finding(table, col, "mapped_column_missing", 0, severity="warning",
                                           message=f"the mapping reads it from {why.rstrip(')')}, which "
                                                   f"is missing: the column is left out"))  # fmt: skip


def _apply_mapping(path: Path, con: duckdb.DuckDBPyConnection, report: ValidationReport, mapping: SourceMapping,
                   found: dict[str, str], files: dict[str, Path | None], hints: dict) -> None:  # fmt: skip
    """Make each mapped table of a file source from the bank's names, as ``__mapped_<table>``.

    Every bank table (a file, by its stem, or a table of the DuckDB file) is a
    view of the schema ``bank``; a mapped table's SELECT (or query) runs with
    that schema on the search path, and what it gives is materialized with
    its row numbers.  A bank table that is missing or a query that fails is a
    finding of the table.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS bank")
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.suffix in (".parquet", ".csv") and f.is_file():
                try:
                    reader = (f"read_parquet({_lit(str(f))})" if f.suffix == ".parquet" else _csv_reader(f))
                    con.execute(f"CREATE VIEW bank.{_q(f.stem)} AS SELECT * FROM {reader}")
                except (duckdb.Error, _Unreadable):
                    continue  # a file no mapped table reads is no concern; one that is read fails below
    else:
        for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                "WHERE table_catalog = 'src'").fetchall():  # fmt: skip
            con.execute(f"CREATE VIEW bank.{_q(t)} AS SELECT * FROM src.main.{_q(t)}")
    bank = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                      "WHERE table_schema = 'bank'").fetchall()}  # fmt: skip
    con.execute("SET search_path = 'bank'")
    try:
        for name, tmap in mapping.tables.items():
            where = mapping.bank_name(name)
            if tmap.query is None and where not in bank:
                if where != name:
                    hints[(name, None)] = f" (mapped from the bank's {where}, which the source does not have)"
                continue
            relation = tmap.source or f"bank.{_q(name)}"
            try:
                head = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation} AS __t").fetchall()]
                items, absent = mapping.select(name, head)
                cols = ", ".join(f"{e} AS {_q(n)}" for e, n in items) or "NULL AS __none"
                con.execute(f"CREATE TEMP TABLE {_q('__mapped_' + name)} AS SELECT *, "
                            f"CAST(row_number() OVER () AS BIGINT) AS __row FROM "
                            f"(SELECT {cols} FROM {relation} AS __t)")  # fmt: skip
            except duckdb.Error as exc:
                _unreadable(report, name, f"{path} {where} (mapped)", _read_reason(exc, None, "mapped"))
                continue
            _absent_findings(report, name, absent, hints)
            found[name], files[name] = _q(f"__mapped_{name}"), None
    finally:
        con.execute("RESET search_path")


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


def _load_tables(con: duckdb.DuckDBPyConnection, found: dict[str, str], report: ValidationReport,
                 flat: bool, hints: dict | None = None) -> dict[str, TableSpec]:  # fmt: skip
    """Create one typed table per present contract table; record type findings."""
    specs: dict[str, TableSpec] = {}
    for name, reader in found.items():
        spec = FLAT_CUSTOMERS if (flat and name == "customers") else TABLES[name]
        raw_name = f"__raw_{name}"
        rowed = reader.startswith('"__')  # a database read or a mapped table: numbered already
        if rowed:
            con.execute(f"CREATE TEMP VIEW {raw_name} AS SELECT * FROM {reader}")
        elif "read_csv" in reader:
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
                    hint = (hints or {}).get((name, col.name), hint)
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
        con.execute(f"DROP {'TABLE' if 'read_csv' in reader and not rowed else 'VIEW'} {raw_name}")
        if reader.startswith('"__db_'):
            con.unregister(reader.strip('"'))  # the Arrow data goes; the typed table stays
        elif reader.startswith('"__mapped_'):
            con.execute(f"DROP TABLE {reader}")
        present = {c.name for c in present_cols}
        key = tuple(k for k in spec.key if k in present) or ("__row",)
        together = spec.unique_together if spec.unique_together and set(spec.unique_together) <= present else None
        specs[name] = TableSpec(name, spec.required, tuple(present_cols), key, together, spec.needs, spec.doc)
        report.tables[name] = con.execute(f"SELECT count(*) FROM {_q(name)}").fetchone()[0]
    return specs


def _load_readable(con: duckdb.DuckDBPyConnection, source: Path, found: dict[str, str],
                   files: dict[str, Path | None], report: ValidationReport, flat: bool,
                   hints: dict | None = None) -> dict[str, TableSpec]:  # fmt: skip
    """:func:`_load_tables`, one table at a time: a table whose file turns out unreadable while it is
    read in full (a ragged row, a byte that is not UTF-8, a corrupt page) becomes an ``unreadable``
    finding and is left out; the other tables are still loaded and checked."""
    specs: dict[str, TableSpec] = {}
    first = len(report.findings)
    # a database's tables are loaded in the order they arrive (the largest first); the report keeps the contract's
    order = [n for n in source.order if n in found] if isinstance(source, DatabaseRead) else list(found)
    for name in order:
        reader = found[name]
        n_findings = len(report.findings)
        _arrived(con, source, name)
        try:
            specs.update(_load_tables(con, {name: reader}, report, flat, hints))
        except duckdb.Error as exc:
            del report.findings[n_findings:]  # nothing found in a half-read table counts
            for obj in (f"__raw_{name}", name):
                kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = ?",
                                   [obj]).fetchone()  # fmt: skip
                if kind is not None:
                    con.execute(f"DROP {'VIEW' if kind[0] == 'VIEW' else 'TABLE'} {_q(obj)}")
            file = files[name]
            _unreadable(report, name, _file_name(source, name, file), _read_reason(exc, file, _kind(file)))
    rank = {n: i for i, n in enumerate(TABLES)}
    report.findings[first:] = sorted(report.findings[first:], key=lambda f: rank.get(f.table, len(rank)))
    report.tables = {n: report.tables[n] for n in sorted(report.tables, key=lambda n: rank.get(n, len(rank)))}
    return {n: specs[n] for n in found if n in specs}


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


def _validate(path: Path | DatabaseRead, params: Params | None, mapping: SourceMapping | None = None
              ) -> tuple[duckdb.DuckDBPyConnection, ValidationReport, dt.date | None, dt.date | None]:  # fmt: skip
    report = ValidationReport(source=str(path))
    con = _connect(params)
    hints: dict = {}
    try:
        discovered = _discover(path, con, report, mapping, hints)
        if discovered is None:  # the database itself cannot be opened: that is the one finding
            return con, report, None, None
        found, files = discovered
        unreadable = {f.table for f in report.findings if f.rule == "unreadable"}
        for name, spec in TABLES.items():
            if spec.required and name not in found and name not in unreadable:
                report.findings.append(Finding(name, None, "missing_table", 0,
                                               message="required table is missing" + hints.get((name, None), "")))
            if spec.needs and name in found and spec.needs not in found:
                report.findings.append(Finding(name, None, "needs_table", 0,
                                               message=f"needs the {spec.needs} table, which is missing"))
        flat = False
        if "customers" in found and isinstance(path, DatabaseRead):  # known before its rows arrive
            cols = set(path.columns["customers"])
        elif "customers" in found:
            cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {found['customers']}").fetchall()}
            flat = "open_date" not in cols and ("tenure_months" in cols or "churned" in cols)
        report.flat = flat
        if flat:
            for name in [t for t in found if t in CALENDAR_TABLES]:
                report.findings.append(Finding(
                    name, None, "flat_calendar_table", 0, severity="warning",
                    message="a flat extract has no calendar: this table is ignored"))  # fmt: skip
                del found[name]
        specs = _load_readable(con, path, found, files, report, flat, hints)
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


def load_source(path: str | Path | DatabaseRead, params: Params | None = None,
                mapping: str | Path | SourceMapping | None = None) -> Source:
    """Load and validate a source; raise on any contract violation.

    Parameters
    ----------
    path : str, Path or DatabaseRead
        A directory of ``<table>.parquet`` / ``<table>.csv`` files, a DuckDB
        database file, or a PostgreSQL URI ``postgresql://user@host/db``
        (read with :func:`~crmresearch.data.database.read_database`; or what
        it read).
    params : Params, optional
        Engine settings (threads, memory limit, database timeout).
    mapping : str, Path or SourceMapping, optional
        The bank's names of the contract's tables, columns and codes
        (:mod:`crmresearch.data.mapping`).

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
    where, mapping = _resolve(path, params, mapping)
    con, report, as_of, obs = _validate(where, params, mapping)
    if not report.ok:
        con.close()
        raise ContractError(report)
    return Source(where if isinstance(where, Path) else str(where), con, dict(report.tables), as_of, obs,
                  report.flat, report)  # fmt: skip


def _resolve(path: str | Path | DatabaseRead, params: Params | None, mapping: str | Path | SourceMapping | None
             ) -> tuple[Path | DatabaseRead, SourceMapping | None]:  # fmt: skip
    """What to validate: a path, or a database read (a URI is read now), and the mapping loaded."""
    if isinstance(path, DatabaseRead):
        return path, load_source_mapping(mapping) if mapping is not None else path.mapping
    m = load_source_mapping(mapping)
    if is_database(path):  # read whole, then loaded: on loopback, loading meanwhile slows the server (performance.md)
        timeout = (params or Params()).engine.database_timeout_seconds
        return read_database(str(path), m, timeout=timeout), m
    return Path(path), m


def validate_source(path: str | Path | DatabaseRead, params: Params | None = None,
                    mapping: str | Path | SourceMapping | None = None) -> ValidationReport:
    """Check a source against the contract and return every finding (never raises for data).

    Parameters
    ----------
    path : str, Path or DatabaseRead
        A directory of ``<table>.parquet`` / ``<table>.csv`` files, a DuckDB
        database file, or a PostgreSQL URI ``postgresql://user@host/db``
        (read with :func:`~crmresearch.data.database.read_database`; or what
        it read).
    params : Params, optional
        Engine settings (threads, memory limit, database timeout).
    mapping : str, Path or SourceMapping, optional
        The bank's names of the contract's tables, columns and codes
        (:mod:`crmresearch.data.mapping`).

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
    where, m = _resolve(path, params, mapping)
    con, report, _, _ = _validate(where, params, m)
    con.close()
    return report


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
