"""A report's PDF (``crmresearch report --pdf``): the page printed by headless Chromium through Playwright.

One browser per worker (process, or thread on a Dask worker), launched on
its first PDF and reused for the next reports; each report gets a fresh
browser context.  Chromium is Debian's (``chromium`` on ``PATH``, or the
file named by ``$CRMRESEARCH_CHROMIUM``), never a browser Playwright
downloads; the page is opened from a ``file:`` URL and any other request is
refused, so nothing is fetched from the network.

The browser dies with the run: Playwright's driver is a child of the worker
(in its process group, so the run's ``killpg`` reaches it) and Chromium
ends when the driver's pipe closes; the worker also kills Chromium's own
process group when it is orphaned (:func:`kill_browsers`).  What the
browser prints stays in Playwright's pipes, never on the run's output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

from crmresearch.core.errors import InputError

__all__ = ["CHROMIUM_ENV", "check_pdf", "chromium_executable", "close_browsers", "kill_browsers", "write_pdf"]

#: the Chromium executable for --pdf (default: ``chromium`` on PATH)
CHROMIUM_ENV = "CRMRESEARCH_CHROMIUM"
#: quiet, headless, no network services of its own
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--mute-audio"]  # fmt: skip
PDF_INSTALL = "pip install 'crmresearch[pdf]'"
CHROMIUM_INSTALL = "apt-get install chromium"
# the footer: "n / N" (Chromium fills the spans); the header is left empty (its default is the date and title)
_HEADER = "<span></span>"
_FOOTER = ('<div style="font-size:8px;width:100%;text-align:center;color:#57606a;">'
           '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')  # fmt: skip


def chromium_executable() -> str:
    """The Chromium to print with: ``$CRMRESEARCH_CHROMIUM``, else ``chromium`` on ``PATH``.

    Raises
    ------
    InputError
        No such executable (one line: what is missing and how to install it).

    Examples
    --------
    >>> chromium_executable()  # doctest: +SKIP
    '/usr/bin/chromium'
    """
    named = os.environ.get(CHROMIUM_ENV, "").strip()
    if named:
        found = shutil.which(named)
        if found is None:
            raise InputError(f"--pdf needs Chromium: ${CHROMIUM_ENV}={named} is not an executable file "
                             f"({CHROMIUM_INSTALL}, or point ${CHROMIUM_ENV} at chromium)")  # fmt: skip
        return found
    found = shutil.which("chromium")
    if found is None:
        raise InputError(f"--pdf needs Chromium, and no chromium is on PATH ({CHROMIUM_INSTALL}, or set "
                         f"${CHROMIUM_ENV} to its path)")  # fmt: skip
    return found


def check_pdf() -> str:
    """Check, before any work, that ``--pdf`` can run here: Playwright importable, a Chromium executable.

    Returns
    -------
    str
        The Chromium executable.

    Raises
    ------
    InputError
        One line naming what is missing and how to install it.

    Examples
    --------
    >>> check_pdf()  # doctest: +SKIP
    '/usr/bin/chromium'
    """
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise InputError(f"--pdf needs playwright, which is not installed ({PDF_INSTALL}); it drives the system "
                         f"Chromium ({CHROMIUM_INSTALL}), no browser is downloaded") from None  # fmt: skip
    return chromium_executable()


class _Browser:
    """One Playwright driver and its Chromium, kept by a worker."""

    def __init__(self, executable: str) -> None:
        from playwright.sync_api import sync_playwright

        self.executable = executable
        before = _group_leaders()
        self.pw = sync_playwright().start()
        try:
            self.browser = self.pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True,
                                                   handle_sigint=False, handle_sigterm=False,
                                                   handle_sighup=False)  # fmt: skip
        except BaseException:
            with contextlib.suppress(Exception):
                self.pw.stop()
            raise
        self.groups = _group_leaders() - before  # Chromium's: Playwright starts it as a group leader
        self._page: Any = None

    def alive(self) -> bool:
        return self.browser.is_connected()

    def page(self) -> Any:
        """The page this browser prints with: one context and tab, kept from report to report.

        A new context per report costs a quarter of a second; the pages are
        self-contained files with no storage to leak, and each load replaces
        the document.  Only ``file:`` and ``data:`` requests pass; the media
        is print.
        """
        if self._page is None or self._page.is_closed():
            context = self.browser.new_context()
            try:
                page = context.new_page()
                page.route("**/*", _only_files)
                page.emulate_media(media="print")
            except BaseException:
                with contextlib.suppress(Exception):
                    context.close()
                raise
            self._page = page
        return self._page

    def drop_page(self) -> None:
        """Forget the page (after a failure): the next report gets a fresh context."""
        page, self._page = self._page, None
        if page is not None:
            with contextlib.suppress(Exception):
                page.context.close()

    def close(self) -> None:
        self.drop_page()
        with contextlib.suppress(Exception):
            self.browser.close()
        with contextlib.suppress(Exception):
            self.pw.stop()


def _group_leaders() -> set[int]:
    """Processes under this one that lead a process group of their own."""
    import psutil

    groups = set()
    mine = os.getpgid(0)
    with contextlib.suppress(psutil.Error):
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error, OSError):
                g = os.getpgid(p.pid)
                if g != mine and g == p.pid:
                    groups.add(g)
    return groups


_BROWSERS: dict[tuple[int, int], _Browser] = {}
_EXIT_REGISTERED: set[int] = set()
_LOCK = threading.Lock()


def _key() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


def _register_exit() -> None:
    if os.getpid() not in _EXIT_REGISTERED:  # process pool workers skip atexit: Finalize runs there
        import atexit
        from multiprocessing import util

        _EXIT_REGISTERED.add(os.getpid())
        atexit.register(close_browsers)
        util.Finalize(None, close_browsers, exitpriority=10)


def _browser(executable: str) -> _Browser:
    """This worker's browser: the one it has (still connected, same executable), else a new one."""
    key = _key()
    b = _BROWSERS.get(key)
    if b is not None and (b.executable != executable or not b.alive()):
        b.close()
        b = None
        _BROWSERS.pop(key, None)
    if b is None:
        try:
            b = _Browser(executable)
        except Exception as exc:  # noqa: BLE001 - one line, naming the browser
            raise RuntimeError(f"Chromium ({executable}) did not start under Playwright: {_first_line(exc)}") from None
        with _LOCK:
            _BROWSERS[key] = b
        _register_exit()
    return b


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("=")), "")
    return f"{type(exc).__name__}: {line}"[:400]


def write_pdf(html: str | Path, target: str | Path, timeout: float = 120.0) -> None:
    """Print an HTML page (a file) to an A4 PDF, as it is printed: print media, backgrounds, "n / N" footer.

    Parameters
    ----------
    html : str or Path
        The self-contained page (opened as a ``file:`` URL; any other
        request is refused).
    target : str or Path
        The PDF to write (the caller renames it into place).
    timeout : float
        Seconds for loading and for printing, each.

    Raises
    ------
    RuntimeError
        Chromium did not start, or the page could not be loaded or printed
        (one line).

    Examples
    --------
    >>> write_pdf("scratch/B001.html", "scratch/B001.pdf")  # doctest: +SKIP
    """
    b = _browser(chromium_executable())
    ms = max(float(timeout), 1.0) * 1000
    try:
        page = b.page()
        page.set_default_timeout(ms)
        page.goto(Path(html).resolve().as_uri(), wait_until="load", timeout=ms)
        page.evaluate("document.fonts.ready.then(() => true)")
        page.pdf(path=str(target), format="A4", print_background=True, display_header_footer=True,
                 header_template=_HEADER, footer_template=_FOOTER,
                 margin={"top": "14mm", "bottom": "14mm", "left": "14mm", "right": "14mm"})  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a Playwright error, in one line
        b.drop_page()
        raise RuntimeError(f"printing the page with Chromium ({b.executable}) failed: {_first_line(exc)}") from None
    if not Path(target).is_file() or Path(target).stat().st_size == 0:
        raise RuntimeError(f"Chromium ({b.executable}) wrote no PDF")


def _only_files(route: Any) -> None:
    """Let ``file:`` and ``data:`` requests through; refuse every other one (nothing from the network)."""
    if route.request.url.startswith(("file:", "data:")):
        route.continue_()
    else:
        route.abort()


def close_browsers() -> None:
    """Close this process's browsers (at the worker's exit; a browser of another thread is killed instead).

    Examples
    --------
    >>> close_browsers()
    """
    with _LOCK:
        items = list(_BROWSERS.items())
        _BROWSERS.clear()
    for key, b in items:
        if key == _key():
            b.close()
        else:
            _kill_groups(b.groups)


def kill_browsers() -> None:
    """Kill this process's browsers at once (the worker is orphaned: no orderly shutdown).

    Examples
    --------
    >>> kill_browsers()
    """
    for b in list(_BROWSERS.values()):
        _kill_groups(b.groups)


def _kill_groups(groups: set[int]) -> None:
    for g in groups:
        with contextlib.suppress(OSError):
            os.killpg(g, signal.SIGKILL)
