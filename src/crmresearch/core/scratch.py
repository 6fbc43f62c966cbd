"""Private temporary folders of a process, and the sweep of those left by dead processes.

DuckDB connections spill to a folder of the process that opened them
(:func:`spill_dir`), Jupyter kernels keep their IPC sockets in another
(:func:`process_dir`).  Each is private (0700), named
``crmresearch-<kind>-<pid>-*`` and removed when its process exits;
:func:`sweep` removes those of processes that no longer exist (a kernel or a
worker that was killed).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

__all__ = ["process_dir", "spill_dir", "sweep"]

_KINDS = ("duckdb", "kernels")
_OWN = re.compile(r"crmresearch-(duckdb|kernels)-(\d+)-[A-Za-z0-9_]+")
_DIRS: dict[tuple[int, str], Path] = {}
_DIRS_LOCK = threading.Lock()
_EXIT_REGISTERED: set[int] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_own_dirs() -> None:
    pid = os.getpid()
    for key in [k for k in _DIRS if k[0] == pid]:
        shutil.rmtree(_DIRS.pop(key), ignore_errors=True)


def _register_exit() -> None:
    if os.getpid() in _EXIT_REGISTERED:
        return
    import atexit
    from multiprocessing import util

    _EXIT_REGISTERED.add(os.getpid())
    atexit.register(_remove_own_dirs)  # this process when it is a run's parent (or a kernel)
    util.Finalize(None, _remove_own_dirs, exitpriority=1)  # worker processes skip atexit: Finalize runs there


def process_dir(kind: str) -> Path:
    """This process's private (0700) temporary folder of ``kind`` (made on first use, removed at exit).

    Named ``crmresearch-<kind>-<pid>-*`` in the temporary folder
    (``$TMPDIR``), so that :func:`sweep` can tell whose it is.

    Parameters
    ----------
    kind : {"duckdb", "kernels"}

    Returns
    -------
    Path

    Examples
    --------
    >>> process_dir("duckdb").name.startswith(f"crmresearch-duckdb-{os.getpid()}-")
    True
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    key = (os.getpid(), kind)
    with _DIRS_LOCK:
        d = _DIRS.get(key)
        if d is None or not d.is_dir():
            base = tempfile.gettempdir()
            if kind == "kernels" and len(base) > 60:  # IPC socket paths must stay under ~100 characters
                base = "/tmp" if os.path.isdir("/tmp") else base
            d = _DIRS[key] = Path(tempfile.mkdtemp(prefix=f"crmresearch-{kind}-{os.getpid()}-", dir=base))
            _register_exit()
    return d


def spill_dir() -> str:
    """A folder for one DuckDB connection's ``temp_directory`` (inside this process's ``duckdb`` folder).

    The folder itself is not created: DuckDB makes it when it first spills
    and removes it when the connection closes; the process folder around it
    goes at exit (:func:`process_dir`).

    Examples
    --------
    >>> Path(spill_dir()).parent == process_dir("duckdb")
    True
    """
    return str(process_dir("duckdb") / f"c-{uuid.uuid4().hex[:12]}")


def sweep(folder: str | Path | None = None) -> list[Path]:
    """Remove the temporary folders of this user's crmresearch processes that no longer exist.

    Parameters
    ----------
    folder : str or Path, optional
        Where to look (default: the temporary folder, and ``/tmp`` where
        kernel folders go when it is deep).

    Returns
    -------
    list of Path
        The folders removed.

    Examples
    --------
    >>> sweep(tempfile.mkdtemp())
    []
    """
    bases = {Path(folder)} if folder is not None else {Path(tempfile.gettempdir()), Path("/tmp")}
    removed = []
    uid = os.getuid()
    for base in bases:
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for e in entries:
            m = _OWN.fullmatch(e.name)
            if not m or int(m.group(2)) == os.getpid():
                continue
            try:
                if not e.is_dir(follow_symlinks=False) or e.stat(follow_symlinks=False).st_uid != uid:
                    continue
            except OSError:
                continue
            if not _alive(int(m.group(2))):
                shutil.rmtree(e.path, ignore_errors=True)
                removed.append(Path(e.path))
    return removed
