"""The monthly report run (``crmresearch report``): every branch, the bank summary, the index.

One call renders a month (``reports.md``, "Output layout")::

    <out>/<month>/index.html                  every branch's KPIs, sortable, links, regional roll-up
    <out>/<month>/bank.html
    <out>/<month>/branches/<id>.html
    <out>/<month>/branches/<id>.pdf, bank.pdf        with pdf=True (``--pdf``): the pages printed by Chromium
    <out>/<month>/notebooks/<id>.ipynb, bank.ipynb   executed notebooks, kept for audit
    <out>/<month>/manifest.json               per report: status, duration, fingerprint, error; provenance
                                              (crmresearch.core.provenance: environment, digests)

(``<out>/snapshot/`` for a flat extract, which has no calendar.)

How it runs:

1. **Input guards**, before anything is written: the month (``YYYY-MM``) and
   branch IDs (:data:`BRANCH_ID`) are checked before they become paths; the
   parameters (and per-branch overrides, ``params/branches/<id>.yaml`` beside
   the parameters file) are validated; the pseudonym key must be available;
   an output folder holds one language (``--force`` to switch); the month
   must lie inside the data and the branches must exist.
2. **Bank stage**, once per month and input: :func:`crmresearch.month.bundle.build_bundle`
   writes the month bundle to the cache (outside the published tree, owner
   only; key: month, source fingerprint, parameters except the language,
   package version, code and environment digests). A rerun with the same key reuses it.
3. **Branch stage**: each report is one task (:func:`run_task`): papermill
   executes the notebook against the bundle, the executed notebook is
   rendered to one self-contained HTML file (:func:`render_html`), and the
   notebook's ``metrics.json`` (exact counts) is kept in the month bundle's
   folder in the cache (``metrics/<fingerprint>.json``), never in the
   published folder, only when the notebook succeeded; ``metrics_dir``
   copies each to ``<metrics_dir>/<month>/<id>.json`` (``bank.json``).  Tasks run in ``--workers`` local processes or on a Dask
   cluster (``--scheduler``); a failed task does not stop the others.
4. The **index** (:func:`render_index`) is written last, from every branch's
   ``metrics.json``, with the reports' small-cell suppression.

One run at a time writes a month folder (an exclusive lock, ``<month>/.lock``,
:class:`crmresearch.batch.procs.FolderLock`; a second run refuses, or waits with
``wait=True``).  Local workers and their kernels die with the run, even when
it is killed (:mod:`crmresearch.batch.procs`); kernels listen on IPC sockets, with
IPython's history off, and what a report writes to stderr is logged (status
line, ``manifest.json``, the executed notebook), never published.  Reports
of the folder that this run does not redo stay only while their fingerprint
matches these inputs; others (another source, a branch no longer in the
data, changed parameters or code) are removed with their manifest entries,
and ``manifest.json`` records the ``source_fingerprint``.

Every file is written to a temporary name and renamed into place, and work in
progress lives in a scratch folder in the cache, not in the output folder: a
run killed at any point leaves only complete files.  ``manifest.json`` is
rewritten (atomically) after each report; a rerun skips a report whose
fingerprint (source, that report's parameters, notebook, package version,
code and environment digests, scope, month, pseudonym key) is unchanged and whose files exist, and redoes
failed or stale ones (``force=True`` redoes all).

Test-only switches (environment variables read by the parent process; never
set them in production):

``CRMRESEARCH_TEST_ABORT_AFTER=n``
    The process ends with ``os._exit(3)`` right after the n-th report has
    completed (files and manifest entry written), killing its worker
    processes: a deterministic stand-in for a run killed mid-way.
``CRMRESEARCH_TEST_FAIL_BRANCH=ID``
    That branch's notebook is given a month bundle path that does not exist,
    so it fails inside the kernel as a genuine error would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from crmresearch.batch.engines import _shared_font, font_cover, render_html
from crmresearch.batch.guards import (
    ABORT_ENV,
    BRANCH_ID,
    DEFAULT_TIMEOUT,
    EXIT_ABORTED,
    FAIL_ENV,
    HIDE_TAG,
    MANIFEST_SCHEMA,
    MAX_TIMEOUT,
    NOTEBOOK_DIR,
    NOTEBOOKS,
    _check_scope,
    _known,
    check_branch_id,
    check_month,
)
from crmresearch.batch.index import render_index
from crmresearch.batch.manifest import (
    RunSummary,
    _copy_metrics,
    _digest,
    _manifest_text,
    _metrics_store,
    _read_manifest,
    _remove_published_metrics,
    _remove_reports,
    _settings,
    code_digest,
)
from crmresearch.batch.procs import FolderLock, sweep, terminate_raises
from crmresearch.batch.tasks import ReportTask, _now, _write_text, run_task
from crmresearch.batch.workers import _kill_children, _kill_workers, _Progress, _Workers
from crmresearch.core.errors import InputError
from crmresearch.core.io import check_output
from crmresearch.core.params import Params, branch_params, load_params
from crmresearch.core.provenance import environment, environment_digest, params_digest
from crmresearch.core.version import __version__
from crmresearch.data.mapping import load_source_mapping

__all__ = [
    "BRANCH_ID",
    "DEFAULT_TIMEOUT",
    "HIDE_TAG",
    "ReportTask",
    "RunSummary",
    "check_branch_id",
    "check_month",
    "code_digest",
    "render_html",
    "render_index",
    "run_report",
    "run_task",
]


def _branch_table(source) -> pd.DataFrame:
    """``branch_id, customers`` of every branch of a loaded source (the branches table when supplied)."""
    if source.has("branches"):
        q = ("SELECT b.branch_id, count(c.customer_id) AS customers FROM branches b "
             "LEFT JOIN customers c USING (branch_id) GROUP BY ALL ORDER BY b.branch_id")  # fmt: skip
    else:
        q = "SELECT branch_id, count(*) AS customers FROM customers GROUP BY ALL ORDER BY branch_id"
    out = source.sql(q)
    out["branch_id"] = out["branch_id"].astype(str)
    return out


def _clean_tmp(out_dir: Path) -> None:
    """Remove temporary files a killed run may have left in the output folder (``.tmp-*``)."""
    for d in (out_dir, out_dir / "branches", out_dir / "notebooks"):
        if d.is_dir():
            for p in d.glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _clean_scratch(work: Path, max_age_hours: float = 24) -> None:
    """Remove scratch folders of runs killed more than ``max_age_hours`` ago."""
    if not work.is_dir():
        return
    limit = time.time() - max_age_hours * 3600
    for p in work.iterdir():
        try:
            if p.stat().st_mtime < limit:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _check_limits(timeout: float | None, workers: int | None, params: Params) -> tuple[float, int]:
    """The timeout per notebook (seconds) and the number of local workers, checked."""
    timeout = float(timeout if timeout is not None else params.engine.report_timeout_seconds)
    if not 0 < timeout <= MAX_TIMEOUT:  # refuses nan and inf too
        raise InputError(f"--timeout {timeout:g}: must be a number of seconds above 0 and at most "
                         f"{MAX_TIMEOUT:g} (a day)")  # fmt: skip
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise InputError(f"--workers {workers}: must be at least 1")
    return timeout, workers


def _check_tools(pdf: bool, scheduler: str | None, tls: tuple[str, str, str] | None, retries: int) -> Any:
    """Playwright and a Chromium for ``--pdf``, and the cluster's TLS (its Security, or None): before any work."""
    if pdf:
        from crmresearch.batch.pdf import check_pdf

        check_pdf()
    if retries < 0:
        raise InputError(f"--retries {retries}: must be 0 or more")
    from crmresearch.batch.remote import cluster_security

    return cluster_security(scheduler, tls)


def _notebooks_of(notebooks: dict[str, str | Path] | None) -> dict[str, Path]:
    """The report notebooks (package data unless a test gives its own), each checked to exist."""
    nbs = {k: Path(v) for k, v in (notebooks or {k: NOTEBOOK_DIR / n for k, n in NOTEBOOKS.items()}).items()}
    for kind, nb in nbs.items():
        if not nb.is_file():
            raise InputError(f"the {kind} report notebook is missing: {nb}")
    return nbs


def _key(key_file: str | Path | None, out: str | Path) -> tuple[str | None, str]:
    """The pseudonym key's file (None: the key is in the environment) and its digest, checked outside ``out``."""
    from crmresearch.core.privacy import check_key_outside, key_path, load_key

    key_at = key_path(key_file)  # --key-file, else $CRMRESEARCH_PSEUDONYM_KEY_FILE; None: the key is in $..._KEY
    check_key_outside(key_at, Path(out))
    key = load_key(key_at)
    # the kernels find the key file through their environment, never through a notebook parameter
    return (str(key_at.resolve()) if key_at is not None else None,
            hashlib.sha256(b"crmresearch-report-key\0" + key).hexdigest())  # fmt: skip


def _check_folders(out: str | Path, out_dir: Path, cache_dir: str | Path | None,
                   metrics_dir: str | Path | None) -> Path:  # fmt: skip
    """Check the output, cache and metrics folders before any work; returns the cache folder (absolute)."""
    from crmresearch.month.bundle import default_cache_dir, private_dir

    check_output(out, "--out", kind="dir")
    check_output(out_dir, "--out", kind="dir")
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    check_output(cache, "--cache-dir", kind="dir")
    cache = cache.absolute()  # the kernels run in another folder
    out_abs, cache_abs = Path(out).resolve(), cache.resolve()
    if cache_abs == out_abs or out_abs in cache_abs.parents:
        raise InputError(f"--cache-dir {cache} is inside --out {out}: the cache holds customer-level data and "
                         "must stay outside the published reports")  # fmt: skip
    private_dir(cache, create=False)  # an existing cache others can write to is refused before any work
    if metrics_dir is not None:
        m_abs = Path(metrics_dir).expanduser().resolve()
        if m_abs == out_abs or out_abs in m_abs.parents:
            raise InputError(f"--metrics-dir {metrics_dir} is inside --out {out}: metrics.json holds exact counts, "
                             "small ones included, and must stay outside the published reports")  # fmt: skip
    return cache


def run_report(source: str | Path, *, month: str | None = None, branches: Iterable[str] | None = None,
               out: str | Path = "reports", params_path: str | Path | None = None,
               overrides: dict[str, Any] | None = None, workers: int | None = None,
               scheduler: str | None = None, force: bool = False, cache_dir: str | Path | None = None,
               timeout: float | None = None, key_file: str | Path | None = None, progress: bool = True,
               log: Callable[[str], None] | None = None, metrics_dir: str | Path | None = None, wait: bool = False,
               pdf: bool = False, tls: tuple[str, str, str] | None = None, retries: int = 1, mapping: Any = None,
               _notebooks: dict[str, str | Path] | None = None) -> RunSummary:  # fmt: skip
    """Render a month: every branch report, the bank summary and the index (the module docstring says how).

    Parameters
    ----------
    source, mapping : str or Path; str or Path, optional
        The bank's source (tables' folder, DuckDB file, flat extract, PostgreSQL URI) and its names' mapping.
    month : str, optional
        ``YYYY-MM``; required for a calendar source, None for a flat extract.
    branches : iterable of str, optional
        Only these branches (and the index); default every branch with
        customers and the bank summary.
    out : str or Path
        The published reports folder; the month's go to ``<out>/<month>/``
        (``<out>/snapshot/`` for a flat extract).
    params_path : str or Path, optional
        Parameters file; per-branch overrides are read from the
        ``branches/`` folder beside it.
    overrides : dict, optional
        Dotted parameter keys set by command-line options (``{"language": "zh"}``);
        they win over the parameters file and the per-branch files.
    workers : int, optional
        Local worker processes (default: the number of cores; 1 runs in this process).
    scheduler : str, optional
        A Dask scheduler address: run the branch reports on that cluster; its
        workers need no file of this machine (:mod:`crmresearch.batch.remote`).
    tls, retries : (ca, cert, key) PEM files of a ``tls://`` scheduler; retries of a cluster report that raised.
    force : bool
        Redo every report (and allow switching the folder's language).
    cache_dir : str or Path, optional
        Where the month bundle and scratch files go (default
        :func:`crmresearch.month.bundle.default_cache_dir`); never inside ``out``.
    timeout : float, optional
        Seconds one notebook may run (default: the parameters'
        ``engine.report_timeout_seconds``).
    key_file : str or Path, optional
        Pseudonym key file (default: ``$CRMRESEARCH_PSEUDONYM_KEY``).
    progress : bool
        Show progress on stderr.
    log : callable, optional
        Where status lines go (default: stderr).
    metrics_dir : str or Path, optional
        Also write each report's exact ``metrics.json`` to
        ``<metrics_dir>/<month>/<branch>.json``; never inside ``out``.
    wait : bool
        Wait for another run writing the same folder (default: refuse, ``RunLocked``).
    pdf : bool
        Also print each report to a PDF beside its HTML with headless Chromium
        (:mod:`crmresearch.batch.pdf`); a report done without one is redone.

    Returns
    -------
    RunSummary

    Raises
    ------
    InputError
        Bad input (month, branch, parameters, key, timeout, an ``out`` or
        ``cache_dir`` that is a file, language of the folder, a scheduler
        that does not answer within ``engine.scheduler_connect_seconds``);
        nothing is written.  Also :class:`crmresearch.batch.procs.RunLocked`:
        another run holds the folder (``wait=False``).
    KeyboardInterrupt
        Ctrl-C, or :class:`crmresearch.batch.procs.RunInterrupted` for ``SIGTERM``:
        the workers and kernels are stopped, the manifest records what finished.
    ContractError
        The source breaks the data contract.

    Examples
    --------
    >>> s = run_report("data/demo", month="2026-10", out="reports", workers=2)  # doctest: +SKIP
    >>> s.index, s.exit_code  # doctest: +SKIP
    (PosixPath('reports/2026-10/index.html'), 0)
    """
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    # ---- guards that need no data
    if month is not None:
        check_month(month)
    requested = [check_branch_id(b) for b in branches] if branches else None
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    params = load_params(params_path, overrides)
    language = params.language
    timeout, workers = _check_limits(timeout, workers, params)
    security, mapping = _check_tools(pdf, scheduler, tls, retries), load_source_mapping(mapping)
    nbs = _notebooks_of(_notebooks)
    key_file, key_digest = _key(key_file, out)
    out_dir = Path(out) / (month or "snapshot")  # month checked above; or the flat check below
    cache = _check_folders(out, out_dir, cache_dir, metrics_dir)
    # ---- one run at a time in a folder; SIGTERM and Ctrl-C stop the workers and kernels, the manifest stays
    with FolderLock(out_dir, wait=wait, say=say), terminate_raises():
        manifest = _read_manifest(out_dir / "manifest.json")
        if manifest is not None and manifest.get("language") != language and not force:
            raise InputError(f"{out_dir} holds {manifest.get('language')} reports and this run is {language}: an "
                             "output folder holds one language (use another --out, or --force to replace them)")  # fmt: skip
        sweep()  # temporary folders of killed runs and kernels

        # ---- the workers start now: their kernels import the libraries while the bank stage runs
        pool = _Workers(min(workers, len(requested)) if requested else workers, scheduler,
                        params.engine.scheduler_connect_seconds, security=security, retries=retries)  # fmt: skip
        try:
            return _run(pool, source=source, month=month, requested=requested, params=params,
                        params_path=params_path, overrides=overrides, language=language, timeout=timeout,
                        workers=workers, scheduler=scheduler, force=force, cache=cache, key_file=key_file,
                        key_digest=key_digest, out_dir=out_dir, manifest=manifest, nbs=nbs, progress=progress,
                        say=say, metrics_dir=Path(metrics_dir).expanduser() if metrics_dir is not None else None,
                        pdf=pdf, mapping=mapping)  # fmt: skip
        except BaseException:
            pool.kill()
            raise
        finally:
            pool.close()
            sweep()  # the kernels' DuckDB folders (a kernel is killed at shutdown, its exit handlers do not run)


def _run(pool: _Workers, *, source: str | Path, month: str | None, requested: list[str] | None, params: Params,
         params_path: str | Path | None, overrides: dict, language: str, timeout: float, workers: int,
         scheduler: str | None, force: bool, cache: Path, key_file: str | None, key_digest: str, out_dir: Path,
         manifest: dict | None, nbs: dict[str, Path], progress: bool, say: Callable[[str], None],
         metrics_dir: Path | None = None, pdf: bool = False, mapping: Any = None) -> RunSummary:  # fmt: skip
    """:func:`run_report` after its input guards: the bank stage, the reports and the index."""
    t0 = time.perf_counter()
    source, source_fp, shown = _fingerprinted(source, params, mapping, say)
    bundle, bundle_path, todo_branches, per_branch, reused = _month_bundle(
        source, source_fp, month, requested, params, params_path, overrides, language, cache, say, mapping)
    bank_seconds = time.perf_counter() - t0
    say(f"month bundle {'reused' if reused else 'built'} in {bank_seconds:.1f} s: {bundle_path}")
    summary = RunSummary(out_dir=out_dir, bundle=bundle_path, bank_stage_seconds=round(bank_seconds, 2),
                         bundle_reused=reused)  # fmt: skip

    # ---- the reports of this run, and which of them are up to date
    if manifest is None or manifest.get("language") != language:
        old = manifest
        manifest = {"schema": MANIFEST_SCHEMA, "reports": {}}
        if old is not None:  # --force switched the folder's language: the other language's files go
            _remove_reports(out_dir, old)
    manifest.update({"crmresearch_version": __version__, "month": month, "language": language,
                     "source": shown, "source_fingerprint": source_fp,
                     **_run_provenance(params, nbs)})  # fmt: skip
    _clean_tmp(out_dir)
    _remove_published_metrics(out_dir)
    work = cache / "work"
    _clean_scratch(work)
    scratch = work / f"{month or 'snapshot'}-{uuid.uuid4().hex[:12]}"
    generated_at = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    cover = _page_fonts(bundle, language, cache)
    font_cache = str(cache / "fonts")
    plan = _Plan(source_fp=source_fp, month=month, params=params, per_branch=per_branch, nbs=nbs,
                 key_digest=key_digest, code=code_digest(), environment=environment_digest())  # fmt: skip
    planned = plan.tasks(([] if requested else ["bank"]) + todo_branches, bundle, bundle_path, language=language,
                         generated_at=generated_at, scratch=scratch, out_dir=out_dir, timeout=timeout, cover=cover,
                         font_cache=font_cache, key_file=key_file, pdf=pdf)  # fmt: skip
    _drop_stale(planned, plan, bundle.context.branches, manifest, out_dir, say)
    todo, fps = _up_to_date(planned, manifest, out_dir, force, summary, say)
    if todo:
        where = f"the Dask cluster at {scheduler}" if scheduler else f"{min(workers, len(todo))} worker(s)"
        say(f"rendering {len(todo)} report(s) on {where} (timeout {timeout:g} s per notebook) ...")

    # ---- run, recording each report in the manifest as it completes
    branch_todo = _execute(pool, todo, fps, manifest, summary, out_dir=out_dir, scratch=scratch, work=work,
                           bundle_path=bundle_path, progress=progress, say=say)  # fmt: skip
    if todo or "interrupted" in manifest:  # a run that redid nothing leaves the manifest as it was
        manifest.pop("interrupted", None)
        manifest.update({"bank_stage_seconds": summary.bank_stage_seconds, "bundle_reused": reused,
                         "branch_stage_seconds": summary.branch_stage_seconds, "branch_stage_reports": len(branch_todo),
                         "bank_summary_seconds": summary.bank_summary_seconds if len(branch_todo) < len(todo) else None,
                         "workers": None if scheduler else min(workers, len(todo))})  # fmt: skip
        _write_text(out_dir / "manifest.json", _manifest_text(manifest))

    # ---- the index, last
    _write_index(bundle, out_dir, manifest, month, language, params, key_digest, summary, generated_at, say,
                 bundle_path=bundle_path, font_cover=cover, font_cache=font_cache)  # fmt: skip
    if metrics_dir is not None:
        _copy_metrics(bundle_path, manifest, metrics_dir / (month or "snapshot"), say)
    return summary


def _run_provenance(params: Params, nbs: dict[str, Path]) -> dict[str, Any]:
    """The run's provenance in ``manifest.json`` (beside the version and source fingerprint): Python, the
    environment (its digest, and every ``name==version``, for ``--check-environment``), the code, parameters
    and notebook digests (:mod:`crmresearch.core.provenance`)."""
    from crmresearch.core.fingerprint import file_digest

    env = environment()
    return {"python": env["python"], "environment_digest": env["environment_digest"], "code_digest": code_digest(),
            "params_digest": params_digest(params),
            "notebook_digests": {scope: file_digest(nb) for scope, nb in sorted(nbs.items())},
            "environment": env["environment"]}  # fmt: skip


def _fingerprinted(source: str | Path, params: Params, mapping: Any, say: Callable[[str], None]
                   ) -> tuple[Any, str, str]:  # fmt: skip
    """The source to load, its fingerprint and how it is shown.

    Files: the digest of their bytes (and of the mapping).  A database: it is
    read now, once, in one snapshot; its fingerprint is the digest of what was
    read, so an unchanged database skips every report (:mod:`crmresearch.data.database`).
    """
    from crmresearch.core.fingerprint import source_fingerprint
    from crmresearch.data.database import is_database, read_database

    extra = mapping.digest if mapping is not None else ""
    if is_database(source):
        read = read_database(str(source), mapping, timeout=params.engine.database_timeout_seconds)
        say(f"read {read.uri} in {read.seconds['transfer']:.1f} s: "
            + ", ".join(f"{t} ({v.num_rows:,} rows)" for t, v in read.tables.items()))  # fmt: skip
        return read, _digest(read.fingerprint, extra) if extra else read.fingerprint, read.uri
    fp = source_fingerprint(source)
    return (source, _digest(fp, extra) if extra else fp, str(Path(source).resolve()))


def _month_bundle(source: Any, source_fp: str, month: str | None, requested: list[str] | None, params: Params,
                  params_path: str | Path | None, overrides: dict, language: str, cache: Path,
                  say: Callable[[str], None], mapping: Any = None
                  ) -> tuple[Any, Path, list[str], dict[str, Params], bool]:  # fmt: skip
    """The month bundle: the cached one for these inputs, else the bank stage; with the branches to render."""
    from crmresearch.data.contract import load_source
    from crmresearch.month.bundle import BUNDLE_FILE, build_bundle, open_bundle, private_dir, prune

    # the bank stage does not depend on the language: an English and a Chinese run share the bundle
    bank_settings = {k: v for k, v in _settings(params).items() if k != "language"}
    bundle_key = f"{month or 'snapshot'}-{_digest(source_fp, bank_settings, __version__, code_digest(), environment_digest())[:16]}"
    bundle_path = cache / bundle_key
    bundle = None
    if (bundle_path / BUNDLE_FILE).is_file():
        try:
            bundle = open_bundle(bundle_path)
        except InputError:
            bundle = None
    if bundle is not None:
        meta = bundle.meta
        _check_scope(month, meta["flat"], meta["as_of"], meta["observation_start"])
        ctx_branches = bundle.context.branches
        todo_branches = _known(ctx_branches, requested)
        per_branch = _branch_overrides(params, params_path, ctx_branches, overrides, language)
        return bundle, bundle_path, todo_branches, per_branch, True
    say(f"reading and checking {source} ...")
    src = load_source(source, params, getattr(source, "mapping", None) or mapping)
    try:
        _check_scope(month, not src.can("calendar"), src.as_of, src.observation_start)
        table = _branch_table(src)
        todo_branches = _known(table, requested)
        per_branch = _branch_overrides(params, params_path, table, overrides, language)
        say(f"bank stage: computing the month bundle {bundle_key} ...")
        private_dir(cache)
        bundle = build_bundle(src, params, month=month, path=bundle_path, key=bundle_key)
    finally:
        src.close()
    os.chmod(bundle_path, 0o700)
    prune(cache, bundle_path)
    return bundle, bundle_path, todo_branches, per_branch, False


def _page_fonts(bundle: Any, language: str, cache: Path) -> str:
    """The characters every page of the run may show (one shared font subset, written to the cache)."""
    table = bundle.context.branches
    names = dict(zip(table["branch_id"].astype(str), table["branch_name"], strict=False))
    # the names a page may show from the data: branches, regions and the breakdowns' codes (reasons, segments …)
    groups = bundle.context.breakdowns
    cover = font_cover(language, [*names.values(), *(table["region"] if "region" in table else []),
                                  *(groups["group"].dropna().astype(str).unique() if groups is not None else [])])  # fmt: skip
    _shared_font(cover, str(cache / "fonts"))
    return cover


@dataclass(frozen=True)
class _Plan:
    """What each report of the run is made from (its fingerprint) and the task that makes it."""

    source_fp: str
    month: str | None
    params: Params
    per_branch: dict[str, Params]
    nbs: dict[str, Path]
    key_digest: str
    code: str
    environment: str = ""

    def params_of(self, name: str) -> Params:
        return self.params if name == "bank" else self.per_branch.get(name, self.params)

    def fingerprint(self, name: str) -> str:
        from crmresearch.core.fingerprint import report_fingerprint

        scope = "bank" if name == "bank" else "branch"
        return _digest(report_fingerprint(self.source_fp, self.params_of(name), self.nbs[scope], scope=name,
                                          month=self.month), self.key_digest, self.code, self.environment)  # fmt: skip

    def provenance(self, name: str) -> dict[str, str]:
        """What "About this report" and the report's manifest entry record besides the version and environment."""
        from crmresearch.core.fingerprint import file_digest

        return {"source_fingerprint": self.source_fp, "params_digest": params_digest(self.params_of(name)),
                "notebook_digest": file_digest(self.nbs["bank" if name == "bank" else "branch"]),
                "code_digest": self.code}  # fmt: skip

    def tasks(self, names: list[str], bundle: Any, bundle_path: Path, *, language: str, generated_at: str,
              scratch: Path, out_dir: Path, timeout: float, cover: str, font_cache: str,
              key_file: str | None, pdf: bool = False) -> list[tuple[ReportTask, str]]:  # fmt: skip
        table = bundle.context.branches
        titles = dict(zip(table["branch_id"].astype(str), table["branch_name"], strict=False))
        fail_branch = os.environ.get(FAIL_ENV)
        planned = []
        for name in names:
            scope = "bank" if name == "bank" else "branch"
            fp = self.fingerprint(name)
            parameters = {"bundle": str(bundle_path.resolve()), "language": language,
                          "params_json": json.dumps(self.params_of(name).to_dict(), sort_keys=True),
                          "generated_at": generated_at,
                          "provenance_json": json.dumps(self.provenance(name), sort_keys=True)}  # fmt: skip
            if scope == "branch":
                parameters["branch"] = name
                if fail_branch == name:  # test-only: make this notebook fail genuinely, inside the kernel
                    parameters["bundle"] = str(scratch / "no-such-bundle")
            task = ReportTask(name=name, scope=scope, notebook=str(self.nbs[scope].resolve()), parameters=parameters,
                              out_dir=str(out_dir.resolve()), scratch=str(scratch),
                              title=_title(name, titles, self.month, language), language=language, timeout=timeout,
                              metrics=str(_metrics_store(bundle_path, fp).resolve()), font_cover=cover,
                              font_cache=font_cache, key_file=key_file, pdf=pdf)  # fmt: skip
            planned.append((task, fp))
        return planned


def _drop_stale(planned: list[tuple[ReportTask, str]], plan: _Plan, table: pd.DataFrame, manifest: dict,
                out_dir: Path, say: Callable[[str], None]) -> None:  # fmt: skip
    """Reports of the folder this run does not redo stay only if they are what these inputs would make.

    Same source, parameters, notebook, code and key; others (another source, a branch no longer in it ...) go.
    """
    planned_names = {t.name for t, _ in planned}
    current = set(table.loc[table["customers"] > 0, "branch_id"].astype(str)) | {"bank"}
    stale = [n for n, e in manifest["reports"].items() if n != "index" and n not in planned_names
             and (n not in current or e.get("fingerprint") != plan.fingerprint(n))]  # fmt: skip
    if stale:
        _remove_reports(out_dir, {"reports": dict.fromkeys(stale)})
        for n in stale:
            del manifest["reports"][n]
        _write_text(out_dir / "manifest.json", _manifest_text(manifest))
        say(f"removed {len(stale)} report(s) of other inputs (another source, parameters or code, or a branch "
            "no longer in the data): " + ", ".join(stale[:20]) + (" ..." if len(stale) > 20 else ""))  # fmt: skip


def _up_to_date(planned: list[tuple[ReportTask, str]], manifest: dict, out_dir: Path, force: bool,
                summary: RunSummary, say: Callable[[str], None]) -> tuple[list[ReportTask], dict[str, str]]:  # fmt: skip
    """The tasks to run (the others are marked skipped: same inputs, files present) and every task's fingerprint.

    A run with ``--pdf`` also needs the report's PDF, made with it (the manifest entry's ``pdf``); a run without
    it keeps a PDF that matches (same fingerprint).
    """
    todo: list[ReportTask] = []
    fps = {}
    for task, fp in planned:
        fps[task.name] = fp
        entry = manifest["reports"].get(task.name)
        files = [out_dir / task.html, Path(task.metrics), out_dir / task.executed]
        if task.pdf:
            files.append(out_dir / task.pdf_file)
        if (not force and entry and entry.get("status") == "done" and entry.get("fingerprint") == fp
                and all(f.is_file() for f in files) and (entry.get("pdf") is True or not task.pdf)):  # fmt: skip
            summary.status[task.name] = "skipped"
        else:
            todo.append(task)
    skipped = [n for n, s in summary.status.items() if s == "skipped"]
    if skipped:
        say(f"skipped {len(skipped)} unchanged report(s) (same inputs, files present; --force redoes them): "
            + ", ".join(skipped[:20]) + (" ..." if len(skipped) > 20 else ""))  # fmt: skip
    return todo, fps


def _execute(pool: _Workers, todo: list[ReportTask], fps: dict[str, str], manifest: dict, summary: RunSummary, *,
             out_dir: Path, scratch: Path, work: Path, bundle_path: Path, progress: bool,
             say: Callable[[str], None]) -> list[ReportTask]:  # fmt: skip
    """Run the tasks, recording each report in the manifest as it completes; returns the branch tasks."""
    abort_after = int(os.environ.get(ABORT_ENV, "0") or 0)
    prov = {t.name: {k: v for k, v in json.loads(t.parameters["provenance_json"]).items() if k != "source_fingerprint"}
            for t in todo}  # fmt: skip
    bar = _Progress(len(todo), progress)
    done_count = 0
    t1 = time.perf_counter()

    def on_result(res: dict, executor: object) -> None:
        nonlocal done_count
        name = res["name"]
        manifest["reports"][name] = {"scope": "bank" if name == "bank" else "branch", "status": res["status"],
                                     "duration_seconds": res["duration_seconds"], "fingerprint": fps[name],
                                     "pdf": bool(res.get("pdf")), "pdf_seconds": res.get("pdf_seconds"),
                                     "package_version": __version__, "environment_digest": environment_digest(),
                                     **prov.get(name, {}), "error": res["error"],
                                     "stderr": res.get("stderr"), "started": res["started"],
                                     "finished": res["finished"]}  # fmt: skip
        _write_text(out_dir / "manifest.json", _manifest_text(manifest))
        summary.status[name] = res["status"]
        summary.durations[name] = res["duration_seconds"]
        if res["error"]:
            summary.errors[name] = res["error"]
        bar.update(res)
        if res.get("stderr"):  # logged, and kept in the executed notebook; never on the page
            say(f"{name}: the notebook wrote to stderr (in manifest.json and notebooks/{name}.ipynb, not on the "
                f"page): {res['stderr'].splitlines()[0][:300]}")  # fmt: skip
        done_count += 1
        if abort_after and done_count >= abort_after:  # test-only: a run killed mid-way
            bar.close()
            if executor is not None:
                _kill_workers(executor)
            _kill_children()
            os._exit(EXIT_ABORTED)

    # the branch reports first (their cost per report is flat), then the bank summary: its cost grows with
    # the bank (whole-bank sections), so it is a phase of its own, timed separately like the bank stage
    branch_todo = [t for t in todo if t.scope == "branch"]
    bank_todo = [t for t in todo if t.scope != "branch"]
    try:
        scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(work, 0o700)
        _metrics_store(bundle_path, "").parent.mkdir(exist_ok=True, mode=0o700)
        pool.run(branch_todo, on_result, bundle_path)
        summary.branch_stage_seconds = round(time.perf_counter() - t1, 2)
        t2 = time.perf_counter()
        pool.run(bank_todo, on_result, bundle_path)
        summary.bank_summary_seconds = round(time.perf_counter() - t2, 2)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the manifest keeps the reports that finished
        manifest["interrupted"] = {"signal": str(exc) or "SIGINT", "at": _now(),
                                   "unfinished": sorted(t.name for t in todo if t.name not in summary.status)}  # fmt: skip
        with contextlib.suppress(OSError):
            _write_text(out_dir / "manifest.json", _manifest_text(manifest))
        raise
    finally:
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return branch_todo


def _branch_overrides(params: Params, params_path: str | Path | None, branches: pd.DataFrame,
                      overrides: dict, language: str) -> dict[str, Params]:  # fmt: skip
    """Per-branch parameters (files beside the parameters file), with the command-line options re-applied."""
    folder = Path(params_path).parent / "branches" if params_path is not None else None
    per = branch_params(params, folder, branches["branch_id"].astype(str).tolist())
    out = {}
    for b, p in per.items():
        if overrides:
            p = load_params(None, overrides, base=p)
        if p.language != language:
            raise InputError(f"{folder / (b + '.yaml')}: language: an output folder holds one language "
                             f"({language}); remove the key")  # fmt: skip
        out[b] = p
    return out


def _title(name: str, names: dict, month: str | None, language: str) -> str:
    from crmresearch.viz.i18n import format_month, label

    when = format_month(month, language) if month else label("index_snapshot", language)
    if name == "bank":
        return f"{label('bank_summary_title', language)} — {when}"
    branch_name = names.get(name)
    who = f"{branch_name} ({name})" if isinstance(branch_name, str) and branch_name else name
    return f"{who} — {when}"


def _write_index(bundle, out_dir: Path, manifest: dict, month: str | None, language: str, params: Params,
                 key_digest: str, summary: RunSummary, generated_at: str, say: Callable[[str], None], *,
                 bundle_path: Path, font_cover: str = "", font_cache: str | None = None) -> None:  # fmt: skip
    from crmresearch.viz.i18n import label

    ctx = bundle.context
    rows = ctx.branches[["branch_id", "branch_name", "region", "customers"]].copy()
    rows["branch_id"] = rows["branch_id"].astype(str)
    rows = rows[rows["customers"] > 0].reset_index(drop=True)
    kpis: dict[str, dict] = {}
    digests = {}
    for b in rows["branch_id"]:
        entry = manifest["reports"].get(b, {})
        f = _metrics_store(bundle_path, str(entry.get("fingerprint")))
        if entry.get("status") == "done" and f.is_file():
            text = f.read_text(encoding="utf-8")
            digests[b] = hashlib.sha256(text.encode()).hexdigest()
            m = json.loads(text)
            k = m.get("kpis") or {}
            hv = m.get("kpis_high_value") or {}
            kpis[b] = {c: k.get(c) for c in ("active_at_start", "churned_in_month", "monthly_churn_rate",
                                             "aum_lost", "aum_drained")} | {"hv_churned": hv.get("churned_in_month")}  # fmt: skip
    rows["status"] = [("done" if b in kpis else manifest["reports"].get(b, {}).get("status", "not_run"))
                      for b in rows["branch_id"]]  # fmt: skip
    rows["status"] = rows["status"].where(rows["status"].isin(["done", "failed"]), "not_run")
    for c in ("active_at_start", "churned_in_month", "monthly_churn_rate", "aum_lost", "aum_drained", "hv_churned"):
        rows[c] = [kpis.get(b, {}).get(c) for b in rows["branch_id"]]
        rows[c] = pd.to_numeric(rows[c], errors="coerce")
    comp = ctx.kpi_comparison
    if comp is not None and len(comp):
        vs = comp[(comp["customers"] == "all") & (comp["kpi"] == "monthly_churn_rate") & (comp["against"] == "bank")]
        status = dict(zip(vs["scope"].astype(str), vs["status"].astype(str), strict=True))
        rows["vs_bank"] = [status.get(b) if b in kpis else None for b in rows["branch_id"]]
    bank_ok = manifest["reports"].get("bank", {}).get("status") == "done" and (out_dir / "bank.html").is_file()
    as_of = bundle.meta.get("as_of")
    meta = {label("index_data_as_of", language): str(as_of) if as_of else "–",
            label("index_churn_definition", language): label(f"churn_definition_{params.churn.definition}", language),
            label("index_version", language): f"crmresearch {__version__}",
            label("index_environment", language): environment_digest()}  # fmt: skip
    fp = _digest("index", __version__, code_digest(), environment_digest(), month, language, params.min_cell_size, params.churn.definition, key_digest,
                 rows[["branch_id", "branch_name", "region", "customers", "status"]].astype(str).values.tolist(),
                 digests, bank_ok, str(as_of))  # fmt: skip
    entry = manifest["reports"].get("index")
    target = out_dir / "index.html"
    if entry and entry.get("status") == "done" and entry.get("fingerprint") == fp and target.is_file():
        summary.status["index"] = "skipped"
        say("index: unchanged (skipped)")
    else:
        started, t0 = _now(), time.perf_counter()
        meta[label("index_generated", language)] = generated_at
        page = render_index(rows, month=month, language=language, min_cell=params.min_cell_size, meta=meta,
                            bank_link=bank_ok, font_cover=font_cover, font_cache=font_cache)  # fmt: skip
        _write_text(target, page)
        manifest["reports"]["index"] = {"scope": "index", "status": "done",
                                        "duration_seconds": round(time.perf_counter() - t0, 2), "fingerprint": fp,
                                        "package_version": __version__, "error": None, "started": started,
                                        "finished": _now()}  # fmt: skip
        _write_text(out_dir / "manifest.json", _manifest_text(manifest))
        summary.status["index"] = "done"
