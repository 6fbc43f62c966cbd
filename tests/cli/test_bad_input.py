"""Unreadable input is a finding, not a traceback (issue 12, group 3).

Every reproduction runs the real command line in a subprocess
(``python -m crmresearch.cli``) and checks that it exits 2 (bad input), that
one line of its output names the file (or option) and what is wrong, that
nothing on stderr is a Python traceback, and that nothing was written: the
case's folder holds exactly the files it held before.

The subprocesses of all cases are started together by one module fixture (a
few at a time), so the cases cost about as much as the slowest of them.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

import crmresearch
from crmresearch.core.privacy import new_key_file
from crmresearch.data.contract import validate_source
from crmresearch.data.demo import DemoConfig, write_demo_bank

MONTH = "2026-10"
PARALLEL = 4


@dataclass
class Case:
    """One reproduction: ``build(case_dir, shared)`` makes its inputs and returns the command's arguments."""

    id: str
    build: Callable[[Path, Path], list[str]]
    needles: tuple[str, ...]  # all on one line of the output
    stream: str = "stderr"  # where that line is: validate prints its report on stdout


@dataclass
class Result:
    case: Case
    folder: Path
    before: dict[str, int]
    code: int | None = None
    stdout: str = ""
    stderr: str = ""
    after: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- inputs


def _src(case: Path, shared: Path) -> Path:
    """A copy of the valid tiny source, in the case's folder."""
    return Path(shutil.copytree(shared / "bank", case / "src"))


def _as_csv(src: Path, table: str) -> Path:
    """Replace ``<table>.parquet`` by the same table as ``<table>.csv``."""
    csv = src / f"{table}.csv"
    pd.read_parquet(src / f"{table}.parquet").to_csv(csv, index=False)
    (src / f"{table}.parquet").unlink()
    return csv


def empty_parquet(case: Path, shared: Path) -> Path:
    src = _src(case, shared)
    (src / "complaints.parquet").write_bytes(b"")
    return src


def non_utf8_csv(case: Path, shared: Path) -> Path:
    src = _src(case, shared)
    csv = _as_csv(src, "branches")
    lines = csv.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b",", b" Caf\xe9,", 1)  # a Latin-1 branch name on line 2
    csv.write_bytes(b"\n".join(lines))
    return src


def ragged_csv(case: Path, shared: Path) -> Path:
    src = _src(case, shared)
    csv = _as_csv(src, "branches")
    lines = csv.read_bytes().split(b"\n")
    lines[2] = lines[2].rsplit(b",", 1)[0]  # line 3 loses its last field
    csv.write_bytes(b"\n".join(lines))
    return src


def corrupt_duckdb(case: Path, shared: Path) -> Path:
    db = case / "bank.duckdb"
    db.write_bytes(b"this is not a database\n" * 400)
    return db


def _params(case: Path, data: bytes) -> Path:
    p = case / "p.yaml"
    p.write_bytes(data)
    return p


def _report(src: Path, shared: Path, *extra: str, out: str = "reports", cache: str = "cache") -> list[str]:
    return ["report", src.name, "--month", MONTH, "--key-file", str(shared / "pseudonym.key"),
            "--out", out, "--cache-dir", cache, "--workers", "1", *extra]  # fmt: skip


def _free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flat_csv(case: Path, raw: bytes) -> Path:
    header = (b"RowNumber,CustomerId,Surname,CreditScore,Geography,Gender,Age,Tenure,Balance,NumOfProducts,"
              b"HasCrCard,IsActiveMember,EstimatedSalary,Exited\n")  # fmt: skip
    p = case / "churn.csv"
    p.write_bytes(header + raw)
    return p


FLAT_ROW = b"1,15634602,Hargrave,619,France,Female,42,2,0,1,1,1,101348.88,1\n"


def _scheduler(case: Path, shared: Path) -> list[str]:
    src = _src(case, shared)
    _params(case, b"engine: {scheduler_connect_seconds: 1}\n")
    return _report(src, shared, "--params", "p.yaml", "--scheduler", f"tcp://127.0.0.1:{_free_port()}")


def _touch(case: Path, name: str) -> str:
    """A file called ``name`` where the command wants a folder (or a parent folder)."""
    (case / name).write_text("a file\n", encoding="utf-8")
    return name


def _manifest(case: Path, data: bytes) -> str:
    """A ``manifest.json`` for ``report --check-environment`` holding ``data``."""
    (case / "manifest.json").write_bytes(data)
    return "manifest.json"


_OLD_MANIFEST = b'{"schema": 1, "month": "2026-10", "reports": {}}'
_EDITED_MANIFEST = b'{"reports": {}, "environment": ["a==1"], "environment_digest": "00"}'


def _mkdir(case: Path, name: str) -> str:
    """A folder called ``name`` where the command wants a file."""
    (case / name).mkdir()
    return name


CASES = [
    # sources: each unreadable file is a finding of the validation report
    Case("empty_parquet", lambda c, s: ["validate", empty_parquet(c, s).name],
         ("src/complaints.parquet", "empty file (0 bytes)"), "stdout"),
    Case("non_utf8_csv", lambda c, s: ["validate", non_utf8_csv(c, s).name],
         ("src/branches.csv", "not UTF-8 text (byte 0xe9 on line 2)"), "stdout"),
    Case("ragged_csv", lambda c, s: ["validate", ragged_csv(c, s).name],
         ("src/branches.csv", "line 3 has 2 field(s), the header has 3"), "stdout"),
    Case("corrupt_duckdb", lambda c, s: ["validate", corrupt_duckdb(c, s).name],
         ("bank.duckdb", "not a valid DuckDB database file"), "stdout"),
    # the same sources through the other commands that load one
    Case("survival_table_ragged_csv", lambda c, s: ["survival-table", ragged_csv(c, s).name, "--out", "t.parquet"],
         ("src/branches.csv", "line 3 has 2 field(s)")),
    Case("metrics_non_utf8_csv", lambda c, s: ["metrics", non_utf8_csv(c, s).name, "--month", MONTH, "--bank",
                                                "--out", "m.json"], ("src/branches.csv", "not UTF-8 text")),
    Case("report_empty_parquet", lambda c, s: _report(empty_parquet(c, s), s),
         ("src/complaints.parquet", "empty file (0 bytes)")),
    Case("unmask_corrupt_duckdb", lambda c, s: ["unmask", corrupt_duckdb(c, s).name, "P0123456789abcdef",
                                                 "--key-file", str(s / "pseudonym.key")],
         ("bank.duckdb", "not a valid DuckDB database file")),
    # parameters files
    Case("params_not_utf8", lambda c, s: ["validate", _src(c, s).name, "--params", _params(c, b"language: \xff\n").name],
         ("p.yaml", "not UTF-8 text (byte 0xff on line 1)")),
    Case("params_bad_yaml", lambda c, s: ["validate", _src(c, s).name, "--params",
                                          _params(c, b"windows:\n  complaint_days: [30\n").name],
         ("p.yaml", "not valid YAML at line 3")),
    Case("params_not_a_mapping", lambda c, s: ["validate", _src(c, s).name, "--params", _params(c, b"- en\n- zh\n").name],
         ("p.yaml", "must hold a mapping of keys", "not a list")),
    # report options
    Case("report_out_is_a_file", lambda c, s: _report(_src(c, s), s, out=_touch(c, "reports")),
         ("--out reports", "is a file, not a folder")),
    Case("report_cache_dir_is_a_file", lambda c, s: _report(_src(c, s), s, cache=_touch(c, "cache")),
         ("--cache-dir cache", "is a file, not a folder")),
    Case("report_unreachable_scheduler", _scheduler,
         ("--scheduler tcp://127.0.0.1:", "no Dask scheduler answered within 1 s")),
    *[Case(f"report_timeout_{name}", lambda c, s, v=value: _report(_src(c, s), s, f"--timeout={v}"),
           (f"--timeout {shown}", "must be a number of seconds above 0"))
      for name, value, shown in [("nan", "nan", "nan"), ("inf", "inf", "inf"), ("negative", "-5", "-5"),
                                 ("zero", "0", "0")]],
    # import-flat: its CSV, its mapping, its output
    Case("import_flat_non_utf8_csv", lambda c, s: ["import-flat", _flat_csv(c, FLAT_ROW.replace(b"Hargrave", b"H\xe9")).name,
                                                   "--mapping", "bank-churn-modelling", "--out", "flat"],
         ("churn.csv", "not utf-8-sig text (byte 0xe9 on line 2)")),
    Case("import_flat_ragged_csv", lambda c, s: ["import-flat", _flat_csv(c, FLAT_ROW + FLAT_ROW.rsplit(b",", 2)[0] + b"\n").name,
                                                 "--mapping", "bank-churn-modelling", "--out", "flat"],
         ("churn.csv", "line 3 has 12 fields, the header has 14")),
    Case("import_flat_mapping_not_utf8", lambda c, s: ["import-flat", _flat_csv(c, FLAT_ROW).name, "--mapping",
                                                       _params(c, b"tenure: \xff\n").name, "--out", "flat"],
         ("mapping file p.yaml", "not UTF-8 text")),
    Case("import_flat_mapping_bad_yaml", lambda c, s: ["import-flat", _flat_csv(c, FLAT_ROW).name, "--mapping",
                                                       _params(c, b"tenure: {column: Tenure\n").name, "--out", "flat"],
         ("mapping file p.yaml", "not valid YAML at line")),
    Case("import_flat_params_not_utf8", lambda c, s: ["import-flat", _flat_csv(c, FLAT_ROW).name, "--mapping",
                                                      "bank-churn-modelling", "--out", "flat", "--params",
                                                      _params(c, b"language: \xff\n").name],
         ("p.yaml", "not UTF-8 text")),
    Case("import_flat_out_under_a_file", lambda c, s: ["import-flat", _flat_csv(c, FLAT_ROW).name, "--mapping",
                                                       "bank-churn-modelling", "--out", _touch(c, "x") + "/flat"],
         ("--out x/flat", "x is a file, not a folder")),
    # other outputs
    Case("keygen_target_is_a_folder", lambda c, s: ["keygen", _mkdir(c, "keys"), "--force"],
         ("key file keys", "is a folder, not a file")),
    Case("keygen_under_a_file", lambda c, s: ["keygen", _touch(c, "x") + "/pseudonym.key"],
         ("key file x/pseudonym.key", "x is a file, not a folder")),
    Case("demo_data_out_is_a_file", lambda c, s: ["demo-data", _touch(c, "bank"), "--branches", "1"],
         ("OUT_DIR bank", "is a file, not a folder")),
    Case("survival_table_out_is_a_folder", lambda c, s: ["survival-table", _src(c, s).name, "--out",
                                                         _mkdir(c, "t.csv"), "--force"],
         ("--out t.csv", "is a folder, not a file")),
    # report --check-environment MANIFEST
    Case("check_environment_no_manifest", lambda c, s: ["report", "--check-environment", "manifest.json"],
         ("--check-environment manifest.json", "no such manifest file")),
    Case("check_environment_not_json", lambda c, s: ["report", "--check-environment", _manifest(c, b"{not json")],
         ("--check-environment manifest.json", "not a readable JSON manifest")),
    Case("check_environment_not_a_manifest", lambda c, s: ["report", "--check-environment", _manifest(c, b"[1, 2]")],
         ("--check-environment manifest.json", "not the manifest.json of a crmresearch report run")),
    Case("check_environment_recorded_none", lambda c, s: ["report", "--check-environment",
                                                          _manifest(c, _OLD_MANIFEST)],
         ("--check-environment manifest.json", "records no environment")),
    Case("check_environment_edited", lambda c, s: ["report", "--check-environment", _manifest(c, _EDITED_MANIFEST)],
         ("--check-environment manifest.json", "does not give its environment_digest")),
    Case("check_environment_and_a_source", lambda c, s: ["report", _src(c, s).name, "--check-environment",
                                                         _manifest(c, _OLD_MANIFEST)],
         ("--check-environment MANIFEST", "give no SOURCE")),
    Case("report_without_source", lambda c, s: ["report", "--month", MONTH], ("report: give SOURCE",)),
    Case("metrics_out_under_a_file", lambda c, s: ["metrics", _src(c, s).name, "--month", MONTH, "--bank", "--out",
                                                   _touch(c, "x") + "/m.json"],
         ("--out x/m.json", "x is a file, not a folder")),
]  # fmt: skip


# --------------------------------------------------------------------------- running them


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CRMRESEARCH_PSEUDONYM_KEY", None)
    src = str(Path(crmresearch.__file__).resolve().parents[1])  # the package this test imported
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid tiny source and a pseudonym key, outside every case's folder."""
    root = tmp_path_factory.mktemp("shared")
    write_demo_bank(root / "bank", DemoConfig(branches=2, customers_per_branch=60, months=12,
                                              as_of=dt.date(2026, 10, 31), seed=3))  # fmt: skip
    new_key_file(root / "pseudonym.key")
    return root


@pytest.fixture(scope="module")
def results(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Run every case's command, :data:`PARALLEL` at a time."""
    root = tmp_path_factory.mktemp("cases")
    pending: list[tuple[Result, list[str]]] = []
    for case in CASES:
        folder = root / case.id
        folder.mkdir()
        argv = case.build(folder, shared)
        pending.append((Result(case, folder, _files(folder)), argv))
    done: dict[str, Result] = {}
    running: list[tuple[Result, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < PARALLEL:
            res, argv = pending.pop(0)
            proc = subprocess.Popen([sys.executable, "-m", "crmresearch.cli", *argv], cwd=res.folder, env=_env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
            running.append((res, proc))
        res, proc = running.pop(0)
        res.stdout, res.stderr = proc.communicate(timeout=120)
        res.code = proc.returncode
        res.after = _files(res.folder)
        done[res.case.id] = res
    return done


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_writes_nothing(case: Case, results: dict[str, Result]) -> None:
    res = results[case.id]
    shown = f"exit {res.code}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
    assert res.code == 2, shown
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, shown
    text = res.stdout if case.stream == "stdout" else res.stderr
    assert [ln for ln in text.splitlines() if all(n in ln for n in case.needles)], shown
    if case.stream == "stderr":
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith(("error:", "ERROR "))]
        assert len(errors) == 1, shown  # one message, not a cascade
    assert res.after == res.before, "nothing may be written"


def test_unreadable_files_and_bad_columns_in_one_report(shared: Path, tmp_path: Path) -> None:
    """Two unreadable tables and one broken rule: one validation pass lists all three, exit 2."""
    src = Path(shutil.copytree(shared / "bank", tmp_path / "src"))
    (src / "complaints.parquet").write_bytes(b"")
    csv = _as_csv(src, "product_holdings")
    short_line = csv.read_bytes().count(b"\n") + 1
    csv.write_bytes(csv.read_bytes() + b"0000000001,payroll\n")  # a short row at the end
    balances = pd.read_parquet(src / "monthly_balances.parquet")
    balances.loc[:2, "aum"] = -5.0
    balances.to_parquet(src / "monthly_balances.parquet", index=False)
    before = _files(tmp_path)
    res = subprocess.run([sys.executable, "-m", "crmresearch.cli", "validate", "src"], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    errors = [ln for ln in res.stdout.splitlines() if ln.startswith("ERROR ")]
    assert errors == [
        "ERROR complaints [unreadable] src/complaints.parquet: empty file (0 bytes)",
        f"ERROR product_holdings [unreadable] src/product_holdings.csv: line {short_line} has 2 field(s), "
        "the header has 4; every row needs one field per column",
        errors[2],
    ], res.stdout
    assert errors[2].startswith("ERROR monthly_balances.aum [min_value] 3 rows: must be >= 0")
    assert "3 error(s)" in res.stdout and "source is NOT valid" in res.stdout
    assert _files(tmp_path) == before


def test_a_bad_row_far_into_a_large_csv_is_found(shared: Path, tmp_path: Path) -> None:
    """DuckDB guesses nothing about a CSV: a ragged or non-UTF-8 row far past any sample is a finding
    with its line, and a ragged first data row does not make it skip rows or take a row for the header."""
    src = Path(shutil.copytree(shared / "bank", tmp_path / "src"))
    csv = _as_csv(src, "monthly_balances")
    header, rows = csv.read_bytes().split(b"\n", 1)
    big = header + b"\n" + rows * (200_000 // rows.count(b"\n") + 1)
    bad_line = big.count(b"\n") + 1
    k = len(header.split(b","))
    csv.write_bytes(big + b"0000000001,2026-10\n")
    (f,) = [f for f in validate_source(src).errors if f.rule == "unreadable"]
    assert (f.table, f.message) == ("monthly_balances", f"{csv}: line {bad_line} has 2 field(s), the header has {k}; "
                                    "every row needs one field per column")  # fmt: skip
    csv.write_bytes(big + b",".join([b"0000000001", b"2026-10", b"1\xff", *[b"0"] * (k - 3)]) + b"\n")
    (f,) = [f for f in validate_source(src).errors if f.rule == "unreadable"]
    assert f.message == f"{csv}: not UTF-8 text (byte 0xff on line {bad_line}); save it as UTF-8"
    csv.write_bytes(big)
    branches = _as_csv(src, "branches")
    lines = branches.read_bytes().split(b"\n")
    lines[1] += b",extra"
    branches.write_bytes(b"\n".join(lines))
    report = validate_source(src)
    assert [f.message for f in report.errors if f.table == "branches"] == [
        f"{branches}: line 2 has 4 field(s), the header has 3; every row needs one field per column"]
    assert report.tables["monthly_balances"] == big.count(b"\n") - 1
