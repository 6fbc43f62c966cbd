"""Input fingerprints: what a report was made from, so a rerun can skip what has not changed.

A report's fingerprint is the SHA-256 of its inputs: the source's files
(names and contents), the parameters that affect results (not the engine's
threads or memory), the notebook it was rendered from and the package
version.  The monthly run records it per report in ``manifest.json`` and
redoes a report only when it changed (or with ``--force``).  Contents are
hashed, not modification times: copying an extract does not make every
report stale, and editing one value does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from crmresearch.core.params import Params
from crmresearch.core.version import __version__

__all__ = ["file_digest", "report_fingerprint", "source_fingerprint"]

_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB chunks).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.txt"); _ = open(p, "w").write("abc")
    >>> file_digest(p)[:12]
    'ba7816bf8f01'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def source_fingerprint(source: str | Path) -> str:
    """Fingerprint of a source: a directory of table files or a DuckDB file.

    Only the files a source is read from count (``*.parquet``, ``*.csv``,
    ``*.duckdb``), by name and content; anything else in the folder (a
    README, ``truth.json``) does not.

    Examples
    --------
    >>> source_fingerprint("data/demo")[:12]  # doctest: +SKIP
    '3f1c...'
    """
    p = Path(source)
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.suffix in (".parquet", ".csv", ".duckdb"))
    if not files:
        raise FileNotFoundError(f"{p}: no table files (parquet, csv or duckdb) to fingerprint")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + file_digest(f).encode() + b"\n")
    return h.hexdigest()


def report_fingerprint(source_fp: str, params: Params, notebook: str | Path, *, scope: str,
                       month: str | None) -> str:  # fmt: skip
    """Fingerprint of one report: source, result-relevant parameters, notebook, version, scope and month.

    Examples
    --------
    >>> report_fingerprint(source_fingerprint("data/demo"), Params(), "notebooks/branch_report.ipynb",
    ...                    scope="B001", month="2026-10")  # doctest: +SKIP
    """
    settings = {k: v for k, v in params.to_dict().items() if k != "engine"}
    payload = json.dumps({"source": source_fp, "params": settings, "notebook": file_digest(notebook),
                          "version": __version__, "scope": scope, "month": month}, sort_keys=True)  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()
