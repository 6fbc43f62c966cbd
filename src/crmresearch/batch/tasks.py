"""One report: the task a worker runs (execute the notebook, render, publish atomically) and its result."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmresearch.batch.engines import render_html
from crmresearch.batch.kernels import FRESH_ENV, _drop_warm_kernel, _engine, _warm_kernel
from crmresearch.batch.pdf import write_pdf
from crmresearch.core.io import atomic_path
from crmresearch.core.privacy import KEY_FILE_ENV

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
    >>> t.html, t.pdf_file, t.executed
    ('branches/B001.html', 'branches/B001.pdf', 'notebooks/B001.ipynb')
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
    pdf: bool = False  # also print the page to a PDF beside the HTML (--pdf)

    @property
    def html(self) -> str:
        """The HTML report, relative to the output folder."""
        return "bank.html" if self.scope == "bank" else f"branches/{self.name}.html"

    @property
    def pdf_file(self) -> str:
        """The PDF beside the HTML report (``--pdf``), relative to the output folder."""
        return self.html[: -len(".html")] + ".pdf"

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


def _print_pdf(page: str, html_tmp: Path, pdf_tmp: Path, deadline: float) -> tuple[str | None, float]:
    """Print the page to ``pdf_tmp``: (the error or None, the print's seconds)."""
    t = time.perf_counter()
    try:
        html_tmp.write_text(page, encoding="utf-8")
        write_pdf(html_tmp, pdf_tmp, timeout=max(deadline - time.monotonic(), 30.0))
    except Exception as exc:  # noqa: BLE001 - a failed print fails the report, in one line
        return f"PDF failed: {exc}", round(time.perf_counter() - t, 2)
    return None, round(time.perf_counter() - t, 2)


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
    published).  With ``task.pdf`` the page is also printed to a PDF
    (:func:`crmresearch.batch.pdf.write_pdf`) in the scratch folder before
    anything is published, and renamed into place just before the HTML; a
    PDF that cannot be made fails the report.  Without it, a PDF of an
    earlier run is removed (it would show the old page).  On failure only
    the executed notebook (holding the error) is published, and the
    report's previous HTML, PDF and ``metrics.json``, if any, are removed
    (they would no longer match the manifest).  Never raises for a notebook error.

    Parameters
    ----------
    task : ReportTask

    Returns
    -------
    dict
        ``name, status ("done" | "failed"), error (None or "ExceptionName:
        message"), pdf (a PDF was published beside the HTML), pdf_seconds (the print's own time, None
        without --pdf), stderr (what the cells wrote to stderr, None if nothing;
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
    pdf_seconds = None  # the PDF's own time (--pdf), in the manifest: what printing adds to the report
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
        pdf_tmp = scratch / f"{task.name}.pdf"
        if error is None and task.pdf:  # printed from the page as it will be published, before anything is
            error, pdf_seconds = _print_pdf(page, scratch / f"{task.name}.html", pdf_tmp, deadline)
        try:
            if executed.is_file():
                _publish(executed, out / task.executed)
            else:  # the kernel never ran: no notebook of this run to keep, and an older one would mislead
                (out / task.executed).unlink(missing_ok=True)
            if error is None:
                _publish(metrics_tmp, Path(task.metrics))
                if task.pdf:  # the PDF first, the HTML right after: a rerun sees the HTML only with its PDF
                    _publish(pdf_tmp, out / task.pdf_file)
                else:
                    (out / task.pdf_file).unlink(missing_ok=True)
                _write_text(out / task.html, page)
        except OSError as exc:
            error = f"writing the report's files failed: {type(exc).__name__}: {exc}"
        if error is not None:
            for stale in (out / task.html, out / task.pdf_file, Path(task.metrics)):
                with contextlib.suppress(OSError):
                    stale.unlink(missing_ok=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    finished = _now()
    return {"name": task.name, "status": "done" if error is None else "failed", "error": error,
            "pdf": task.pdf and error is None, "pdf_seconds": pdf_seconds, "stderr": stderr, "started": started, "finished": finished,
            "duration_seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
