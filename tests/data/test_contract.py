"""The data contract (docs: /work/shared/spec/data-contract.md, code: crmresearch.data.contract).

For every rule of the contract there is a case below that breaks that one rule
in an otherwise valid source and checks that validation names the table, the
column and the rule, counts the rows, gives the right example keys, and that
``crmresearch validate SOURCE`` exits non-zero.  A meta-test fails when the
contract declares a rule (``iter_rules()``) that no case breaks.

Validation costs 0.15-0.45 s per source (DuckDB's per-query overhead) and there
are ~200 cases, so the module fixture ``runs`` validates every case once,
through the real CLI, in a small thread pool, and cases that only change values
of one table share a source with cases on other tables (see "batching the
cases"; ``CRM_CONTRACT_SOLO=1`` runs every case alone).  Each case's test then
inspects the recorded findings, printed text and exit code.

Contract bugs found by these tests are listed in ``KNOWN_BUGS`` (strict xfail).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import importlib.util
import io
import os
import sys
import threading
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from crmresearch import cli
from crmresearch.data import contract as contract_mod
from crmresearch.data.contract import (
    FLAT_CUSTOMERS,
    TABLES,
    ContractError,
    Finding,
    ValidationReport,
    iter_rules,
    load_source,
)

D = dt.date.fromisoformat
FORMATS = ("csv", "parquet", "duckdb")
ALL_FORMATS = FORMATS
Tables = dict[str, pd.DataFrame]

# --------------------------------------------------------------------------- a valid source

CUSTOMER_IDS = ["000123", "000124", "000200", "010001", "000007", "123"]
MONTHS = [f"2023-{m:02d}" for m in range(1, 13)]


def valid_tables() -> Tables:
    """A small source that satisfies every rule, with no warnings.

    as_of 2023-12-31, observation_start 2023-01-01; balances for every
    customer for every month of 2023.  Identifiers carry leading zeros and
    ``000123`` / ``123`` are two different customers.
    """
    t: Tables = {}
    t["extract"] = pd.DataFrame(
        {"as_of": [D("2023-12-31")], "observation_start": [D("2023-01-01")]}
    )
    t["branches"] = pd.DataFrame({
        "branch_id": ["001", "002", "B-03"],
        "branch_name": ["城东支行", "West Branch", "North_3"],
        "region": ["east", "west", None],
    })  # fmt: skip
    t["customers"] = pd.DataFrame({
        "customer_id": CUSTOMER_IDS,
        "branch_id": ["001", "001", "002", "002", "B-03", "B-03"],
        "open_date": [D("2015-03-01"), D("2020-06-15"), D("2023-02-01"), D("2018-01-01"),
                      D("2021-07-07"), D("2022-01-01")],
        "churn_date": [None, D("2023-05-01"), None, D("2023-09-30"), None, None],
        "churn_type": [None, "transfer", None, "natural", None, None],
        "churn_reason": [None, "rate", None, "relocation", None, None],
        "segment": ["salaried", "executive", "homemaker", "affluent_retiree", "business_owner", "own"],
        "channel": ["walk_in", "existing", "outreach", "walk_in", "existing", "outreach"],
        "birth_year": [1970, 1985, 1990, 1940, 1975, 2000],
        "name": ["张三", "Li Si", "Wang Wu", "Zhao Liu", "Sun Qi", "Zhou Ba"],
        "n_products": [3, 2, 1, 2, 0, 1],
    })  # fmt: skip
    t["product_holdings"] = pd.DataFrame({
        "customer_id": ["000123", "000123", "000124", "000200", "010001", "123"],
        "product": ["current_account", "time_deposit", "current_account", "mobile_banking",
                    "wealth_management", "own_product"],
        "start_date": [D("2015-03-01"), D("2019-01-01"), D("2020-06-15"), D("2023-02-01"),
                       D("2018-01-01"), D("2022-01-01")],
        "end_date": [None, D("2022-12-31"), D("2023-05-01"), None, D("2023-09-30"), None],
    })  # fmt: skip
    t["relationship_managers"] = pd.DataFrame({
        "rm_id": ["0101", "0102", "0201", "0301"],
        "branch_id": ["001", "001", "002", "B-03"],
        "hire_date": [D("2010-01-04"), D("2023-05-02"), D("2016-09-01"), D("2019-03-01")],
        "exit_date": [D("2023-04-30"), None, None, None],
        "exit_type": ["resigned", None, None, None],
    })  # fmt: skip
    t["rm_assignments"] = pd.DataFrame({
        "customer_id": ["000123", "000123", "000124", "010001", "000007", "123"],
        "rm_id": ["0101", "0102", "0101", "0201", "0301", "0301"],
        "start_date": [D("2015-03-01"), D("2023-05-10"), D("2020-06-15"), D("2018-01-01"),
                       D("2021-07-07"), D("2022-01-01")],
        "end_date": [D("2023-04-30"), None, D("2023-04-30"), D("2023-09-30"), None, D("2023-06-30")],
    })  # fmt: skip
    rows = [(c, m) for c in CUSTOMER_IDS for m in MONTHS]  # row = 12 * customer index + month index
    t["monthly_balances"] = pd.DataFrame({
        "customer_id": [c for c, _ in rows],
        "month": [m for _, m in rows],
        "aum": [100000.0 + i * 10.5 for i in range(len(rows))],
        "avg_daily_aum": [95000.0 + i for i in range(len(rows))],
        "txn_count": [i % 7 for i in range(len(rows))],
        "outflow": [float(i % 3) * 100 for i in range(len(rows))],
    })  # fmt: skip
    t["complaints"] = pd.DataFrame({
        "complaint_id": ["C001", "C002", "C003"],
        "customer_id": ["000123", "000124", "010001"],
        "complaint_date": [D("2023-02-10"), D("2023-03-15"), D("2023-08-01")],
        "severity": ["low", "high", "medium"],
        "escalated": [False, True, True],
        "escalated_date": [None, D("2023-03-20"), D("2023-08-01")],
    })  # fmt: skip
    t["retention_actions"] = pd.DataFrame({
        "action_id": ["A001", "A002", "A003", "A004"],
        "customer_id": ["000123", "000124", "000124", "010001"],
        "action_date": [D("2023-05-03"), D("2023-03-16"), D("2023-06-01"), D("2023-07-01")],
        "action_type": ["call", "visit", "offer", "event"],
        "rm_id": ["0102", "0101", None, "0201"],
        "trigger": ["rm_exit", "complaint", "winback", "proactive"],
        "outcome": ["retained", "pending", None, "lost"],
    })  # fmt: skip
    assert set(t) == set(TABLES)
    return t


def valid_flat_tables() -> Tables:
    """A valid flat extract: branches and one cross-sectional customers table."""
    return {
        "branches": valid_tables()["branches"],
        "customers": pd.DataFrame({
            "customer_id": ["000123", "000124", "000200", "123"],
            "branch_id": ["001", "001", "002", "B-03"],
            "tenure_months": [12.0, 30.5, 0.0, 100.0],
            "churned": [False, True, False, True],
            "churn_type": [None, "transfer", None, "unknown"],
            "segment": ["salaried", "executive", "homemaker", "own"],
            "birth_year": [1970, 1985, 1990, 2000],
            "n_products": [3, 2, 1, 0],
        }),
    }  # fmt: skip


def _uniform(df: pd.DataFrame) -> pd.DataFrame:
    """Make a column with mixed Python types (after a mutation) all text, for parquet/DuckDB."""
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            kinds = {type(v) for v in df[c] if v is not None and not pd.isna(v)}
            if len(kinds) > 1:
                df[c] = [None if v is None or pd.isna(v) else str(v) for v in df[c]]
    return df


def write_source(tables: Tables, path: Path, fmt: str) -> Path:
    """Write ``tables`` as a CSV directory, a parquet directory or a DuckDB file."""
    if fmt == "duckdb":
        path = path.parent / f"{path.name}.duckdb"
        con = duckdb.connect(str(path))
        try:
            for name, df in tables.items():
                con.register("frame", _uniform(df))
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
                con.unregister("frame")
        finally:
            con.close()
        return path
    path.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(path / f"{name}.csv", index=False)
        elif fmt == "parquet":
            _uniform(df).to_parquet(path / f"{name}.parquet", index=False)
        else:
            raise AssertionError(fmt)
    return path


# --------------------------------------------------------------------------- mutations

Mutation = Callable[[Tables], None]


def _set(df: pd.DataFrame, row: int, col: str, value) -> None:
    kind = df[col].dtype.kind
    if kind != "O" and (isinstance(value, str) or (value is None and kind in "iub")):
        df[col] = df[col].astype(object)
    df.at[row, col] = value


def setv(table: str, row: int, col: str, value) -> Mutation:
    """Set one cell (row is the 0-based data row: file row ``row + 1``)."""

    def m(t: Tables) -> None:
        _set(t[table], row, col, value)

    return m


def set_rows(table: str, rows: list[int], col: str, value) -> Mutation:
    def m(t: Tables) -> None:
        for r in rows:
            _set(t[table], r, col, value)

    return m


def add_row(table: str, like: int, **values) -> Mutation:
    """Append a copy of row ``like`` with ``values`` changed."""

    def m(t: Tables) -> None:
        df = t[table]
        row = df.iloc[like].to_dict()
        row.update(values)
        new = pd.DataFrame([row], columns=df.columns)
        for c in df.columns:
            if new[c].dtype != df[c].dtype:
                new[c] = new[c].astype(object)
                df[c] = df[c].astype(object)
        t[table] = pd.concat([df, new], ignore_index=True)

    return m


def drop_col(table: str, col: str) -> Mutation:
    def m(t: Tables) -> None:
        t[table] = t[table].drop(columns=[col])

    return m


def drop_table(table: str) -> Mutation:
    def m(t: Tables) -> None:
        del t[table]

    return m


def chain(*ms: Mutation) -> Mutation:
    def m(t: Tables) -> None:
        for x in ms:
            x(t)

    return m


def ambiguous(table: str) -> Callable[[Tables, Path], None]:
    """After writing a CSV directory, add ``<table>.parquet`` next to ``<table>.csv``."""

    def post(t: Tables, path: Path) -> None:
        _uniform(t[table]).to_parquet(path / f"{table}.parquet", index=False)

    return post


# --------------------------------------------------------------------------- cases

Rule = tuple[str, "str | None", str]
NOT_NULL_TOO = "not_null"  # marker in `also`: the same column's not_null may be reported too


@dataclass(frozen=True)
class Case:
    """One broken rule: ``mutate`` a valid source so exactly ``(table, column, rule)`` fails."""

    id: str
    table: str
    column: str | None
    rule: str
    mutate: Mutation
    n_rows: int
    examples: tuple[str, ...] = ()
    also: frozenset[Rule] = frozenset()  # other errors this mutation may legitimately cause
    flat: bool = False
    formats: tuple[str, ...] = ("csv",)
    post: Callable[[Tables, Path], None] | None = None
    solo: bool = False  # run alone (it changes more than its own table)


CORE = ("extract", "branches", "customers")
DEPENDS = {"rm_assignments": ("relationship_managers",),
           "retention_actions": ("relationship_managers",)}  # fmt: skip


def job_tables(cases: list[Case]) -> Tables:
    """The valid tables cases start from: only those they need (validation is slow-ish)."""
    if any(c.flat for c in cases):
        assert len(cases) == 1
        return valid_flat_tables()
    full = valid_tables()
    names = {*CORE}
    for c in cases:
        names |= {c.table, *DEPENDS.get(c.table, ())}
    return {n: full[n] for n in TABLES if n in names}


def K(**keys: str) -> str:
    """An example key as the contract renders it: 'customer_id=000123, month=2023-01'."""
    return ", ".join(f"{k}={v}" for k, v in keys.items())


def cust(cid: str) -> str:
    return K(customer_id=cid)


def bal(cid: str, month: str) -> str:
    return K(customer_id=cid, month=month)


def hold(cid: str, product: str, start: str) -> str:
    return K(customer_id=cid, product=product, start_date=start)


def asg(cid: str, rm: str, start: str) -> str:
    return K(customer_id=cid, rm_id=rm, start_date=start)


def row(n: int, value: str | None = None) -> str:
    return f"row {n}" if value is None else f"row {n}: {value}"


def C(table: str, column: str | None, rule: str, mutate: Mutation, n_rows: int,
      examples: tuple[str, ...] | list[str] = (), *, id: str = "", also=(), **kw) -> Case:  # fmt: skip
    also_set = set()
    for a in also:
        also_set.add((table, column, "not_null") if a == NOT_NULL_TOO else a)
    ident = id or f"{table}.{column or '-'}.{rule}"
    return Case(
        ident, table, column, rule, mutate, n_rows, tuple(examples), frozenset(also_set), **kw
    )


def _missing_column_cases() -> list[Case]:
    out = []
    for spec in (*TABLES.values(), FLAT_CUSTOMERS):
        flat = spec is FLAT_CUSTOMERS
        for col in spec.columns:
            if col.required:
                out.append(C(spec.name, col.name, "missing_column", drop_col(spec.name, col.name), 0,
                             id=f"{'flat.' if flat else ''}{spec.name}.{col.name}.missing_column",
                             flat=flat))  # fmt: skip
    return out


# fmt: off
CASES: list[Case] = [
    # ---- tables
    C("branches", None, "missing_table", drop_table("branches"), 0),
    C("customers", None, "missing_table", drop_table("customers"), 0),
    C("rm_assignments", None, "needs_table", drop_table("relationship_managers"), 0),
    C("extract", None, "one_row", add_row("extract", 0), 2),
    C("extract", None, "one_row", lambda t: t.update(extract=t["extract"].iloc[:0]), 0,
      id="extract.-.one_row.empty"),
    C("customers", None, "ambiguous_table", lambda t: None, 0, post=ambiguous("customers"),
      also=[("customers", None, "missing_table")]),
    C("complaints", None, "ambiguous_table", lambda t: None, 0, post=ambiguous("complaints")),
    # ---- columns
    *_missing_column_cases(),
    # ---- type: one per typed column (the value stays in the file, the typed value is null)
    C("extract", "as_of", "type", setv("extract", 0, "as_of", "2023-13-01"), 1, [row(1, "2023-13-01")]),
    C("extract", "observation_start", "type", setv("extract", 0, "observation_start", "31/12/2022"), 1,
      [row(1, "31/12/2022")]),
    C("customers", "open_date", "type", setv("customers", 2, "open_date", "2023-13-01"), 1,
      [row(3, "2023-13-01")], also=[NOT_NULL_TOO], formats=ALL_FORMATS),
    C("customers", "churn_date", "type", setv("customers", 0, "churn_date", "2023-02-30"), 1,
      [row(1, "2023-02-30")]),
    C("customers", "birth_year", "type", setv("customers", 1, "birth_year", "abc"), 1, [row(2, "abc")]),
    C("customers", "n_products", "type", setv("customers", 1, "n_products", "2.5"), 1, [row(2, "2.5")]),
    C("product_holdings", "start_date", "type", setv("product_holdings", 3, "start_date", "2023-2-1"), 1,
      [row(4, "2023-2-1")], also=[NOT_NULL_TOO]),
    C("product_holdings", "end_date", "type", setv("product_holdings", 1, "end_date", "20221231"), 1,
      [row(2, "20221231")]),
    C("relationship_managers", "hire_date", "type", setv("relationship_managers", 2, "hire_date", "yesterday"),
      1, [row(3, "yesterday")], also=[NOT_NULL_TOO]),
    C("relationship_managers", "exit_date", "type", setv("relationship_managers", 0, "exit_date", "2023-04-31"),
      1, [row(1, "2023-04-31")]),
    C("rm_assignments", "start_date", "type", setv("rm_assignments", 3, "start_date", "2018-01-01T00:00"), 1,
      [row(4, "2018-01-01T00:00")], also=[NOT_NULL_TOO]),
    C("rm_assignments", "end_date", "type", setv("rm_assignments", 3, "end_date", "2023-09-31"), 1,
      [row(4, "2023-09-31")]),
    C("monthly_balances", "month", "type", setv("monthly_balances", 0, "month", "2023/01"), 1,
      [row(1, "2023/01")], also=[NOT_NULL_TOO], formats=ALL_FORMATS),
    C("monthly_balances", "month", "type", setv("monthly_balances", 0, "month", "2023-13"), 1,
      [row(1, "2023-13")], also=[NOT_NULL_TOO], id="monthly_balances.month.type.month13"),
    C("monthly_balances", "aum", "type", setv("monthly_balances", 0, "aum", "abc"), 1, [row(1, "abc")],
      also=[NOT_NULL_TOO], formats=ALL_FORMATS),
    C("monthly_balances", "avg_daily_aum", "type", setv("monthly_balances", 13, "avg_daily_aum", "n/a"), 1,
      [row(14, "n/a")]),
    C("monthly_balances", "txn_count", "type", setv("monthly_balances", 0, "txn_count", "3.5"), 1,
      [row(1, "3.5")], also=[NOT_NULL_TOO], formats=ALL_FORMATS),
    C("monthly_balances", "outflow", "type", setv("monthly_balances", 5, "outflow", "inf"), 1, [row(6, "inf")]),
    C("complaints", "complaint_date", "type", setv("complaints", 0, "complaint_date", "2023-02-10 09:00"), 1,
      [row(1, "2023-02-10 09:00")], also=[NOT_NULL_TOO]),
    C("complaints", "escalated", "type", setv("complaints", 0, "escalated", "maybe"), 1, [row(1, "maybe")],
      also=[NOT_NULL_TOO], formats=ALL_FORMATS),
    C("complaints", "escalated_date", "type", setv("complaints", 2, "escalated_date", "01.08.2023"), 1,
      [row(3, "01.08.2023")]),
    C("retention_actions", "action_date", "type", setv("retention_actions", 1, "action_date", "2023-03"), 1,
      [row(2, "2023-03")], also=[NOT_NULL_TOO]),
    C("customers", "tenure_months", "type", setv("customers", 1, "tenure_months", "ten"), 1, [row(2, "ten")],
      also=[NOT_NULL_TOO], flat=True, id="flat.customers.tenure_months.type"),
    C("customers", "churned", "type", setv("customers", 0, "churned", "maybe"), 1, [row(1, "maybe")],
      also=[NOT_NULL_TOO], flat=True, id="flat.customers.churned.type"),
    # ---- not_null (ids that are null or blank in the file)
    C("branches", "branch_id", "not_null", add_row("branches", 2, branch_id=None, branch_name="Nowhere"), 1,
      [row(4)], formats=ALL_FORMATS),
    C("branches", "branch_id", "not_null", add_row("branches", 2, branch_id="   ", branch_name="Blank"), 1,
      [row(4)], id="branches.branch_id.not_null.blank"),
    C("branches", "branch_name", "not_null", setv("branches", 0, "branch_name", None), 1, [K(branch_id="001")]),
    C("branches", "branch_name", "not_null", setv("branches", 1, "branch_name", ""), 1, [K(branch_id="002")],
      id="branches.branch_name.not_null.empty_csv_field"),
    C("customers", "customer_id", "not_null", add_row("customers", 5, customer_id=None), 1, [row(7)]),
    C("customers", "branch_id", "not_null", setv("customers", 0, "branch_id", None), 1, [cust("000123")]),
    C("customers", "open_date", "not_null", setv("customers", 2, "open_date", None), 1, [cust("000200")]),
    C("product_holdings", "customer_id", "not_null", setv("product_holdings", 5, "customer_id", None), 1,
      [row(6)]),
    C("product_holdings", "product", "not_null", setv("product_holdings", 0, "product", None), 1,
      [hold("000123", "NULL", "2015-03-01")]),
    C("product_holdings", "start_date", "not_null", setv("product_holdings", 0, "start_date", None), 1,
      [hold("000123", "current_account", "NULL")]),
    C("relationship_managers", "rm_id", "not_null", add_row("relationship_managers", 3, rm_id=None), 1,
      [row(5)]),
    C("relationship_managers", "branch_id", "not_null", setv("relationship_managers", 0, "branch_id", None),
      1, [K(rm_id="0101")]),
    C("relationship_managers", "hire_date", "not_null", setv("relationship_managers", 1, "hire_date", None),
      1, [K(rm_id="0102")]),
    C("rm_assignments", "customer_id", "not_null", setv("rm_assignments", 5, "customer_id", None), 1,
      [row(6)]),
    C("rm_assignments", "rm_id", "not_null", setv("rm_assignments", 5, "rm_id", None), 1,
      [asg("123", "NULL", "2022-01-01")]),
    C("rm_assignments", "start_date", "not_null", setv("rm_assignments", 5, "start_date", None), 1,
      [asg("123", "0301", "NULL")]),
    C("monthly_balances", "customer_id", "not_null", setv("monthly_balances", 0, "customer_id", None), 1,
      [row(1)]),
    C("monthly_balances", "month", "not_null", setv("monthly_balances", 0, "month", None), 1,
      [K(customer_id="000123", month="NULL")]),
    C("monthly_balances", "aum", "not_null", setv("monthly_balances", 1, "aum", None), 1,
      [bal("000123", "2023-02")]),
    C("monthly_balances", "txn_count", "not_null", setv("monthly_balances", 1, "txn_count", None), 1,
      [bal("000123", "2023-02")]),
    C("complaints", "complaint_id", "not_null", setv("complaints", 0, "complaint_id", None), 1, [row(1)]),
    C("complaints", "customer_id", "not_null", setv("complaints", 0, "customer_id", None), 1,
      [K(complaint_id="C001")]),
    C("complaints", "complaint_date", "not_null", setv("complaints", 0, "complaint_date", None), 1,
      [K(complaint_id="C001")]),
    C("complaints", "severity", "not_null", setv("complaints", 0, "severity", None), 1,
      [K(complaint_id="C001")]),
    C("complaints", "escalated", "not_null", setv("complaints", 0, "escalated", None), 1,
      [K(complaint_id="C001")]),
    C("retention_actions", "action_id", "not_null", setv("retention_actions", 3, "action_id", None), 1,
      [row(4)]),
    C("retention_actions", "customer_id", "not_null", setv("retention_actions", 3, "customer_id", None), 1,
      [K(action_id="A004")]),
    C("retention_actions", "action_date", "not_null", setv("retention_actions", 3, "action_date", None), 1,
      [K(action_id="A004")]),
    C("retention_actions", "action_type", "not_null", setv("retention_actions", 3, "action_type", None), 1,
      [K(action_id="A004")]),
    C("retention_actions", "trigger", "not_null", setv("retention_actions", 3, "trigger", None), 1,
      [K(action_id="A004")]),
    C("customers", "tenure_months", "not_null", setv("customers", 0, "tenure_months", None), 1,
      [cust("000123")], flat=True, id="flat.customers.tenure_months.not_null"),
    C("customers", "churned", "not_null", setv("customers", 0, "churned", None), 1, [cust("000123")],
      flat=True, id="flat.customers.churned.not_null"),
    C("customers", "customer_id", "not_null", setv("customers", 2, "customer_id", " "), 1, [row(3)],
      flat=True, id="flat.customers.customer_id.not_null"),
    C("customers", "branch_id", "not_null", setv("customers", 2, "branch_id", None), 1, [cust("000200")],
      flat=True, id="flat.customers.branch_id.not_null"),
    # ---- unique
    C("branches", "branch_id", "unique", add_row("branches", 0, branch_name="Copy"), 2,
      [K(branch_id="001")] * 2),
    C("customers", "customer_id", "unique", add_row("customers", 5, customer_id="000123"), 2,
      [cust("000123")] * 2, formats=ALL_FORMATS),
    C("relationship_managers", "rm_id", "unique", add_row("relationship_managers", 3, rm_id="0201"), 2,
      [K(rm_id="0201")] * 2),
    C("complaints", "complaint_id", "unique", setv("complaints", 2, "complaint_id", "C001"), 2,
      [K(complaint_id="C001")] * 2),
    C("retention_actions", "action_id", "unique", setv("retention_actions", 1, "action_id", "A003"), 2,
      [K(action_id="A003")] * 2),
    C("monthly_balances", "customer_id+month", "unique", add_row("monthly_balances", 14, aum=1.0), 2,
      [bal("000124", "2023-03")] * 2, formats=ALL_FORMATS),
    C("customers", "customer_id", "unique", add_row("customers", 0), 2, [cust("000123")] * 2, flat=True,
      id="flat.customers.customer_id.unique"),
    # ---- pattern (branch_id becomes a file name)
    C("branches", "branch_id", "pattern", add_row("branches", 0, branch_id="B 01"), 1, [K(branch_id="B 01")],
      formats=ALL_FORMATS),
    C("branches", "branch_id", "pattern", add_row("branches", 0, branch_id="../x"), 1, [K(branch_id="../x")],
      id="branches.branch_id.pattern.path"),
    C("branches", "branch_id", "pattern", add_row("branches", 0, branch_id="A" * 65), 1,
      [K(branch_id="A" * 65)], id="branches.branch_id.pattern.65_chars"),
    C("branches", "branch_id", "pattern", add_row("branches", 0, branch_id="城东"), 1, [K(branch_id="城东")],
      id="branches.branch_id.pattern.non_ascii"),
    # ---- non_empty (an empty CSV field is null; whitespace only is empty)
    C("branches", "branch_name", "non_empty", setv("branches", 0, "branch_name", "  "), 1,
      [K(branch_id="001")], formats=ALL_FORMATS),
    C("branches", "branch_name", "non_empty", setv("branches", 0, "branch_name", ""), 1,
      [K(branch_id="001")], id="branches.branch_name.non_empty.empty_string", formats=("parquet", "duckdb")),
    C("product_holdings", "product", "non_empty", setv("product_holdings", 1, "product", " "), 1,
      [hold("000123", " ", "2019-01-01")]),
    # ---- allowed values
    C("customers", "churn_type", "allowed_values", setv("customers", 1, "churn_type", "moved"), 1,
      [cust("000124")]),
    C("customers", "churn_type", "allowed_values", setv("customers", 1, "churn_type", "Transfer"), 1,
      [cust("000124")], id="customers.churn_type.allowed_values.case"),
    C("relationship_managers", "exit_type", "allowed_values",
      setv("relationship_managers", 0, "exit_type", "fired"), 1, [K(rm_id="0101")]),
    C("complaints", "severity", "allowed_values", setv("complaints", 1, "severity", "critical"), 1,
      [K(complaint_id="C002")]),
    C("retention_actions", "action_type", "allowed_values", setv("retention_actions", 0, "action_type", "email"),
      1, [K(action_id="A001")]),
    C("retention_actions", "trigger", "allowed_values", setv("retention_actions", 0, "trigger", "random"), 1,
      [K(action_id="A001")]),
    C("retention_actions", "outcome", "allowed_values", setv("retention_actions", 0, "outcome", "maybe"), 1,
      [K(action_id="A001")]),
    C("customers", "churn_type", "allowed_values", setv("customers", 1, "churn_type", "moved"), 1,
      [cust("000124")], flat=True, id="flat.customers.churn_type.allowed_values"),
    # ---- min / max
    C("monthly_balances", "aum", "min_value", setv("monthly_balances", 0, "aum", -1.0), 1,
      [bal("000123", "2023-01")]),
    C("monthly_balances", "avg_daily_aum", "min_value", setv("monthly_balances", 13, "avg_daily_aum", -0.01),
      1, [bal("000124", "2023-02")]),
    C("monthly_balances", "txn_count", "min_value", setv("monthly_balances", 2, "txn_count", -1), 1,
      [bal("000123", "2023-03")]),
    C("monthly_balances", "outflow", "min_value", setv("monthly_balances", 71, "outflow", -5.0), 1,
      [bal("123", "2023-12")]),
    C("customers", "n_products", "min_value", setv("customers", 4, "n_products", -1), 1, [cust("000007")]),
    C("customers", "birth_year", "min_value", setv("customers", 3, "birth_year", 1899), 1, [cust("010001")]),
    C("customers", "birth_year", "max_value", setv("customers", 5, "birth_year", 2024), 1, [cust("123")]),
    C("customers", "tenure_months", "min_value", setv("customers", 0, "tenure_months", -0.5), 1,
      [cust("000123")], flat=True, id="flat.customers.tenure_months.min_value"),
    C("customers", "n_products", "min_value", setv("customers", 0, "n_products", -1), 1, [cust("000123")],
      flat=True, id="flat.customers.n_products.min_value"),
    C("customers", "birth_year", "min_value", setv("customers", 0, "birth_year", 1800), 1, [cust("000123")],
      flat=True, id="flat.customers.birth_year.min_value"),
    C("customers", "birth_year", "max_value", setv("customers", 0, "birth_year", 2101), 1, [cust("000123")],
      flat=True, id="flat.customers.birth_year.max_value"),
    # ---- date order (end dates are inclusive: equal is fine, earlier is not)
    C("customers", "churn_date", "date_order", setv("customers", 1, "churn_date", D("2020-06-14")), 1,
      [cust("000124")], formats=ALL_FORMATS),
    C("product_holdings", "end_date", "date_order", setv("product_holdings", 1, "end_date", D("2018-12-31")),
      1, [hold("000123", "time_deposit", "2019-01-01")]),
    C("relationship_managers", "exit_date", "date_order",
      setv("relationship_managers", 0, "exit_date", D("2009-12-31")), 1, [K(rm_id="0101")]),
    C("rm_assignments", "end_date", "date_order", setv("rm_assignments", 3, "end_date", D("2017-12-31")), 1,
      [asg("010001", "0201", "2018-01-01")]),
    C("complaints", "escalated_date", "date_order", setv("complaints", 1, "escalated_date", D("2023-03-14")),
      1, [K(complaint_id="C002")]),
    # ---- null_unless
    C("customers", "churn_type", "null_unless", setv("customers", 0, "churn_type", "transfer"), 1,
      [cust("000123")]),
    C("customers", "churn_type", "null_unless", setv("customers", 0, "churn_type", "transfer"), 1,
      [cust("000123")], flat=True, id="flat.customers.churn_type.null_unless"),  # churned is false
    # ---- foreign keys (leading zeros matter: 0123 is not 000123)
    C("customers", "branch_id", "foreign_key", setv("customers", 0, "branch_id", "01"), 1, [cust("000123")],
      formats=ALL_FORMATS),
    C("product_holdings", "customer_id", "foreign_key", setv("product_holdings", 5, "customer_id", "0123"), 1,
      [hold("0123", "own_product", "2022-01-01")]),
    C("relationship_managers", "branch_id", "foreign_key", setv("relationship_managers", 3, "branch_id", "B03"),
      1, [K(rm_id="0301")]),
    C("rm_assignments", "customer_id", "foreign_key", setv("rm_assignments", 5, "customer_id", "00123"), 1,
      [asg("00123", "0301", "2022-01-01")]),
    C("rm_assignments", "rm_id", "foreign_key", setv("rm_assignments", 5, "rm_id", "301"), 1,
      [asg("123", "301", "2022-01-01")]),
    C("monthly_balances", "customer_id", "foreign_key", set_rows("monthly_balances", [0, 1], "customer_id", "999"),
      2, [bal("999", "2023-01"), bal("999", "2023-02")]),
    C("complaints", "customer_id", "foreign_key", setv("complaints", 0, "customer_id", "0000123"), 1,
      [K(complaint_id="C001")]),
    C("retention_actions", "customer_id", "foreign_key", setv("retention_actions", 0, "customer_id", "X1"), 1,
      [K(action_id="A001")]),
    C("retention_actions", "rm_id", "foreign_key", setv("retention_actions", 0, "rm_id", "0999"), 1,
      [K(action_id="A001")]),
    C("customers", "branch_id", "foreign_key", setv("customers", 0, "branch_id", "1"), 1, [cust("000123")],
      flat=True, id="flat.customers.branch_id.foreign_key"),
    # ---- no date after the extract's as-of date (2023-12-31)
    C("customers", "open_date", "not_after_as_of", setv("customers", 2, "open_date", D("2024-01-01")), 1,
      [cust("000200")]),
    C("customers", "churn_date", "not_after_as_of", setv("customers", 3, "churn_date", D("2024-01-02")), 1,
      [cust("010001")]),
    C("product_holdings", "start_date", "not_after_as_of",
      setv("product_holdings", 3, "start_date", D("2024-02-01")), 1,
      [hold("000200", "mobile_banking", "2024-02-01")]),
    C("product_holdings", "end_date", "not_after_as_of", setv("product_holdings", 1, "end_date", D("2024-01-01")),
      1, [hold("000123", "time_deposit", "2019-01-01")]),
    C("relationship_managers", "hire_date", "not_after_as_of",
      setv("relationship_managers", 1, "hire_date", D("2024-01-01")), 1, [K(rm_id="0102")]),
    C("relationship_managers", "exit_date", "not_after_as_of",
      setv("relationship_managers", 1, "exit_date", D("2024-06-30")), 1, [K(rm_id="0102")]),
    C("rm_assignments", "start_date", "not_after_as_of", setv("rm_assignments", 4, "start_date", D("2024-01-01")),
      1, [asg("000007", "0301", "2024-01-01")]),
    C("rm_assignments", "end_date", "not_after_as_of", setv("rm_assignments", 5, "end_date", D("2024-01-01")),
      1, [asg("123", "0301", "2022-01-01")]),
    C("monthly_balances", "month", "not_after_as_of", setv("monthly_balances", 0, "month", "2024-01"), 1,
      [bal("000123", "2024-01")], formats=ALL_FORMATS),
    C("monthly_balances", "month", "not_after_as_of", setv("extract", 0, "as_of", D("2023-12-15")), 6,
      [bal(c, "2023-12") for c in CUSTOMER_IDS[:5]], id="monthly_balances.month.not_after_as_of.month_end",
      solo=True),
    C("complaints", "complaint_date", "not_after_as_of", setv("complaints", 0, "complaint_date", D("2024-01-01")),
      1, [K(complaint_id="C001")]),
    C("complaints", "escalated_date", "not_after_as_of",
      setv("complaints", 2, "escalated_date", D("2024-01-05")), 1, [K(complaint_id="C003")]),
    C("retention_actions", "action_date", "not_after_as_of",
      setv("retention_actions", 0, "action_date", D("2024-01-01")), 1, [K(action_id="A001")]),
    C("extract", "observation_start", "not_after_as_of",
      setv("extract", 0, "observation_start", D("2024-01-01")), 1),
    # ---- at most one RM per customer per day
    C("rm_assignments", "start_date", "no_overlap", setv("rm_assignments", 1, "start_date", D("2023-04-30")), 1,
      [asg("000123", "0102", "2023-04-30")], formats=ALL_FORMATS),
    C("rm_assignments", "start_date", "no_overlap",
      add_row("rm_assignments", 4, rm_id="0201", start_date=D("2023-01-01")), 1,
      [asg("000007", "0201", "2023-01-01")], id="rm_assignments.start_date.no_overlap.after_open_ended"),
    C("rm_assignments", "start_date", "no_overlap",
      add_row("rm_assignments", 4, rm_id="0201"), 1,
      [asg("000007", "0201", "2021-07-07")], id="rm_assignments.start_date.no_overlap.same_start"),
    # an assignment inside a long one, and another after it, also inside the long one: both overlap
    C("rm_assignments", "start_date", "no_overlap",
      chain(add_row("rm_assignments", 0, rm_id="0201", start_date=D("2016-01-01"), end_date=D("2016-12-31")),
            add_row("rm_assignments", 0, rm_id="0301", start_date=D("2017-01-01"), end_date=D("2017-06-30"))),
      2, [asg("000123", "0201", "2016-01-01"), asg("000123", "0301", "2017-01-01")],
      id="rm_assignments.start_date.no_overlap.nested"),
    C("rm_assignments", "start_date", "no_overlap",
      chain(add_row("rm_assignments", 4, rm_id="0201", start_date=D("2022-01-01"), end_date=D("2022-06-30")),
            add_row("rm_assignments", 4, rm_id="0101", start_date=D("2023-01-01"), end_date=None)),
      2, [asg("000007", "0201", "2022-01-01"), asg("000007", "0101", "2023-01-01")],
      id="rm_assignments.start_date.no_overlap.two_after_open_ended"),
]
# fmt: on

# --------------------------------------------------------------------------- known contract bugs

# A contract bug found by a case is listed here as (reason, exception or None) and
# runs as a strict xfail until fixed.  The bugs these tests found (crashes on a
# missing key column, no_overlap comparing only with the previous assignment)
# are fixed; keep the mechanism for the next one.
KNOWN_BUGS: dict[str, tuple[str, type[BaseException] | None]] = {}


def _case_params() -> list:
    out = []
    for case in CASES:
        for fmt in case.formats:
            marks = []
            if case.id in KNOWN_BUGS:
                reason, raises = KNOWN_BUGS[case.id]
                marks.append(pytest.mark.xfail(strict=True, reason=reason, raises=raises))
            out.append(pytest.param(case, fmt, id=f"{case.id}[{fmt}]", marks=marks))
    return out


def test_known_bugs_name_real_cases():
    assert set(KNOWN_BUGS) <= {c.id for c in CASES}


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


# --------------------------------------------------------------------------- running the CLI


@dataclass
class Run:
    """What ``crmresearch validate SOURCE`` did for one source."""

    path: Path | None = None
    exit_code: int | None = None
    stdout: str = ""
    report: ValidationReport | None = None
    error: BaseException | None = None


class _PerThreadStdout(io.TextIOBase):
    """sys.stdout stand-in that gives every worker thread its own buffer."""

    def __init__(self) -> None:
        self._local = threading.local()

    def start(self) -> None:
        self._local.buf = io.StringIO()

    def getvalue(self) -> str:
        return self._local.buf.getvalue()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        buf = getattr(self._local, "buf", None)
        return buf.write(s) if buf is not None else len(s)


def run_validate_cli(sources: list[Path | Callable[[], Path]]) -> list[Run]:
    """Run ``cli.main(['validate', SOURCE])`` for each source, a few at a time.

    A source may be a callable that writes it (then it is built in the worker).
    A spy around :func:`crmresearch.data.contract.validate_source` (the real one
    runs, once) keeps the report the CLI printed, so a test reads the findings
    as objects, the printed text and the exit code of one and the same
    validation.  A crash is kept in ``Run.error``.
    """
    out = _PerThreadStdout()
    reports: dict[str, ValidationReport] = {}
    real = contract_mod.validate_source

    def spy(source, params=None, mapping=None):
        report = real(source, params, mapping)
        reports[str(source)] = report
        return report

    def one(source: Path | Callable[[], Path]) -> Run:
        run = Run()
        out.start()
        try:
            run.path = source if isinstance(source, Path) else source()
            run.exit_code = cli.main(["validate", str(run.path)])
        except Exception as exc:  # noqa: BLE001 - a crash is a result for the test to raise
            run.error = exc
        run.stdout = out.getvalue()
        run.report = reports.get(str(run.path))
        return run

    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(cli, "validate_source", spy)
        if len(sources) == 1:
            return [one(sources[0])]
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            return list(pool.map(one, sources))


def validate_cli(src: Path) -> Run:
    """One ``crmresearch validate SRC``; fails the test on a crash."""
    (run,) = run_validate_cli([src])
    if run.error is not None:
        raise run.error
    assert run.report is not None
    # the report first; a valid flat extract then lists the analyses it supports
    assert run.stdout.strip().startswith(run.report.to_text().strip())
    extra = run.stdout.strip()[len(run.report.to_text().strip()):]
    assert not extra or "analyses that run on this flat extract" in extra
    return run


# --------------------------------------------------------------------------- batching the cases

# Validation costs ~0.15-0.45 s per source here (DuckDB's per-query overhead),
# and there are ~200 cases.  A case that changes only one table runs in a batch
# with cases on *other* tables (at most one case per table), so its own table is
# otherwise valid; the test of every case in a batch also checks that every
# error of the batch source is explained by one of its cases, so no mutation
# leaks into another table.  Cases that remove or duplicate tables, change the
# extract, flat cases and known bugs run alone, on the few tables they need.
# CRM_CONTRACT_SOLO=1 runs every case alone.
SOLO_RULES = {"missing_table", "needs_table", "ambiguous_table", "one_row"}
ALL_SOLO = os.environ.get("CRM_CONTRACT_SOLO") == "1"


def runs_alone(case: Case) -> bool:
    return (ALL_SOLO or case.solo or case.flat or case.post is not None or case.rule in SOLO_RULES
            or case.table == "extract" or case.id in KNOWN_BUGS)  # fmt: skip


def plan_jobs(fmt: str) -> list[list[Case]]:
    """Which cases share a source, for one format."""
    jobs: list[list[Case]] = []
    batches: list[list[Case]] = []
    for case in CASES:
        if fmt not in case.formats:
            continue
        if runs_alone(case):
            jobs.append([case])
            continue
        batch = next((b for b in batches if all(o.table != case.table for o in b)), None)
        if batch is None:
            batches.append([case])
        else:
            batch.append(case)
    return jobs + batches


def build_job_source(cases: list[Case], fmt: str, path: Path) -> Path:
    tables = job_tables(cases)
    for case in cases:
        case.mutate(tables)
    path = write_source(tables, path, fmt)
    for case in cases:
        if case.post:
            case.post(tables, path)
    return path


def build_case_source(case: Case, fmt: str, root: Path) -> Path:
    """The source of one case on its own."""
    return build_job_source([case], fmt, root / f"{case.id}-{fmt}")


@dataclass
class CaseRun:
    run: Run
    batch: list[Case]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, str], CaseRun]:
    root = tmp_path_factory.mktemp("cases")
    jobs = [(fmt, cases) for fmt in FORMATS for cases in plan_jobs(fmt)]
    builders = [functools.partial(build_job_source, cases, fmt, root / f"{fmt}-{i:03d}")
                for i, (fmt, cases) in enumerate(jobs)]  # fmt: skip
    out = {}
    for (fmt, cases), run in zip(jobs, run_validate_cli(builders), strict=True):
        for case in cases:
            out[(case.id, fmt)] = CaseRun(run, cases)
    return out


def _line_of(text: str, finding: Finding) -> str:
    lines = [ln for ln in text.splitlines() if ln == str(finding)]
    assert lines, f"{finding} not in:\n{text}"
    return lines[0]


def _explained(case: Case) -> set[Rule]:
    return {(case.table, case.column, case.rule), *case.also}


# --------------------------------------------------------------------------- the clean source


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_source_is_clean(tmp_path, fmt):
    run = validate_cli(write_source(valid_tables(), tmp_path / "src", fmt))
    assert run.report.findings == [], run.stdout
    assert run.report.ok
    assert run.report.tables == {n: len(df) for n, df in valid_tables().items()}
    assert run.exit_code == 0
    assert "0 error(s), 0 warning(s): source is valid" in run.stdout
    assert "as_of: 2023-12-31 (from the extract table)" in run.stdout
    assert "observation_start: 2023-01-01 (from the extract table)" in run.stdout


def test_valid_flat_source_is_clean(tmp_path):
    run = validate_cli(write_source(valid_flat_tables(), tmp_path / "src", "csv"))
    assert run.report.flat
    assert run.report.findings == [], run.stdout
    assert run.exit_code == 0
    assert "(flat extract)" in run.stdout


def test_boundaries_are_valid(tmp_path):
    """Inclusive ends and the as-of year: equal dates, back-to-back RMs, a 64-char branch id."""
    t = valid_tables()
    setv("customers", 1, "churn_date", D("2020-06-15"))(t)  # churned on the day it opened
    setv("customers", 5, "birth_year", 2023)(t)  # the as-of year
    setv("product_holdings", 1, "end_date", D("2019-01-01"))(t)
    setv("relationship_managers", 1, "exit_date", D("2023-05-02"))(t)
    setv("rm_assignments", 1, "start_date", D("2023-05-01"))(t)  # day after the previous end
    setv("complaints", 1, "escalated_date", D("2023-03-15"))(t)
    setv("retention_actions", 0, "action_date", D("2023-12-31"))(t)  # the as-of date itself
    setv("monthly_balances", 0, "aum", 0.0)(t)
    setv("monthly_balances", 0, "txn_count", 0)(t)
    add_row("branches", 0, branch_id="A_b-9" + "x" * 59, branch_name="long")(t)
    t["customers"]["bank_own_score"] = [
        "x",
        "1",
        None,
        "",
        "3.5",
        "-1",
    ]  # extra columns are ignored
    run = validate_cli(write_source(t, tmp_path / "src", "csv"))
    assert run.report.errors == [], run.stdout
    assert run.exit_code == 0


def test_csv_with_byte_order_mark_is_read(tmp_path):
    """Excel writes 'UTF-8 with BOM'; the first header must still be found."""
    src = write_source({n: valid_tables()[n] for n in CORE}, tmp_path / "src", "csv")
    for f in src.iterdir():
        f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    run = validate_cli(src)
    assert run.report.findings == [], run.stdout
    assert run.exit_code == 0


def test_missing_column_names_a_near_miss(tmp_path):
    t = {n: valid_tables()[n] for n in CORE}
    t["customers"] = t["customers"].rename(columns={"open_date": "Open_Date"})
    run = validate_cli(write_source(t, tmp_path / "src", "csv"))
    (f,) = run.report.errors
    assert (f.table, f.column, f.rule) == ("customers", "open_date", "missing_column")
    assert "Open_Date" in f.message
    assert run.exit_code == cli.EXIT_BAD_INPUT


def test_not_a_source_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path / "nowhere")]) == cli.EXIT_BAD_INPUT
    assert "error:" in capsys.readouterr().err


# --------------------------------------------------------------------------- every rule


@pytest.mark.parametrize(("case", "fmt"), _case_params())
def test_broken_rule_is_reported(case: Case, fmt: str, runs):
    cr = runs[(case.id, fmt)]
    run = cr.run
    if run.error is not None:
        raise run.error
    report = run.report
    assert report is not None
    assert run.exit_code == cli.EXIT_BAD_INPUT, run.stdout
    assert not report.ok

    matching = [f for f in report.errors
                if (f.table, f.column, f.rule) == (case.table, case.column, case.rule)]  # fmt: skip
    assert len(matching) == 1, report.to_text()
    finding = matching[0]
    assert finding.severity == "error"
    assert finding.n_rows == case.n_rows, report.to_text()
    assert finding.examples == case.examples, report.to_text()
    assert finding.message

    errors = {(f.table, f.column, f.rule) for f in report.errors}
    # nothing else is wrong with the case's own table ...
    own = {e for e in errors if e[0] == case.table}
    assert own <= _explained(case), report.to_text()
    # ... nor with the rest of the source (other cases of the batch explain their errors)
    unexplained = errors - set().union(*(_explained(c) for c in cr.batch))
    assert not unexplained, report.to_text()

    # the rendered text names table, column and rule; the CLI printed exactly that
    text = report.to_text()
    line = _line_of(text, finding)
    where = case.table + (f".{case.column}" if case.column else "")
    assert line.startswith(f"ERROR {where} [{case.rule}]"), line
    for ex in case.examples:
        assert ex in line
    if case.n_rows:
        assert f"{case.n_rows:,} row" in line
    assert "source is NOT valid" in text
    assert run.stdout.strip() == text.strip()


def test_batches_hold_one_case_per_table():
    for fmt in FORMATS:
        for job in plan_jobs(fmt):
            tables = [c.table for c in job]
            assert len(tables) == len(set(tables)), [c.id for c in job]


def _declared_rules(*, flat: bool) -> set[Rule]:
    """iter_rules() of the calendar contract only, or of the flat customers table only."""
    from crmresearch.data import rules  # the rule engine reads the spec's tables

    with pytest.MonkeyPatch.context() as mp:
        if flat:
            mp.setattr(rules, "TABLES", {})
        else:
            mp.setattr(rules, "FLAT_CUSTOMERS", dataclasses.replace(FLAT_CUSTOMERS, columns=()))
        return set(rules.iter_rules())


def test_every_contract_rule_has_a_case():
    """A rule added to the contract without a test here fails the suite."""
    covered = {(c.table, c.column, c.rule) for c in CASES}
    missing = sorted(set(iter_rules()) - covered, key=str)
    assert not missing, f"no test breaks these rules: {missing}"
    # and each rule is broken in the form of customers that declares it
    calendar = _declared_rules(flat=False)
    flat = _declared_rules(flat=True)
    assert calendar | flat == set(iter_rules())
    assert not calendar - {(c.table, c.column, c.rule) for c in CASES if not c.flat}
    assert not flat - {(c.table, c.column, c.rule) for c in CASES if c.flat}


def test_every_table_level_rule_has_a_case():
    covered = {(c.table, c.column, c.rule) for c in CASES}
    want = set()
    for spec in TABLES.values():
        if spec.required:
            want.add((spec.name, None, "missing_table"))
        if spec.needs:
            want.add((spec.name, None, "needs_table"))
        if spec.unique_together:
            want.add((spec.name, "+".join(spec.unique_together), "unique"))
    for spec in (*TABLES.values(), FLAT_CUSTOMERS):
        for col in spec.columns:
            if col.required:
                want.add((spec.name, col.name, "missing_column"))
            if col.type not in ("id", "string"):
                want.add((spec.name, col.name, "type"))
            if col.type in ("date", "month") and spec.name != "extract":
                want.add((spec.name, col.name, "not_after_as_of"))
    want |= {("extract", None, "one_row"), ("extract", "observation_start", "not_after_as_of"),
             ("rm_assignments", "start_date", "no_overlap"), ("customers", None, "ambiguous_table")}  # fmt: skip
    missing = sorted(want - covered, key=str)
    assert not missing, f"no test breaks these rules: {missing}"


def test_every_reference_has_a_foreign_key_case():
    want = {(t.name, c.name) for t in TABLES.values() for c in t.columns if c.references}
    assert want <= {(c.table, c.column) for c in CASES if c.rule == "foreign_key" and not c.flat}


# --------------------------------------------------------------------------- one pass, examples


def test_all_violations_reported_in_one_pass(tmp_path):
    t = valid_tables()
    setv("customers", 1, "churn_type", "moved")(t)
    add_row("branches", 0, branch_id="B 01")(t)
    setv("monthly_balances", 0, "aum", -1.0)(t)
    setv("complaints", 1, "severity", "critical")(t)
    setv("rm_assignments", 1, "start_date", D("2023-04-01"))(t)
    setv("retention_actions", 0, "rm_id", "0999")(t)
    src = write_source(t, tmp_path / "src", "csv")
    want = {("customers", "churn_type", "allowed_values"), ("branches", "branch_id", "pattern"),
            ("monthly_balances", "aum", "min_value"), ("complaints", "severity", "allowed_values"),
            ("rm_assignments", "start_date", "no_overlap"), ("retention_actions", "rm_id", "foreign_key")}  # fmt: skip
    with pytest.raises(ContractError) as exc_info:
        load_source(src)
    report = exc_info.value.report
    assert {(f.table, f.column, f.rule) for f in report.errors} == want
    assert len(report.errors) >= 5
    text = str(exc_info.value)
    for f in report.errors:
        assert str(f) in text
    assert f"{len(want)} error(s)" in text


def test_examples_are_capped_at_five_and_name_keys(tmp_path):
    t = {n: valid_tables()[n] for n in (*CORE, "monthly_balances")}
    set_rows("monthly_balances", list(range(12)), "aum", -1.0)(t)  # all 12 months of 000123
    add_row("customers", 0, customer_id="000123")(t)
    add_row("customers", 0, customer_id="000123")(t)
    set_rows("monthly_balances", list(range(7)), "txn_count", "many")(t)
    run = validate_cli(write_source(t, tmp_path / "src", "csv"))
    assert run.exit_code == cli.EXIT_BAD_INPUT
    by_rule = {(f.table, f.column, f.rule): f for f in run.report.errors}
    aum = by_rule[("monthly_balances", "aum", "min_value")]
    assert aum.n_rows == 12
    assert aum.examples == tuple(bal("000123", m) for m in MONTHS[:5])
    assert str(aum) in run.stdout
    assert "12 rows" in str(aum)
    dup = by_rule[("customers", "customer_id", "unique")]
    assert dup.n_rows == 3
    assert dup.examples == ("customer_id=000123",) * 3
    bad = by_rule[("monthly_balances", "txn_count", "type")]
    assert bad.n_rows == 7
    assert bad.examples == tuple(row(i, "many") for i in range(1, 6))


def test_report_frame_lists_findings(runs):
    frame = runs[("customers.branch_id.foreign_key", "csv")].run.report.to_frame()
    rec = frame[(frame.rule == "foreign_key")].iloc[0]
    assert (rec.severity, rec.table, rec.column, rec.n_rows) == (
        "error",
        "customers",
        "branch_id",
        1,
    )
    assert rec.examples == ["customer_id=000123"]


# --------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize("fmt", FORMATS)
def test_identifiers_keep_leading_zeros(tmp_path, fmt):
    tables = (*CORE, "relationship_managers", "monthly_balances")
    src = write_source({n: valid_tables()[n] for n in tables}, tmp_path / "src", fmt)
    source = load_source(src)
    try:
        assert source.df("customers").customer_id.tolist() == CUSTOMER_IDS  # 000123 and 123 differ
        assert "000123" in set(source.df("customers").customer_id)
        assert source.df("branches").branch_id.tolist() == ["001", "002", "B-03"]
        assert set(source.df("relationship_managers").rm_id) == {"0101", "0102", "0201", "0301"}
        assert set(source.df("monthly_balances").customer_id) == set(CUSTOMER_IDS)
        assert (source.as_of, source.observation_start) == (D("2023-12-31"), D("2023-01-01"))
        assert source.report.findings == []
        assert (
            source.con.execute(
                "SELECT count(*) FROM customers WHERE customer_id = '123'"
            ).fetchone()[0]
            == 1
        )
    finally:
        source.close()


@pytest.mark.parametrize("fmt", ["parquet", "duckdb"])
def test_integer_identifier_is_a_warning(tmp_path, fmt):
    t = {n: valid_tables()[n] for n in CORE}
    t["customers"] = t["customers"].assign(customer_id=[1001, 1002, 1003, 1004, 1005, 1006])
    src = write_source(t, tmp_path / "src", fmt)
    run = validate_cli(src)
    assert run.report.ok, run.stdout
    assert run.exit_code == 0
    w = [f for f in run.report.warnings if f.rule == "id_not_text"]
    assert [(f.table, f.column, f.severity) for f in w] == [("customers", "customer_id", "warning")]
    assert "WARNING customers.customer_id [id_not_text]" in run.stdout
    source = load_source(src)
    try:
        assert source.df("customers").customer_id.tolist()[0] == "1001"
    finally:
        source.close()


# --------------------------------------------------------------------------- warnings do not fail


WARNINGS = [
    pytest.param(
        (*CORE, "monthly_balances"),
        lambda t: t.update(monthly_balances=t["monthly_balances"].query("customer_id != '000200'")),
        ("customers", "customer_id", "no_balances", 1, (cust("000200"),)), id="no_balances"),
    pytest.param(
        (*CORE, "complaints"),
        setv("complaints", 1, "escalated_date", None),
        ("complaints", "escalated_date", "escalation_dated_by_complaint", 1, (K(complaint_id="C002"),)),
        id="escalation_dated_by_complaint"),
    pytest.param(
        (*CORE, "complaints"),
        drop_col("complaints", "escalated_date"),
        ("complaints", "escalated_date", "escalation_dated_by_complaint", 2,
         (K(complaint_id="C002"), K(complaint_id="C003"))),
        id="escalation_dated_by_complaint.no_column"),
    pytest.param(
        CORE,
        setv("customers", 1, "churn_date", D("2022-12-31")),
        ("customers", "churn_date", "churned_before_observation_start", 1, (cust("000124"),)),
        id="churned_before_observation_start"),
]  # fmt: skip


@pytest.mark.parametrize(("tables", "mutate", "expected"), WARNINGS)
def test_warnings_do_not_fail(tmp_path, tables, mutate, expected):
    table, column, rule, n_rows, examples = expected
    t = {n: valid_tables()[n] for n in tables}
    mutate(t)
    run = validate_cli(write_source(t, tmp_path / "src", "csv"))
    report = run.report
    assert report.ok, run.stdout
    assert report.errors == []
    (w,) = [f for f in report.warnings if f.rule == rule]
    assert (w.table, w.column, w.severity, w.n_rows, w.examples) == (
        table,
        column,
        "warning",
        n_rows,
        examples,
    )
    assert run.exit_code == 0
    assert str(w) in run.stdout
    assert str(w).startswith(f"WARNING {table}.{column} [{rule}]")
    assert "1 warning(s): source is valid" in run.stdout


def test_load_source_keeps_warnings(tmp_path):
    t = {n: valid_tables()[n] for n in CORE}
    setv("customers", 1, "churn_date", D("2022-12-31"))(t)
    source = load_source(write_source(t, tmp_path / "src", "csv"))
    try:
        assert [f.rule for f in source.report.warnings] == ["churned_before_observation_start"]
    finally:
        source.close()


# --------------------------------------------------------------------------- extract defaults


def test_extract_defaults_from_balances(tmp_path):
    t = {n: valid_tables()[n] for n in ("branches", "customers", "complaints", "monthly_balances")}
    src = write_source(t, tmp_path / "src", "csv")
    run = validate_cli(src)
    report = run.report
    assert report.ok, run.stdout
    assert run.exit_code == 0
    # as_of: the last balance month's end; observation_start: the first balance month
    assert report.settings["as_of"].startswith("2023-12-31 (default: the latest date in the data")
    assert "balance month" in report.settings["as_of"]
    assert report.settings["observation_start"] == (
        "2023-01-01 (default: the first day of the earliest balance month)"
    )
    assert f"as_of: {report.settings['as_of']}" in run.stdout
    assert f"observation_start: {report.settings['observation_start']}" in run.stdout
    source = load_source(src)
    try:
        assert (source.as_of, source.observation_start) == (D("2023-12-31"), D("2023-01-01"))
    finally:
        source.close()


def test_extract_defaults_without_balances(tmp_path):
    t = valid_tables()
    del t["extract"], t["monthly_balances"]
    run = validate_cli(write_source(t, tmp_path / "src", "csv"))
    report = run.report
    assert report.ok, run.stdout
    # the latest date in the data: a churn date (and an assignment end); the earliest open date
    assert report.settings["as_of"] == "2023-09-30 (default: the latest date in the data)"
    assert report.settings["observation_start"] == (
        "2015-03-01 (default: the earliest open date (no balances supplied))"
    )
    assert run.exit_code == 0
    assert "as_of: 2023-09-30 (default: the latest date in the data)" in run.stdout
    assert "observation_start: 2015-03-01 (default: the earliest open date" in run.stdout


def test_extract_with_as_of_only(tmp_path):
    t = {n: valid_tables()[n] for n in (*CORE, "monthly_balances")}
    t["extract"] = pd.DataFrame({"as_of": [D("2024-03-31")]})
    run = validate_cli(write_source(t, tmp_path / "src", "csv"))
    assert run.report.ok, run.stdout
    assert run.report.settings["as_of"] == "2024-03-31 (from the extract table)"
    assert run.report.settings["observation_start"] == (
        "2023-01-01 (default: the first day of the earliest balance month)"
    )


# --------------------------------------------------------------------------- nothing written


def _stub_survival(calls: list) -> types.ModuleType:
    """A survival module whose writer really writes: proves the CLI stops before it."""
    mod = types.ModuleType("crmresearch.survival.episodes")

    def write_survival_table(source, params, out, as_of=None, episodes=False):
        calls.append(Path(out))
        Path(out).write_bytes(b"written")
        return "customers", 1

    mod.write_survival_table = write_survival_table
    return mod


BAD_FOR_WRITING = ["customers.open_date.type", "customers.branch_id.foreign_key",
                   "branches.-.missing_table", "rm_assignments.start_date.no_overlap"]  # fmt: skip
HAVE_SURVIVAL = importlib.util.find_spec("crmresearch.survival.episodes") is not None


_REAL = pytest.mark.skipif(not HAVE_SURVIVAL, reason="crmresearch.survival.episodes not written yet")


@pytest.mark.parametrize(("case_id", "writer"), [
    *[pytest.param(c, "stub", id=f"{c}-stub") for c in BAD_FOR_WRITING],
    *[pytest.param(c, "real", id=f"{c}-real", marks=_REAL) for c in BAD_FOR_WRITING[:2]],
])  # fmt: skip
def test_nothing_written_when_validation_fails(tmp_path, monkeypatch, capsys, case_id, writer):
    """``survival-table`` on a bad source exits non-zero and writes nothing.

    ``stub`` replaces the survival module by one whose writer really writes,
    so the test would see a write that validation failed to stop.
    """
    calls: list = []
    if writer == "stub":
        monkeypatch.setitem(sys.modules, "crmresearch.survival.episodes", _stub_survival(calls))
    bad = build_case_source(next(c for c in CASES if c.id == case_id), "csv", tmp_path)
    out = tmp_path / "x.parquet"
    assert cli.main(["survival-table", str(bad), "--out", str(out)]) == cli.EXIT_BAD_INPUT
    assert not out.exists()
    assert calls == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [bad.name]
    err = capsys.readouterr().err
    assert "source is NOT valid" in err
    assert "nothing was written" in err


def test_stub_writer_is_reached_for_a_valid_source(tmp_path, monkeypatch):
    """The nothing-written test would notice a write: the same command writes for a clean source."""
    calls: list = []
    monkeypatch.setitem(sys.modules, "crmresearch.survival.episodes", _stub_survival(calls))
    src = write_source({n: valid_tables()[n] for n in CORE}, tmp_path / "src", "csv")
    out = tmp_path / "x.parquet"
    assert cli.main(["survival-table", str(src), "--out", str(out)]) == 0
    assert out.exists() and calls == [out]
