"""The contract's rule engine: every rule of :data:`~crmresearch.data.spec.TABLES` as one SQL query, all findings in one pass."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Literal

import duckdb

from crmresearch.core.sql import ident as _q
from crmresearch.core.sql import literal as _lit
from crmresearch.data.findings import Finding, ValidationReport
from crmresearch.data.spec import FLAT_CUSTOMERS, MAX_EXAMPLES, TABLES, TableSpec

__all__ = ["iter_rules"]



class _Checker:
    """Runs the rules of one source as SQL, collecting findings."""

    def __init__(self, con: duckdb.DuckDBPyConnection, report: ValidationReport):
        self.con = con
        self.report = report

    def _key_expr(self, spec: TableSpec, alias: str = "") -> str:
        pre = f"{alias}." if alias else ""
        parts = []
        types = {c.name: c.type for c in spec.columns}
        for k in spec.key:
            if k == "__row":
                parts.append(f"'row ' || {pre}__row")
            elif types.get(k) == "month":
                parts.append(f"'{k}=' || COALESCE(strftime({pre}{_q(k)}, '%Y-%m'), 'NULL')")
            else:
                parts.append(f"'{k}=' || COALESCE(CAST({pre}{_q(k)} AS VARCHAR), 'NULL')")
        key = " || ', ' || ".join(parts)
        if spec.key != ("__row",):
            key = f"CASE WHEN {pre}{_q(spec.key[0])} IS NULL THEN 'row ' || {pre}__row ELSE {key} END"
        return key

    def batch(self, spec: TableSpec, rules: list[tuple[str | None, str, str, str]]) -> None:
        """Check many row-level rules ``(column, rule, where, message)`` of one table in one scan."""
        if not rules:
            return
        aggs = ", ".join(f"count(*) FILTER (WHERE {w}), min_by(__row, __row, {MAX_EXAMPLES}) FILTER (WHERE {w})"
                         for _, _, w, _ in rules)  # fmt: skip
        row = self.con.execute(f"SELECT {aggs} FROM {_q(spec.name)}").fetchone()
        failing = {r for i in range(len(rules)) for r in (row[2 * i + 1] or ())}
        keys: dict[int, str] = {}
        if failing:  # render example keys for the few failing rows only
            keys = dict(self.con.execute(
                f"SELECT __row, {self._key_expr(spec)} FROM {_q(spec.name)} "
                f"WHERE __row IN ({', '.join(str(int(r)) for r in failing)})").fetchall())  # fmt: skip
        for i, (column, rule, _, message) in enumerate(rules):
            n, rows = row[2 * i], row[2 * i + 1]
            if n:
                ex = tuple(keys[r] for r in sorted(rows))
                self.report.findings.append(Finding(spec.name, column, rule, int(n), ex, message))

    def check(self, spec: TableSpec, column: str | None, rule: str, where: str, message: str,
              *, severity: Literal["error", "warning"] = "error", from_: str | None = None,
              key: str | None = None) -> int:  # fmt: skip
        src = from_ or _q(spec.name)
        key = key or self._key_expr(spec)
        n, ex = self.con.execute(
            f"SELECT count(*), list(k ORDER BY r)[1:{MAX_EXAMPLES}] FROM "
            f"(SELECT {key} AS k, __row AS r FROM {src} WHERE {where})"
        ).fetchone()
        if n:
            self.report.findings.append(
                Finding(spec.name, column, rule, int(n), tuple(ex or ()), message, severity)
            )
        return int(n)


def _repeat_screen(spec: TableSpec, t: str) -> str:
    """A fast query that is 0 when the ``unique_together`` key surely has no repeats.

    The exact check (a group-by over tens of millions of keys) runs only when
    the screen is positive.  For a key of (something, month), each group's
    months are a bit set (month number modulo 120 in a 128-bit integer): a
    repeated month, or months exactly 10 years apart, make the bit count
    smaller than the row count.  Other keys compare a hash count.
    """
    assert spec.unique_together
    types = {c.name: c.type for c in spec.columns}
    months = [c for c in spec.unique_together if types.get(c) == "month"]
    if len(months) == 1:
        m = _q(months[0])
        others = ", ".join(_q(c) for c in spec.unique_together if c != months[0])
        return (f"SELECT COALESCE(sum(n - u), 0) FROM (SELECT count(*) AS n, bit_count(bit_or("
                f"CAST(1 AS HUGEINT) << CAST((year({m}) * 12 + month({m})) % 120 AS INTEGER))) AS u "
                f"FROM {t} WHERE {m} IS NOT NULL GROUP BY {others})")  # fmt: skip
    cols = ", ".join(_q(c) for c in spec.unique_together)
    return f"SELECT count(*) - count(DISTINCT hash({cols})) FROM {t}"


def _run_rules(con: duckdb.DuckDBPyConnection, specs: dict[str, TableSpec], report: ValidationReport,
               as_of: dt.date | None, obs: dt.date | None) -> None:  # fmt: skip
    ck = _Checker(con, report)
    for tname, spec in specs.items():
        t = _q(tname)
        # row-level rules of this table: (column, rule, where, message), checked in one scan
        rules: list[tuple[str | None, str, str, str]] = []
        add = rules.append
        for col in spec.columns:
            c = _q(col.name)
            if col.not_null:
                add((col.name, "not_null", f"{c} IS NULL", "value is required"))
            if col.non_empty:
                add((col.name, "non_empty", f"TRIM({c}) = ''", "value must not be empty"))
            if col.pattern:
                add((col.name, "pattern",
                         f"{c} IS NOT NULL AND NOT regexp_full_match({c}, {_lit(col.pattern[1:-1])})",
                         "must be 1-64 characters of A-Z a-z 0-9 _ - (it becomes a file name)"))  # fmt: skip
            if col.unique:
                add((col.name, "unique",
                         f"{c} IN (SELECT {c} FROM {t} WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1)",
                         "value must be unique; duplicated rows shown"))  # fmt: skip
            if col.allowed:
                allowed = ", ".join(_lit(a) for a in col.allowed)
                add((col.name, "allowed_values", f"{c} IS NOT NULL AND {c} NOT IN ({allowed})",
                         f"must be one of {', '.join(col.allowed)}"))  # fmt: skip
            if col.min_value is not None:
                add((col.name, "min_value", f"{c} < {col.min_value}",
                         f"must be >= {col.min_value:g}"))
            if col.max_value is not None:
                mx = as_of.year if (col.max_value == "as_of_year" and as_of) else (
                    None if col.max_value == "as_of_year" else col.max_value)  # fmt: skip
                if mx is not None:
                    add((col.name, "max_value", f"{c} > {mx}", f"must be <= {mx}"))
            if col.not_before and col.not_before in {x.name for x in spec.columns}:
                add((col.name, "date_order", f"{c} < {_q(col.not_before)}",
                         f"must not be before {col.not_before}"))
            ref_cols = {x.name: x for x in spec.columns}
            if col.null_unless and col.null_unless in ref_cols:
                ref = _q(col.null_unless)
                if ref_cols[col.null_unless].type == "bool":
                    add((col.name, "null_unless", f"{c} IS NOT NULL AND NOT COALESCE({ref}, false)",
                             f"must be null unless {col.null_unless} is true"))  # fmt: skip
                else:
                    add((col.name, "null_unless", f"{c} IS NOT NULL AND {ref} IS NULL",
                             f"must be null when {col.null_unless} is null"))  # fmt: skip
            if col.references:
                rt, rc = col.references
                if rt in specs:
                    add((col.name, "foreign_key",
                             f"{c} IS NOT NULL AND {c} NOT IN (SELECT {_q(rc)} FROM {_q(rt)} WHERE {_q(rc)} IS NOT NULL)",
                             f"must exist in {rt}.{rc}"))  # fmt: skip
                elif col.required or col.not_null:
                    pass  # the missing table is reported once below
            if as_of is not None and col.type in ("date", "month") and tname != "extract":
                last = f"CAST(last_day({c}) AS DATE)" if col.type == "month" else c
                what = "the month ends" if col.type == "month" else "date is"
                add((col.name, "not_after_as_of", f"{last} > DATE '{as_of}'",
                         f"{what} after the extract's as-of date {as_of}"))
        ck.batch(spec, rules)
        if spec.unique_together:
            cols = ", ".join(_q(c) for c in spec.unique_together)
            dup = con.execute(_repeat_screen(spec, t)).fetchone()[0]
        if spec.unique_together and dup:
            ck.check(spec, "+".join(spec.unique_together), "unique",
                     f"({cols}) IN (SELECT ({cols}) FROM {t} GROUP BY {cols} HAVING count(*) > 1)",
                     "one row per " + " and ".join(spec.unique_together) + " at most")  # fmt: skip
    # one RM per customer per day: no overlapping assignments
    if "rm_assignments" in specs and {"customer_id", "start_date", "end_date"} <= {
            c.name for c in specs["rm_assignments"].columns}:  # fmt: skip
        # compare with the latest end of all earlier assignments, not only the previous one
        ck.check(
            specs["rm_assignments"], "start_date", "no_overlap", "prev_end >= start_date",
            "assignment overlaps an earlier one of the same customer (at most one RM on any day)",
            from_=("(SELECT *, max(COALESCE(end_date, DATE '9999-12-31')) OVER (PARTITION BY customer_id "
                   "ORDER BY start_date, __row ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end "
                   "FROM rm_assignments WHERE customer_id IS NOT NULL AND start_date IS NOT NULL)"),
        )  # fmt: skip
    # warnings: things that are legal but that the user should know
    def has(table: str, *cols: str) -> bool:
        return table in specs and set(cols) <= {c.name for c in specs[table].columns}

    if has("monthly_balances", "customer_id") and has("customers", "customer_id"):
        ck.check(specs["customers"], "customer_id", "no_balances",
                 "customer_id NOT IN (SELECT customer_id FROM monthly_balances WHERE customer_id IS NOT NULL)",
                 "customer has no monthly balances at all", severity="warning")  # fmt: skip
    if has("complaints", "escalated"):
        has_esc_date = any(c.name == "escalated_date" for c in specs["complaints"].columns)
        where = "escalated" + (" AND escalated_date IS NULL" if has_esc_date else "")
        ck.check(specs["complaints"], "escalated_date", "escalation_dated_by_complaint", where,
                 "escalated complaint without escalated_date: the escalation counts from "
                 "complaint_date", severity="warning")  # fmt: skip
    if obs is not None and has("customers", "churn_date"):
        ck.check(specs["customers"], "churn_date", "churned_before_observation_start",
                 f"churn_date < DATE '{obs}'",
                 f"churned before the observation start {obs}: not in follow-up, left out of the "
                 "survival data", severity="warning")  # fmt: skip


def iter_rules() -> Iterable[tuple[str, str | None, str]]:
    """Every (table, column, rule) that the contract declares: used by docs and tests.

    Yields
    ------
    (str, str or None, str)
        Table, column (None for a table-level rule) and rule name.

    Examples
    --------
    >>> ("customers", "customer_id", "unique") in set(iter_rules())
    True
    """
    for spec in (*TABLES.values(), FLAT_CUSTOMERS):
        for c in spec.columns:
            for rule, on in (("not_null", c.not_null), ("unique", c.unique), ("allowed_values", c.allowed),
                             ("min_value", c.min_value is not None), ("max_value", c.max_value is not None),
                             ("pattern", c.pattern), ("non_empty", c.non_empty),
                             ("date_order", c.not_before), ("foreign_key", c.references),
                             ("null_unless", c.null_unless)):  # fmt: skip
                if on:
                    yield spec.name, c.name, rule
