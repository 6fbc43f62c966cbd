"""Quoting for SQL built in Python: the one place identifiers and string literals are escaped.

Column names come from the bank's files and paths from the user's command
line, so neither may ever be pasted into SQL as they are: a column named
``x" FROM t; COPY (...) TO '/tmp/x'; --`` would otherwise run as SQL.  Every
module that builds DuckDB SQL from a name or a path goes through
:func:`ident` (identifiers: double quotes, embedded ones doubled) or
:func:`literal` (strings and paths: single quotes, embedded ones doubled;
DuckDB's standard strings know no backslash escapes).  Values go in as
``?`` parameters where DuckDB accepts them; ``COPY ... TO``, ``ATTACH`` and
settings take no parameters, so their paths are quoted with :func:`literal`.

This module imports nothing of the package (any module may use it).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ident", "idents", "literal"]


def ident(name: str) -> str:
    """A SQL identifier (column or table name), double-quoted with embedded quotes doubled.

    Parameters
    ----------
    name : str
        Any name, as found in the data.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        ``name`` holds a NUL character (no SQL identifier can).

    Examples
    --------
    >>> ident("branch_id")
    '"branch_id"'
    >>> ident('x" FROM t; --')
    '"x"" FROM t; --"'
    """
    name = str(name)
    if "\0" in name:
        raise ValueError(f"a SQL identifier cannot hold a NUL character: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def idents(names: Iterable[str], prefix: str = "") -> str:
    """Identifiers joined by commas, each optionally qualified (``prefix`` = ``"x."``).

    Examples
    --------
    >>> idents(["a", 'b"c'], prefix="x.")
    'x."a", x."b""c"'
    """
    return ", ".join(prefix + ident(n) for n in names)


def literal(value: str | object) -> str:
    """A SQL string literal (a value or a path), single-quoted with embedded quotes doubled.

    Parameters
    ----------
    value : str or path-like
        The text; a ``Path`` is converted with ``str``.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        ``value`` holds a NUL character.

    Examples
    --------
    >>> literal("/tmp/it's here/x.parquet")
    "'/tmp/it''s here/x.parquet'"
    """
    value = str(value)
    if "\0" in value:
        raise ValueError(f"a SQL string cannot hold a NUL character: {value!r}")
    return "'" + value.replace("'", "''") + "'"
