"""``crmresearch report --pdf``: a PDF beside each HTML report, printed by Debian's Chromium.

Real runs of the CLI (subprocesses, 2 workers) on the small demo bank:
first without ``--pdf``, then with it (the PDFs must be made although the
reports are unchanged), then with it again (everything skipped).  The PDFs
are read with poppler (``pdfinfo``, ``pdftotext``, ``pdftoppm``), never
with a mock: pages, text (the branch's name and its churn rate as the HTML
shows it), and a first page that is not blank.  A Chromium that cannot
start fails the report and publishes nothing for it; missing playwright or
Chromium is one line before any work; the browser dies with a killed run.

Without Playwright, Chromium or poppler the module is skipped, except in CI
(``CI=true``) where that is a failure, as for ``tests/report/test_browser.py``.
"""

from __future__ import annotations

import contextlib
import html as htmllib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import pytest

from crmresearch.batch.run import run_report
from crmresearch.cli import main
from crmresearch.data.demo import DEFAULT_AS_OF
from run_helpers import report_args, tiny_notebooks

pytestmark = pytest.mark.slow

MONTH = f"{DEFAULT_AS_OF:%Y-%m}"  # the last closed month of the conftest demo bank
POPPLER = ("pdfinfo", "pdftotext", "pdftoppm")
# what Chromium or its Debian wrapper may print; none of it may reach the run's output
BROWSER_TEXT = ["DevTools", "ERROR:", "WARNING:", "unexpected operator", "chromium", "Fontconfig", "dbus"]


def _unavailable(reason: str) -> None:
    """Skip, except in CI (``CI=true``), where a PDF test that cannot run is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the PDF tests must run in CI)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    """Playwright, a Chromium on PATH (or ``$CRMRESEARCH_CHROMIUM``) and poppler, or skip (fail in CI)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if shutil.which(os.environ.get("CRMRESEARCH_CHROMIUM") or "chromium") is None:
        _unavailable("Chromium is not installed (apt-get install chromium)")
    missing = [t for t in POPPLER if shutil.which(t) is None]
    if missing:
        _unavailable(f"poppler is not installed ({', '.join(missing)}; apt-get install poppler-utils)")


def _env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMRESEARCH_TEST_")}
    env.pop("CRMRESEARCH_FRESH_KERNELS", None)
    env.pop("CRMRESEARCH_CHROMIUM", None)
    return {**env, **more}


def _report(source: Path, out: Path, key: Path, cache: Path, *more: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "crmresearch.cli",
           *report_args(source, out, key, cache, "--workers", "2", *more, month=MONTH)]  # fmt: skip
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900)


def _chromium_pids() -> set[int]:
    pids = set()
    for p in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if "chrom" in (p.info["name"] or "") or any("chromium" in a for a in p.info["cmdline"] or []):
                pids.add(p.pid)
    return pids


@dataclass
class PdfRuns:
    month: Path
    without: subprocess.CompletedProcess  # the first run, without --pdf
    pdfs_without: list[str]  # the PDFs after it (none)
    first: subprocess.CompletedProcess  # with --pdf, after the run without
    files_first: dict[str, int]  # every published file after it -> mtime (ns)
    again: subprocess.CompletedProcess  # with --pdf once more, nothing changed
    files_again: dict[str, int]
    browsers_left: set[int]  # Chromium processes that appeared during the runs and are still there


def _files(month: Path) -> dict[str, int]:
    return {str(p.relative_to(month)): p.stat().st_mtime_ns for p in month.rglob("*")
            if p.is_file() and p.name != "manifest.json"}  # fmt: skip


@pytest.fixture(scope="module")
def runs(small_demo: Path, key: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> PdfRuns:
    out = tmp_path_factory.mktemp("pdf") / "reports"
    month = out / MONTH
    before = _chromium_pids()
    without = _report(small_demo, out, key, cache)
    assert without.returncode == 0, without.stderr[-4000:]
    pdfs_without = sorted(str(p.relative_to(month)) for p in month.rglob("*.pdf"))
    first = _report(small_demo, out, key, cache, "--pdf")
    assert first.returncode == 0, first.stderr[-4000:]
    files_first = _files(month)
    again = _report(small_demo, out, key, cache, "--pdf")
    assert again.returncode == 0, again.stderr[-4000:]
    time.sleep(1)
    return PdfRuns(month, without, pdfs_without, first, files_first, again, _files(month),
                   _chromium_pids() - before)  # fmt: skip


def _reports(month: Path) -> list[Path]:
    return [month / "bank.html", *sorted((month / "branches").glob("*.html"))]


def _pdfinfo(pdf: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def _pdftext(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return " ".join(out.split())


def _churn_rate(page: Path) -> str:
    """The headline's monthly churn rate as the HTML page shows it (the KPI table's first row of it)."""
    m = re.search(r"<th>monthly churn rate</th><td>([^<]+)</td>", page.read_text(encoding="utf-8"))
    assert m, f"{page.name}: no monthly churn rate in the headline"
    return htmllib.unescape(m.group(1))


# --------------------------------------------------------------------------- the PDFs of a run


def test_a_pdf_beside_every_html_report_even_when_the_reports_were_unchanged(runs: PdfRuns) -> None:
    assert runs.pdfs_without == [], "a run without --pdf wrote PDFs"
    reports = _reports(runs.month)
    assert len(reports) == 4  # the bank and 3 branches
    for page in reports:
        assert page.with_suffix(".pdf").is_file(), f"no PDF beside {page.name}"
    assert not (runs.month / "index.pdf").exists()  # the index is for the browser only
    # the reports were unchanged, but had no PDF: --pdf redoes them
    assert "4 report(s) done, 1 skipped" in runs.first.stderr, runs.first.stderr[-2000:]
    manifest = json.loads((runs.month / "manifest.json").read_text(encoding="utf-8"))
    assert {n: e.get("pdf") for n, e in manifest["reports"].items() if n != "index"} == {
        "bank": True, "B001": True, "B002": True, "B003": True}
    # the print's own time, for the benchmark (docs/performance.md): a number per report printed
    for name, entry in manifest["reports"].items():
        if name != "index":
            assert isinstance(entry["pdf_seconds"], float) and 0 < entry["pdf_seconds"] < 120, (name, entry)


def test_each_pdf_is_the_page_on_a4_with_its_branch_name_and_churn_rate(runs: PdfRuns, small_demo: Path) -> None:
    names = dict(pd.read_parquet(small_demo / "branches.parquet")[["branch_id", "branch_name"]].values)
    for page in _reports(runs.month):
        pdf = page.with_suffix(".pdf")
        info = _pdfinfo(pdf)
        assert int(info["Pages"]) >= 2, f"{pdf.name}: {info['Pages']} page(s)"
        assert "(A4)" in info["Page size"], info["Page size"]
        text = _pdftext(pdf)
        rate = _churn_rate(page)
        assert rate in text, f"{pdf.name}: the churn rate {rate!r} of the HTML is not in the PDF"
        if page.stem != "bank":
            assert f"{names[page.stem]} ({page.stem})" in text, f"{pdf.name}: no branch name"
        assert re.search(rf"\b1 / {info['Pages']}\b", text), f"{pdf.name}: no 'n / N' page numbers"
        assert "Traceback" not in text and "DevTools" not in text


def test_the_first_page_is_not_blank(runs: PdfRuns, tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    for page in _reports(runs.month):
        prefix = tmp_path / page.stem
        subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(page.with_suffix(".pdf")),
                        str(prefix)], check=True)  # fmt: skip
        (png,) = tmp_path.glob(f"{page.stem}*.png")
        img = Image.open(png).convert("L")
        stat = ImageStat.Stat(img)
        lo, hi = img.getextrema()
        assert hi - lo > 100 and stat.var[0] > 50, f"{page.name}: page 1 is blank (var {stat.var[0]:.1f})"


def test_a_rerun_with_pdf_skips_unchanged_reports(runs: PdfRuns) -> None:
    assert "0 report(s) done, 5 skipped" in runs.again.stderr, runs.again.stderr[-2000:]
    assert runs.files_again == runs.files_first  # nothing rewritten, the PDFs included


def test_the_browser_shows_nothing_and_does_not_outlive_the_run(runs: PdfRuns) -> None:
    for run in (runs.first, runs.again):
        said = [t for t in BROWSER_TEXT if t in run.stderr + run.stdout]
        assert not said, f"the browser's output reached the run's: {said}\n{run.stderr[-2000:]}"
    assert not runs.browsers_left, "Chromium processes outlived the runs"


# --------------------------------------------------------------------------- failures


def test_a_chromium_that_cannot_start_fails_the_report_and_publishes_nothing(small_demo: Path, key: Path, cache: Path,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    kw = dict(month=MONTH, branches=["B001"], out=tmp_path / "reports", cache_dir=cache, key_file=key, workers=1,
              progress=False, log=lambda m: None, _notebooks=tiny_notebooks(tmp_path))  # fmt: skip
    s = run_report(small_demo, **kw)  # without --pdf: a page is published
    month = tmp_path / "reports" / MONTH
    assert s.exit_code == 0 and (month / "branches" / "B001.html").is_file()
    monkeypatch.setenv("CRMRESEARCH_CHROMIUM", "/bin/false")  # an executable that is no browser
    s = run_report(small_demo, pdf=True, **kw)
    assert s.exit_code == 1 and s.status["B001"] == "failed"
    err = s.errors["B001"]
    assert err.startswith("PDF failed: Chromium (/bin/false) did not start") and "\n" not in err, err
    # nothing of the report is published: no PDF, no HTML (the earlier one went: it no longer matches)
    assert not (month / "branches" / "B001.pdf").exists()
    assert not (month / "branches" / "B001.html").exists()
    assert not [p for p in month.rglob(".tmp-*")]
    manifest = json.loads((month / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["reports"]["B001"]["status"] == "failed" and manifest["reports"]["B001"]["pdf"] is False
    assert manifest["reports"]["B001"]["error"] == err


def _cli(*args: object) -> tuple[int, str]:
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def test_no_chromium_is_one_line_before_any_work(small_demo: Path, key: Path, cache: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    out = tmp_path / "reports"
    monkeypatch.setenv("CRMRESEARCH_CHROMIUM", str(tmp_path / "no-such-chromium"))
    code, err = _cli(*report_args(small_demo, out, key, cache, "--pdf", month=MONTH))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no-such-chromium" in lines[0] and "apt-get install chromium" in lines[0], err
    monkeypatch.delenv("CRMRESEARCH_CHROMIUM")
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on PATH
    code, err = _cli(*report_args(small_demo, out, key, cache, "--pdf", month=MONTH))
    assert code == 2 and "no chromium is on PATH" in err and "apt-get install chromium" in err, err
    assert not out.exists(), "something was written"


def test_no_playwright_is_one_line_before_any_work(small_demo: Path, key: Path, cache: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "no-playwright" / "playwright"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('playwright is not installed here')\n")
    out = tmp_path / "reports"
    env = _env(PYTHONPATH=os.pathsep.join([str(blocked.parent), *sys.path]))
    res = subprocess.run([sys.executable, "-m", "crmresearch.cli",
                          *report_args(small_demo, out, key, cache, "--pdf", month=MONTH)],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "playwright" in lines[0] and "pip install 'crmresearch[pdf]'" in lines[0], res.stderr
    assert not out.exists(), "something was written"


# --------------------------------------------------------------------------- the browser dies with the run


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # ended, or a zombie
        return ""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_run_leaves_no_browser(sig: signal.Signals, small_demo: Path, key: Path, cache: Path,
                                        tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "reports"
    month = out / MONTH
    proc = subprocess.Popen([sys.executable, "-m", "crmresearch.cli",
                             *report_args(small_demo, out, key, cache, "--workers", "2", "--pdf", month=MONTH)],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 600
        done: list[str] = []
        while not done and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            with contextlib.suppress(OSError, ValueError):
                m = json.loads((month / "manifest.json").read_text())
                done = [n for n, e in m["reports"].items() if e["status"] == "done"]
        assert done and proc.poll() is None, "the run ended before a report was done"
        tree = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(_cmdline(p) for p in tree)
        assert "chromium" in names and "playwright" in names, names  # a browser per worker, through its driver
        proc.send_signal(sig)
        proc.communicate(timeout=120)
        _, alive = psutil.wait_procs(tree, timeout=20)
        assert not alive, [_cmdline(p)[:200] for p in alive]
    finally:
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.kill()
        proc.kill()
        proc.wait()
    for page in month.rglob("*.html"):  # what was published is whole: every report page has its PDF
        if page.name != "index.html":
            assert page.with_suffix(".pdf").is_file(), page
