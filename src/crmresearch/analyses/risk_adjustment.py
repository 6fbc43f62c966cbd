"""Risk-adjusted comparison of branches: observed versus expected churn given each branch's customer mix.

The bank summary ranks branches by how many customers they lost against how
many the bank-wide causes model expects from who their customers are (product
coverage, RM turnover exposure, complaints, dormancy, tier, segment) and how
long they have been customers (the model's baseline hazard on tenure).

For each customer episode ``(start, stop]`` on the tenure scale that overlaps
the window (the ``window_months`` months ending at ``as_of``), the expected
number of churns is ``exp(x·β) · (H0(b) − H0(a))`` over the overlap ``(a, b]``
— the episode's covariates as they were then, no look-ahead.  Summed per
branch this is the expected count ``E``; ``O`` counts the churns inside the
window as the model counts them.  ``O/E`` above 1 means the branch lost more
than its customers explain.  The interval of ``O/E`` is the exact (Garwood)
Poisson interval of ``O`` divided by ``E``; the funnel's control limits are
the Poisson limits of a branch that follows the bank's model exactly
(``O ~ Poisson(E)``): a branch outside the 99.8% limits differs by more than
chance.  The comparison is an association with branch membership, not a
judgment of the branch's staff: unmeasured differences (local competition,
the customers' own circumstances) are in it too.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy import stats

from crmresearch.core.params import Params
from crmresearch.data.contract import Source
from crmresearch.survival.estimators import funnel_limits

__all__ = ["funnel_limits", "observed_expected"]


def observed_expected(source: Source, params: Params | None, model, *, as_of: dt.date,
                      window_months: int = 12) -> pd.DataFrame:  # fmt: skip
    """Observed and expected churn per branch over the ``window_months`` months ending at ``as_of``.

    Parameters
    ----------
    source : Source
        A source with a calendar.
    params : Params, optional
        Parameters (churn definition, windows).
    model : TimeVaryingCox
        The bank-wide causes model fitted at ``as_of`` (unstratified).
    as_of : datetime.date
        The window's last day.
    window_months : int, default 12
        The window's length.

    Returns
    -------
    DataFrame
        One row per branch with customers in the window: ``branch_id,
        observed, expected, ratio, lower, upper`` (95% interval of the ratio),
        ``z`` (the Poisson tail as a normal score: positive when more churn than
        expected), ``outside_95, outside_998`` (beyond the funnel's limits), and
        ``rank`` (1 = highest ratio among branches with expected ≥ 1).

    Examples
    --------
    >>> oe = observed_expected(src, Params(), model, as_of=dt.date(2026, 10, 31))  # doctest: +SKIP
    >>> oe.sort_values("ratio", ascending=False).head()  # doctest: +SKIP
    """
    from crmresearch.survival.episodes import episode_frame

    params = params or Params()
    ws = pd.Timestamp(as_of) - pd.DateOffset(months=window_months)
    we = pd.Timestamp(as_of)
    # the episodes overlapping the window, with the model's covariates only (and the customer's segment,
    # the causes model's customer-level covariate, as it merges it)
    model_cols = [c for c in model.covariates_ if c != "segment"]
    ep = episode_frame(source, params, as_of=as_of, overlapping=(ws.date(), we.date()),
                       columns=["branch_id", "start", "stop", "event", "start_date", "stop_date", *model_cols],
                       customer_columns=["segment"] if "segment" in model.covariates_ else [])  # fmt: skip
    # the window in tenure days of each episode: its tenure at the window's edges
    lo = ep["start"].to_numpy(float) + np.maximum(0, (ws - ep["start_date"]).dt.days.to_numpy(float))
    hi = ep["stop"].to_numpy(float) - np.maximum(0, (ep["stop_date"] - we).dt.days.to_numpy(float))
    lo = np.maximum(lo, ep["start"].to_numpy(float))
    hi = np.maximum(np.minimum(hi, ep["stop"].to_numpy(float)), lo)
    base = model.baseline_cumulative_hazard()
    t, h = base["time"].to_numpy(float), base["cumulative_hazard"].to_numpy(float)

    def H(x: np.ndarray) -> np.ndarray:
        i = np.searchsorted(t, x, side="right")
        return np.where(i > 0, h[np.maximum(i - 1, 0)], 0.0)

    risk = np.exp(model.predict_log_partial_hazard(ep).to_numpy(float))
    expected = risk * (H(hi) - H(lo))
    observed = (ep["event"].to_numpy() == 1) & (ep["stop_date"] > ws) & (ep["stop_date"] <= we)
    per = (pd.DataFrame({"branch_id": ep["branch_id"].astype(str).to_numpy(), "observed": observed.astype(int),
                         "expected": expected})
           .groupby("branch_id", sort=True).sum().reset_index())  # fmt: skip
    o, e = per["observed"].to_numpy(float), per["expected"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        per["ratio"] = np.where(e > 0, o / e, np.nan)
        lower = np.where(o > 0, stats.chi2.ppf(0.025, 2 * o) / 2, 0.0)
        upper = stats.chi2.ppf(0.975, 2 * (o + 1)) / 2
        per["lower"], per["upper"] = lower / e, upper / e
    # mid-p Poisson tail of O given E, as a signed normal score
    p_hi = stats.poisson.sf(o - 1, e) - 0.5 * stats.poisson.pmf(o, e)
    per["z"] = np.clip(stats.norm.isf(np.clip(p_hi, 1e-300, 1.0)), -40, 40)
    for name, level in (("outside_95", 0.95), ("outside_998", 0.998)):
        lo_lim, hi_lim = funnel_limits(e, level)
        per[name] = (per["ratio"] < lo_lim) | (per["ratio"] > hi_lim)
    ranked = per["expected"] >= 1
    per["rank"] = pd.Series(np.nan, index=per.index)
    per.loc[ranked, "rank"] = per.loc[ranked, "ratio"].rank(ascending=False, method="min")
    return per
