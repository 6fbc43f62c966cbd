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
from .flat import not_on_flat
from .kpis import month_bounds
from .params import Params
from .rates import rate_row
from .rm_turnover import ORPHAN_BANDS
from .survival import episodes

__all__ = ["ORPHAN_BANDS", "orphaned_churn_rates", "rm_exits"]


def _need_rm(source: Source) -> None:
    if source.flat:
        raise not_on_flat("RM turnover", source)
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
    ep = episodes(source, params, as_of=as_of)
    if branch is not None:
        ep = ep[ep["branch_id"] == branch]
    days = (ep["stop"] - ep["start"]).groupby(ep["orphaned_band"]).sum()
    events = ep["event"].groupby(ep["orphaned_band"]).sum()
    bands = [*ORPHAN_BANDS, "none"]
    return pd.DataFrame([rate_row(b if b != "none" else "not orphaned", float(days.get(b, 0)),
                                  int(events.get(b, 0)), alpha, key="band") for b in bands])  # fmt: skip
