"""Estimators shared by the analyses: churn rates per customer-month with exact Poisson intervals, and
the funnel limits of an observed/expected ratio (one rule each, used by every view)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from crmresearch.core.calendar import DAYS_PER_MONTH

__all__ = ["concordance_index", "funnel_limits", "rate_row"]


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


def concordance_index(times: np.ndarray, scores: np.ndarray, events: np.ndarray) -> float:
    """Harrell's concordance of ``scores`` with ``times`` (higher score, longer time), ties one half.

    The same pairs and the same value as ``lifelines.utils.concordance_index``
    (a pair is usable when the earlier time is an event; a censoring at the
    time of an event counts as the longer time; tied times of two events are
    not compared), computed per distinct event time with sorted arrays
    instead of a tree walked in Python: the backtest's half a million
    customers, censored at the horizon, take a fraction of a second.  Its
    loop runs once per distinct event time, so it suits times on a grid (days
    within a horizon); ``tests/survival/test_estimators.py`` checks it
    against lifelines.

    Parameters
    ----------
    times : ndarray
        Event or censoring times.
    scores : ndarray
        Predicted scores (e.g. minus the risk): higher means a longer time.
    events : ndarray
        1 for an event, 0 for a censoring.

    Returns
    -------
    float
        The concordance; NaN when no pair is usable.

    Examples
    --------
    >>> concordance_index(np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0]))
    1.0
    """
    times, scores = np.asarray(times, dtype=float), np.asarray(scores, dtype=float)
    died = np.asarray(events).astype(bool)
    dt_, dp = times[died], scores[died]
    order = np.argsort(dt_, kind="stable")
    dt_, dp = dt_[order], dp[order]
    ct, cp = times[~died], scores[~died]
    order = np.argsort(ct, kind="stable")
    ct, cp = ct[order], cp[order]
    u, first = np.unique(dt_, return_index=True)
    bounds = [*first.tolist(), len(dt_)]
    pool = np.empty(0)
    pairs = correct = tied = 0

    def compare(preds: np.ndarray) -> None:
        nonlocal pairs, correct, tied
        lo = np.searchsorted(pool, preds, side="left")
        hi = np.searchsorted(pool, preds, side="right")
        pairs += len(pool) * len(preds)
        correct += int(lo.sum())
        tied += int((hi - lo).sum())

    # censorings before the first event time have an empty pool: no pairs
    for i, time in enumerate(u):
        batch = dp[bounds[i]:bounds[i + 1]]
        compare(batch)  # the events at this time against the earlier events
        pool = np.sort(np.concatenate([pool, batch]))
        nxt = u[i + 1] if i + 1 < len(u) else np.inf
        c0, c1 = np.searchsorted(ct, [time, nxt], side="left")
        compare(cp[c0:c1])  # censored at or after this time, before the next: against the events up to it
    return float((correct + tied / 2) / pairs) if pairs else float("nan")
