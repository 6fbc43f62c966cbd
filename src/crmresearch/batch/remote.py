"""Reports on a cluster whose workers share no disk with the client: what travels, and how it comes back.

A Dask worker (a Kubernetes pod, a dask-jobqueue allocation) sees none of the
client's files.  So a report task carries everything its notebook reads, as
bytes, and returns everything it writes, as bytes:

- **to the worker**: the bundle's bank-wide part (``bundle.json``, the
  results' tables, the tables every branch shares, the empty-table schemas:
  :func:`pack_bundle` with no branch, scattered once to every worker), the
  branch's own slice (:func:`pack_bundle` with the branch), the report
  notebook, and the pseudonym key (see below).  All of it is data: a tar of
  JSON and Parquet files, unpacked with :mod:`tarfile`'s ``data`` filter
  (no links out, no device files, no absolute paths) into an owner-only
  scratch folder, and opened by :func:`crmresearch.month.bundle.open_bundle`,
  which never runs code named by a file;
- **on the worker**: :func:`run_packed` unpacks, runs the very same
  :func:`crmresearch.batch.tasks.run_task` as a local worker does (warm
  kernel, timeout, HTML, PDF), into the scratch folder, and removes it;
  the font subset is cut once per worker into its own owner-only cache;
- **back to the client**: the page, the PDF, the executed notebook and the
  exact ``metrics.json``, as bytes in the result; the client publishes
  them atomically (:func:`publish_result`), writes the manifest and the
  index, so a rerun skips unchanged reports exactly as a local run does.

**The pseudonym key** travels in the task, to the worker's memory and a
0600 file in its scratch folder for the kernel, removed with it.  The run
sends it only over an encrypted connection (``tls://``, Dask's
:class:`distributed.security.Security`) or to a scheduler on this machine's
loopback (``127.0.0.1``, ``::1``, ``localhost``); any other plain ``tcp://``
scheduler is refused before anything is computed (:func:`check_key_transport`).
The alternative, pseudonymising the slices before they leave, would change
the customer IDs every analysis joins on; decided in docs/decisions.md.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crmresearch.batch.tasks import ReportTask, run_task
from crmresearch.core.errors import InputError
from crmresearch.core.io import atomic_path
from crmresearch.month.bundle import private_dir

__all__ = ["check_key_transport", "cluster_security", "pack_bundle", "publish_result", "run_packed"]

#: the parts of a bundle folder every report needs (the slices are per branch)
COMMON_PARTS = ("bundle.json", "context", "shared", "empty")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_key_transport(scheduler: str, *, tls: bool, key: bool) -> None:
    """Refuse to send the pseudonym key in clear to a scheduler off this machine.

    Parameters
    ----------
    scheduler : str
        The ``--scheduler`` address.
    tls : bool
        A TLS :class:`distributed.security.Security` is in use.
    key : bool
        The run has a pseudonym key to send.

    Raises
    ------
    InputError
        A plain ``tcp://`` scheduler that is not on the loopback, with a key.

    Examples
    --------
    >>> check_key_transport("tcp://127.0.0.1:8786", tls=False, key=True)
    >>> check_key_transport("tls://dask.bank.internal:8786", tls=True, key=True)
    """
    parts = urlsplit(scheduler if "://" in scheduler else f"tcp://{scheduler}")
    if not key or tls or parts.scheme == "tls" or (parts.hostname or "") in LOOPBACK:
        return
    raise InputError(f"--scheduler {scheduler}: the pseudonym key would travel to the workers in clear; use a "
                     "tls:// scheduler with --tls-ca, --tls-cert and --tls-key (docs/reports.md, 'Running on a "
                     "cluster')")  # fmt: skip


def cluster_security(scheduler: str | None, tls: tuple[str, str, str] | None) -> Any:
    """Dask's :class:`~distributed.security.Security` for ``--tls-ca/--tls-cert/--tls-key`` (None without TLS), checked.

    Parameters
    ----------
    scheduler : str or None
        The ``--scheduler`` address (TLS needs one, ``tls://``).
    tls : (ca, cert, key) or None
        The certificate authority, this client's certificate and its private key (PEM files).

    Returns
    -------
    distributed.security.Security or None

    Raises
    ------
    InputError
        TLS files without a ``tls://`` scheduler, a missing file, or a
        ``tls://`` scheduler without them; also a plain scheduler off this
        machine (the key would travel in clear: :func:`check_key_transport`).

    Examples
    --------
    >>> cluster_security("tcp://127.0.0.1:8786", None) is None
    True
    """
    if scheduler is None:
        if tls:
            raise InputError("--tls-ca/--tls-cert/--tls-key need --scheduler tls://HOST:PORT")
        return None
    scheme = urlsplit(scheduler if "://" in scheduler else f"tcp://{scheduler}").scheme
    if tls is None or not any(tls):
        if scheme == "tls":
            raise InputError(f"--scheduler {scheduler}: a tls:// scheduler needs --tls-ca, --tls-cert and --tls-key")
        check_key_transport(scheduler, tls=False, key=True)
        return None
    names = ("--tls-ca", "--tls-cert", "--tls-key")
    missing = [n for n, f in zip(names, tls, strict=True) if not f]
    if missing:
        raise InputError(f"TLS needs all of --tls-ca, --tls-cert and --tls-key; missing: {', '.join(missing)}")
    for n, f in zip(names, tls, strict=True):
        if not Path(f).is_file():
            raise InputError(f"{n} {f}: no such file")
    if scheme != "tls":
        raise InputError(f"--scheduler {scheduler}: with --tls-* files the address must be tls://HOST:PORT")
    from distributed.security import Security

    ca, cert, key = (str(Path(f).resolve()) for f in tls)
    return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)


def pack_bundle(bundle_path: str | Path, branch: str | None = None) -> bytes:
    """A bundle's parts as a tar: the bank-wide part (``branch=None``) or one branch's slice.

    Parameters
    ----------
    bundle_path : str or Path
        The month bundle (:func:`crmresearch.month.bundle.build_bundle`).
    branch : str, optional
        A branch: its slice of every per-customer table, under
        ``slices/<table>/<partition>/``.  None: the part every report shares.

    Returns
    -------
    bytes

    Examples
    --------
    >>> common = pack_bundle(bundle.path)  # doctest: +SKIP
    >>> b001 = pack_bundle(bundle.path, "B001")  # doctest: +SKIP
    """
    from crmresearch.month.bundle import open_bundle

    root = Path(bundle_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if branch is None:
            for part in COMMON_PARTS:
                if (root / part).exists():
                    tar.add(root / part, arcname=part)
        else:
            meta = open_bundle(root).meta
            part = f"{meta['partition_column']}={meta['partitions'][branch]}"
            for table_dir in sorted((root / "slices").iterdir()) if (root / "slices").is_dir() else []:
                if (table_dir / part).is_dir():
                    tar.add(table_dir / part, arcname=f"slices/{table_dir.name}/{part}")
    return buf.getvalue()


def _unpack(data: bytes, into: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(into, filter="data")  # no absolute paths, links out or special files


def _worker_fonts() -> str:
    """This worker's own font-subset cache (owner-only; cut once per worker, kept between reports)."""
    path = Path(tempfile.gettempdir()) / f"crmresearch-fonts-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    return str(private_dir(path, what="font cache"))


def run_packed(task: ReportTask, common: bytes, branch_slice: bytes, notebook: bytes, key: bytes | None = None,
               bundle_name: str = "") -> dict[str, Any]:  # fmt: skip
    """Run one report on a worker that shares no disk with the client; the files come back in the result.

    Parameters
    ----------
    task : ReportTask
        The task as the client planned it (its paths are the client's; they
        are replaced here by the worker's own scratch folder).
    common, branch_slice : bytes
        :func:`pack_bundle` of the bundle and of the task's branch.
    notebook : bytes
        The report notebook.
    key : bytes, optional
        The pseudonym key (over TLS or loopback only: :func:`check_key_transport`).
    bundle_name : str
        The client's bundle folder name: the notebook's ``bundle`` parameter
        naming it is pointed at the unpacked copy (any other is left as it is).

    Returns
    -------
    dict
        :func:`crmresearch.batch.tasks.run_task`'s result plus ``files``:
        ``{"html" | "pdf" | "executed" | "metrics": bytes}`` for those made.

    Examples
    --------
    >>> res = run_packed(task, common, pack_bundle(path, "B001"), nb_bytes, key)  # doctest: +SKIP
    >>> sorted(res["files"])  # doctest: +SKIP
    ['executed', 'html', 'metrics']
    """
    work = Path(tempfile.mkdtemp(prefix=f"crmresearch-{task.name}-{uuid.uuid4().hex[:6]}-"))
    try:
        os.chmod(work, 0o700)
        bundle = work / "bundle"
        bundle.mkdir(mode=0o700)
        _unpack(common, bundle)
        _unpack(branch_slice, bundle)
        for d in [bundle, *(p for p in bundle.rglob("*") if p.is_dir())]:
            os.chmod(d, 0o700)
        nb = work / "report.ipynb"
        nb.write_bytes(notebook)
        key_file = None
        if key is not None:
            key_file = work / "pseudonym.key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key)
        out = work / "out"
        parameters = dict(task.parameters)
        if Path(str(parameters.get("bundle", ""))).name == bundle_name:
            parameters["bundle"] = str(bundle)
        local = replace(task, notebook=str(nb), parameters=parameters, out_dir=str(out), scratch=str(work / "scratch"),
                        metrics=str(work / "metrics.json"), font_cache=_worker_fonts(),
                        key_file=str(key_file) if key_file else None)  # fmt: skip
        res = run_task(local)
        files = {"html": out / task.html, "pdf": out / task.pdf_file, "executed": out / task.executed,
                 "metrics": work / "metrics.json"}  # fmt: skip
        res["files"] = {k: p.read_bytes() for k, p in files.items() if p.is_file()}
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish_result(task: ReportTask, res: dict[str, Any]) -> dict[str, Any]:
    """Publish what a worker sent back, as a local worker would have (atomically; stale files removed).

    The PDF goes in just before the HTML (a rerun sees the HTML only with its
    PDF); a failed report publishes only its executed notebook and loses its
    previous HTML, PDF and metrics (they would no longer match the manifest).

    Parameters
    ----------
    task : ReportTask
        The client's task (its paths are where the files go).
    res : dict
        :func:`run_packed`'s result; its ``files`` are taken out.

    Returns
    -------
    dict
        The result without the files (what the manifest records).

    Examples
    --------
    >>> publish_result(task, res)["status"]  # doctest: +SKIP
    'done'
    """
    files = res.pop("files", None) or {}
    out = Path(task.out_dir)
    targets = {"executed": out / task.executed, "metrics": Path(task.metrics), "pdf": out / task.pdf_file,
               "html": out / task.html}  # fmt: skip
    ok = res.get("status") == "done" and "html" in files and "metrics" in files and (not task.pdf or "pdf" in files)
    if res.get("status") == "done" and not ok:
        res = {**res, "status": "failed", "pdf": False, "error": "the worker sent back an incomplete report"}
    try:
        for kind in ("executed", "metrics", "pdf", "html") if ok else ("executed",):
            if kind in files:
                with atomic_path(targets[kind]) as tmp:
                    tmp.write_bytes(files[kind])
        if ok and not task.pdf:
            targets["pdf"].unlink(missing_ok=True)
    except OSError as exc:
        res = {**res, "status": "failed", "pdf": False,
               "error": f"writing the report's files failed: {type(exc).__name__}: {exc}"}  # fmt: skip
        ok = False
    if not ok:
        for kind in ("html", "pdf", "metrics"):
            with contextlib.suppress(OSError):
                targets[kind].unlink(missing_ok=True)
    return res

