"""The monthly report run (``crmresearch report``): every branch, the bank summary, the index.

One call renders a month (``reports.md``, "Output layout")::

    <out>/<month>/index.html                  every branch's KPIs, sortable, links, regional roll-up
    <out>/<month>/bank.html
    <out>/<month>/branches/<id>.html
    <out>/<month>/notebooks/<id>.ipynb, bank.ipynb   executed notebooks, kept for audit
    <out>/<month>/manifest.json               per report: status, duration, fingerprint, error

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
   package version and code digest). A rerun with the same key reuses it.
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
fingerprint (source, that report's parameters, notebook, package version
and code digest, scope, month, pseudonym key) is unchanged and whose files exist, and redoes
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
import html
import json
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from crmresearch.batch.procs import FolderLock, sweep, terminate_raises
from crmresearch.core.errors import InputError
from crmresearch.core.io import atomic_path, check_output
from crmresearch.core.params import Params, branch_params, load_params
from crmresearch.core.privacy import KEY_FILE_ENV
from crmresearch.core.suppression import Suppression, suppress_nested
from crmresearch.core.version import __version__

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

#: a branch ID usable as a file name: letters, digits, ``_ . -``, not starting with a dot or dash
BRANCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
#: report names that are not branches (manifest keys, ``notebooks/bank.ipynb``)
RESERVED = ("bank", "index")
#: seconds one notebook may run (``--timeout``, else ``engine.report_timeout_seconds``)
DEFAULT_TIMEOUT = 600.0
#: the longest ``--timeout`` (a day, as ``engine.report_timeout_seconds``)
MAX_TIMEOUT = 86400.0
#: cells with this tag are kept in the executed notebook but left out of the HTML page
HIDE_TAG = "hide-in-report"
MANIFEST_SCHEMA = 1
EXIT_FAILED, EXIT_ABORTED = 1, 3
#: the report notebooks, shipped as package data (crmresearch/report/notebooks)
NOTEBOOK_DIR = Path(str(resources.files("crmresearch.report") / "notebooks"))
NOTEBOOKS = {"branch": "branch_report.ipynb", "bank": "bank_report.ipynb"}
ABORT_ENV, FAIL_ENV = "CRMRESEARCH_TEST_ABORT_AFTER", "CRMRESEARCH_TEST_FAIL_BRANCH"


# --------------------------------------------------------------------------- input guards


def check_month(month: str) -> str:
    """Check a report month is ``YYYY-MM`` (before it becomes a folder name).

    Parameters
    ----------
    month : str

    Returns
    -------
    str
        ``month`` unchanged.

    Raises
    ------
    InputError
        Anything but a calendar month ``YYYY-MM``.

    Examples
    --------
    >>> check_month("2026-10")
    '2026-10'
    >>> check_month("2026-13")
    Traceback (most recent call last):
    ...
    crmresearch.core.errors.InputError: --month '2026-13': must be a calendar month YYYY-MM (e.g. 2026-10)
    """
    if not isinstance(month, str) or not _MONTH.fullmatch(month):
        raise InputError(f"--month {month!r}: must be a calendar month YYYY-MM (e.g. 2026-10)")
    return month


def check_branch_id(branch: str) -> str:
    """Check a branch ID can be used as a file name (before it becomes one).

    1 to 64 letters, digits, ``_``, ``.`` or ``-``, starting with a letter or
    digit, without ``..``; ``bank`` and ``index`` are reserved for the bank
    summary and the index page.

    Parameters
    ----------
    branch : str

    Returns
    -------
    str
        ``branch`` unchanged.

    Raises
    ------
    InputError
        The ID could escape the output folder or clash with another file.

    Examples
    --------
    >>> check_branch_id("B001")
    'B001'
    >>> check_branch_id("../x")
    Traceback (most recent call last):
    ...
    crmresearch.core.errors.InputError: branch ID '../x' cannot be used as a file name: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..'
    """
    if not isinstance(branch, str) or not BRANCH_ID.fullmatch(branch) or ".." in branch:
        raise InputError(f"branch ID {branch!r} cannot be used as a file name: use 1-64 letters, digits, "
                         "'_', '.' or '-', starting with a letter or digit, without '..'")  # fmt: skip
    if branch.lower() in RESERVED:
        raise InputError(f"branch ID {branch!r} is reserved for the {branch.lower()} page; rename the branch")
    return branch


# --------------------------------------------------------------------------- HTML


# The embedded CJK subset (fonts.font_face_css) comes first: it holds no Latin letters, so Latin
# text still falls through to the system fonts, while Chinese never depends on the browser's
# per-character fallback (headless Chromium on Linux drew whole runs as boxes when the family
# came after system-ui).
_FONT_STACK = ('"crmresearch-cjk", system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, '
               '"Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif')  # fmt: skip

STYLE = f"""
html {{ -webkit-text-size-adjust: 100%; }}
body {{ font-family: {_FONT_STACK}; color: #1f2328; background: #fff; line-height: 1.5;
        max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; font-size: 15px; }}
h1 {{ font-size: 1.7rem; margin: 0.5rem 0 0.75rem; }}
h2 {{ font-size: 1.3rem; margin: 2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 1px solid #d0d7de; }}
h3 {{ font-size: 1.1rem; margin: 1.4rem 0 0.5rem; }}
a {{ color: #0b5cad; }}
a.anchor-link {{ display: none; }}
p, li {{ max-width: 75ch; }}
img, svg {{ max-width: 100%; height: auto; }}
table {{ border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-size: 0.92rem; font-variant-numeric: tabular-nums; }}
th, td {{ border: 1px solid #d0d7de; padding: 0.3rem 0.55rem; vertical-align: top; }}
th {{ background: #f0f3f6; text-align: left; font-weight: 600; }}
td {{ text-align: right; }}
td:first-child, td.text {{ text-align: left; }}
tbody tr:nth-child(even) {{ background: #fafbfc; }}
caption {{ caption-side: top; text-align: left; font-weight: 600; padding: 0.3rem 0; }}
.output_area pre, pre {{ white-space: pre-wrap; font-size: 0.85rem; }}
.tl-better {{ color: #1a7f37; background: #dafbe1; }}
.tl-worse {{ color: #b42318; background: #ffebe9; }}
.tl-same {{ color: #57606a; background: #eaeef2; }}
.tl-na {{ color: #8c959f; background: #f6f8fa; }}
.tl-better, .tl-worse, .tl-same, .tl-na {{ border-radius: 0.3rem; padding: 0.05rem 0.35rem; }}
.note, .meta {{ color: #57606a; font-size: 0.88rem; }}
table.sortable th {{ cursor: pointer; user-select: none; }}
table.sortable th[aria-sort="ascending"]::after {{ content: " \\25B2"; }}
table.sortable th[aria-sort="descending"]::after {{ content: " \\25BC"; }}
@media print {{ body {{ max-width: none; }} a {{ color: inherit; }} }}
"""


def _page(title: str, body: str, language: str, script: str = "", font_cover: str = "",
          font_cache: str | None = None) -> str:  # fmt: skip
    """A complete, self-contained HTML page: inline CSS (and an embedded CJK font subset when needed)."""
    css = STYLE
    try:
        from crmresearch.viz.fonts import font_face_css

        css = font_face_css(title + body, cover=font_cover, cache_dir=font_cache) + "\n" + css
    except ImportError:  # pragma: no cover - fonts.py not installed yet
        pass
    lang = "zh-CN" if language == "zh" else "en"
    script = f"<script>{script}</script>\n" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n{body}\n{script}</body>\n</html>\n")  # fmt: skip


def font_cover(language: str, names: Iterable[object] = ()) -> str:
    """The characters every page of a run shares one font for: the reports' fixed texts and the given names.

    For Chinese pages, every character of the fixed texts; for English
    pages only their non-CJK ones (dashes, signs), so an English page
    embeds no Chinese it does not show.  Pages whose characters lie within
    this set share one font subset (made once per worker process).
    """
    from crmresearch.viz.fonts import report_characters

    fixed = report_characters()
    if language != "zh":
        fixed = "".join(c for c in fixed if ord(c) < 0x2E80)
    extra = {c for n in names if isinstance(n, str) for c in n if ord(c) >= 0x0250}
    return "".join(sorted(set(fixed) | extra))


_LOCAL = threading.local()


def _exporter():
    """This thread's nbconvert exporter (its templates compiled once, on first use)."""
    from nbconvert import HTMLExporter

    if getattr(_LOCAL, "exporter", None) is None:
        _LOCAL.exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                                       exclude_output_prompt=True)  # fmt: skip
    return _LOCAL.exporter


def prepare_worker() -> None:
    """Get a local worker ready before its first report: start its warm kernel, warm up the renderer.

    The kernel starts in the background (:func:`prestart_warm_kernel`);
    meanwhile nbconvert's templates are compiled on an empty notebook.  Run
    when the worker spawns, while the parent reads or builds the month bundle.

    Examples
    --------
    >>> prepare_worker()  # doctest: +SKIP
    """
    import nbformat

    prestart_warm_kernel()
    _exporter().from_notebook_node(nbformat.v4.new_notebook())


def _shared_font(cover: str, font_cache: str) -> None:
    """Cut the run's shared font subset once, before the reports (their workers read it from ``font_cache``)."""
    from crmresearch.viz.fonts import font_face_css

    font_face_css(cover, cover=cover, cache_dir=font_cache)


def render_html(executed_nb: str | Path, title: str, language: str = "en", font_cover: str = "",
                font_cache: str | None = None) -> str:  # fmt: skip
    """An executed notebook as one self-contained HTML page: outputs only, no code, no external request.

    The body comes from nbconvert's ``basic`` template (outputs and markdown,
    no code cells, no prompts, figures as embedded ``data:`` images); it is
    wrapped in a minimal page with an inline stylesheet and, when the page
    holds Chinese text, an embedded subset of the Chinese font
    (:func:`crmresearch.viz.fonts.font_face_css`).  Messages the kernel wrote to
    stderr (warnings) stay in the audit notebook, not in the page, and so do
    cells tagged ``hide-in-report`` (:data:`HIDE_TAG`: notes for the analyst
    who opens the notebook, such as how to run it).

    Parameters
    ----------
    executed_nb : str, Path or nbformat.NotebookNode
        The notebook executed by papermill (a node is changed in place).
    title : str
        The page title (escaped here).
    language : {"en", "zh"}
        The page's ``lang``.
    font_cover : str
        More characters for the embedded font (:func:`font_cover`): pages
        of a run share one font subset.
    font_cache : str, optional
        Where font subsets are kept between processes and runs
        (:func:`crmresearch.viz.fonts.font_face_css`'s ``cache_dir``).

    Returns
    -------
    str

    Examples
    --------
    >>> page = render_html("reports/2026-10/notebooks/B001.ipynb", "B001 — 2026-10")  # doctest: +SKIP
    >>> "<script src" in page  # doctest: +SKIP
    False
    """
    import nbformat

    nb = executed_nb if isinstance(executed_nb, nbformat.NotebookNode) else nbformat.read(str(executed_nb), as_version=4)
    nb.cells = [c for c in nb.cells if HIDE_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]  # fmt: skip
    body, _ = _exporter().from_notebook_node(nb)
    return _page(title, body, language, font_cover=font_cover, font_cache=font_cache)


# --------------------------------------------------------------------------- warm kernels

#: set to 1 to execute every report in a fresh kernel (the behaviour before warm kernels; slower)
FRESH_ENV = "CRMRESEARCH_FRESH_KERNELS"

# Runs once in a new warm kernel: imports the heavy libraries and records the state a report may
# change, with the function that restores it before each report (kept in sys.modules, which
# IPython's namespace reset does not touch).
_WARM_SETUP = r'''
def _crmresearch_warm_setup():
    import copy, gc, os, sys, types, warnings
    import numpy, pandas, matplotlib, matplotlib.pyplot, seaborn, lifelines, scipy.stats
    import crmresearch.report.reports, crmresearch.viz.plots, crmresearch.month.bundle, crmresearch.viz.i18n
    from IPython import get_ipython
    from pandas._config import config as pdcfg

    ip = get_ipython()

    def pd_options():
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in list(pdcfg._registered_options):
                try:
                    out[k] = copy.deepcopy(pandas.get_option(k))
                except Exception:
                    pass
        return out

    def own(name, mod):  # a module the report imported from outside the environment (its own code)
        f = getattr(mod, "__file__", None) or ""
        return not name.startswith("crmresearch") and f and not any(
            f.startswith(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})

    st = types.SimpleNamespace(rc=dict(matplotlib.rcParams), pd=pd_options(), warnings=list(warnings.filters),
                               np_err=numpy.geterr(), np_print=numpy.get_printoptions(),
                               path=list(sys.path), modules=set(sys.modules))

    def reset(cwd, environ):
        os.chdir(cwd)  # first: the previous report's folder is gone
        matplotlib.pyplot.close("all")
        ip.reset(new_session=False)
        ip.execution_count = 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matplotlib.rcParams.clear()
            matplotlib.rcParams.update(st.rc)
            for k, v in st.pd.items():
                try:
                    if pandas.get_option(k) != v:
                        pandas.set_option(k, copy.deepcopy(v))
                except Exception:
                    pass
        warnings.filters[:] = st.warnings
        warnings._filters_mutated()
        numpy.seterr(**st.np_err)
        numpy.set_printoptions(**st.np_print)
        if dict(os.environ) != environ:  # the worker's environment now, as a fresh kernel would inherit
            os.environ.clear()
            os.environ.update(environ)
        sys.path[:] = st.path
        for name in [n for n in sys.modules if n not in st.modules]:
            if own(name, sys.modules[name]):
                del sys.modules[name]
        gc.collect()

    mod = types.ModuleType("_crmresearch_warm")
    mod.reset, mod.state = reset, st
    sys.modules["_crmresearch_warm"] = mod


_crmresearch_warm_setup()
del _crmresearch_warm_setup
'''


class _WarmKernel:
    """One Jupyter kernel kept by a worker (process or thread), libraries imported, reset between reports."""

    def __init__(self) -> None:
        from jupyter_client.blocking import BlockingKernelClient
        from jupyter_core.utils import run_sync

        from crmresearch.batch.procs import KERNEL_ARGUMENTS, LocalKernelManager

        # nbclient drives the kernel with the async client this manager makes; the reset uses a blocking one.
        # IPC sockets in a private folder (no TCP), no IPython history (kernels kept warm would share it)
        self.km = LocalKernelManager(kernel_name="python3")
        run_sync(self.km.start_kernel)(extra_arguments=list(KERNEL_ARGUMENTS))
        try:
            self.kc = BlockingKernelClient()
            self.kc.load_connection_info(self.km.get_connection_info())
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=60)
            self.kc.allow_stdin = False
            self._run(_WARM_SETUP, 180)
        except BaseException:
            self.shutdown()
            raise

    def _run(self, code: str, timeout: float) -> None:
        reply = self.kc.execute_interactive(code, silent=True, store_history=False, timeout=timeout,
                                            output_hook=lambda msg: None)  # fmt: skip
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"warm kernel: {content.get('ename')}: {content.get('evalue')}")

    def reset(self, cwd: str, timeout: float, env: dict[str, str] | None = None) -> None:
        """Clear what the previous report left: namespace, figures, rcParams, pandas options, ...

        The kernel's environment becomes the worker's, plus ``env`` (the report's own variables).
        """
        env = json.dumps({**os.environ, "JPY_PARENT_PID": str(os.getpid()), **(env or {})})
        self._run(f"__import__('sys').modules['_crmresearch_warm'].reset({cwd!r}, __import__('json').loads({env!r}))",
                  timeout)  # fmt: skip

    def alive(self) -> bool:
        from jupyter_core.utils import run_sync

        try:
            return bool(run_sync(self.km.is_alive)())
        except Exception:  # noqa: BLE001
            return False

    def shutdown(self) -> None:
        from jupyter_core.utils import run_sync

        with contextlib.suppress(Exception):
            self.kc.stop_channels()
        with contextlib.suppress(Exception):
            run_sync(self.km.shutdown_kernel)(now=True)


_WARM: dict[tuple[int, int], _WarmKernel] = {}
_WARM_EXIT_REGISTERED: set[int] = set()
# kernels being started in the background (prestart_warm_kernel), by the worker that will use them;
# a start no longer wanted (the run ended first) is abandoned: its kernel is shut down once up
_PRESTART: dict[tuple[int, int], Future] = {}
_ABANDONED: set[int] = set()
_PRESTART_LOCK = threading.Lock()


def _warm_key() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


def _register_exit() -> None:
    if os.getpid() not in _WARM_EXIT_REGISTERED:  # process pool workers skip atexit: Finalize runs there
        import atexit
        from multiprocessing import util

        _WARM_EXIT_REGISTERED.add(os.getpid())
        atexit.register(shutdown_warm_kernels)
        util.Finalize(None, shutdown_warm_kernels, exitpriority=10)


def prestart_warm_kernel(key: tuple[int, int] | None = None) -> None:
    """Start the warm kernel of a worker in the background, so its start-up overlaps other work.

    The run calls it before the bank stage (for itself, or in each local
    worker process as it spawns): the kernel imports the libraries while the
    month bundle is read or built.  The worker's first report waits for it
    (or starts a kernel itself if this one failed).  No-op with
    ``CRMRESEARCH_FRESH_KERNELS=1`` or when the worker has a kernel.

    Parameters
    ----------
    key : tuple of int, optional
        The worker (process id, thread id) that will use the kernel
        (default: the calling thread).

    Examples
    --------
    >>> prestart_warm_kernel()  # doctest: +SKIP
    """
    if os.environ.get(FRESH_ENV, "") not in ("", "0"):
        return
    key = key or _warm_key()
    if key in _WARM or key in _PRESTART:
        return
    # imported here, not in the thread: a module imported by two threads at once can be seen half-made
    import jupyter_client.blocking  # noqa: F401
    import jupyter_core.utils  # noqa: F401
    import nbconvert  # noqa: F401
    import papermill  # noqa: F401
    from jupyter_client import AsyncKernelManager  # noqa: F401

    from crmresearch.batch.procs import kernel_manager_class

    kernel_manager_class()
    fut: Future = Future()

    def start() -> None:
        try:
            k = _WarmKernel()
        except BaseException as exc:  # noqa: BLE001 - the first report starts a kernel itself
            fut.set_exception(exc)
            return
        finally:  # the event loop jupyter_client's calls made for this thread: not used again
            with contextlib.suppress(Exception):
                jupyter_core.utils.ensure_event_loop().close()
        with _PRESTART_LOCK:
            abandoned = id(fut) in _ABANDONED
            _ABANDONED.discard(id(fut))
            if not abandoned:
                fut.set_result(k)
        if abandoned:
            k.shutdown()
            fut.set_exception(RuntimeError("the run ended before its warm kernel was used"))

    _PRESTART[key] = fut
    _register_exit()
    threading.Thread(target=start, name="crmresearch-warm-kernel", daemon=True).start()


def _warm_kernel() -> _WarmKernel:
    """This worker's warm kernel (the prestarted one, else started on first use; a dead one is replaced)."""
    key = _warm_key()
    k = _WARM.get(key)
    if k is not None and not k.alive():
        _drop_warm_kernel()
        k = None
    if k is None:
        fut = _PRESTART.pop(key, None)
        if fut is not None:
            with contextlib.suppress(Exception):
                k = fut.result()
        k = _WARM[key] = k if k is not None and k.alive() else _WarmKernel()
        _register_exit()
    return k


def _drop_warm_kernel() -> None:
    """Shut down this worker's warm kernel (after a failed or timed-out report: the next one starts afresh)."""
    k = _WARM.pop(_warm_key(), None)
    if k is not None:
        k.shutdown()


def shutdown_warm_kernels() -> None:
    """Shut down every warm kernel of this process (one still starting is shut down as soon as it is up)."""
    pid = os.getpid()
    for key in [k for k in _PRESTART if k[0] == pid]:
        fut = _PRESTART.pop(key)
        with _PRESTART_LOCK:
            if not fut.done():  # still starting: not waited for; shut down as soon as it is up
                _ABANDONED.add(id(fut))
                continue
        if fut.exception() is None:
            fut.result().shutdown()
    for key in [k for k in _WARM if k[0] == pid]:
        _WARM.pop(key).shutdown()


def _engine(warm: bool) -> str:
    """Register (once) the papermill engines of the reports; the name of the warm or the fresh one.

    Both write the executed notebook once, when it completes or fails
    (papermill's own engines rewrite the whole notebook, figures included,
    at the start and end of every cell: about a second per report); a
    notebook that fails or times out is still written, with what ran.  The
    warm one executes on a given warm kernel (:class:`_WarmKernel`), which
    it neither starts nor shuts down.
    """
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

    name = "crmresearch-warm" if warm else "crmresearch-fresh"
    if name in papermill_engines._engines:
        return name

    class FinalSave(NotebookExecutionManager):
        def save(self, **kwargs):
            if self.end_time is not None:  # set by notebook_complete, which runs whatever happened
                super().save(**kwargs)

    class FreshEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     kernel_env=None, **kwargs):  # fmt: skip
            from papermill.log import logger

            kwargs = {k: v for k, v in kwargs.items() if k not in ("input_path", "timeout", "startup_timeout")}
            client = PapermillNotebookClient(nb_man, timeout=execution_timeout, startup_timeout=start_timeout,
                                             kernel_name=kernel_name, log=logger, log_output=log_output,
                                             stdout_file=stdout_file, stderr_file=stderr_file, **kwargs)  # fmt: skip
            # the new kernel's environment: this process's plus the report's own variables
            return client.execute(env={**os.environ, **(kernel_env or {})})

        @classmethod
        def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                             autosave_cell_every=30, **kwargs):  # fmt: skip
            nb_man = FinalSave(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                               autosave_cell_every=autosave_cell_every)  # fmt: skip
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

    class WarmEngine(FreshEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     warm_kernel=None, **kwargs):  # fmt: skip
            from papermill.log import logger

            kwargs = {k: v for k, v in kwargs.items() if k not in ("input_path", "timeout", "startup_timeout")}
            # km given: nbclient neither starts nor shuts down the kernel
            client = PapermillNotebookClient(nb_man, km=warm_kernel.km, timeout=execution_timeout,
                                             startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                                             log_output=log_output, stdout_file=stdout_file,
                                             stderr_file=stderr_file, **kwargs)  # fmt: skip
            try:
                return client.execute()
            finally:  # the kernel stays (not ours to shut down); the client's channels go
                if client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register("crmresearch-fresh", FreshEngine)
    papermill_engines.register("crmresearch-warm", WarmEngine)
    return name


# --------------------------------------------------------------------------- one report


@dataclass(frozen=True)
class ReportTask:
    """One report to render: which notebook, with which parameters, into which files.

    Paths of outputs are relative to ``out_dir``.  Plain data, so it can be
    sent to a worker process or a Dask worker.

    Examples
    --------
    >>> t = ReportTask(name="B001", scope="branch", notebook="notebooks/branch_report.ipynb",
    ...                parameters={"branch": "B001"}, out_dir="reports/2026-10", scratch="/tmp/x",
    ...                title="B001", language="en", timeout=600, metrics="/cache/2026-10-ab/metrics/f00.json")
    >>> t.html, t.executed
    ('branches/B001.html', 'notebooks/B001.ipynb')
    """

    name: str
    scope: str  # "branch" or "bank"
    notebook: str
    parameters: dict
    out_dir: str
    scratch: str
    title: str
    language: str
    timeout: float
    metrics: str = ""  # where the exact metrics.json goes: absolute, in the cache (never the published folder)
    font_cover: str = ""  # characters for the shared font subset (:func:`font_cover`)
    font_cache: str | None = None  # where that subset is kept (made once, by the run's parent process)
    key_file: str | None = None  # the pseudonym key file: given to the kernel in its environment, never published

    @property
    def html(self) -> str:
        """The HTML report, relative to the output folder."""
        return "bank.html" if self.scope == "bank" else f"branches/{self.name}.html"

    @property
    def executed(self) -> str:
        """The executed notebook, relative to the output folder."""
        return f"notebooks/{self.name}.ipynb"


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _publish(src: Path, target: Path) -> None:
    """Copy ``src`` onto ``target`` atomically (the scratch folder may be on another file system)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)


def _write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _error_text(exc: BaseException, timeout: float) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return f"{exc.ename}: {exc.evalue}".strip()
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "CellTimeoutError":
        return f"TimeoutError: the notebook did not finish within {timeout:g} s (per-notebook timeout)"
    return f"{type(exc).__name__}: {exc}".strip()


def _stderr_text(nb) -> str | None:
    """What a notebook's cells wrote to stderr (warnings, kernel messages), or None."""
    parts = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if o.get("output_type") == "stream" and o.get("name") == "stderr"]  # fmt: skip
    text = "".join(parts).strip()
    return text[:4000] if text else None


def run_task(task: ReportTask) -> dict[str, Any]:
    """Execute one report's notebook, render its HTML and move its files into place.

    The notebook runs (papermill) on this worker's warm kernel (libraries
    imported once, state reset before each report; a failed or timed-out
    report discards it; ``CRMRESEARCH_FRESH_KERNELS=1``: a fresh kernel per
    report instead) in the task's scratch
    folder, with ``metrics_out`` pointing into it; within ``task.timeout``
    seconds for the whole notebook.  On success the executed notebook and
    the HTML page are each renamed into place, and ``metrics.json`` is
    copied to ``task.metrics`` (in the cache: exact counts are never
    published); on failure only the executed notebook (holding the error)
    is, and the report's previous HTML and ``metrics.json``, if any, are
    removed (they would no longer match the manifest).  Never raises for a notebook error.

    Parameters
    ----------
    task : ReportTask

    Returns
    -------
    dict
        ``name, status ("done" | "failed"), error (None or "ExceptionName:
        message"), stderr (what the cells wrote to stderr, None if nothing;
        kept in the executed notebook, never in the page), started,
        finished, duration_seconds``.

    Examples
    --------
    >>> run_task(task)["status"]  # doctest: +SKIP
    'done'
    """
    import papermill as pm

    from crmresearch.batch.procs import KERNEL_ARGUMENTS, kernel_manager_class

    started, t0 = _now(), time.perf_counter()
    scratch = Path(task.scratch) / f"{task.name}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True, mode=0o700)
    executed = scratch / f"{task.name}.ipynb"
    metrics_tmp = scratch / f"{task.name}.metrics.json"
    out = Path(task.out_dir)
    deadline = time.monotonic() + task.timeout
    error = None
    warm = os.environ.get(FRESH_ENV, "") in ("", "0")
    # the pseudonym key file reaches the kernel in its environment: a notebook parameter would be
    # written into the executed notebook, which is published
    kernel_env = {KEY_FILE_ENV: task.key_file} if task.key_file else {}
    try:
        try:
            # nbclient's timeout is per cell; asking for the time left at each cell makes it per notebook
            kw: dict[str, Any] = {"engine_name": _engine(False), "extra_arguments": list(KERNEL_ARGUMENTS),
                                  "kernel_manager_class": kernel_manager_class(),
                                  "kernel_env": kernel_env}  # fmt: skip
            if warm:
                kernel = _warm_kernel()
                kernel.reset(str(scratch), max(deadline - time.monotonic(), 1.0), kernel_env)
                kw = {"engine_name": _engine(True), "warm_kernel": kernel}
            pm.execute_notebook(task.notebook, str(executed), parameters={**task.parameters, "metrics_out": str(metrics_tmp)},
                                kernel_name="python3", progress_bar=False, cwd=str(scratch),
                                request_save_on_cell_execute=True, execution_timeout=task.timeout,
                                timeout_func=lambda cell: max(deadline - time.monotonic(), 0.01), **kw)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - any failure of one report is recorded, not raised
            error = _error_text(exc, task.timeout)
            if warm:  # the kernel may still be running the cell, or hold a half-done state: a new one next time
                _drop_warm_kernel()
        page = stderr = nb = None
        if executed.is_file():
            import nbformat

            with contextlib.suppress(Exception):
                nb = nbformat.read(str(executed), as_version=4)
                stderr = _stderr_text(nb)
        if error is None and not metrics_tmp.is_file():
            error = "RuntimeError: the notebook finished without writing metrics.json (metrics_out)"
        if error is None:
            try:
                page = render_html(nb if nb is not None else executed, task.title, task.language, task.font_cover,
                                   task.font_cache)  # fmt: skip
            except Exception as exc:  # noqa: BLE001
                error = f"rendering HTML failed: {type(exc).__name__}: {exc}"
        try:
            if executed.is_file():
                _publish(executed, out / task.executed)
            else:  # the kernel never ran: no notebook of this run to keep, and an older one would mislead
                (out / task.executed).unlink(missing_ok=True)
            if error is None:
                _publish(metrics_tmp, Path(task.metrics))
                _write_text(out / task.html, page)
        except OSError as exc:
            error = f"writing the report's files failed: {type(exc).__name__}: {exc}"
        if error is not None:
            for stale in (out / task.html, Path(task.metrics)):
                with contextlib.suppress(OSError):
                    stale.unlink(missing_ok=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    finished = _now()
    return {"name": task.name, "status": "done" if error is None else "failed", "error": error,
            "stderr": stderr, "started": started, "finished": finished,
            "duration_seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip


# --------------------------------------------------------------------------- index page

_SORT_SCRIPT = """
(function () {
  function key(td) {
    var v = td.getAttribute("data-sort");
    if (v === null) v = td.textContent.trim();
    if (v === "") return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      th.setAttribute("tabindex", "0");
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[i]), y = key(b.cells[i]);
          if (x === null || y === null) return (x === null) - (y === null);  // empty last
          var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") th.click(); });
    });
  });
})();
"""


def _cell(text: str, sort: object = None, cls: str = "") -> str:
    attrs = f' class="{cls}"' if cls else ""
    if sort is not None:
        attrs += f' data-sort="{html.escape(str(sort), quote=True)}"'
    return f"<td{attrs}>{text}</td>"


def _hide(table: pd.DataFrame, count: str, derived: list[str], mask: Suppression, min_cell: int,
          by: str | None = None) -> Suppression:  # fmt: skip
    """``mask`` with the cells of ``count`` (and ``derived``) that suppression hides, within each ``by`` group."""
    from crmresearch.core.suppression import suppress_counts

    groups = [table.index] if by is None else [g.index for _, g in table.groupby(by, dropna=False, sort=False)]
    for idx in groups:
        part = Suppression(mask.hidden.loc[idx], mask.small.loc[idx])
        part = suppress_counts(table.loc[idx], count, min_cell=min_cell, derived=derived, total_shown=True, prior=part)
        hidden, small = mask.hidden.copy(), mask.small.copy()
        hidden.loc[idx, part.hidden.columns] = part.hidden
        small.loc[idx, part.small.columns] = part.small
        mask = Suppression(hidden.fillna(False).astype(bool), small.fillna(False).astype(bool))
    return mask


def _fmt(value: object, kind: str, language: str, hidden: bool, small: bool, min_cell: int) -> tuple[str, object]:
    """Display text and sort key of one cell (hidden cells, from the mask, show words and sort last)."""
    from crmresearch.viz.i18n import format_amount, format_count, format_percent, label

    if hidden:
        return html.escape(label("fewer_than", language, n=min_cell) if small else label("suppressed", language)), ""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–", ""
    f = {"count": format_count, "percent": format_percent, "amount": format_amount}[kind]
    return html.escape(f(float(value), language)), value


def render_index(rows: pd.DataFrame, *, month: str | None, language: str, min_cell: int,
                 meta: dict[str, str], bank_link: bool, font_cover: str = "",
                 font_cache: str | None = None) -> str:  # fmt: skip
    """The index page: every branch's KPIs (sortable, linked), the regional roll-up, a link to the bank summary.

    Counts below ``min_cell`` read "fewer than N" (with their rate and
    amounts), and a second cell is hidden where a shown total (a region's,
    the bank's) would give one away (:func:`crmresearch.core.suppression.suppress_counts`,
    applied within each region for branches and across regions for the
    roll-up).  Every text from the data is HTML-escaped; the page is
    self-contained (inline CSS, inline sorting script, no external request).

    Parameters
    ----------
    rows : DataFrame
        One row per branch: ``branch_id, branch_name, region, customers,
        status`` (``done``, ``failed``, ``not_run``) and the KPIs
        ``active_at_start, churned_in_month, monthly_churn_rate, aum_lost,
        aum_drained, hv_churned`` (NaN where unknown).
    month : str or None
        ``YYYY-MM``; None for a flat extract.
    language : {"en", "zh"}
    min_cell : int
        The minimum cell size.
    meta : dict
        Lines shown under the title (label -> value), e.g. data as-of.
    bank_link : bool
        Link ``bank.html``.

    Returns
    -------
    str

    Examples
    --------
    >>> rows = pd.DataFrame({"branch_id": ["B001"], "branch_name": ["<b>North</b>"], "region": ["N"],
    ...                      "customers": [300], "status": ["done"], "active_at_start": [120],
    ...                      "churned_in_month": [4], "monthly_churn_rate": [4 / 120], "aum_lost": [1e5],
    ...                      "aum_drained": [2e5], "hv_churned": [0]})
    >>> page = render_index(rows, month="2026-10", language="en", min_cell=10, meta={}, bank_link=True)
    >>> "&lt;b&gt;North&lt;/b&gt;" in page, "fewer than 10" in page, "<script src" in page
    (True, True, False)
    """
    from crmresearch.viz.i18n import format_month, label

    def L(key: str, **kw: object) -> str:  # noqa: N802
        return html.escape(label(key, language, **kw))

    rows = rows.reset_index(drop=True).copy()
    kpi_cols = ["active_at_start", "churned_in_month", "monthly_churn_rate", "aum_lost", "aum_drained", "hv_churned"]
    for c in kpi_cols:
        if c not in rows:
            rows[c] = float("nan")
    rows["region"] = rows["region"].where(rows["region"].notna(), None)
    # regional roll-up: sums over the branches of each region (customers from the bank stage)
    reg = rows.assign(region=rows["region"].fillna(label("not_recorded", language)))
    have = reg["status"].eq("done") & reg["active_at_start"].notna()
    agg = reg.groupby("region", sort=True).agg(branches=("branch_id", "size"), customers=("customers", "sum"))
    kp = reg[have].groupby("region").agg(reported=("branch_id", "size"), active_at_start=("active_at_start", "sum"),
                                         churned_in_month=("churned_in_month", "sum"))  # fmt: skip
    agg = agg.join(kp).reset_index()
    complete = agg["reported"].fillna(0).eq(agg["branches"])
    agg.loc[~complete, ["active_at_start", "churned_in_month"]] = float("nan")  # a partial sum would mislead
    agg["monthly_churn_rate"] = agg["churned_in_month"] / agg["active_at_start"].where(agg["active_at_start"] > 0)
    rcols = ["customers", "active_at_start", "churned_in_month", "monthly_churn_rate"] if month else ["customers"]
    # each region's branches add up to its roll-up row, and the regions to the bank: both tables at once
    # (a hidden branch is not given back by its region, nor a hidden region by its branches)
    rows["_region"] = reg["region"]
    hidden, rhidden = Suppression.none(rows), Suppression.none(agg)
    linked = [("customers", [], [])]
    if month is not None:
        linked += [("active_at_start", ["churned_in_month", "monthly_churn_rate", "aum_lost", "aum_drained"],
                    ["churned_in_month", "monthly_churn_rate"]),
                   ("churned_in_month", ["monthly_churn_rate", "aum_lost", "aum_drained"], ["monthly_churn_rate"])]  # fmt: skip
    for count, derived, rderived in linked:
        hidden, rhidden = suppress_nested(rows, agg.rename(columns={"region": "_region"}), count, by="_region",
                                          min_cell=min_cell, derived=derived, totals_derived=rderived,
                                          prior=(hidden, rhidden))  # fmt: skip
    hidden = _hide(rows, "hv_churned", [], hidden, min_cell, by="_region")
    when = format_month(month, language) if month else L("index_snapshot")
    title = f"{label('index_title', language)} — {when}"
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if meta:
        sep = "：" if language == "zh" else ": "
        parts.append('<p class="meta">' + "<br>".join(f"{html.escape(k)}{sep}{html.escape(str(v))}"
                                                    for k, v in meta.items()) + "</p>")  # fmt: skip
    if bank_link:
        parts.append(f'<p><a href="bank.html">{L("index_bank_link")}</a></p>')
    if month is None:
        parts.append(f'<p class="note">{L("index_no_kpis_flat")}</p>')

    # a flat extract has no month: its branches show their customers instead of monthly KPIs
    shown = kpi_cols if month is not None else ["customers"]
    kinds = {"customers": "count", "active_at_start": "count", "churned_in_month": "count", "monthly_churn_rate": "percent",
             "aum_lost": "amount", "aum_drained": "amount", "hv_churned": "count"}  # fmt: skip
    heads = ["index_branch_id", "index_branch_name", "index_region",
             *({"customers": "index_customers_extract", "hv_churned": "index_hv_churned"}.get(c, c) for c in shown),
             "index_status"]  # fmt: skip
    parts.append(f"<h2>{L('index_branches')}</h2>")
    parts.append(f'<p class="note">{L("index_sort_hint")}</p>')
    parts.append('<table class="sortable" id="branches"><thead><tr>'
                 + "".join(f'<th scope="col">{L(h)}</th>' for h in heads) + "</tr></thead><tbody>")  # fmt: skip
    for i, r in rows.iterrows():
        bid = html.escape(str(r["branch_id"]))
        link = (f'<a href="branches/{html.escape(str(r["branch_id"]), quote=True)}.html">{bid}</a>'
                if r["status"] == "done" else bid)  # fmt: skip
        cells = [_cell(link, r["branch_id"], "text"),
                 _cell(html.escape(str(r["branch_name"] if pd.notna(r["branch_name"]) else "")), None, "text"),
                 _cell(html.escape(str(r["region"] or "")), None, "text")]  # fmt: skip
        for c in shown:
            text, key = _fmt(r[c], kinds[c], language, hidden.is_hidden(i, c), hidden.is_small(i, c), min_cell)
            cells.append(_cell(text, key))
        status = r["status"]
        cls = {"done": "tl-same", "failed": "tl-worse"}.get(status, "tl-na")
        cells.append(_cell(f'<span class="{cls}">{L("status_" + status)}</span>', status, "text"))
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")

    rkinds = {"customers": "count", "active_at_start": "count", "churned_in_month": "count",
              "monthly_churn_rate": "percent"}  # fmt: skip
    parts.append(f"<h2>{L('index_regions')}</h2>")
    rheads = ["index_region", "index_branches_count", "index_customers_extract", "active_at_start",
              "churned_in_month", "monthly_churn_rate"][:2 + len(rcols)]  # fmt: skip
    parts.append('<table class="sortable" id="regions"><thead><tr>'
                 + "".join(f'<th scope="col">{L(h)}</th>' for h in rheads) + "</tr></thead><tbody>")  # fmt: skip
    for i, r in agg.iterrows():
        cells = [_cell(html.escape(str(r["region"])), None, "text"), _cell(str(int(r["branches"])), int(r["branches"]))]
        for c in rcols:
            text, key = _fmt(r[c], rkinds[c], language, rhidden.is_hidden(i, c), rhidden.is_small(i, c), min_cell)
            cells.append(_cell(text, key))
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    if month is not None and not complete.all():
        parts.append(f'<p class="note">{L("index_partial_regions")}</p>')
    parts.append(f'<p class="note">{L("index_suppression_note", n=min_cell)}</p>')
    return _page(title, "\n".join(parts), language, script=_SORT_SCRIPT, font_cover=font_cover, font_cache=font_cache)


# --------------------------------------------------------------------------- the run


@dataclass
class RunSummary:
    """What a run did: per report ``done``, ``failed`` or ``skipped``, with errors and timings.

    Examples
    --------
    >>> s = RunSummary(out_dir=Path("reports/2026-10"), bundle=Path("/tmp/b"), bank_stage_seconds=3.2)
    >>> s.exit_code, s.index
    (0, PosixPath('reports/2026-10/index.html'))
    """

    out_dir: Path
    bundle: Path
    bank_stage_seconds: float
    bundle_reused: bool = False
    status: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    branch_stage_seconds: float = 0.0
    bank_summary_seconds: float = 0.0

    @property
    def index(self) -> Path:
        """The index page."""
        return self.out_dir / "index.html"

    @property
    def exit_code(self) -> int:
        """0 when no report failed, else 1."""
        return EXIT_FAILED if self.errors else 0


def _read_manifest(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("reports"), dict) else None


def _manifest_text(manifest: dict) -> str:
    reports = manifest["reports"]
    order = ["bank", *sorted(k for k in reports if k not in RESERVED), "index"]
    head = {k: manifest[k] for k in ("schema", "crmresearch_version", "month", "language", "source") if k in manifest}
    manifest = {**head, **manifest, "reports": {k: reports[k] for k in order if k in reports}}
    return json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def code_digest() -> str:
    """SHA-256 of the package's code (every ``.py`` file, notebook and template of :mod:`crmresearch`, by name and content).

    Part of every report's fingerprint beside the package version: while a
    version is being developed its number stays the same, and a fix to the
    analyses or the rendering must still redo the reports it changes.

    Examples
    --------
    >>> len(code_digest())
    64
    """
    from crmresearch.core.fingerprint import file_digest

    here = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(f for f in here.rglob("*") if f.suffix in (".py", ".ipynb", ".j2") and f.is_file()):
        h.update(str(f.relative_to(here)).encode() + b"\0" + file_digest(f).encode() + b"\n")
    return h.hexdigest()


def _settings(params: Params) -> dict:
    return {k: v for k, v in params.to_dict().items() if k != "engine"}


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


def _check_scope(month: str | None, flat: bool, as_of: dt.date | None, start: dt.date | None) -> None:
    from crmresearch.core.calendar import month_bounds

    if flat:
        if month is not None:
            raise InputError(f"--month {month}: this source is a flat extract (no calendar); omit --month "
                             "(its reports go to <out>/snapshot/)")  # fmt: skip
        return
    if month is None:
        raise InputError(f"--month is required for this source (it has a calendar: months {start:%Y-%m} "
                         f"to {as_of:%Y-%m})")  # fmt: skip
    _, last = month_bounds(month)
    if last > as_of or last < start:
        raise InputError(f"--month {month} is outside the data: it covers months {start:%Y-%m} to {as_of:%Y-%m} "
                         f"(a month must have closed by the as-of date {as_of})")  # fmt: skip


def _known(branches: pd.DataFrame, requested: list[str] | None) -> list[str]:
    """The branches to render: the requested ones (each must exist and have customers), else all with customers."""
    ids = branches["branch_id"].tolist()
    with_customers = branches.loc[branches["customers"] > 0, "branch_id"].tolist()
    if requested:
        listing = ", ".join(ids[:20]) + (" ..." if len(ids) > 20 else "")
        for b in requested:
            if b not in ids:
                raise InputError(f"unknown branch {b!r}; known: {listing}")
            if b not in with_customers:
                raise InputError(f"branch {b!r} has no customers in this source; nothing to report")
        return list(dict.fromkeys(requested))
    for b in with_customers:  # they become file names
        try:
            check_branch_id(b)
        except InputError as exc:
            raise InputError(f"the source's {exc}") from None
    return with_customers


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


class _Progress:
    """A tqdm bar on a terminal; plain ``[k/n] name done in s`` lines otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.n, self.enabled = total, 0, enabled and total > 0
        self.tty = sys.stderr.isatty()
        self.bar = None
        if self.enabled and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="report", file=sys.stderr, dynamic_ncols=True)

    def update(self, res: dict) -> None:
        self.n += 1
        if not self.enabled:
            return
        what = "done" if res["status"] == "done" else "FAILED"
        line = f"[{self.n}/{self.total}] {res['name']} {what} in {res['duration_seconds']:.1f} s"
        if res["error"]:
            line += f": {res['error'].splitlines()[0][:300]}"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{res['name']} {what}", refresh=False)
            self.bar.update(1)
            if res["error"]:
                self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _kill_workers(executor: object) -> None:
    """Kill a process pool's workers and their children (the kernels), by process id."""
    import psutil

    for proc in list(getattr(executor, "_processes", {}).values() or []):
        try:
            p = psutil.Process(proc.pid)
            for child in p.children(recursive=True):
                child.kill()
            p.kill()
        except psutil.Error:
            pass


def _kill_warm_kernels() -> None:
    """Kill this process's warm kernels at once (the test-only abort: no orderly shutdown)."""
    import signal

    starting = [f.result() for f in _PRESTART.values() if f.done() and f.exception() is None]
    for k in [*_WARM.values(), *starting]:
        pid = getattr(k.km.provisioner, "pid", None)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _init_worker(parent_pid: int) -> None:
    """A local worker process as it spawns: it dies with the run (:func:`crmresearch.batch.procs.init_worker`), then gets ready."""
    from crmresearch.batch.procs import init_worker

    init_worker(parent_pid, on_orphan=_kill_warm_kernels)
    prepare_worker()


def _noop() -> None:
    """A task that makes a process pool spawn a worker (its initializer starts the warm kernel)."""


class _Workers:
    """Where a run's reports execute: this process, a local process pool or a Dask cluster.

    Local workers (and their warm kernels) are started when the run begins,
    before the bank stage, so that their start-up (importing the libraries in
    each kernel) overlaps reading or building the month bundle.
    """

    def __init__(self, workers: int, scheduler: str | None, connect_seconds: float = 30) -> None:
        self.workers, self.scheduler, self.executor, self.client = workers, scheduler, None, None
        if scheduler:
            self.client = _connect_scheduler(scheduler, connect_seconds)
            return
        if workers <= 1:
            prepare_worker()
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the parent holds DuckDB and BLAS threads, which forked children must not inherit
        # each worker dies with this process and leads a process group that holds its kernels
        self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=(os.getpid(),))  # fmt: skip
        for _ in range(workers):  # one at a time while none is idle: every worker spawns now
            self.executor.submit(_noop)

    def run(self, tasks: list[ReportTask], on_result: Callable[[dict, object], None]) -> None:
        """Run ``tasks``, calling ``on_result`` per report as each completes."""
        if not tasks:
            return
        if self.client is not None:
            from distributed import as_completed as dask_completed

            tag = uuid.uuid4().hex[:8]
            futures = {self.client.submit(run_task, t, key=f"crmresearch-report-{t.name}-{tag}", pure=False): t
                       for t in tasks}  # fmt: skip
            for fut in dask_completed(futures):
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker fails that report only
                    res = _lost(futures[fut], exc)
                on_result(res, None)
            return
        if self.executor is None:
            for t in tasks:
                on_result(run_task(t), None)
            return
        from concurrent.futures import FIRST_COMPLETED, wait

        from crmresearch.batch.procs import raise_pending, signals_deferred

        # SIGTERM / Ctrl-C are held while waiting and recording (raised inside concurrent.futures, they could
        # leave one of its locks held and the shutdown hanging), and raised between results
        with signals_deferred():
            futures = {self.executor.submit(run_task, t): t for t in tasks}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a crashed worker fails that report only
                        res = _lost(futures[fut], exc)
                    on_result(res, self.executor)
                raise_pending()

    def close(self) -> None:
        """Stop the workers and their kernels (or leave the Dask cluster)."""
        if self.client is not None:
            self.client.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        shutdown_warm_kernels()

    def kill(self) -> None:
        """Stop the workers and their kernels now, without waiting for running reports (the run was interrupted)."""
        from crmresearch.batch.procs import signals_deferred, stop_group

        with signals_deferred(raise_after=False):  # a second Ctrl-C does not stop the stopping
            if self.executor is not None:
                stop_group([p.pid for p in list(getattr(self.executor, "_processes", {}).values() or [])])
                self.executor.shutdown(wait=True, cancel_futures=True)
            _kill_warm_kernels()
            shutdown_warm_kernels()


def _connect_scheduler(address: str, seconds: float) -> Any:
    """A Dask client of the scheduler at ``address``, or an InputError when none answers within ``seconds``.

    A bare connection is tried first (in a thread of its own, so it works
    under a running event loop, as in Jupyter): a ``Client`` that fails to
    connect prints a second traceback when it is garbage-collected.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed import Client
    from distributed.comm import connect

    async def probe() -> None:
        comm = await connect(address, timeout=seconds)
        await comm.close()

    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, probe()).result()
        return Client(address, timeout=seconds)
    except ValueError as exc:  # not an address: no scheme or port, unknown scheme
        raise InputError(f"--scheduler {address}: not a Dask scheduler address ({exc}); e.g. tcp://host:8786") from None
    except OSError:
        raise InputError(f"--scheduler {address}: no Dask scheduler answered within {seconds:g} s "
                         "(engine.scheduler_connect_seconds); is it running, and is the address right?") from None  # fmt: skip


def _lost(task: ReportTask, exc: BaseException) -> dict:
    now = _now()
    return {"name": task.name, "status": "failed", "error": f"{type(exc).__name__}: {exc} (worker lost)",
            "started": now, "finished": now, "duration_seconds": 0.0}  # fmt: skip


def run_report(source: str | Path, *, month: str | None = None, branches: Iterable[str] | None = None,
               out: str | Path = "reports", params_path: str | Path | None = None,
               overrides: dict[str, Any] | None = None, workers: int | None = None,
               scheduler: str | None = None, force: bool = False, cache_dir: str | Path | None = None,
               timeout: float | None = None, key_file: str | Path | None = None, progress: bool = True,
               log: Callable[[str], None] | None = None, metrics_dir: str | Path | None = None, wait: bool = False,
               _notebooks: dict[str, str | Path] | None = None) -> RunSummary:  # fmt: skip
    """Render a month: every branch report, the bank summary and the index (the module docstring says how).

    Parameters
    ----------
    source : str or Path
        The bank's source (a folder of tables or a DuckDB file).
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
        A Dask scheduler address: run the reports on that cluster instead.
        Its workers need this package and the notebooks' kernel
        (``python3``), the cache and output folders on a file system they
        share (same paths), and the pseudonym key (the same key file path,
        or ``$CRMRESEARCH_PSEUDONYM_KEY`` in their environment).
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
        Also write each report's exact ``metrics.json`` (done or unchanged)
        to ``<metrics_dir>/<month>/<branch>.json`` and ``bank.json``; never
        inside ``out`` (the published folder holds no exact counts).
    wait : bool
        When another run is writing the same output folder, wait for it to
        end (default: refuse at once, :class:`crmresearch.batch.procs.RunLocked`).

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
        Ctrl-C, or :class:`crmresearch.batch.procs.RunInterrupted` for ``SIGTERM``
        (in the main thread): the workers and kernels are stopped, the
        manifest records the reports that finished.
    ContractError
        The source breaks the data contract.

    Examples
    --------
    >>> s = run_report("data/demo", month="2026-10", out="reports", workers=2)  # doctest: +SKIP
    >>> s.index, s.exit_code  # doctest: +SKIP
    (PosixPath('reports/2026-10/index.html'), 0)
    """
    from crmresearch.core.privacy import check_key_outside, key_path, load_key
    from crmresearch.month.bundle import default_cache_dir, private_dir

    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    # ---- guards that need no data
    if month is not None:
        check_month(month)
    requested = [check_branch_id(b) for b in branches] if branches else None
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    params = load_params(params_path, overrides)
    language = params.language
    timeout = float(timeout if timeout is not None else params.engine.report_timeout_seconds)
    if not 0 < timeout <= MAX_TIMEOUT:  # refuses nan and inf too
        raise InputError(f"--timeout {timeout:g}: must be a number of seconds above 0 and at most "
                         f"{MAX_TIMEOUT:g} (a day)")  # fmt: skip
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise InputError(f"--workers {workers}: must be at least 1")
    nbs = {k: Path(v) for k, v in (_notebooks or {k: NOTEBOOK_DIR / n for k, n in NOTEBOOKS.items()}).items()}
    for kind, nb in nbs.items():
        if not nb.is_file():
            raise InputError(f"the {kind} report notebook is missing: {nb}")
    key_at = key_path(key_file)  # --key-file, else $CRMRESEARCH_PSEUDONYM_KEY_FILE; None: the key is in $..._KEY
    check_key_outside(key_at, Path(out))
    key = load_key(key_at)
    # the kernels find the key file through their environment, never through a notebook parameter
    key_file = str(key_at.resolve()) if key_at is not None else None
    key_digest = hashlib.sha256(b"crmresearch-report-key\0" + key).hexdigest()
    out_dir = Path(out) / (month or "snapshot")  # month checked above; or the flat check below
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
    # ---- one run at a time in a folder; SIGTERM and Ctrl-C stop the workers and kernels, the manifest stays
    with FolderLock(out_dir, wait=wait, say=say), terminate_raises():
        manifest = _read_manifest(out_dir / "manifest.json")
        if manifest is not None and manifest.get("language") != language and not force:
            raise InputError(f"{out_dir} holds {manifest.get('language')} reports and this run is {language}: an "
                             "output folder holds one language (use another --out, or --force to replace them)")  # fmt: skip
        sweep()  # temporary folders of killed runs and kernels

        # ---- the workers start now: their kernels import the libraries while the bank stage runs
        pool = _Workers(min(workers, len(requested)) if requested else workers, scheduler,
                        params.engine.scheduler_connect_seconds)  # fmt: skip
        try:
            return _run(pool, source=source, month=month, requested=requested, params=params,
                        params_path=params_path, overrides=overrides, language=language, timeout=timeout,
                        workers=workers, scheduler=scheduler, force=force, cache=cache, key_file=key_file,
                        key_digest=key_digest, out_dir=out_dir, manifest=manifest, nbs=nbs, progress=progress,
                        say=say, metrics_dir=Path(metrics_dir).expanduser() if metrics_dir is not None else None)  # fmt: skip
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
         metrics_dir: Path | None = None) -> RunSummary:  # fmt: skip
    """:func:`run_report` after its input guards: the bank stage, the reports and the index."""
    from crmresearch.core.fingerprint import report_fingerprint, source_fingerprint
    from crmresearch.data.contract import load_source
    from crmresearch.month.bundle import BUNDLE_FILE, build_bundle, open_bundle, private_dir, prune

    # ---- the month bundle: reuse the cached one for these inputs, else run the bank stage
    t0 = time.perf_counter()
    source_fp = source_fingerprint(source)
    # the bank stage does not depend on the language: an English and a Chinese run share the bundle
    bank_settings = {k: v for k, v in _settings(params).items() if k != "language"}
    bundle_key = f"{month or 'snapshot'}-{_digest(source_fp, bank_settings, __version__, code_digest())[:16]}"
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
        reused = True
    else:
        say(f"reading and checking {source} ...")
        src = load_source(source, params)
        try:
            _check_scope(month, src.flat, src.as_of, src.observation_start)
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
        reused = False
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
                     "source": str(Path(source).resolve()), "source_fingerprint": source_fp})  # fmt: skip
    _clean_tmp(out_dir)
    _remove_published_metrics(out_dir)
    work = cache / "work"
    _clean_scratch(work)
    scratch = work / f"{month or 'snapshot'}-{uuid.uuid4().hex[:12]}"
    names = dict(zip(bundle.context.branches["branch_id"].astype(str), bundle.context.branches["branch_name"], strict=False))
    generated_at = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    fail_branch = os.environ.get(FAIL_ENV)
    code = code_digest()
    table = bundle.context.branches
    # the names a page may show from the data: branches, regions and the breakdowns' codes (reasons, segments …)
    groups = bundle.context.breakdowns
    cover = font_cover(language, [*names.values(), *(table["region"] if "region" in table else []),
                                  *(groups["group"].dropna().astype(str).unique() if groups is not None else [])])  # fmt: skip
    font_cache = str(cache / "fonts")
    _shared_font(cover, font_cache)
    planned: list[tuple[ReportTask, str]] = []

    def fingerprint(name: str) -> str:
        scope = "bank" if name == "bank" else "branch"
        p = per_branch.get(name, params) if scope == "branch" else params
        return _digest(report_fingerprint(source_fp, p, nbs[scope], scope=name, month=month), key_digest, code)

    for name in ([] if requested else ["bank"]) + todo_branches:
        scope = "bank" if name == "bank" else "branch"
        p = per_branch.get(name, params) if scope == "branch" else params
        fp = fingerprint(name)
        parameters = {"bundle": str(bundle_path.resolve()), "language": language,
                      "params_json": json.dumps(p.to_dict(), sort_keys=True),
                      "generated_at": generated_at}  # fmt: skip
        if scope == "branch":
            parameters["branch"] = name
            if fail_branch == name:  # test-only: make this notebook fail genuinely, inside the kernel
                parameters["bundle"] = str(scratch / "no-such-bundle")
        task = ReportTask(name=name, scope=scope, notebook=str(nbs[scope].resolve()), parameters=parameters,
                          out_dir=str(out_dir.resolve()), scratch=str(scratch), title=_title(name, names, month, language),
                          language=language, timeout=timeout, metrics=str(_metrics_store(bundle_path, fp).resolve()),
                          font_cover=cover, font_cache=font_cache, key_file=key_file)  # fmt: skip
        planned.append((task, fp))

    # reports of the folder that this run does not redo stay only if they are what these inputs would make
    # (same source, parameters, notebook, code, key); others (another source, a branch no longer in it ...) go
    planned_names = {t.name for t, _ in planned}
    current = set(table.loc[table["customers"] > 0, "branch_id"].astype(str)) | {"bank"}
    stale = [n for n, e in manifest["reports"].items() if n != "index" and n not in planned_names
             and (n not in current or e.get("fingerprint") != fingerprint(n))]  # fmt: skip
    if stale:
        _remove_reports(out_dir, {"reports": dict.fromkeys(stale)})
        for n in stale:
            del manifest["reports"][n]
        _write_text(out_dir / "manifest.json", _manifest_text(manifest))
        say(f"removed {len(stale)} report(s) of other inputs (another source, parameters or code, or a branch "
            "no longer in the data): " + ", ".join(stale[:20]) + (" ..." if len(stale) > 20 else ""))  # fmt: skip

    todo: list[ReportTask] = []
    fps = {}
    for task, fp in planned:
        fps[task.name] = fp
        entry = manifest["reports"].get(task.name)
        files = [out_dir / task.html, Path(task.metrics), out_dir / task.executed]
        if (not force and entry and entry.get("status") == "done" and entry.get("fingerprint") == fp
                and all(f.is_file() for f in files)):  # fmt: skip
            summary.status[task.name] = "skipped"
        else:
            todo.append(task)
    skipped = [n for n, s in summary.status.items() if s == "skipped"]
    if skipped:
        say(f"skipped {len(skipped)} unchanged report(s) (same inputs, files present; --force redoes them): "
            + ", ".join(skipped[:20]) + (" ..." if len(skipped) > 20 else ""))  # fmt: skip
    if todo:
        where = f"the Dask cluster at {scheduler}" if scheduler else f"{min(workers, len(todo))} worker(s)"
        say(f"rendering {len(todo)} report(s) on {where} (timeout {timeout:g} s per notebook) ...")

    # ---- run, recording each report in the manifest as it completes
    abort_after = int(os.environ.get(ABORT_ENV, "0") or 0)
    bar = _Progress(len(todo), progress)
    done_count = 0
    t1 = time.perf_counter()

    def on_result(res: dict, executor: object) -> None:
        nonlocal done_count
        name = res["name"]
        manifest["reports"][name] = {"scope": "bank" if name == "bank" else "branch", "status": res["status"],
                                     "duration_seconds": res["duration_seconds"], "fingerprint": fps[name],
                                     "package_version": __version__, "error": res["error"],
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
            _kill_warm_kernels()
            os._exit(EXIT_ABORTED)

    # the branch reports first (their cost per report is flat), then the bank summary: its cost grows with
    # the bank (whole-bank sections), so it is a phase of its own, timed separately like the bank stage
    branch_todo = [t for t in todo if t.scope == "branch"]
    bank_todo = [t for t in todo if t.scope != "branch"]
    try:
        scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(work, 0o700)
        _metrics_store(bundle_path, "").parent.mkdir(exist_ok=True, mode=0o700)
        pool.run(branch_todo, on_result)
        summary.branch_stage_seconds = round(time.perf_counter() - t1, 2)
        t2 = time.perf_counter()
        pool.run(bank_todo, on_result)
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
    if todo or "interrupted" in manifest:  # a run that redid nothing leaves the manifest as it was
        manifest.pop("interrupted", None)
        manifest.update({"bank_stage_seconds": summary.bank_stage_seconds, "bundle_reused": reused,
                         "branch_stage_seconds": summary.branch_stage_seconds, "branch_stage_reports": len(branch_todo),
                         "bank_summary_seconds": summary.bank_summary_seconds if bank_todo else None,
                         "workers": None if scheduler else min(workers, len(todo))})  # fmt: skip
        _write_text(out_dir / "manifest.json", _manifest_text(manifest))

    # ---- the index, last
    _write_index(bundle, out_dir, manifest, month, language, params, key_digest, summary, generated_at, say,
                 bundle_path=bundle_path, font_cover=cover, font_cache=font_cache)  # fmt: skip
    if metrics_dir is not None:
        _copy_metrics(bundle_path, manifest, metrics_dir / (month or "snapshot"), say)
    return summary


def _metrics_store(bundle_path: Path, fingerprint: str) -> Path:
    """Where a report's exact ``metrics.json`` is kept: beside its month bundle, named by the report's fingerprint."""
    return bundle_path / "metrics" / f"{fingerprint}.json"


def _remove_published_metrics(out_dir: Path) -> None:
    """Remove the ``metrics.json`` files earlier versions published beside the reports (exact counts)."""
    for f in [out_dir / "bank.metrics.json", *(out_dir / "branches").glob("*.metrics.json")]:
        f.unlink(missing_ok=True)


def _copy_metrics(bundle_path: Path, manifest: dict, target: Path, say: Callable[[str], None]) -> None:
    """Copy every done report's exact ``metrics.json`` to ``target/<name>.json`` (``--metrics-dir``)."""
    n = 0
    for name, entry in manifest["reports"].items():
        src = _metrics_store(bundle_path, str(entry.get("fingerprint")))
        if entry.get("scope") in ("bank", "branch") and entry.get("status") == "done" and src.is_file():
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
            _publish(src, target / f"{name}.json")
            n += 1
    say(f"metrics.json of {n} report(s) written to {target}")


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


def _remove_reports(out_dir: Path, manifest: dict) -> None:
    """Remove the published files of a manifest's reports (the folder is switching language)."""
    for name in manifest.get("reports", {}):
        if name == "index":
            rel = ["index.html"]
        elif name == "bank":
            rel = ["bank.html", "bank.metrics.json", "notebooks/bank.ipynb"]
        else:
            try:
                check_branch_id(name)
            except InputError:
                continue
            rel = [f"branches/{name}.html", f"branches/{name}.metrics.json", f"notebooks/{name}.ipynb"]
        for r in rel:
            (out_dir / r).unlink(missing_ok=True)


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
    bank_ok = manifest["reports"].get("bank", {}).get("status") == "done" and (out_dir / "bank.html").is_file()
    as_of = bundle.meta.get("as_of")
    meta = {label("index_data_as_of", language): str(as_of) if as_of else "–",
            label("index_churn_definition", language): label(f"churn_definition_{params.churn.definition}", language),
            label("index_version", language): f"crmresearch {__version__}"}  # fmt: skip
    fp = _digest("index", __version__, code_digest(), month, language, params.min_cell_size, params.churn.definition, key_digest,
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
