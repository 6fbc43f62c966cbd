"""A report run cleans up after itself, whatever happens to it (issue 12, group 4).

Real runs (``crmresearch report --workers 2`` in a subprocess, on a small
demo bank of 6 branches) are killed with ``SIGKILL``, ``SIGTERM`` and
``SIGINT`` once a report is done: no worker, kernel or resource tracker may
outlive them, nothing may be published afterwards, and the manifest lists
what finished.  A complete run renders 3+ reports per warm kernel and no page
may show kernel text.  The folder lock, stale reports, the temporary folders
and the kernels' transport are checked with the runner's machinery directly
(tiny notebooks where the real ones are not needed).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from crmresearch.batch.run import run_report
from crmresearch.cli import main
from crmresearch.data.demo import DemoConfig, write_demo_bank
from run_helpers import report_args, tiny_notebooks

MONTH = "2026-10"
KERNEL_TEXT = ["ERROR!", "Traceback", "Warning", "History logging", "stderr"]


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bank6(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_bank(tmp_path_factory.mktemp("cleanup-demo") / "bank",
                           DemoConfig(branches=6, customers_per_branch=60, months=24, seed=11))  # fmt: skip


def _args(source: Path, out: Path, key: Path, cache: Path, *more: str) -> list[str]:
    return report_args(source, out, key, cache, *more, month=MONTH)


@pytest.fixture()
def tmpdir_short() -> Path:
    """A temporary folder for a run's ``$TMPDIR``, short enough for the kernels' IPC socket paths."""
    d = Path(tempfile.mkdtemp(prefix="crt-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _env(tmpdir: Path) -> dict[str, str]:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    for k in ("CRMRESEARCH_TEST_ABORT_AFTER", "CRMRESEARCH_TEST_FAIL_BRANCH", "CRMRESEARCH_FRESH_KERNELS"):
        env.pop(k, None)
    return env


def _ours(tmpdir: Path) -> list[str]:
    """crmresearch's temporary folders (DuckDB spill, kernel sockets) in ``tmpdir``."""
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith("crmresearch-"))


def _html(month: Path) -> dict[str, int]:
    return {str(p.relative_to(month)): p.stat().st_mtime_ns for p in month.rglob("*.html")}


# --------------------------------------------------------------------------- killed runs


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_a_killed_run_leaves_no_process_and_publishes_nothing_after(sig: signal.Signals, bank6: Path, key: Path,
                                                                     cache: Path, tmp_path: Path,
                                                                     tmpdir_short: Path) -> None:  # fmt: skip
    out, tmpdir = tmp_path / "reports", tmpdir_short
    month = out / MONTH
    proc = subprocess.Popen([sys.executable, "-m", "crmresearch.cli", *_args(bank6, out, key, cache, "--workers", "2")],
                            env=_env(tmpdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
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
        names = " ".join(" ".join(p.cmdline()) for p in tree)
        assert "ipykernel" in names and "resource_tracker" in names, names  # workers, kernels, the tracker
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        gone, alive = psutil.wait_procs(tree, timeout=20)
        assert not alive, [" ".join(p.cmdline()) for p in alive]
        published = _html(month)
        time.sleep(3)  # a worker left running would go on publishing
        assert _html(month) == published
    finally:  # whatever the outcome, nothing of this run stays (on failure: the test's own clean-up)
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.kill()
        proc.kill()
        proc.wait()
    if sig == signal.SIGKILL:
        return
    assert proc.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[sig], stderr
    manifest = json.loads((month / "manifest.json").read_text())
    finished = [n for n, e in manifest["reports"].items() if e["status"] == "done"]
    assert set(done) <= set(finished)
    assert manifest["interrupted"]["signal"] == sig.name
    assert not set(finished) & set(manifest["interrupted"]["unfinished"])
    for n in finished:  # what the manifest calls done is published, and nothing else is
        assert (month / "branches" / f"{n}.html").is_file()
    assert {f"branches/{n}.html" for n in finished} == set(published)
    assert _ours(tmpdir) == [], "temporary folders left behind"
    assert not (month / ".lock").exists()


# --------------------------------------------------------------------------- a complete run


@pytest.mark.slow
def test_warm_kernels_publish_no_kernel_text_and_leave_no_temporary_folder(bank6: Path, key: Path, tmp_path: Path,
                                                                             tmpdir_short: Path) -> None:  # fmt: skip
    """6 branches and the bank summary on 2 workers: 3+ reports per warm kernel; a fresh cache runs the bank stage."""
    out, tmpdir = tmp_path / "reports", tmpdir_short
    run = subprocess.run([sys.executable, "-m", "crmresearch.cli",
                          *_args(bank6, out, key, tmp_path / "cache", "--workers", "2")],
                         env=_env(tmpdir), capture_output=True, text=True, timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stderr
    month = out / MONTH
    pages = sorted(month.rglob("*.html"))
    assert len(pages) == 8  # 6 branches, the bank summary, the index
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not [t for t in KERNEL_TEXT if t in text], page.name
    assert _ours(tmpdir) == [], "DuckDB spill or kernel folders left behind"
    manifest = json.loads((month / "manifest.json").read_text())
    assert manifest["workers"] == 2 and "interrupted" not in manifest


def _notebook(folder: Path, code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("branch = None\nmetrics_out = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "report.ipynb"
    nbformat.write(nb, path)
    return path


def test_what_a_report_writes_to_stderr_is_logged_not_published(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from crmresearch.batch import kernels, tasks

    monkeypatch.delenv(kernels.FRESH_ENV, raising=False)
    nb = _notebook(tmp_path, "import json, sys, warnings\nprint('visible-output')\n"
                             "sys.stderr.write('kernel-noise on stderr\\n')\nwarnings.warn('careful-warning')\n"
                             "json.dump({'branch_id': branch}, open(metrics_out, 'w'))")  # fmt: skip
    out = tmp_path / "out"
    kernels.shutdown_warm_kernels()
    try:
        results = []
        for b in ("B001", "B002", "B003"):  # the same warm kernel, 3 reports
            task = tasks.ReportTask(name=b, scope="branch", notebook=str(nb), parameters={"branch": b},
                                     out_dir=str(out), scratch=str(tmp_path / "scratch"), title=b, language="en",
                                     timeout=120, metrics=str(tmp_path / "metrics" / f"{b}.json"))  # fmt: skip
            results.append(tasks.run_task(task))
    finally:
        kernels.shutdown_warm_kernels()
    for b, res in zip(("B001", "B002", "B003"), results, strict=True):
        assert res["status"] == "done", res["error"]
        assert "kernel-noise on stderr" in res["stderr"] and "careful-warning" in res["stderr"]
        page = (out / "branches" / f"{b}.html").read_text(encoding="utf-8")
        assert "visible-output" in page
        assert "kernel-noise" not in page and "careful-warning" not in page
        assert not [t for t in KERNEL_TEXT if t in page]
        kept = nbformat.read(out / "notebooks" / f"{b}.ipynb", as_version=4)  # the audit notebook keeps it
        assert "kernel-noise" in json.dumps([c.get("outputs", []) for c in kept.cells])


def test_local_kernels_use_ipc_in_a_private_folder_removed_at_exit(tmpdir_short: Path) -> None:
    code = ("import json, os, stat\nfrom crmresearch.batch import kernels\nk = kernels._WarmKernel()\n"
            "info = k.km.get_connection_info()\nd = os.path.dirname(k.km.connection_file)\n"
            "print(json.dumps({'transport': info['transport'], 'ip': info['ip'], 'dir': d,"
            " 'mode': stat.S_IMODE(os.stat(d).st_mode), 'files': sorted(os.listdir(d))}))\n"
            "kernels.shutdown_warm_kernels()\nk.shutdown()\n")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], env=_env(tmpdir_short), capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["transport"] == "ipc" and seen["ip"].startswith(seen["dir"]) and seen["dir"].startswith(str(tmpdir_short))
    assert seen["mode"] & 0o777 == 0o700 and any(f.endswith("-ipc-1") for f in seen["files"]), seen  # the sockets
    assert not Path(seen["dir"]).exists(), "the kernels' folder outlived the process"
    assert "tcp" not in run.stderr.lower() and "encrypt" not in run.stderr.lower(), run.stderr


# --------------------------------------------------------------------------- the folder lock



def _holder(folder: Path) -> subprocess.Popen:
    """Another process holding the folder's lock until its stdin closes."""
    code = ("import sys\nfrom crmresearch.batch.procs import FolderLock\n"
            f"with FolderLock({str(folder)!r}):\n    print('locked', flush=True)\n    sys.stdin.read()\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_refuses_or_waits(bank6: Path, key: Path, cache: Path,
                                                            tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "reports"
    holder = _holder(out / MONTH)
    try:
        code, _, stderr = _cli(*_args(bank6, out, key, cache, "--branch", "B001", "--language", "zh"))
        assert code == 2
        assert f"pid {holder.pid}" in stderr and "another crmresearch run" in stderr and "--wait" in stderr
        assert sorted(p.name for p in (out / MONTH).iterdir()) == [".lock"], "the refused run wrote something"
        said: list[str] = []

        def say(msg: str) -> None:
            said.append(msg)
            if msg.startswith("waiting for"):
                holder.stdin.close()  # the first run ends

        s = run_report(bank6, month=MONTH, branches=["B001"], out=out, cache_dir=cache, key_file=key, workers=1,
                       progress=False, log=say, wait=True, _notebooks=tiny_notebooks(tmp_path))  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert [m for m in said if m.startswith("waiting for") and f"pid {holder.pid}" in m]
    assert s.status == {"B001": "done", "index": "done"}
    assert not (out / MONTH / ".lock").exists()


def test_a_lock_left_by_a_dead_process_is_broken(tmp_path: Path) -> None:
    from crmresearch.batch.procs import FolderLock

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    folder = tmp_path / "reports" / MONTH
    folder.mkdir(parents=True)
    (folder / ".lock").write_text(f"{pid} 2026-11-02T06:00:00+00:00\n")
    with FolderLock(folder) as lock:
        assert lock.path.read_text().split()[0] == str(os.getpid())
    assert not (folder / ".lock").exists()


def test_input_refused_after_the_lock_leaves_no_folder(bank6: Path, key: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    code, _, stderr = _cli(*_args(bank6, out, key, cache, "--branch", "B999"))
    assert code == 2 and "unknown branch 'B999'" in stderr
    assert not out.exists()


# --------------------------------------------------------------------------- reports of other inputs


@pytest.mark.slow
def test_reports_of_another_source_or_branch_list_are_removed(bank6: Path, key: Path, cache: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    other = write_demo_bank(tmp_path / "other", DemoConfig(branches=2, customers_per_branch=60, months=24, seed=5))
    nbs = tiny_notebooks(tmp_path)
    out = tmp_path / "reports"
    month = out / MONTH
    kw = dict(month=MONTH, out=out, cache_dir=cache, key_file=key, workers=1, progress=False, log=lambda m: None,
              _notebooks=nbs)  # fmt: skip
    run_report(bank6, **kw)
    assert len(list((month / "branches").glob("*.html"))) == 6
    # the same inputs, fewer branches: the others' reports still hold and stay
    s = run_report(bank6, branches=["B001"], **kw)
    assert s.status["B001"] == "skipped" and (month / "branches" / "B006.html").is_file()
    # another source (2 branches, other data): every report of the first one goes
    said: list[str] = []
    s = run_report(other, branches=["B001"], **{**kw, "log": said.append})
    assert s.status["B001"] == "done"
    manifest = json.loads((month / "manifest.json").read_text())
    assert set(manifest["reports"]) == {"B001", "index"}
    assert manifest["source_fingerprint"] and manifest["source"] == str(other.resolve())
    assert sorted(p.name for p in (month / "branches").iterdir()) == ["B001.html"]
    assert sorted(p.name for p in (month / "notebooks").iterdir()) == ["B001.ipynb"]
    assert not (month / "bank.html").exists()
    index = (month / "index.html").read_text(encoding="utf-8")
    assert 'href="branches/B002.html"' not in index and 'href="bank.html"' not in index
    assert [m for m in said if m.startswith("removed 6 report(s) of other inputs")]
