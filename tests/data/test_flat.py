"""Flat-extract import (crmresearch.data.flat): public datasets, conversions, errors, CLI."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml

from crmresearch.cli import main
from crmresearch.core.errors import InputError
from crmresearch.data.contract import ContractError, load_source
from crmresearch.data.flat import FlatMappingError, import_flat, load_mapping, shipped_mappings
from public_data import BANK_CSV, TELCO_CSV

needs_bank = pytest.mark.skipif(not BANK_CSV.is_file(), reason=f"public dataset not present: {BANK_CSV}")
needs_telco = pytest.mark.skipif(not TELCO_CSV.is_file(), reason=f"public dataset not present: {TELCO_CSV}")

TINY_MAPPING = {
    "customer_id": "id",
    "tenure": {"column": "tenure", "unit": "years"},
    "churned": {"column": "left", "true_values": ["Y"], "false_values": ["N"]},
    "n_products": {"column": "products"},
    "branch": {"column": "office"},
    "attributes": {"name": "surname", "segment": "seg"},
    "extras": ["CreditScore", {"column": "Flag", "type": "bool"}],
}
TINY_CSV = (
    "id,tenure,left,products,office,surname,seg,CreditScore,Flag\n"
    "000123,2,Y,1,New York,Smith,retail,700,Yes\n"
    "0042,0,N,3,北京分行,Li,retail,,No\n"
    "A-7,10,N,2,New York,Rossi,private,650,\n"
)


def _files(tmp_path: Path, csv_text: str = TINY_CSV, mapping: dict | None = None) -> tuple[Path, Path]:
    csv, yml = tmp_path / "in.csv", tmp_path / "map.yaml"
    csv.write_text(csv_text, encoding="utf-8")
    yml.write_text(yaml.safe_dump(TINY_MAPPING if mapping is None else mapping, allow_unicode=True),
                   encoding="utf-8")  # fmt: skip
    return csv, yml


def _nothing_written(parent: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p.name for p in parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]


def _counts(out: Path, by: str) -> dict:
    source = load_source(out)
    try:
        df = source.sql(f"SELECT {by} AS k, count(*) AS n, sum(CAST(churned AS INTEGER)) AS c "
                        f"FROM customers GROUP BY 1 ORDER BY 1")  # fmt: skip
    finally:
        source.close()
    return {k: (int(n), int(c)) for k, n, c in df.itertuples(index=False)}


# --------------------------------------------------------------------------- public datasets


@pytest.fixture(scope="module")
def bank_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BANK_CSV.is_file():
        pytest.skip(f"public dataset not present: {BANK_CSV}")
    return import_flat(BANK_CSV, "bank-churn-modelling", tmp_path_factory.mktemp("bank") / "src")


@pytest.fixture(scope="module")
def telco_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TELCO_CSV.is_file():
        pytest.skip(f"public dataset not present: {TELCO_CSV}")
    return import_flat(TELCO_CSV, "telco-customer-churn", tmp_path_factory.mktemp("telco") / "src")


def test_shipped_mappings_load() -> None:
    assert {"bank-churn-modelling", "telco-customer-churn"} <= set(shipped_mappings())
    for name in ("bank-churn-modelling", "telco-customer-churn"):
        assert name in load_mapping(name).origin


def test_bank_churn_by_n_products_matches_readme(bank_out: Path) -> None:
    assert _counts(bank_out, "n_products") == {
        1: (5084, 1409), 2: (4590, 348), 3: (266, 220), 4: (60, 60)}  # fmt: skip


def test_bank_branches_are_geographies(bank_out: Path) -> None:
    assert _counts(bank_out, "branch_id") == {
        "FRANCE": (5014, 810), "GERMANY": (2509, 814), "SPAIN": (2477, 413)}  # fmt: skip
    source = load_source(bank_out)
    try:
        branches = source.df("branches").set_index("branch_id")["branch_name"].to_dict()
        assert branches == {"FRANCE": "France", "GERMANY": "Germany", "SPAIN": "Spain"}
        assert source.flat is True
        assert source.as_of is None and source.observation_start is None
        cust = source.df("customers")
        assert len(cust) == 10_000
        # tenure in years -> months; the README's tenure table, scaled by 12
        assert sorted(cust["tenure_months"].unique()) == [12.0 * y for y in range(11)]
        assert (cust["tenure_months"] == 0).sum() == 413
        assert (cust["tenure_months"] == 120).sum() == 490
        # personal data is kept (as the contract's name column), never dropped
        assert cust["name"].notna().all()
        assert {"credit_score", "gender", "age", "balance", "has_cr_card", "is_active_member",
                "estimated_salary"} <= set(cust.columns)  # fmt: skip
        assert "row_number" not in cust.columns
        assert cust["balance"].sum() == pytest.approx(764858892.88)
        assert cust["customer_id"].map(type).eq(str).all()
    finally:
        source.close()


def test_bank_readme_records_provenance(bank_out: Path) -> None:
    text = (bank_out / "README.md").read_text(encoding="utf-8")
    sha = hashlib.sha256(BANK_CSV.read_bytes()).hexdigest()
    assert sha in text
    assert str(BANK_CSV) in text
    assert "bank-churn-modelling" in text
    assert "never invents dates" in text
    assert "Geography" in text and "stands in for branches" in text
    assert "Smith" not in text  # no personal data in the README


def test_telco_churn_by_n_yes8_matches_readme(telco_out: Path) -> None:
    assert _counts(telco_out, "n_products") == {
        0: (80, 35), 1: (1701, 359), 2: (1188, 390), 3: (965, 352), 4: (922, 289),
        5: (908, 232), 6: (676, 152), 7: (395, 49), 8: (208, 11)}  # fmt: skip
    assert _counts(telco_out, "branch_id") == {"TELCO": (7043, 1869)}
    assert _counts(telco_out, "contract") == {
        "Month-to-month": (3875, 1655), "One year": (1473, 166), "Two year": (1695, 48)}  # fmt: skip


def test_telco_types(telco_out: Path) -> None:
    source = load_source(telco_out)
    try:
        cust = source.df("customers")
        assert cust["tenure_months"].max() == 72
        assert cust["total_charges"].isna().sum() == 11
        assert cust["total_charges"].sum() == pytest.approx(16056168.7)
        assert cust["senior_citizen"].sum() == 1142
        assert cust["partner"].sum() == 3402
        assert source.df("branches")["branch_name"].tolist() == ["Telco (all customers)"]
    finally:
        source.close()


# --------------------------------------------------------------------------- conversions


def test_ids_stay_strings_and_branches_get_safe_ids(tmp_path: Path) -> None:
    csv, yml = _files(tmp_path)
    out = import_flat(csv, yml, tmp_path / "out")
    source = load_source(out)
    try:
        cust = source.df("customers").set_index("customer_id")
        assert list(cust.index) == ["000123", "0042", "A-7"]
        branches = source.df("branches").set_index("branch_id")["branch_name"].to_dict()
    finally:
        source.close()
    assert branches["NEW_YORK"] == "New York"
    beijing = [k for k, v in branches.items() if v == "北京分行"]
    assert len(beijing) == 1 and re.fullmatch(r"BRANCH_[0-9a-f]{8}", beijing[0])
    assert cust.loc["000123", "branch_id"] == "NEW_YORK"
    assert cust.loc["000123", "name"] == "Smith" and cust.loc["A-7", "segment"] == "private"
    assert cust["churned"].tolist() == [True, False, False]
    assert cust["n_products"].tolist() == [1, 3, 2]
    assert cust["credit_score"].isna().tolist() == [False, True, False]  # blank -> null
    assert cust["flag"].tolist()[:2] == [True, False] and cust["flag"].isna().tolist()[2]


@pytest.mark.parametrize(("unit", "raw", "months"), [
    ("years", "2", 24.0), ("years", "0.5", 6.0), ("months", "7", 7.0), ("days", "30.4375", 1.0),
    ("days", "365.25", 12.0),
])  # fmt: skip
def test_tenure_unit_conversion(tmp_path: Path, unit: str, raw: str, months: float) -> None:
    mapping = {**TINY_MAPPING, "tenure": {"column": "tenure", "unit": unit}}
    csv, yml = _files(tmp_path, TINY_CSV.replace("000123,2,", f"000123,{raw},"), mapping)
    source = load_source(import_flat(csv, yml, tmp_path / "out"))
    try:
        got = source.sql("SELECT tenure_months FROM customers WHERE customer_id = '000123'")
    finally:
        source.close()
    assert got["tenure_months"].iloc[0] == pytest.approx(months)


def test_n_products_as_count_of_columns_and_constant_branch(tmp_path: Path) -> None:
    mapping = {
        "customer_id": "id",
        "tenure": {"column": "t", "unit": "months"},
        "churned": {"column": "c", "true_values": [1], "false_values": [0]},
        "n_products": {"count_of": ["a", "b", "d"], "equal_to": "Yes"},
        "branch": {"id": "ALL", "name": "All customers", "region": "North"},
    }
    csv, yml = _files(tmp_path, "id,t,c,a,b,d\n1,3,1,Yes,No,Yes\n2,4,0,No,No internet service,No\n"
                                "3,5,0, Yes ,Yes,Yes\n", mapping)  # fmt: skip
    source = load_source(import_flat(csv, yml, tmp_path / "out"))
    try:
        assert source.df("customers")["n_products"].tolist() == [2, 0, 3]
        assert source.df("branches").to_dict("records") == [
            {"branch_id": "ALL", "branch_name": "All customers", "region": "North"}]  # fmt: skip
    finally:
        source.close()


# --------------------------------------------------------------------------- errors


def test_unknown_churn_value_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    csv, yml = _files(tmp_path, TINY_CSV + "B9,1,maybe,1,Paris,Doe,retail,600,No\n"
                                           "B10,1,maybe,1,Paris,Roe,retail,600,No\n")  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(FlatMappingError) as err:
        import_flat(csv, yml, out)
    msg = str(err.value)
    assert "'left'" in msg and "2 row(s)" in msg and "'maybe'" in msg and "row 4" in msg
    assert str(csv) in msg and str(yml) in msg and "true_values" in msg
    _nothing_written(tmp_path, out)


def test_missing_column_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    mapping = {**TINY_MAPPING, "extras": ["CreditScore", "Income", "flag"]}
    csv, yml = _files(tmp_path, mapping=mapping)
    out = tmp_path / "out"
    with pytest.raises(FlatMappingError) as err:
        import_flat(csv, yml, out)
    msg = str(err.value)
    assert str(csv) in msg and str(yml) in msg
    assert "'Income'" in msg and "found 'Flag'" in msg
    assert "The CSV's columns are: 'id', 'tenure', 'left'" in msg
    _nothing_written(tmp_path, out)


def test_unknown_mapping_key_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    mapping = {**TINY_MAPPING, "tenure": {"column": "tenure", "unit": "years", "round": True}}
    csv, yml = _files(tmp_path, mapping=mapping)
    out = tmp_path / "out"
    with pytest.raises(FlatMappingError) as err:
        import_flat(csv, yml, out)
    assert f"{yml}: tenure.round: unknown key" in str(err.value)
    assert isinstance(err.value, InputError)
    _nothing_written(tmp_path, out)


@pytest.mark.parametrize(("patch", "expect"), [
    ({"tenure": {"column": "tenure", "unit": "weeks"}}, "tenure.unit"),
    ({"churned": {"column": "left", "true_values": [True], "false_values": ["N"]}}, "quote the raw value"),
    ({"n_products": {"column": "products", "count_of": ["a"]}}, "n_products"),
    ({"branch": {"id": "bad id!", "name": "x"}}, "branch.id"),
    ({"extras": [{"column": "Flag", "as": "name"}]}, "reserved"),
    ({"customer_id": None}, "customer_id"),
])  # fmt: skip
def test_invalid_mappings_name_file_and_key(tmp_path: Path, patch: dict, expect: str) -> None:
    mapping = {**TINY_MAPPING, **patch}
    _, yml = _files(tmp_path, mapping=mapping)
    with pytest.raises(FlatMappingError) as err:
        load_mapping(yml)
    assert str(yml) in str(err.value) and expect in str(err.value)


def test_unknown_shipped_name(tmp_path: Path) -> None:
    with pytest.raises(FlatMappingError, match="neither a YAML file nor a shipped mapping"):
        load_mapping("no-such-mapping")


def test_bad_values_are_errors(tmp_path: Path) -> None:
    csv, yml = _files(tmp_path, TINY_CSV.replace("000123,2,", "000123,two,"))
    with pytest.raises(FlatMappingError, match=r"'tenure': 1 value\(s\) are not a finite number; e.g. row 1: 'two'"):
        import_flat(csv, yml, tmp_path / "out")
    csv, yml = _files(tmp_path, TINY_CSV.replace("Y,1,New York", "Y,1.5,New York"))
    with pytest.raises(FlatMappingError, match="not a whole number"):
        import_flat(csv, yml, tmp_path / "out")
    _nothing_written(tmp_path, tmp_path / "out")


def test_contract_violation_writes_nothing(tmp_path: Path) -> None:
    csv, yml = _files(tmp_path, TINY_CSV + "0042,1,N,1,Paris,Doe,retail,600,No\n")  # duplicate id
    out = tmp_path / "out"
    with pytest.raises(ContractError) as err:
        import_flat(csv, yml, out)
    assert "unique" in str(err.value) and "nothing was written" in str(err.value)
    _nothing_written(tmp_path, out)


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    csv, yml = _files(tmp_path)
    out = import_flat(csv, yml, tmp_path / "out")
    before = (out / "customers.parquet").read_bytes()
    with pytest.raises(FileExistsError, match="already exists; pass force=True"):
        import_flat(csv, yml, out)
    assert (out / "customers.parquet").read_bytes() == before
    assert import_flat(csv, yml, out, force=True) == out
    assert load_source(out).flat is True
    # force never replaces a directory that is not a source, nor one holding the input
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="does not look like a source"):
        import_flat(csv, yml, other, force=True)
    with pytest.raises(FileExistsError, match="holds the input"):
        import_flat(csv, yml, tmp_path, force=True)
    assert (other / "keep.txt").exists() and csv.exists()


# --------------------------------------------------------------------------- CLI


@needs_bank
def test_cli_import_flat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bank"
    assert main(["import-flat", str(BANK_CSV), "--mapping", "bank-churn-modelling", "--out", str(out)]) == 0
    assert "flat extract imported to" in capsys.readouterr().err
    assert load_source(out).flat is True
    assert main(["import-flat", str(BANK_CSV), "--mapping", "bank-churn-modelling", "--out", str(out)]) != 0
    assert "already exists" in capsys.readouterr().err


@needs_telco
def test_cli_bad_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x"
    rc = main(["import-flat", str(TELCO_CSV), "--mapping", "bank-churn-modelling", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc != 0 and "error:" in err and "'CustomerId'" in err and "customerID" in err
    rc = main(["import-flat", str(TELCO_CSV), "--mapping", "nope", "--out", str(out)])
    assert rc != 0 and "shipped" in capsys.readouterr().err
    _nothing_written(tmp_path, out)
