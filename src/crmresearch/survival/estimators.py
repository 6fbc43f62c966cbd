"""Estimators shared by the analyses: churn rates per customer-month with exact Poisson intervals, and
the funnel limits of an observed/expected ratio (one rule each, used by every view)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from crmresearch.core.calendar import DAYS_PER_MONTH

__all__ = ["funnel_limits", "rate_row"]


def rate_row(label: str, days: float, events: int, alpha: float = 0.05, key: str = "stage") -> dict:
    """One row: ``customer_months, churned, rate_per_customer_month, lower, upper``.

    The interval is the exact (Garwood) Poisson interval for ``events`` over
    the person-time; a rate with no person-time is missing.

    Parameters
    ----------
    label : str
        The row's label (a stage, a group...).
    days : float
        Person-time in days (30.4375 days to the customer-month).
    events : int
        Churns observed over it.
    alpha : float
        1 - confidence level of the interval.
    key : str
        Name of the label's column.

    Returns
    -------
    dict
        ``<key>, customer_months, churned, rate_per_customer_month, lower, upper``.

    Examples
    --------
    >>> rate_row("new", 304.375, 2)["rate_per_customer_month"]
    0.2
    """
    months = days / DAYS_PER_MONTH
    lower = stats.chi2.ppf(alpha / 2, 2 * events) / 2 / months if events and months else 0.0
    upper = stats.chi2.ppf(1 - alpha / 2, 2 * events + 2) / 2 / months if months else np.nan
    return {key: label, "customer_months": months, "churned": int(events),
            "rate_per_customer_month": events / months if months else np.nan, "lower": lower, "upper": upper}  # fmt: skip


def funnel_limits(expected: np.ndarray | float, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Control limits of ``O/E`` for a unit that follows the model exactly (``O ~ Poisson(E)``).

    Parameters
    ----------
    expected : array-like
        Expected counts ``E``.
    level : float
        Two-sided coverage of the limits (0.95 or 0.998 in a funnel plot).

    Returns
    -------
    (ndarray, ndarray)
        Lower and upper limits of the ratio.

    Examples
    --------
    >>> lo, hi = funnel_limits([100.0], 0.95)
    >>> bool(0.8 < lo[0] < 1 < hi[0] < 1.25)
    True
    """
    e = np.asarray(expected, dtype=float)
    a = (1 - level) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(e > 0, stats.poisson.ppf(a, e) / e, np.nan)
        hi = np.where(e > 0, stats.poisson.ppf(1 - a, e) / e, np.nan)
    return lo, hi
