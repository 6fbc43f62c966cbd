"""The monthly report run (``crmresearch report``), through the real CLI and the real notebooks.

One small demo bank (2 branches x 300 customers) and one month bundle (in a
cache folder shared by the tests) serve every test.  The main run starts
with a run killed after its first report (test-only switch
``CRMRESEARCH_TEST_ABORT_AFTER``) and then completes it; the other tests
check what it left, rerun it, make a
branch fail (the Dask path: tests/batch/test_cluster.py), and feed it bad input.  Machinery that does not need the real
notebooks (per-notebook timeout, redoing a failed report) uses a tiny
notebook of the same parameters.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from crmresearch.batch.run import render_html, render_index, run_report
from crmresearch.cli import main
from crmresearch.data.demo import DemoConfig, write_demo_bank
from run_helpers import report_args, tiny_notebooks

MONTH = "2026-10"
SECTIONS = ["1. Headline", "2. Who left", "3. Product coverage", "4. Relationship-manager turnover",
            "5. Why customers leave", "6. Lifecycle", "7. Retention outcomes", "8. Watch list",
            "9. Data and method notes"]  # fmt: skip
REPORTS = ["bank.html", "branches/B001.html", "branches/B002.html", "notebooks/bank.ipynb", "notebooks/B001.ipynb",
           "notebooks/B002.ipynb", "index.html", "manifest.json"]  # fmt: skip


def _cli(*args: str) -> tuple[int, str, str]:
    """Run ``crmresearch`` in this process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _files(folder: Path) -> dict[str, float]:
    """Every file under ``folder`` (relative path -> modification time in ns)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def demo2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 branches x 300 customers; B002's name holds a script tag (text from the data must be escaped)."""
    out = write_demo_bank(tmp_path_factory.mktemp("runner-demo") / "bank",
                          DemoConfig(branches=2, customers_per_branch=300, months=24, seed=7))  # fmt: skip
    branches = pd.read_parquet(out / "branches.parquet")
    branches.loc[branches["branch_id"] == "B002", "branch_name"] = f"{EVIL}浦东"
    branches.to_parquet(out / "branches.parquet", index=False)
    return out


def _args(source: Path, out: Path, key: Path, cache: Path, *more: str) -> list[str]:
    return report_args(source, out, key, cache, *more, month=MONTH)


@dataclass
class FullRun:
    out: Path  # <out>/<month>
    metrics: Path  # <metrics-dir>/<month>: the exact metrics.json files (never in the published folder)
    killed_code: int
    killed_stderr: str
    killed_files: dict[str, bytes]
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def full_run(demo2: Path, key: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> FullRun:
    """A run killed after its first report (a separate process, one worker), then rerun to completion."""
    out = tmp_path_factory.mktemp("runner-out") / "reports"
    metrics_dir = out.parent / "metrics"
    env = {**os.environ, "CRMRESEARCH_TEST_ABORT_AFTER": "1"}
    env.pop("CRMRESEARCH_TEST_FAIL_BRANCH", None)
    killed = subprocess.run([sys.executable, "-m", "crmresearch.cli",
                             *_args(demo2, out, key, cache, "--workers", "1", "--metrics-dir", metrics_dir)],
                            env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    month_dir = out / MONTH
    left = {str(p.relative_to(month_dir)): p.read_bytes() for p in month_dir.rglob("*") if p.is_file()}
    code, stdout, stderr = _cli(*_args(demo2, out, key, cache, "--workers", "2", "--metrics-dir", metrics_dir))
    return FullRun(month_dir, metrics_dir / MONTH, killed.returncode, killed.stderr, left, code, stdout, stderr)


# --------------------------------------------------------------------------- the completed run


@pytest.mark.slow
def test_every_file_of_the_layout_and_where_the_index_is(full_run: FullRun) -> None:
    assert full_run.code == 0, full_run.stderr
    for rel in REPORTS:
        assert (full_run.out / rel).is_file(), rel
    assert not list(full_run.out.rglob("*metrics*")), "exact metrics are never published"
    assert sorted(p.name for p in full_run.metrics.iterdir()) == ["B001.json", "B002.json", "bank.json"]
    assert f"index: {(full_run.out / 'index.html').resolve()}" in full_run.stdout
    manifest = json.loads((full_run.out / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["month"], manifest["language"]) == (MONTH, "en")
    assert list(manifest["reports"]) == ["bank", "B001", "B002", "index"]
    for name, entry in manifest["reports"].items():
        assert entry["status"] == "done" and entry["error"] is None, name
        assert re.fullmatch(r"[0-9a-f]{64}", entry["fingerprint"]) and entry["duration_seconds"] >= 0
        assert entry["package_version"] == manifest["crmresearch_version"]
    assert len({e["fingerprint"] for e in manifest["reports"].values()}) == 4


@pytest.mark.slow
def test_html_is_self_contained_and_shows_no_code(full_run: FullRun) -> None:
    for rel in ["bank.html", "branches/B001.html", "branches/B002.html", "index.html"]:
        text = (full_run.out / rel).read_text(encoding="utf-8")
        low = text.lower()
        assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>"), rel
        assert "<script src" not in low and not re.search(r"<script[^>]*\ssrc\s*=", low), rel
        assert "<link" not in low, rel
        assert not re.search(r"url\(\s*['\"]?(?!data:)", low), rel  # url(...) only for embedded data
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", low), rel  # no other host
        assert "require.js" not in low and "mathjax" not in low, rel
        assert "jp-inputarea" not in low and "input_area" not in low and "in&nbsp;[" not in low, rel
        assert "import " not in text and "BranchReport" not in text, rel  # no code cell leaked
    for rel in ["bank.html", "branches/B001.html"]:
        text = (full_run.out / rel).read_text(encoding="utf-8")
        assert "data:image/png;base64," in text or "<svg" in text, f"{rel}: no embedded figure"


@pytest.mark.slow
def test_text_from_the_data_is_escaped(full_run: FullRun) -> None:
    for rel in ["bank.html", "branches/B001.html", "branches/B002.html", "index.html"]:
        text = (full_run.out / rel).read_text(encoding="utf-8")
        assert EVIL not in text and "<script>alert" not in text, rel
    for rel in ["branches/B002.html", "index.html"]:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;浦东" in (full_run.out / rel).read_text(encoding="utf-8"), rel


@pytest.mark.slow
def test_branch_report_has_every_section(full_run: FullRun) -> None:
    for b in ("B001", "B002"):
        text = (full_run.out / "branches" / f"{b}.html").read_text(encoding="utf-8")
        headings = " | ".join(re.findall(r"<h[1-3][^>]*>(.*?)</h[1-3]>", text, re.S))
        for s in SECTIONS:
            assert s in headings, f"{b}: no heading {s!r}"


@pytest.mark.slow
def test_no_customer_name_in_any_report(full_run: FullRun, demo2: Path) -> None:
    customers = pd.read_parquet(demo2 / "customers.parquet", columns=["name"])
    places = pd.read_parquet(demo2 / "branches.parquet")
    known = " ".join(places.astype(str).to_numpy().ravel())  # branch and region names are not people
    names = {n for n in customers["name"].dropna() if len(n) >= 2 and n not in known}
    for rel in ["bank.html", "branches/B001.html", "branches/B002.html", "index.html"]:
        text = (full_run.out / rel).read_text(encoding="utf-8")
        found = sorted(n for n in names if n in text)
        assert not found, f"{rel} shows customer names {found[:5]}"


def _hand_kpis(demo: Path, branch: str | None) -> tuple[int, int]:
    """active_at_start and churned_in_month by the definitions of reports.md (recorded churn)."""
    c = pd.read_parquet(demo / "customers.parquet")
    if branch is not None:
        c = c[c["branch_id"] == branch]
    start, end = pd.Timestamp(f"{MONTH}-01"), pd.Timestamp(f"{MONTH}-01") + pd.offsets.MonthEnd(0)
    active = (c["open_date"] < start) & (c["churn_date"].isna() | (c["churn_date"] >= start))
    churned = c["churn_date"].between(start, end)
    return int(active.sum()), int(churned.sum())


@pytest.mark.slow
def test_metrics_kpis_equal_hand_computed_values(full_run: FullRun, demo2: Path) -> None:
    for rel, branch in [("B001.json", "B001"), ("B002.json", "B002"), ("bank.json", None)]:
        m = json.loads((full_run.metrics / rel).read_text(encoding="utf-8"))
        assert (m["scope"], m["branch_id"], m["month"], m["churn_definition"], m["language"]) == (
            "branch" if branch else "bank", branch, MONTH, "recorded", "en")
        active, churned = _hand_kpis(demo2, branch)
        assert active > 0 and churned > 0, "the test month should have churn"
        k = m["kpis"]
        assert (k["active_at_start"], k["churned_in_month"]) == (active, churned), rel
        assert k["monthly_churn_rate"] == pytest.approx(churned / active, rel=1e-10)


@pytest.mark.slow
def test_metrics_json_equals_the_metrics_command(full_run: FullRun, demo2: Path, tmp_path: Path) -> None:
    out = tmp_path / "B002.metrics.json"
    code, _, err = _cli("metrics", demo2, "--month", MONTH, "--branch", "B002", "--out", out)
    assert code == 0, err
    assert out.read_bytes() == (full_run.metrics / "B002.json").read_bytes()


@pytest.mark.slow
def test_index_links_every_report_sorts_inline_and_rolls_up_regions(full_run: FullRun, demo2: Path) -> None:
    text = (full_run.out / "index.html").read_text(encoding="utf-8")
    assert 'href="branches/B001.html"' in text and 'href="branches/B002.html"' in text
    assert 'href="bank.html"' in text
    assert re.search(r"<script>.*\.sort\(", text, re.S) and 'class="sortable"' in text
    regions = pd.read_parquet(demo2 / "branches.parquet")["region"].unique()
    rollup = text.split('id="regions"', 1)[1]
    assert all(r in rollup for r in regions)
    active, _ = _hand_kpis(demo2, "B001")
    assert f'data-sort="{active}"' in text  # the KPIs come from the branch's metrics.json


# --------------------------------------------------------------------------- killed, rerun, failed, Dask


@pytest.mark.slow
def test_a_killed_run_leaves_only_complete_files_and_a_rerun_completes(full_run: FullRun) -> None:
    assert full_run.killed_code == 3, full_run.killed_stderr
    left = full_run.killed_files
    assert not [f for f in left if ".tmp" in f], "temporary files left in the output folder"
    manifest = json.loads(left["manifest.json"])
    done = [n for n, e in manifest["reports"].items() if e["status"] == "done"]
    # branch reports run first, the bank summary after them
    assert done == ["B001"], "one report, the first, completed before the kill"
    assert {"branches/B001.html", "notebooks/B001.ipynb"} <= set(left)
    assert not [f for f in left if "metrics" in f], "exact metrics are never published"
    assert not any(f.startswith(("branches/B002", "bank")) for f in left) and "index.html" not in left
    for f, data in left.items():  # whatever is there is complete
        if f.endswith(".json"):
            json.loads(data)
        elif f.endswith(".ipynb"):
            nbformat.reads(data.decode("utf-8"), as_version=4)
        elif f.endswith(".html"):
            assert data.rstrip().endswith(b"</html>")
    # the rerun skipped the finished report and did the rest
    assert full_run.code == 0
    assert "skipped 1 unchanged report(s)" in full_run.stderr and "B001" in full_run.stderr
    assert json.loads((full_run.metrics / "B001.json").read_text())["branch_id"] == "B001"  # skipped: kept in the cache
    final = json.loads((full_run.out / "manifest.json").read_text())
    assert final["branch_stage_reports"] == 1 and final["bank_summary_seconds"] > 0  # B002, then the bank summary


@pytest.mark.slow
def test_a_rerun_skips_everything(full_run: FullRun, demo2: Path, key: Path, cache: Path) -> None:
    before = _files(full_run.out)
    manifest = (full_run.out / "manifest.json").read_bytes()
    code, stdout, stderr = _cli(*_args(demo2, full_run.out.parent, key, cache))
    assert code == 0, stderr
    assert "skipped 3 unchanged report(s)" in stderr and "index: unchanged (skipped)" in stderr
    assert "0 report(s) done, 4 skipped" in stderr and "bundle reused" in stderr
    assert _files(full_run.out) == before, "a file was rewritten"
    assert (full_run.out / "manifest.json").read_bytes() == manifest
    assert "index.html" in stdout


@pytest.mark.slow
def test_a_failing_branch_does_not_stop_the_others(full_run: FullRun, demo2: Path, key: Path, cache: Path,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """B002's notebook fails inside its kernel (test-only switch: it is given a bundle path that does not exist)."""
    out = tmp_path / "reports"
    shutil.copytree(full_run.out, out / MONTH)
    for b in ("B001", "B002"):  # stale: both must be redone
        (out / MONTH / "branches" / f"{b}.html").unlink()
    monkeypatch.setenv("CRMRESEARCH_TEST_FAIL_BRANCH", "B002")
    code, stdout, stderr = _cli(*_args(demo2, out, key, cache, "--branch", "B001", "B002", "--workers", "2",
                                       "--metrics-dir", tmp_path / "metrics"))  # fmt: skip
    assert code == 1
    month = out / MONTH
    assert (month / "branches" / "B001.html").is_file() and (tmp_path / "metrics" / MONTH / "B001.json").is_file()
    assert not (month / "branches" / "B002.html").exists() and not (tmp_path / "metrics" / MONTH / "B002.json").exists()
    nb = nbformat.read(month / "notebooks" / "B002.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors, "the executed notebook with the error is kept"
    manifest = json.loads((month / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["reports"]["B001"]["status"] == "done" and manifest["reports"]["bank"]["status"] == "done"
    failed = manifest["reports"]["B002"]
    assert failed["status"] == "failed" and "no-such-bundle" in failed["error"]
    assert "failed reports" in stderr and "  - B002: " in stderr and "1 failed" in stderr
    index = (month / "index.html").read_text(encoding="utf-8")
    assert 'href="branches/B002.html"' not in index and "failed" in index
    assert "index.html" in stdout


# --------------------------------------------------------------------------- input guards (no kernel)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--branch", "../x"], "branch ID '../x' cannot be used as a file name"),
        (["--branch", "B001/../../etc"], "cannot be used as a file name"),
        (["--month", "2026-13"], "--month '2026-13': must be a calendar month YYYY-MM"),
        (["--month", "../2026"], "must be a calendar month"),
        (["--month", "2020-01"], "--month 2020-01 is outside the data: it covers months 2024-11 to 2026-10"),
        (["--month", "2027-01"], "outside the data"),
        (["--branch", "B999"], "unknown branch 'B999'; known: B001, B002"),
        (["--timeout", "0"], "--timeout 0"),
        (["--workers", "0"], "--workers 0"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(demo2: Path, key: Path, tmp_path: Path,
                                                       extra: list[str], message: str) -> None:  # fmt: skip
    out, cache = tmp_path / "reports", tmp_path / "cache"
    args = _args(demo2, out, key, cache)
    if "--month" in extra:  # replace the default month
        i = args.index("--month")
        del args[i:i + 2]
    code, stdout, stderr = _cli(*args, *extra)
    assert code == 2
    assert message in stderr, stderr
    assert len([ln for ln in stderr.splitlines() if ln.startswith("error:")]) == 1
    assert not out.exists() and not cache.exists() and not stdout


def test_a_calendar_source_needs_a_month_and_a_key(demo2: Path, key: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    out, cache = tmp_path / "reports", tmp_path / "cache"
    code, _, stderr = _cli("report", demo2, "--out", out, "--key-file", key, "--cache-dir", cache)
    assert code == 2 and "--month is required for this source" in stderr and "2024-11 to 2026-10" in stderr
    monkeypatch.delenv("CRMRESEARCH_PSEUDONYM_KEY", raising=False)
    code, _, stderr = _cli("report", demo2, "--month", MONTH, "--out", out, "--cache-dir", cache)
    assert code == 2 and "no pseudonym key" in stderr
    code, _, stderr = _cli("report", demo2, "--month", MONTH, "--out", out, "--key-file", key,
                           "--cache-dir", out / "cache")  # fmt: skip
    assert code == 2 and "inside --out" in stderr
    assert not out.exists() and not cache.exists()


def test_an_output_folder_holds_one_language(demo2: Path, key: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "reports", tmp_path / "cache"
    (out / MONTH).mkdir(parents=True)
    manifest = json.dumps({"schema": 1, "language": "zh", "reports": {}})
    (out / MONTH / "manifest.json").write_text(manifest, encoding="utf-8")
    code, _, stderr = _cli(*_args(demo2, out, key, cache, "--language", "en"))
    assert code == 2 and "holds zh reports and this run is en" in stderr and "--force" in stderr
    assert (out / MONTH / "manifest.json").read_text(encoding="utf-8") == manifest
    assert not cache.exists()


def test_a_flat_extract_takes_no_month(key: Path, tmp_path: Path) -> None:
    from public_data import BANK_CSV

    if not BANK_CSV.is_file():
        pytest.skip(f"public dataset not found: {BANK_CSV}")
    src = tmp_path / "flat"
    assert main(["import-flat", str(BANK_CSV), "--mapping", "bank-churn-modelling", "--out", str(src)]) == 0
    out, cache = tmp_path / "reports", tmp_path / "cache"
    code, _, stderr = _cli(*_args(src, out, key, cache))
    assert code == 2 and "flat extract (no calendar); omit --month" in stderr and "snapshot" in stderr
    assert not out.exists() and not cache.exists()


# --------------------------------------------------------------------------- pages and machinery


def test_index_escapes_data_text_and_suppresses_small_cells() -> None:
    evil = EVIL
    rows = pd.DataFrame({"branch_id": ["B001", "B002", "B003"], "branch_name": [evil, "East", "West"],
                         "region": [evil, evil, "South"], "customers": [500, 400, 300],
                         "status": ["done", "done", "failed"], "active_at_start": [400, 350, None],
                         "churned_in_month": [4, 30, None], "monthly_churn_rate": [0.01, 30 / 350, None],
                         "aum_lost": [1e5, 2e6, None], "aum_drained": [2e5, 3e6, None],
                         "hv_churned": [0, 12, None]})  # fmt: skip
    page = render_index(rows, month=MONTH, language="en", min_cell=10, meta={"data as of": evil}, bank_link=True)
    assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert len(re.findall(r"<script", page)) == 1  # only the inline sorting script
    b001 = re.search(r"<tr><td[^>]*><a href=\"branches/B001.html\">B001</a>.*?</tr>", page).group(0)
    assert "fewer than 10" in b001 and "CNY 100.0K" not in b001, "4 churned: count and amounts hidden"
    b002 = re.search(r"<tr><td[^>]*><a href=\"branches/B002.html\">B002</a>.*?</tr>", page).group(0)
    assert ">30<" not in b002 and "suppressed" in b002, "complement within the region"
    assert 'href="branches/B003.html"' not in page  # failed: no link
    zh = render_index(rows, month=MONTH, language="zh", min_cell=10, meta={}, bank_link=False)
    assert 'lang="zh-CN"' in zh and "少于 10" in zh and "区域汇总" in zh and "bank.html" not in zh
    assert "@font-face" in zh and "url(data:font/woff;base64," in zh


def test_render_html_has_no_code_and_escapes_the_title(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    analyst_note = nbformat.v4.new_markdown_cell("Run me with `crmresearch report`")
    analyst_note.metadata["tags"] = ["hide-in-report"]
    nb.cells = [nbformat.v4.new_markdown_cell("## 1. Headline"), analyst_note,
                nbformat.v4.new_code_cell("x = 1\nprint('secret code')", outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text="shown\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="FutureWarning: noise\n")])]  # fmt: skip
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    page = render_html(path, "<script>alert(1)</script> — 2026-10", "en")
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; — 2026-10</title>" in page
    assert "1. Headline" in page and "shown" in page
    assert "secret code" not in page and "FutureWarning" not in page and "<script" not in page
    assert "Run me with" not in page and "Run me with" in path.read_text()  # kept in the notebook only




@pytest.mark.slow
def test_timeout_then_the_rerun_redoes_the_failed_report(demo2: Path, key: Path, cache: Path,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Per-notebook timeout: the notebook is stopped and recorded as failed; a rerun redoes only it."""
    nbs = tiny_notebooks(tmp_path)
    out = tmp_path / "reports"
    kw = dict(month=MONTH, branches=["B001"], out=out, cache_dir=cache, key_file=key, workers=1,
              progress=False, log=lambda m: None, _notebooks=nbs, metrics_dir=tmp_path / "metrics")  # fmt: skip
    monkeypatch.setenv("TINY_SLEEP", "60")
    s = run_report(demo2, timeout=3, **kw)
    assert s.status["B001"] == "failed" and "did not finish within 3 s" in s.errors["B001"] and s.exit_code == 1
    assert s.durations["B001"] < 30
    assert (out / MONTH / "notebooks" / "B001.ipynb").is_file() and not (out / MONTH / "branches").exists()
    monkeypatch.setenv("TINY_SLEEP", "0")
    s = run_report(demo2, timeout=60, **kw)
    assert s.status == {"B001": "done", "index": "done"} and s.exit_code == 0
    assert json.loads((tmp_path / "metrics" / MONTH / "B001.json").read_text())["branch_id"] == "B001"
    s = run_report(demo2, timeout=60, **kw)
    assert s.status == {"B001": "skipped", "index": "skipped"}


@pytest.mark.slow
def test_a_relative_cache_dir_works(demo2: Path, key: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A relative --cache-dir is taken from where the run starts, though the kernels run elsewhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINY_SLEEP", "0")
    s = run_report(demo2, month=MONTH, branches=["B001"], out="reports", cache_dir="rel-cache", key_file=key,
                   workers=1, progress=False, log=lambda m: None, _notebooks=tiny_notebooks(tmp_path),
                   metrics_dir=tmp_path / "metrics")  # fmt: skip
    assert s.status == {"B001": "done", "index": "done"}, s.errors
    assert (tmp_path / "rel-cache").is_dir() and s.bundle.is_absolute()


# --------------------------------------------------------------------------- warm kernels

_PROBE = """import json, os, sys, warnings
import matplotlib, matplotlib.pyplot as plt, pandas as pd
sys.path.insert(0, os.environ["PROBE_DIR"])
import probe_state  # a module of the report's own: module-level state
seen = {"variable": "leaked" in globals(), "rc": matplotlib.rcParams["lines.linewidth"],
        "pandas": pd.get_option("display.max_rows"), "module": list(probe_state.STATE),
        "figures": len(plt.get_fignums()), "env": os.environ.get("PROBE_LEAK"),
        "warnings": len(warnings.filters), "cwd": os.getcwd(), "pid": os.getpid()}
leaked = 1
matplotlib.rcParams["lines.linewidth"] = 9.0
pd.set_option("display.max_rows", 3)
probe_state.STATE.append(branch)
os.environ["PROBE_LEAK"] = "1"
warnings.simplefilter("ignore")
plt.figure()
with open(metrics_out, "w") as f:
    json.dump(seen, f)
"""


def test_a_warm_kernel_leaks_no_state_from_one_report_to_the_next(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from crmresearch.batch import kernels, tasks

    (tmp_path / "probe_state.py").write_text("STATE = []\n")
    monkeypatch.setenv("PROBE_DIR", str(tmp_path))
    monkeypatch.delenv(kernels.FRESH_ENV, raising=False)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("branch = None\nmetrics_out = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(_PROBE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "probe.ipynb")
    out = tmp_path / "out"
    kernels.shutdown_warm_kernels()
    try:
        seen = []
        for b in ("B001", "B002", "B003"):
            task = tasks.ReportTask(name=b, scope="branch", notebook=str(tmp_path / "probe.ipynb"),
                                     parameters={"branch": b}, out_dir=str(out), scratch=str(tmp_path / "scratch"),
                                     title=b, language="en", timeout=120, metrics=str(tmp_path / "m" / f"{b}.json"))  # fmt: skip
            res = tasks.run_task(task)
            assert res["status"] == "done", res["error"]
            seen.append(json.loads((tmp_path / "m" / f"{b}.json").read_text()))
    finally:
        kernels.shutdown_warm_kernels()
    first = seen[0]
    assert first["variable"] is False and first["module"] == [] and first["figures"] == 0
    for later in seen[1:]:
        assert later["pid"] == first["pid"]  # the same kernel ran every report
        assert {k: later[k] for k in later if k not in ("cwd", "pid")} == {k: first[k] for k in first if k not in ("cwd", "pid")}
    assert [Path(s["cwd"]).name.split("-")[0] for s in seen] == ["B001", "B002", "B003"]  # each its own folder


@pytest.mark.slow
def test_branch_reports_on_one_warm_kernel_equal_fresh_kernels(full_run: FullRun, demo2: Path, key: Path,
                                                               cache: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from crmresearch.batch import kernels

    runs = {}
    for mode in ("warm", "fresh"):
        if mode == "fresh":
            monkeypatch.setenv(kernels.FRESH_ENV, "1")
        else:
            monkeypatch.delenv(kernels.FRESH_ENV, raising=False)
        out = tmp_path / mode
        code, _, stderr = _cli(*_args(demo2, out, key, cache, "--workers", "1", "--branch", "B001", "--branch", "B002",
                                      "--metrics-dir", tmp_path / f"metrics-{mode}"))  # fmt: skip
        assert code == 0, stderr
        runs[mode] = tmp_path / f"metrics-{mode}" / MONTH
    kernels.shutdown_warm_kernels()
    for rel in ["B001.json", "B002.json"]:
        warm = (runs["warm"] / rel).read_bytes()
        assert warm == (runs["fresh"] / rel).read_bytes(), rel
        assert warm == (full_run.metrics / rel).read_bytes(), rel  # two warm worker processes


def test_index_colours_the_churn_rate_against_the_bank() -> None:
    """Three-way, colour-blind-safe (blue/orange/grey) with the word beside it; a hidden rate gets no colour."""
    rows = pd.DataFrame({"branch_id": ["B1", "B2", "B3"], "branch_name": ["North", "South", "East"],
                         "region": ["N", "S", "S"], "customers": [900, 900, 900], "status": ["done"] * 3,
                         "active_at_start": [800, 800, 800], "churned_in_month": [40, 12, 30],
                         "monthly_churn_rate": [0.05, 0.015, 0.0375], "aum_lost": [1e6, 1e6, 1e5],
                         "aum_drained": [2e6, 2e6, 2e5], "hv_churned": [12, 11, 10],
                         "vs_bank": ["worse", "better", "same"]})  # fmt: skip
    page = render_index(rows, month=MONTH, language="en", min_cell=10, meta={}, bank_link=False)
    b1 = re.search(r"<tr><td[^>]*><a href=\"branches/B1.html\">B1</a>.*?</tr>", page).group(0)
    b2 = re.search(r"<tr><td[^>]*><a href=\"branches/B2.html\">B2</a>.*?</tr>", page).group(0)
    b3 = re.search(r"<tr><td[^>]*><a href=\"branches/B3.html\">B3</a>.*?</tr>", page).group(0)
    assert 'class="vs-worse"' in b1 and "▲ worse" in b1
    assert 'class="vs-better"' in b2 and "▼ better" in b2
    assert 'class="vs-same"' in b3 and "≈ about the same" in b3
    few = rows.assign(churned_in_month=[40, 12, 4], monthly_churn_rate=[0.05, 0.015, 0.005])
    hidden = render_index(few, month=MONTH, language="en", min_cell=10, meta={}, bank_link=False)
    b3 = re.search(r"<tr><td[^>]*><a href=\"branches/B3.html\">B3</a>.*?</tr>", hidden).group(0)
    assert "vs-" not in b3 and "about the same" not in b3, "4 churned: the rate is hidden, and so is its colour"
    assert 'id="region-filter"' in page and 'id="branch-find"' in page and "<option value=\"S\">S</option>" in page
    zh = render_index(rows, month=MONTH, language="zh", min_cell=10, meta={}, bank_link=False)
    assert "▲ 恶化" in zh and "查找支行" in zh
