"""A PostgreSQL database as a SOURCE (issue 15), against a real throwaway server (tests/postgres_server.py).

The demo bank is written into a database with ``crmresearch demo-data
--format postgresql://...`` and, with the same settings, as Parquet; every
command then gives byte-identical output from both (the validation report but
for its ``source:`` line, survival tables, metrics.json of the bank and of
every branch).  Each failure is one line, exit 2, no traceback, nothing
written, and never the password.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crmresearch.cli import main
from crmresearch.data.database import is_database, mask_uri, read_database
from crmresearch.data.demo import DemoConfig

CFG = DemoConfig(branches=3, customers_per_branch=300, months=24, seed=7)
MONTH = "2026-10"
DEMO_ARGS = ["--branches", "3", "--customers-per-branch", "300", "--months", "24", "--seed", "7"]


@pytest.fixture(scope="module")
def banks(pg_server, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The demo bank in a database (written by the command line) and the same bank as Parquet."""
    uri = pg_server.createdb("bank")
    assert main(["demo-data", "--format", uri, *DEMO_ARGS]) == 0
    folder = tmp_path_factory.mktemp("pq") / "bank"
    assert main(["demo-data", str(folder), *DEMO_ARGS]) == 0
    return uri, folder


def _run(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_uri_detection_and_masking() -> None:
    assert is_database("postgresql://u@h/db") and is_database("postgres://u@h/db") and not is_database("data/x")
    assert mask_uri("postgresql://crm:p%40ss@h:5/db?options=-csearch_path%3Dcrm") == \
        "postgresql://crm:***@h:5/db?options=-csearch_path%3Dcrm"
    assert mask_uri("postgresql://crm@h/db?password=pw&sslmode=require") == \
        "postgresql://crm@h/db?password=***&sslmode=require"


def test_demo_data_writes_the_bank_into_the_database(banks: tuple[str, Path], pg_server,
                                                     capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    uri, _ = banks
    read = read_database(uri)
    assert read.tables["customers"].num_rows == 900 and not read.missing
    # a second write without --force refuses, naming the tables, and writes nothing
    code, out, err = _run(capsys, ["demo-data", "--format", uri, *DEMO_ARGS])
    assert code == 2 and "already has table(s)" in err and pg_server.password not in out + err
    assert read_database(uri).fingerprint == read.fingerprint


def test_validation_report_equals_the_parquet_one(banks: tuple[str, Path], pg_server,
                                                  capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    uri, folder = banks
    code, db_out, db_err = _run(capsys, ["validate", uri])
    assert code == 0
    code, pq_out, _ = _run(capsys, ["validate", str(folder)])
    assert code == 0
    assert db_out.splitlines()[0] == f"source: {mask_uri(uri)}"
    assert db_out.splitlines()[1:] == pq_out.splitlines()[1:]
    assert pg_server.password not in db_out + db_err and "***" in db_err


@pytest.mark.parametrize("episodes", [False, True], ids=["customers", "episodes"])
def test_survival_tables_equal_the_parquet_ones(banks: tuple[str, Path], tmp_path: Path, episodes: bool,
                                                capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    uri, folder = banks
    more = ["--episodes"] if episodes else []
    for name, src in (("db", uri), ("pq", str(folder))):
        assert _run(capsys, ["survival-table", src, "--out", str(tmp_path / f"{name}.csv"), *more])[0] == 0
    assert (tmp_path / "db.csv").read_bytes() == (tmp_path / "pq.csv").read_bytes()


@pytest.mark.slow
def test_metrics_json_equal_the_parquet_ones_bank_and_every_branch(banks: tuple[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    uri, folder = banks
    for scope in (["--bank"], ["--branch", "B001"], ["--branch", "B002"], ["--branch", "B003"]):
        files = []
        for name, src in (("db", uri), ("pq", str(folder))):
            out = tmp_path / f"{name}-{scope[-1].strip('-')}.json"
            assert _run(capsys, ["metrics", src, "--month", MONTH, *scope, "--out", str(out)])[0] == 0
            files.append(out.read_bytes())
        assert files[0] == files[1], scope


def test_password_from_pgpassword_pgpass_and_a_service_file(banks: tuple[str, Path], pg_server, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    bare = pg_server.uri("bank", password=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    code, out, err = _run(capsys, ["validate", bare])
    assert code == 0 and pg_server.password not in out + err
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_server.port}:*:crm:{pg_server.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    assert _run(capsys, ["validate", bare])[0] == 0
    service = tmp_path / "services.conf"
    service.write_text(f"[crm]\nhost=127.0.0.1\nport={pg_server.port}\nuser=crm\ndbname=bank\n")
    monkeypatch.setenv("PGSERVICEFILE", str(service))
    code, out, err = _run(capsys, ["validate", "postgresql:///?service=crm"])
    assert code == 0, err


def test_a_schema_on_the_search_path(pg_server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    uri = pg_server.createdb("schemas")
    pg_server.sql("CREATE SCHEMA warehouse", "schemas")
    target = pg_server.uri("schemas", query="options=-csearch_path%3Dwarehouse")
    assert main(["demo-data", "--format", target, "--branches", "1", "--customers-per-branch", "50",
                 "--months", "12", "--seed", "3"]) == 0  # fmt: skip
    code, out, _ = _run(capsys, ["validate", target])
    assert code == 0 and "customers (50 rows)" in out
    code, out, _ = _run(capsys, ["validate", uri])  # "$user", public: no tables there
    assert code == 2 and "ERROR customers [missing_table]" in out


# --------------------------------------------------------------------------- failures


def _fails(capsys: pytest.CaptureFixture, argv: list[str], needle: str, secret: str, out: Path) -> str:
    """The command exits 2 with one line naming the problem, no traceback, nothing written, no password."""
    code, stdout, stderr = _run(capsys, argv)
    text = stdout + stderr
    assert code == 2, text
    assert secret not in text and "Traceback" not in text
    lines = [ln for ln in text.splitlines() if needle in ln]
    assert lines, text
    assert not out.exists()
    return lines[0]


def test_connection_refused(pg_server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from postgres_server import _free_port

    uri = f"postgresql://crm:{pg_server.password}@127.0.0.1:{_free_port()}/bank"
    out = tmp_path / "m.json"
    line = _fails(capsys, ["metrics", uri, "--month", MONTH, "--bank", "--out", str(out)], "connection refused",
                  pg_server.password, out)  # fmt: skip
    assert line.startswith("error: cannot connect to postgresql://crm:***@127.0.0.1:")


def test_authentication_failed(banks: tuple[str, Path], pg_server, tmp_path: Path,
                               capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    uri = f"postgresql://crm:wrong-{pg_server.password}@127.0.0.1:{pg_server.port}/bank"
    out = tmp_path / "s.csv"
    _fails(capsys, ["survival-table", uri, "--out", str(out)], "password authentication failed",
           pg_server.password, out)  # fmt: skip


def test_unknown_database(pg_server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "s.csv"
    _fails(capsys, ["survival-table", pg_server.uri("nosuchdb"), "--out", str(out)],
           'database "nosuchdb" does not exist', pg_server.password, out)  # fmt: skip


def test_missing_table_and_column_are_in_the_one_pass_report(pg_server, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    uri = pg_server.createdb("broken")
    assert main(["demo-data", "--format", uri, "--branches", "1", "--customers-per-branch", "50",
                 "--months", "12", "--seed", "3"]) == 0  # fmt: skip
    pg_server.sql("DROP TABLE branches", "broken")
    pg_server.sql("ALTER TABLE complaints DROP COLUMN severity", "broken")
    code, out, err = _run(capsys, ["validate", uri])
    assert code == 2 and pg_server.password not in out + err
    assert "ERROR branches [missing_table] required table is missing" in out
    assert "ERROR complaints.severity [missing_column] required column is missing" in out
    target = tmp_path / "s.csv"
    _fails(capsys, ["survival-table", uri, "--out", str(target)], "[missing_table]", pg_server.password, target)


def test_timeout(pg_server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    uri = pg_server.createdb("slow")
    assert main(["demo-data", "--format", uri, "--branches", "1", "--customers-per-branch", "50",
                 "--months", "12", "--seed", "3"]) == 0  # fmt: skip
    pg_server.sql("ALTER TABLE customers RENAME TO customers_t", "slow")
    pg_server.sql("CREATE VIEW customers AS SELECT c.* FROM customers_t c, pg_sleep(5)", "slow")
    params = tmp_path / "p.yaml"
    params.write_text("engine: {database_timeout_seconds: 1}\n")
    out = tmp_path / "s.csv"
    line = _fails(capsys, ["survival-table", uri, "--params", str(params), "--out", str(out)], "timed out",
                  pg_server.password, out)  # fmt: skip
    assert "reading customers" in line and "nothing was written" in line


def test_connection_dropped_mid_read(pg_server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    uri = pg_server.createdb("dropped")
    assert main(["demo-data", "--format", uri, "--branches", "1", "--customers-per-branch", "50",
                 "--months", "12", "--seed", "3"]) == 0  # fmt: skip
    # the server ends the session while it sends the complaints (after the tables before them were read)
    pg_server.sql("ALTER TABLE complaints RENAME TO complaints_t", "dropped")
    pg_server.sql("CREATE VIEW complaints AS SELECT * FROM complaints_t "
                  "WHERE pg_terminate_backend(pg_backend_pid())", "dropped")  # fmt: skip
    out = tmp_path / "m.json"
    line = _fails(capsys, ["metrics", uri, "--month", MONTH, "--bank", "--out", str(out)],
                  "connection was lost", pg_server.password, out)  # fmt: skip
    assert "reading complaints" in line


def test_no_password_in_the_environment_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    from crmresearch.data.database import _redact

    monkeypatch.setenv("PGPASSWORD", "hunter2")
    assert _redact("FATAL: hunter2 wrong for postgresql://u:x@h/d", "postgresql://u:x@h/d") == \
        "FATAL: *** wrong for postgresql://u:***@h/d"
    assert os.environ["PGPASSWORD"] == "hunter2"


def test_parallel_block_range_reads_equal_one_sequential_read(banks: tuple[str, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import crmresearch.data.database as database

    uri, _ = banks
    one = read_database(uri, connections=1)
    monkeypatch.setattr(database, "_CHUNK_BLOCKS", 4)  # the small demo's tables split into block ranges
    many = read_database(uri, connections=3)
    assert many.fingerprint == one.fingerprint
    for name, table in one.tables.items():
        assert many.tables[name].equals(table), name  # same rows, same order, same __row


def test_demo_data_into_a_database_with_truth_and_force(pg_server, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    uri = pg_server.createdb("truth")
    small = ["--branches", "1", "--customers-per-branch", "40", "--months", "12", "--seed", "5"]
    assert _run(capsys, ["demo-data", str(tmp_path / "t"), "--format", uri, *small])[0] == 0
    assert (tmp_path / "t" / "truth.json").is_file()
    before = read_database(uri).fingerprint
    code, _, err = _run(capsys, ["demo-data", "--format", uri, *small[:-1], "6", "--force"])
    assert code == 0 and pg_server.password not in err
    assert read_database(uri).fingerprint != before  # replaced, in one transaction


def test_loading_each_table_as_it_arrives_gives_the_same_report(banks: tuple[str, Path]) -> None:
    from crmresearch.data.contract import validate_source

    uri, _ = banks
    lazy = validate_source(read_database(uri, wait=False)).to_text()
    assert lazy == validate_source(uri).to_text()
