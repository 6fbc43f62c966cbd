"""Safe output: every file is written to a temporary name and renamed into place.

A reader never sees a half-written file, and a failed or killed run leaves
only complete files (plus, at worst, a ``.tmp-*`` file that the next run
overwrites).  :func:`check_output` refuses an output path that cannot be
written (a file where a folder must go, or the reverse) before any work
starts, and :func:`read_yaml` reads a user's YAML file with a one-line error
naming the file, the place and the problem.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml

from crmresearch.core.errors import InputError
from crmresearch.core.sql import literal

__all__ = ["atomic_dir", "atomic_path", "check_output", "first_undecodable", "read_yaml", "write_relation"]

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


def check_output(path: str | Path, what: str, kind: Literal["file", "dir"] = "file") -> Path:
    """Refuse an output path that cannot be written, before any work starts.

    Parameters
    ----------
    path : str or Path
        The file or folder a command is about to write.
    what : str
        How the user named it, for the message (``"--out"``, ``"key file"``).
    kind : {'file', 'dir'}
        Whether ``path`` is to be a file or a folder.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        ``path`` is a folder where a file must go (or a file where a folder
        must go), one of its parents is a file, or it does not exist and
        cannot be created (the nearest existing parent is not writable).

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "reports").write_text("not a folder")
    >>> check_output(d / "reports" / "2026-10", "--out", kind="dir")
    Traceback (most recent call last):
    ...
    crmresearch.core.errors.InputError: --out .../reports/2026-10: .../reports is a file, not a folder
    >>> check_output(d / "new" / "table.csv", "--out").name
    'table.csv'
    >>> shutil.rmtree(d)
    """
    path = Path(path)
    if kind == "dir" and path.exists() and not path.is_dir():
        raise InputError(f"{what} {path}: is a file, not a folder")
    if kind == "file" and path.is_dir():
        raise InputError(f"{what} {path}: is a folder, not a file")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"{what} {path}: {parent} is a file, not a folder")
    if not path.exists() and parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: cannot create it in {parent} (permission denied)")
    return path


def first_undecodable(path: str | Path, encoding: str = "utf-8") -> tuple[int, int] | None:
    """Where a text file first fails to decode: its line number and the offending byte.

    Parameters
    ----------
    path : str or Path
        The file.
    encoding : str
        The encoding it should be in (one where a newline is the byte
        ``\\n``, like UTF-8 or Latin-1).

    Returns
    -------
    (int, int) or None
        The 1-based line and the first byte that does not decode, or None
        when the whole file decodes.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> f = Path(tempfile.mkdtemp()) / "branches.csv"
    >>> _ = f.write_bytes(b"branch_id,branch_name\\nB001,Caf\\xe9\\n")
    >>> first_undecodable(f), first_undecodable(f, "latin-1")
    ((2, 233), None)
    >>> f.unlink(); f.parent.rmdir()
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 0
    with open(path, "rb") as f:
        for line, text in enumerate(f, 1):  # noqa: B007 - after the loop: the last line
            try:
                decoder.decode(text)
            except UnicodeDecodeError as exc:
                return line, exc.object[exc.start]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return max(line, 1), exc.object[exc.start]
    return None


def read_yaml(path: str | Path, what: str = "", error: type[InputError] = InputError) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; every problem is one line naming the file.

    Parameters
    ----------
    path : str or Path
        The file (UTF-8 text; a byte-order mark is accepted).
    what : str
        What the file is, for the message (``"parameters file"``).
    error : type
        The :class:`~crmresearch.core.errors.InputError` subclass to raise.

    Returns
    -------
    dict
        The mapping (an empty file gives ``{}``).

    Raises
    ------
    InputError
        (or ``error``) The file cannot be read, is not UTF-8, is not valid
        YAML (line and column given) or does not hold a mapping.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> f = Path(tempfile.mkdtemp()) / "params.yaml"
    >>> _ = f.write_text("windows: {complaint_days: 30")
    >>> read_yaml(f, "parameters file")
    Traceback (most recent call last):
    ...
    crmresearch.core.errors.InputError: parameters file .../params.yaml: not valid YAML at line 1, column 29: expected ',' or '}', but got '<stream end>'
    >>> _ = f.write_text("windows: {complaint_days: 30}")
    >>> read_yaml(f)
    {'windows': {'complaint_days': 30}}
    >>> f.unlink(); f.parent.rmdir()
    """
    p = Path(path)
    name = f"{what} {p}" if what else str(p)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise error(f"{name}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(f"{name}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
                    "save it as UTF-8") from None  # fmt: skip
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise error(f"{name}: not valid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise error(f"{name}: not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a single text", int: "a number", float: "a number", bool: "true/false"}
        raise error(f"{name}: must hold a mapping of keys (key: value lines), not "
                    f"{kind.get(type(data), type(data).__name__)}")  # fmt: skip
    return data


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
