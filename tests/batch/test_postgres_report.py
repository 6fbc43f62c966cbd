"""The month rendered from a PostgreSQL database (issue 15): the report run, its rerun, and the password.

A real throwaway server (tests/postgres_server.py).  The fingerprint of a
database source is the digest of what was read: an unchanged database skips
every report on a rerun, a changed one redoes them.  The password appears in
nothing the run writes (reports, notebooks, manifest, metrics, cache) nor
prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crmresearch.batch.run import run_report
from crmresearch.core.privacy import load_key, pseudonymize
from crmresearch.data.database import mask_uri
from run_helpers import report_args, tiny_notebooks

MONTH = "2026-10"
DEMO_ARGS = ["--branches", "3", "--customers-per-branch", "300", "--months", "24", "--seed", "7"]


def _cli(*args: str) -> tuple[int, str, str]:
    res = subprocess.run([sys.executable, "-m", "crmresearch.cli", *map(str, args)], capture_output=True, text=True,
                         timeout=900)  # fmt: skip
    return res.returncode, res.stdout, res.stderr


@pytest.fixture(scope="module")
def db(pg_server) -> str:
    uri = pg_server.createdb("reports")
    code, _, err = _cli("demo-data", "--format", uri, *DEMO_ARGS)
    assert code == 0, err
    return uri


def _grep(folder: Path, secret: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.mark.slow
def test_report_from_the_database_writes_no_password_and_a_rerun_skips_everything(
        db: str, pg_server, key: Path, tmp_path: Path) -> None:  # fmt: skip
    out, cache, metrics = tmp_path / "reports", tmp_path / "cache", tmp_path / "metrics"
    code, stdout, stderr = _cli(*report_args(db, out, key, cache, "--workers", "2", "--metrics-dir", metrics,
                                             month=MONTH))  # fmt: skip
    assert code == 0, stderr
    assert "4 report(s) done" in stderr or "report(s) done, 0 skipped (unchanged), 0 failed" in stderr, stderr
    secret = pg_server.password.encode()
    for folder in (out, cache, metrics):
        assert folder.is_dir() and _grep(folder, secret) == [], folder
    assert pg_server.password not in stdout + stderr
    manifest = json.loads((out / MONTH / "manifest.json").read_text())
    assert manifest["source"] == mask_uri(db) and "***" in manifest["source"]
    assert sorted((metrics / MONTH).glob("*.json")) and (out / MONTH / "branches" / "B001.html").is_file()
    code, _, stderr = _cli(*report_args(db, out, key, cache, "--workers", "2", month=MONTH))
    assert code == 0 and "0 report(s) done, " in stderr and " 0 failed" in stderr and "0 skipped" not in stderr, stderr
    assert pg_server.password not in stderr


def test_an_unchanged_database_skips_and_a_changed_one_redoes(db: str, pg_server, key: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    nbs = tiny_notebooks(tmp_path)
    opts = {"month": MONTH, "out": tmp_path / "out", "cache_dir": tmp_path / "cache", "key_file": key,
            "workers": 1, "progress": False, "log": lambda m: None, "_notebooks": nbs}  # fmt: skip
    first = run_report(db, **opts)
    assert set(first.status.values()) == {"done"} and {"bank", "B001", "B002", "B003"} <= set(first.status)
    second = run_report(db, **opts).status
    assert {second[n] for n in ("bank", "B001", "B002", "B003")} == {"skipped"}, second
    pg_server.sql("UPDATE monthly_balances SET aum = aum + 1 "
                  "WHERE ctid = (SELECT min(ctid) FROM monthly_balances)", "reports")  # fmt: skip
    try:
        third = run_report(db, **opts).status
        assert {third[n] for n in ("bank", "B001", "B002", "B003")} == {"done"}, third
    finally:
        pg_server.sql("UPDATE monthly_balances SET aum = aum - 1 "
                      "WHERE ctid = (SELECT min(ctid) FROM monthly_balances)", "reports")  # fmt: skip


def test_unmask_from_the_database(db: str, key: Path) -> None:
    token = pseudonymize(["0000000004"], load_key(key)).iloc[0]
    code, stdout, _ = _cli("unmask", db, token, "--key-file", key)
    assert code == 0 and stdout.strip() == f"{token}\t0000000004"


def test_report_from_an_unreachable_database_writes_nothing(pg_server, key: Path, tmp_path: Path) -> None:
    from postgres_server import _free_port

    uri = f"postgresql://crm:{pg_server.password}@127.0.0.1:{_free_port()}/reports"
    out, cache = tmp_path / "reports", tmp_path / "cache"
    code, stdout, stderr = _cli(*report_args(uri, out, key, cache, month=MONTH))
    assert code == 2 and "connection refused" in stderr and "Traceback" not in stderr
    assert pg_server.password not in stdout + stderr
    assert not out.exists() and not cache.exists()
