"""The calendar of the analyses: months, tenure in days, lifecycle stages (the one place for each).

* :data:`DAYS_PER_MONTH` — the average Gregorian month (365.25 / 12 =
  30.4375 days): a flat extract's tenure in months becomes days with it, and
  every "per customer-month" rate divides person-days by it.
* :data:`ORPHAN_BANDS` — days an RM's customer has been without an RM,
  in bands (0–7, 8–30, 31+).
* :data:`STAGES` — the lifecycle stages by tenure (new < 3 months ≤ growth
  < 12 months ≤ mature), in days.
* :func:`month_bounds`, :func:`shift_month` — a report month's first and
  last day, and the month ``n`` months away.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from crmresearch.core.errors import InputError

__all__ = ["DAYS_PER_MONTH", "ORPHAN_BANDS", "STAGES", "month_bounds", "shift_month"]

#: the average Gregorian month in days (365.25 / 12 = 30.4375)
DAYS_PER_MONTH = 365.25 / 12

#: lifecycle stage -> (from, to] tenure in days
STAGES: dict[str, tuple[float, float]] = {
    "new": (0.0, 3 * DAYS_PER_MONTH),
    "growth": (3 * DAYS_PER_MONTH, 12 * DAYS_PER_MONTH),
    "mature": (12 * DAYS_PER_MONTH, np.inf),
}

# band -> (first, last) days orphaned so far (0 on the first day without an RM); the last is open
ORPHAN_BANDS: dict[str, tuple[int, int | None]] = {"0-7": (0, 7), "8-30": (8, 30), "31+": (31, None)}


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of a ``YYYY-MM`` month.

    Parameters
    ----------
    month : str
        ``YYYY-MM``.

    Returns
    -------
    (datetime.date, datetime.date)
        The month's first and last day.

    Raises
    ------
    InputError
        ``month`` is not ``YYYY-MM``.

    Examples
    --------
    >>> month_bounds("2024-02")
    (datetime.date(2024, 2, 1), datetime.date(2024, 2, 29))
    """
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise InputError(f"month must be YYYY-MM, got {month!r}") from None
    if len(month) != 7:
        raise InputError(f"month must be YYYY-MM, got {month!r}")
    last = (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()
    return first, last


def shift_month(month: str, n: int) -> str:
    """``month`` moved by ``n`` calendar months (``YYYY-MM``).

    Examples
    --------
    >>> shift_month("2026-01", -1)
    '2025-12'
    """
    return str(pd.Period(month, "M") + n)
