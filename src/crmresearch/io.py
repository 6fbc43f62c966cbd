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

__all__ = ["atomic_dir", "atomic_path", "write_relation"]

TABLE_SUFFIXES = (".parquet", ".csv")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success."""
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
    """Yield a fresh temporary directory; it replaces ``target`` (if any) on success."""
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

    Returns the number of rows written.
    """
    path = Path(path)
    suffix = _check_suffix(path)
    fmt = "(FORMAT parquet, COMPRESSION snappy)" if suffix == ".parquet" else "(FORMAT csv, HEADER true, DATEFORMAT '%Y-%m-%d')"
    with atomic_path(path) as tmp:
        n = con.execute(f"COPY ({query}) TO '{str(tmp).replace(chr(39), chr(39) * 2)}' {fmt}").fetchone()[0]
    return int(n)
