"""``--mapping``: the bank's names mapped to the contract's, for every kind of source (issue 15).

The shipped example (``data/mappings/source/warehouse.yaml``) describes a
warehouse whose tables, columns and codes all differ from the contract's.  The
test builds that warehouse from the demo bank (the same SQL, in PostgreSQL and
in DuckDB for Parquet files and a DuckDB file) and checks that the validation
report, the survival tables and metrics.json equal the demo bank's.  A mapping
naming an unknown contract table or column is an error that names it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb
import pytest

from crmresearch.cli import main
from crmresearch.core.sql import ident, literal
from crmresearch.data.demo import DemoConfig, write_demo_bank
from crmresearch.data.mapping import MappingError, load_source_mapping

MONTH = "2026-10"
CFG = DemoConfig(branches=3, customers_per_branch=300, months=24, seed=7)
EXAMPLE = Path(str(resources.files("crmresearch.data").joinpath("mappings/source/warehouse.yaml")))

# the warehouse, from the demo bank's tables (in schema "staging"): SQL that PostgreSQL and DuckDB both run
WAREHOUSE = {
    "dw_snapshot": "SELECT CAST(as_of AS date) AS as_of_date, CAST(observation_start AS date) AS window_start "
                   "FROM staging.extract",
    "dw_org_unit": "SELECT branch_id AS unit_code, branch_name AS unit_label, region AS area FROM staging.branches",
    "dw_client": "SELECT customer_id AS client_no, branch_id AS home_unit, CAST(open_date AS date) AS opened_on, "
                 "CAST(churn_date AS date) AS closed_on, CASE churn_type WHEN 'transfer' THEN 'T' "
                 "WHEN 'natural' THEN 'N' WHEN 'unknown' THEN 'U' END AS exit_code, churn_reason AS exit_reason, "
                 "segment AS client_segment, channel AS acquisition, birth_year AS yob, name AS full_name, "
                 "'not in the contract' AS crm_note FROM staging.customers",
    "dw_product_line": "SELECT customer_id AS client_no, product AS product_code, CAST(start_date AS date) AS "
                       "valid_from, CAST(end_date AS date) AS valid_to FROM staging.product_holdings",
    "dw_advisor": "SELECT rm_id AS advisor_no, branch_id AS unit_code, CAST(hire_date AS date) AS hired_on, "
                  "CAST(exit_date AS date) AS left_on, CASE exit_type WHEN 'resigned' THEN 'RES' "
                  "WHEN 'transferred' THEN 'TRF' WHEN 'retired' THEN 'RET' WHEN 'dismissed' THEN 'DIS' END "
                  "AS leave_reason FROM staging.relationship_managers",
    "dw_advisor_book": "SELECT customer_id AS client_no, rm_id AS advisor_no, CAST(start_date AS date) AS from_date, "
                       "CAST(end_date AS date) AS to_date FROM staging.rm_assignments",
    "dw_balance_monthly": "SELECT customer_id AS client_no, CAST(month || '-01' AS date) AS period_end, aum AS "
                          "assets, avg_daily_aum AS avg_assets, txn_count AS n_txn, outflow AS outflows "
                          "FROM staging.monthly_balances",
    "dw_complaint": "SELECT complaint_id AS ticket_no, customer_id AS client_no, CAST(complaint_date AS date) AS "
                    "logged_on, CASE severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 END AS sev, "
                    "CASE WHEN escalated THEN 'Y' ELSE 'N' END AS escalated_flag, CAST(escalated_date AS date) AS "
                    "escalated_on FROM staging.complaints",
    "v_retention": "SELECT action_id AS action_no, customer_id AS client_no, CAST(action_date AS date) AS done_on, "
                   "upper(action_type) AS kind, rm_id AS advisor_no, \"trigger\" AS reason, outcome AS result "
                   "FROM staging.retention_actions",
}  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_bank(tmp_path_factory.mktemp("demo") / "bank", CFG)


@pytest.fixture(scope="module")
def parquet_warehouse(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The warehouse as Parquet files named by the bank's tables (dw_client.parquet ...)."""
    out = tmp_path_factory.mktemp("dw") / "exports"
    out.mkdir()
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    for f in demo.glob("*.parquet"):
        con.execute(f"CREATE VIEW staging.{ident(f.stem)} AS SELECT * FROM read_parquet({literal(str(f))})")
    for name, sql in WAREHOUSE.items():
        con.execute(f"COPY ({sql}) TO {literal(str(out / (name + '.parquet')))} (FORMAT parquet)")
    con.close()
    return out


@pytest.fixture(scope="module")
def pg_warehouse(pg_server, demo: Path) -> str:
    """The warehouse in PostgreSQL (schema dw; v_retention a view); its URI with search_path=dw."""
    from crmresearch.data.database import write_tables
    from crmresearch.data.demo import generate_demo_bank

    pg_server.createdb("dw")
    pg_server.sql("CREATE SCHEMA staging", "dw")
    pg_server.sql("CREATE SCHEMA dw", "dw")
    tables, _ = generate_demo_bank(CFG)
    write_tables(pg_server.uri("dw", query="options=-csearch_path%3Dstaging"), tables)
    for name, sql in WAREHOUSE.items():
        kind = "VIEW" if name.startswith("v_") else "TABLE"
        pg_server.sql(f"CREATE {kind} dw.{ident(name)} AS {sql}", "dw")
    return pg_server.uri("dw", query="options=-csearch_path%3Ddw")


def _out(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _same_results(capsys: pytest.CaptureFixture, mapped: str, demo: Path, tmp_path: Path) -> None:
    m = ["--mapping", str(EXAMPLE)]
    a = _out(capsys, ["validate", mapped, *m]).splitlines()
    b = _out(capsys, ["validate", str(demo)]).splitlines()
    assert a[1:] == b[1:]
    for more in ([], ["--episodes"]):
        _out(capsys, ["survival-table", mapped, *m, "--out", str(tmp_path / "a.csv"), "--force", *more])
        _out(capsys, ["survival-table", str(demo), "--out", str(tmp_path / "b.csv"), "--force", *more])
        assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes(), more
    for scope in (["--bank"], ["--branch", "B001"], ["--branch", "B002"], ["--branch", "B003"]):
        _out(capsys, ["metrics", mapped, *m, "--month", MONTH, *scope, "--out", str(tmp_path / "a.json"), "--force"])
        _out(capsys, ["metrics", str(demo), "--month", MONTH, *scope, "--out", str(tmp_path / "b.json"), "--force"])
        assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes(), scope


def test_the_example_mapping_is_valid() -> None:
    m = load_source_mapping(EXAMPLE)
    assert set(m.tables) == {"extract", "branches", "customers", "product_holdings", "relationship_managers",
                             "rm_assignments", "monthly_balances", "complaints", "retention_actions"}  # fmt: skip


@pytest.mark.slow
def test_a_mapped_parquet_warehouse_gives_the_demo_banks_results(parquet_warehouse: Path, demo: Path,
                                                                 tmp_path: Path, capsys: pytest.CaptureFixture
                                                                 ) -> None:  # fmt: skip
    _same_results(capsys, str(parquet_warehouse), demo, tmp_path)


@pytest.mark.slow
def test_a_mapped_postgresql_warehouse_gives_the_demo_banks_results(pg_warehouse: str, demo: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    _same_results(capsys, pg_warehouse, demo, tmp_path)


def test_a_mapped_duckdb_warehouse_validates(parquet_warehouse: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    db = tmp_path / "dw.duckdb"
    con = duckdb.connect(str(db))
    for f in parquet_warehouse.glob("*.parquet"):
        con.execute(f"CREATE TABLE {ident(f.stem)} AS SELECT * FROM read_parquet({literal(str(f))})")
    con.close()
    out = _out(capsys, ["validate", str(db), "--mapping", str(EXAMPLE)])
    assert "customers (900 rows)" in out and "source is valid" in out


def test_only_mapped_columns_and_kept_extras_are_read(pg_warehouse: str) -> None:
    from crmresearch.data.database import read_database

    read = read_database(pg_warehouse, load_source_mapping(EXAMPLE))
    assert "crm_note" not in read.tables["customers"].column_names
    assert read.tables["customers"].column_names[:3] == ["customer_id", "branch_id", "open_date"]


@pytest.mark.parametrize(("text", "needle"), [
    ("tables: {custmers: {from: dw_client}}", "tables.custmers: unknown contract table"),
    ("tables: {customers: {columns: {client: client_no}}}", "tables.customers.columns.client: unknown column"),
    ("tables: {customers: {from: a, query: 'SELECT 1'}}", "at most one of 'from'"),
    ("tables: {customers: {columns: {churn_type: {column: a, expr: b}}}}", "exactly one of 'column'"),
])  # fmt: skip
def test_a_bad_mapping_is_one_line_naming_the_key(text: str, needle: str, tmp_path: Path, demo: Path,
                                                  capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    f = tmp_path / "m.yaml"
    f.write_text(text)
    with pytest.raises(MappingError, match=needle.replace("(", r"\(")):
        load_source_mapping(f)
    assert main(["validate", str(demo), "--mapping", str(f)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_a_missing_mapped_column_names_the_banks_column(parquet_warehouse: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    f = tmp_path / "m.yaml"
    f.write_text(EXAMPLE.read_text().replace("open_date: opened_on", "open_date: opening_day")
                 .replace("from: dw_org_unit", "from: dw_org_units"))  # fmt: skip
    assert main(["validate", str(parquet_warehouse), "--mapping", str(f)]) == 2
    out = capsys.readouterr().out
    assert "ERROR customers.open_date [missing_column] required column is missing (mapped from the bank's " \
           "column opening_day, which is missing)" in out
    assert "ERROR branches [missing_table] required table is missing (mapped from the bank's dw_org_units" in out


def test_an_unmapped_code_is_kept_and_reported_by_allowed_values(parquet_warehouse: Path, demo: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    f = tmp_path / "m.yaml"
    f.write_text(EXAMPLE.read_text().replace('"T": transfer, ', ""))  # the bank's T is no longer mapped
    assert main(["validate", str(parquet_warehouse), "--mapping", str(f)]) == 2
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "customers.churn_type [allowed_values]" in ln)
    import pandas as pd

    transfers = int((pd.read_parquet(demo / "customers.parquet")["churn_type"] == "transfer").sum())
    assert f" {transfers:,} rows: must be one of transfer, natural, unknown" in line, line


@pytest.mark.slow
def test_report_with_a_mapping_reruns_only_when_the_mapping_changes(parquet_warehouse: Path, key: Path,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    from crmresearch.batch.run import run_report
    from run_helpers import tiny_notebooks

    opts = {"month": MONTH, "out": tmp_path / "out", "cache_dir": tmp_path / "cache", "key_file": key,
            "workers": 1, "progress": False, "log": lambda m: None, "_notebooks": tiny_notebooks(tmp_path)}  # fmt: skip
    scopes = ("bank", "B001", "B002", "B003")
    first = run_report(parquet_warehouse, mapping=EXAMPLE, **opts).status
    assert {first[n] for n in scopes} == {"done"}, first
    again = run_report(parquet_warehouse, mapping=EXAMPLE, **opts).status
    assert {again[n] for n in scopes} == {"skipped"}, again
    other = tmp_path / "other.yaml"
    other.write_text(EXAMPLE.read_text().replace("description: >-", "description: >-\n  Another version."))
    third = run_report(parquet_warehouse, mapping=other, **opts).status
    assert {third[n] for n in scopes} == {"done"}, third


def test_a_failing_mapped_query_is_one_line_naming_the_table(pg_warehouse: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    f = tmp_path / "m.yaml"
    f.write_text(EXAMPLE.read_text().replace("FROM dw_balance_monthly", "FROM dw_balances_typo"))
    assert main(["validate", pg_warehouse, "--mapping", str(f)]) == 2
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("error:"))
    assert "(query) (the contract's monthly_balances) failed" in line and "dw_balances_typo" in line, line
    assert "***" in line and "Traceback" not in err
