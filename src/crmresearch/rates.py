"""Churn rates per customer-month, with exact Poisson intervals (one rule, used by every view)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from .survival import DAYS_PER_MONTH

__all__ = ["rate_row"]


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
