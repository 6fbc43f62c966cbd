"""Early warnings (``reports.md``, the seeds' 流失预警指标) and how fast they were answered.

The rules, their dates and their parameters (``warnings.*`` in
:class:`~crmresearch.core.params.Params`).  Monthly rules are dated the first day
after their month closes; event rules on the event's date.  A warning is
*raised* when its rule becomes true:

``no_transaction``
    the customer has had no customer-initiated transaction for
    ``dormancy_months`` (2) consecutive closed months: the day the
    ``dormant`` covariate turns to 1 (one warning per dormant spell, not one
    per month it lasts).  Monthly: dated the first day after the second month.
``outflow``
    money moved out in a month above ``outflow_fraction`` (50%) of the
    previous month-end AUM (both months present, that AUM above 0).  Monthly:
    one warning per such month, dated the first day after it.  Needs
    ``monthly_balances.outflow``.
``complaint``
    an escalated complaint, dated by its escalation (``escalated_date``, else
    ``complaint_date``); active ``complaint_days`` (30).
``rm_exit``
    the customer's RM left (assigned on the exit date) and there was no
    handover contact yet: no retention action in the ``handover_lookback_days``
    (30) up to the exit date.  Dated the RM's exit date; active
    ``rm_exit_days`` (90).
``product_drop``
    the number of distinct products held fell: dated the day it fell; active
    ``product_drop_months`` (3).

Each rule reuses the definition of the covariate it watches (dormancy from
:mod:`.activity`, product count from :mod:`.coverage`, escalation dates from
:mod:`.complaints`, exits from :mod:`.rm_turnover`), so a warning and the
model agree on what happened when.  Only records dated on or before the
as-of date are read, and only customers in follow-up on the warning date
(opened, not yet churned; a customer churning that day still counts) are
warned.

A *contact* is any retention action other than a win-back
(``retention_actions.trigger <> 'winback'``) dated on or after the warning.
``contacted_in_target`` is whether the first one came within
``retention.response_target_days`` (1) of the warning; it is missing
(pending) while that window has not closed by the as-of date and no contact
has been made.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd

from crmresearch.core.calendar import month_bounds
from crmresearch.core.errors import InputError
from crmresearch.core.params import Params
from crmresearch.core.sql import literal
from crmresearch.data.contract import Source, check_branch
from crmresearch.survival.episodes import change_queries, context, materialize
from crmresearch.timelines.activity import monthly_state_changes
from crmresearch.timelines.complaints import escalation_date
from crmresearch.timelines.context import Context
from crmresearch.timelines.products import product_count_changes
from crmresearch.timelines.rm_exposure import exits_sql, has_rm_tables

__all__ = ["WARNING_COLUMNS", "early_warnings", "rule_availability", "warning_summary"]

WARNING_COLUMNS = ["customer_id", "branch_id", "rm_id", "rule", "warning_date", "active_until",
                   "first_contact_date", "days_to_contact", "target_closed", "contacted_in_target"]  # fmt: skip


def rule_availability(ctx: Context) -> dict[str, str | None]:
    """For each configured rule: None when it can be computed, else why not.

    Parameters
    ----------
    ctx : Context
        The builders' context (:func:`crmresearch.survival.episodes.context`); its
        ``params.warnings.rules`` are the rules checked.

    Returns
    -------
    dict
        Rule name -> None when the source supplies what the rule needs, else
        the reason in plain words (e.g. ``"complaints was not supplied"``).

    Examples
    --------
    >>> from crmresearch.data.contract import load_source
    >>> ctx = context(load_source("data/demo"))  # doctest: +SKIP
    >>> rule_availability(ctx)  # doctest: +SKIP
    {'no_transaction': None, 'outflow': None, 'complaint': None, 'rm_exit': None, 'product_drop': None}

    A source with only the required tables supports no rule:

    >>> import datetime as dt
    >>> import duckdb
    >>> from crmresearch.core.params import Params
    >>> bare = Context(duckdb.connect(), frozenset({"branches", "customers"}), Params(),
    ...                dt.date(2026, 10, 31), dt.date(2024, 11, 1))
    >>> rule_availability(bare)["complaint"]
    'complaints was not supplied'
    """
    why: dict[str, str | None] = {}
    for rule in ctx.params.warnings.rules:
        if rule in ("no_transaction", "outflow") and not ctx.has("monthly_balances"):
            why[rule] = "monthly_balances was not supplied"
        elif rule == "outflow" and not ctx.has_column("monthly_balances", "outflow"):
            why[rule] = "monthly_balances has no outflow column"
        elif rule == "complaint" and not ctx.has("complaints"):
            why[rule] = "complaints was not supplied"
        elif rule == "rm_exit" and not has_rm_tables(ctx):
            why[rule] = "relationship_managers / rm_assignments were not supplied"
        elif rule == "product_drop" and not ctx.has("product_holdings"):
            why[rule] = "product_holdings was not supplied"
        else:
            why[rule] = None
    return why


def _rules_sql(ctx: Context, changes: Callable[[Callable], str | None] | None = None) -> str | None:
    """``customer_id, warning_date, rule`` for every available rule, up to the as-of date.

    ``changes(builder)`` is the query of a change-point builder's rows (default: the builder's own
    query; :func:`_all_warnings` reads the tables the episodes were built from).
    """
    changes = changes or (lambda builder: builder(ctx))
    w = ctx.params.warnings
    as_of = ctx.as_of_sql
    ok = [r for r, why in rule_availability(ctx).items() if why is None]
    parts: list[str] = []
    if "no_transaction" in ok:
        parts.append(f"""
        SELECT customer_id, d AS warning_date, 'no_transaction' AS rule FROM (
            SELECT customer_id, d, dormant,
                   lag(dormant) OVER (PARTITION BY customer_id ORDER BY d) AS prev
            FROM ({changes(monthly_state_changes)})
        ) WHERE dormant = 1 AND COALESCE(prev, 0) = 0""")
    if "outflow" in ok:
        parts.append(f"""
        SELECT customer_id, CAST(last_day(month) + 1 AS DATE) AS warning_date, 'outflow' AS rule FROM (
            SELECT customer_id, month, outflow, lag(aum) OVER w AS prev_aum, lag(month) OVER w AS prev_month
            FROM monthly_balances WHERE CAST(last_day(month) AS DATE) <= {as_of}
            WINDOW w AS (PARTITION BY customer_id ORDER BY month)
        ) WHERE CAST(prev_month + INTERVAL 1 MONTH AS DATE) = month AND prev_aum > 0
            AND outflow > {w.outflow_fraction!r} * prev_aum""")
    if "complaint" in ok:
        parts.append(f"""
        SELECT customer_id, {escalation_date(ctx)} AS warning_date, 'complaint' AS rule
        FROM complaints WHERE escalated""")
    if "rm_exit" in ok:
        contact = ""
        if ctx.has("retention_actions"):
            contact = f"""WHERE NOT EXISTS (
                SELECT 1 FROM retention_actions r
                WHERE r.customer_id = x.customer_id AND r.trigger <> 'winback'
                  AND r.action_date BETWEEN CAST(x.exit_date - {w.handover_lookback_days} AS DATE)
                                        AND x.exit_date)"""
        parts.append(f"""
        SELECT x.customer_id, x.exit_date AS warning_date, 'rm_exit' AS rule
        FROM ({exits_sql(ctx)}) x {contact}""")
    if "product_drop" in ok:
        parts.append(f"""
        SELECT customer_id, d AS warning_date, 'product_drop' AS rule FROM (
            SELECT customer_id, d, n_products,
                   lag(n_products) OVER (PARTITION BY customer_id ORDER BY d) AS prev
            FROM ({changes(product_count_changes)})
        ) WHERE n_products < prev""")
    if not parts:
        return None
    return f"SELECT DISTINCT * FROM ({' UNION ALL '.join(parts)}) WHERE warning_date <= {as_of}"


def _active_days(params: Params, rule: str) -> str:
    """SQL for the last day a warning of ``rule`` raised on ``warning_date`` is active."""
    w = params.warnings
    if rule in ("no_transaction", "outflow"):
        return "CAST(last_day(warning_date) AS DATE)"  # until the next month's figures
    days = {"complaint": w.complaint_days, "rm_exit": w.rm_exit_days}.get(rule)
    if days is not None:
        return f"CAST(warning_date + {days - 1} AS DATE)"
    return f"CAST(warning_date + INTERVAL {w.product_drop_months} MONTH - INTERVAL 1 DAY AS DATE)"


def _warnings_sql(ctx: Context, cust_table: str, changes: Callable[[Callable], str | None] | None = None) -> str | None:
    rules = _rules_sql(ctx, changes)
    if rules is None:
        return None
    active = "CASE rule " + " ".join(
        f"WHEN {literal(r)} THEN {_active_days(ctx.params, r)}" for r in ctx.params.warnings.rules) + " END"  # fmt: skip
    rm = "CAST(NULL AS VARCHAR)"
    rm_join = ""
    if ctx.has("rm_assignments"):
        rm = "a.rm_id"
        rm_join = f"""LEFT JOIN rm_assignments a ON a.customer_id = w.customer_id
            AND a.start_date <= w.warning_date AND a.start_date <= {ctx.as_of_sql}
            AND (a.end_date IS NULL OR a.end_date >= w.warning_date)"""
    contact = "CAST(NULL AS DATE)"
    contact_join = ""
    if ctx.has("retention_actions"):
        contact = "min(r.action_date)"
        contact_join = f"""LEFT JOIN retention_actions r ON r.customer_id = w.customer_id
            AND r.trigger <> 'winback' AND r.action_date >= w.warning_date
            AND r.action_date <= {ctx.as_of_sql}"""
    return f"""
    WITH w AS (
        SELECT r.customer_id, c.branch_id, r.rule, r.warning_date
        FROM ({rules}) r JOIN {cust_table} c USING (customer_id)
        WHERE r.warning_date >= c.entry_date AND r.warning_date <= c.end_date
    )
    SELECT w.customer_id, w.branch_id, {rm} AS rm_id, w.rule, w.warning_date,
           {active.replace("warning_date", "w.warning_date")} AS active_until,
           {contact} AS first_contact_date
    FROM w {rm_join} {contact_join}
    GROUP BY ALL"""


def early_warnings(source: Source, params: Params | None = None, *, month: str | None = None,
                   as_of: dt.date | None = None, branch: str | None = None) -> pd.DataFrame:  # fmt: skip
    """The early warnings raised, with whether and how fast each was answered.

    Parameters
    ----------
    source : Source
        A loaded source with a calendar.
    params : Params, optional
        Rules, thresholds and the response target (``warnings``, ``retention``).
    month : str, optional
        ``YYYY-MM``: the warnings raised in that month, computed from data
        dated on or before its last day (as the month's report saw them).
    as_of : datetime.date, optional
        Without ``month``: every warning up to this day (default: the
        extract's as-of date), from data dated up to it.
    branch : str, optional
        Keep this branch's customers.

    Returns
    -------
    DataFrame
        :data:`WARNING_COLUMNS`: one row per (customer, rule, warning date);
        ``rm_id`` is the customer's RM on the warning date (missing when none);
        ``active_until`` the warning's last active day; ``first_contact_date``
        the first contact on or after the warning; ``days_to_contact``;
        ``target_closed`` whether the response-target window had ended by the
        as-of date; ``contacted_in_target`` (True / False, missing while
        pending).  Rules whose table is missing are left out (see
        :func:`rule_availability`).

    Examples
    --------
    >>> w = early_warnings(src, month="2026-10", branch="B001")  # doctest: +SKIP
    >>> w.groupby("rule")["contacted_in_target"].mean()  # doctest: +SKIP
    """
    source.require("early warnings")
    params = params or Params()
    check_branch(source, branch)
    if month is not None:
        if as_of is not None:
            raise InputError("give either month or as_of, not both")
        first, as_of = month_bounds(month)
    ctx = context(source, params, as_of)
    out = source.memo("early_warnings", (ctx.as_of, params.model_dump_json()), lambda: _all_warnings(source, ctx))
    if month is not None:
        out = out[out["warning_date"] >= pd.Timestamp(first)]
    if branch is not None:
        out = out[out["branch_id"] == branch]
    return out.reset_index(drop=True)


def _all_warnings(source: Source, ctx: Context) -> pd.DataFrame:
    """Every warning up to ``ctx.as_of`` (all branches), as :func:`early_warnings` returns them."""
    cust, _ = materialize(source, ctx)
    # the change points the episodes were built from, computed once (survival.episodes.change_points)
    sql = _warnings_sql(ctx, cust, change_queries(source, ctx))
    if sql is None:
        out = pd.DataFrame(columns=WARNING_COLUMNS)
    else:
        out = ctx.con.execute(sql + " ORDER BY warning_date, customer_id, rule").df()
    for c in ("warning_date", "active_until", "first_contact_date"):
        if not pd.api.types.is_datetime64_dtype(out[c]):
            out[c] = pd.to_datetime(out[c])
    target = ctx.params.retention.response_target_days
    out["days_to_contact"] = (out["first_contact_date"] - out["warning_date"]).dt.days
    out["target_closed"] = out["warning_date"] + pd.Timedelta(days=target) <= pd.Timestamp(ctx.as_of)
    in_target = out["days_to_contact"] <= target
    out["contacted_in_target"] = in_target.astype("boolean").where(in_target | out["target_closed"])
    if not source.has("retention_actions"):  # contacts were not supplied: unknown, not "not contacted"
        out["contacted_in_target"] = pd.Series(pd.NA, index=out.index, dtype="boolean")
    return out[WARNING_COLUMNS]


def warning_summary(warnings: pd.DataFrame) -> pd.DataFrame:
    """Per rule and in all: warnings, customers, answered within the target, median days to contact.

    Parameters
    ----------
    warnings : DataFrame
        The output of :func:`early_warnings`.

    Returns
    -------
    DataFrame
        ``rule, warnings, customers, target_closed, contacted_in_target,
        share_in_target, pending, median_days_to_contact``; ``share_in_target``
        is over the warnings whose target window had closed.  The ``all`` row
        counts a customer warned by several rules once in ``customers``.

    Examples
    --------
    >>> warning_summary(early_warnings(src, month="2026-10"))  # doctest: +SKIP
    """
    def row(rule: str, w: pd.DataFrame) -> dict:
        closed = w[w["contacted_in_target"].notna()]  # answered, or the target window has closed
        hit = int(closed["contacted_in_target"].fillna(False).astype(bool).sum())
        return {"rule": rule, "warnings": len(w), "customers": w["customer_id"].nunique(),
                "target_closed": len(closed), "contacted_in_target": hit,
                "share_in_target": hit / len(closed) if len(closed) else float("nan"),
                "pending": len(w) - len(closed),
                "median_days_to_contact": float(w["days_to_contact"].median()) if w["days_to_contact"].notna().any()
                else float("nan")}  # fmt: skip

    rows = [row("all", warnings)]
    rows += [row(r, g) for r, g in warnings.groupby("rule", sort=True)]
    return pd.DataFrame(rows)
