"""Safe output: every file is written to a temporary name and renamed into place.

A reader never sees a half-written file, and a failed or killed run leaves
only complete files (plus, at worst, a ``.tmp-*`` file that the next run
overwrites).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb

from .sql import literal

__all__ = ["atomic_dir", "atomic_path", "write_relation"]

TABLE_SUFFIXES = (".parquet", ".csv")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    Parameters
    ----------
    target : str or Path
        The file (or directory) to write; its parent is created if needed.

    Yields
    ------
    Path
        A ``.tmp-*`` path in the same directory.  Write it inside the
        ``with`` block; on success it replaces ``target``, on error it is
        removed and ``target`` is left untouched.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "summary.txt") as tmp:
    ...     _ = tmp.write_text("42 customers")
    >>> (d / "summary.txt").read_text(), [p.name for p in d.iterdir()]
    ('42 customers', ['summary.txt'])
    >>> shutil.rmtree(d)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{target.name}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory; it replaces ``target`` (if any) on success.

    Parameters
    ----------
    target : str or Path
        The directory to write; its parent is created if needed.

    Yields
    ------
    Path
        An empty ``.tmp-*`` directory beside ``target``.  On success it is
        renamed onto ``target`` (an existing ``target`` is replaced as a
        whole); on error it is removed and ``target`` is left untouched.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_dir(d / "report") as tmp:
    ...     _ = (tmp / "index.html").write_text("<h1>October</h1>")
    >>> sorted(p.name for p in (d / "report").iterdir())
    ['index.html']
    >>> shutil.rmtree(d)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{target.name}")
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".old-{uuid.uuid4().hex[:8]}-{target.name}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"output {path} must end in .parquet or .csv")
    return suffix


def write_relation(con: duckdb.DuckDBPyConnection, query: str, path: str | Path) -> int:
    """Write the result of a DuckDB query to ``.parquet`` or ``.csv`` atomically (no pandas copy).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The connection the query runs on.
    query : str
        A ``SELECT`` query.
    path : str or Path
        The output file; its suffix (``.parquet`` or ``.csv``) chooses the
        format.  CSV files have a header row and ISO dates.

    Returns
    -------
    int
        The number of rows written.

    Raises
    ------
    ValueError
        ``path`` ends in neither ``.parquet`` nor ``.csv``.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> import duckdb
    >>> d = Path(tempfile.mkdtemp())
    >>> con = duckdb.connect()
    >>> write_relation(con, "SELECT range AS month FROM range(3)", d / "months.csv")
    3
    >>> (d / "months.csv").read_text().split()
    ['month', '0', '1', '2']
    >>> shutil.rmtree(d)
    """
    path = Path(path)
    suffix = _check_suffix(path)
    fmt = "(FORMAT parquet, COMPRESSION snappy)" if suffix == ".parquet" else "(FORMAT csv, HEADER true, DATEFORMAT '%Y-%m-%d')"
    with atomic_path(path) as tmp:
        n = con.execute(f"COPY ({query}) TO {literal(tmp)} {fmt}").fetchone()[0]
    return int(n)
