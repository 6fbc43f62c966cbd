"""Relationship-manager turnover views (``reports.md`` §4).

The covariates (exposure, orphaned) are defined in :mod:`crmresearch.rm_turnover`;
this module describes turnover for a month: RM exits by type, the customers
they orphaned and their handover gaps, and churn per customer-month by the
number of days a customer has been orphaned *so far*.

Why "so far": a customer's eventual handover gap is only known when the gap
ends, and grouping by it would give long gaps immortal time (a customer who
waited 60 days had to stay 60 days to be counted in that group).  Each
orphaned day is instead counted in the band of the days already spent
without an RM (0–7, 8–30, 31+), and a churn on that day in the same band.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from .contract import Source
from .errors import InputError
from .kpis import month_bounds
from .params import Params
from .rates import rate_row
from .rm_turnover import handovers
from .survival import context, customer_table

__all__ = ["ORPHAN_BANDS", "orphaned_churn_rates", "rm_exits"]

# band -> (first, last) days orphaned so far (0 on the first day without an RM)
ORPHAN_BANDS: dict[str, tuple[int, int]] = {"0-7": (0, 7), "8-30": (8, 30), "31+": (31, 10_000)}


def _need_rm(source: Source) -> None:
    if not (source.has("relationship_managers") and source.has("rm_assignments")):
        raise InputError("RM turnover needs the relationship_managers and rm_assignments tables, "
                         "which this source does not supply")  # fmt: skip


def rm_exits(source: Source, *, month: str, branch: str | None = None) -> pd.DataFrame:
    """RMs who left in the month and in the 12 months to its end, by exit type.

    Returns
    -------
    DataFrame
        ``exit_type, in_month, last_12_months`` (an ``all`` row first).

    Examples
    --------
    >>> rm_exits(src, month="2026-10", branch="B001")  # doctest: +SKIP
    """
    _need_rm(source)
    first, last = month_bounds(month)
    year_start = (pd.Timestamp(last) - pd.DateOffset(months=12) + pd.Timedelta(days=1)).date()
    rms = source.df("relationship_managers")
    if branch is not None:
        rms = rms[rms["branch_id"] == branch]
    ex = pd.to_datetime(rms["exit_date"])
    kind = rms["exit_type"].fillna("unknown")
    in_month = (ex >= pd.Timestamp(first)) & (ex <= pd.Timestamp(last))
    in_year = (ex >= pd.Timestamp(year_start)) & (ex <= pd.Timestamp(last))
    t = pd.DataFrame({"exit_type": kind, "in_month": in_month, "last_12_months": in_year})
    out = t.groupby("exit_type")[["in_month", "last_12_months"]].sum().astype(int).reset_index()
    total = pd.DataFrame([{"exit_type": "all", "in_month": int(in_month.sum()), "last_12_months": int(in_year.sum())}])
    return pd.concat([total, out], ignore_index=True)


def orphaned_churn_rates(source: Source, params: Params | None = None, *, as_of: dt.date | None = None,
                         branch: str | None = None, alpha: float = 0.05) -> pd.DataFrame:  # fmt: skip
    """Churn per customer-month by days orphaned so far, and while not orphaned.

    Returns
    -------
    DataFrame
        ``band`` (``0-7``, ``8-30``, ``31+``, ``not orphaned``),
        ``customer_months, churned, rate_per_customer_month, lower, upper``
        (exact Poisson intervals).

    Examples
    --------
    >>> orphaned_churn_rates(src)  # doctest: +SKIP
    """
    _need_rm(source)
    ctx = context(source, params, as_of)
    cust = customer_table(source, params, as_of=as_of)
    if branch is not None:
        cust = cust[cust["branch_id"] == branch]
    h = handovers(ctx).merge(cust[["customer_id", "entry_date", "end_date", "event"]], on="customer_id")
    e = pd.to_datetime(h["exit_date"])
    first_day = e + pd.Timedelta(days=1)
    last_day = (pd.to_datetime(h["next_start"]) - pd.Timedelta(days=1)).fillna(pd.Timestamp(ctx.as_of))
    last_day = last_day.where(last_day < h["end_date"], h["end_date"])  # inclusive, within follow-up
    start_fu = first_day.where(first_day > h["entry_date"], h["entry_date"])
    churn_day = h["end_date"].where(h["event"] == 1)
    rows = []
    orphan_days_total, orphan_events_total = 0.0, 0
    for band, (lo, hi) in ORPHAN_BANDS.items():
        b_from = first_day + pd.to_timedelta(lo, unit="D")
        b_to = first_day + pd.to_timedelta(hi, unit="D")
        f = b_from.where(b_from > start_fu, start_fu)
        t = b_to.where(b_to < last_day, last_day)
        days = ((t - f).dt.days + 1).clip(lower=0)
        events = int(((churn_day >= f) & (churn_day <= t) & (days > 0)).sum())
        orphan_days_total += float(days.sum())
        orphan_events_total += events
        rows.append((band, float(days.sum()), events))
    total_days = float((cust["duration"] - cust["entry"]).sum())
    rows.append(("not orphaned", total_days - orphan_days_total, int(cust["event"].sum()) - orphan_events_total))
    return pd.DataFrame([rate_row(band, days, events, alpha, key="band") for band, days, events in rows])
