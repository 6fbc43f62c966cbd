"""Lifecycle: churn hazard by tenure, with the seeds' stages.

On the tenure time scale the lifecycle stage *is* the baseline hazard, so it
is described here, never put into a model as a covariate.  Stages (tenure):
new (0–3 months), growth (3–12 months), mature (12 months and more), in
days of tenure with the average month of 30.4375 days.

Customers opened before the observation start enter at their tenure on that
day (delayed entry): they add person-time only from then on, so the early
stages are measured on the customers actually seen in them.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter, NelsonAalenFitter

from crmresearch.core.calendar import DAYS_PER_MONTH, STAGES
from crmresearch.core.params import Params
from crmresearch.data.contract import Source
from crmresearch.survival.episodes import customer_table
from crmresearch.survival.estimators import rate_row
from crmresearch.viz.summary import Renders

__all__ = ["STAGES", "LifecycleResult", "lifecycle", "stage_rates"]

def stage_rates(cust: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Churn per customer-month in each stage, with exact Poisson intervals.

    Parameters
    ----------
    cust : DataFrame
        A customer table (``entry``, ``duration``, ``event``): follow-up is the
        tenure interval ``(entry, duration]``.

    Returns
    -------
    DataFrame
        ``stage, customer_months, churned, rate_per_customer_month, lower, upper``.

    Examples
    --------
    >>> stage_rates(customer_table(src))  # doctest: +SKIP
    """
    rows = []
    entry, dur, ev = (cust[c].to_numpy(dtype=float) for c in ("entry", "duration", "event"))
    for name, (lo, hi) in STAGES.items():
        days = np.clip(np.minimum(dur, hi) - np.maximum(entry, lo), 0, None)
        events = int(np.sum((ev == 1) & (dur > lo) & (dur <= hi) & (dur > entry)))
        rows.append(rate_row(name, float(days.sum()), events, alpha, key="stage"))
    return pd.DataFrame(rows)


@dataclass
class LifecycleResult(Renders):
    """Hazard by tenure: stage rates, the smoothed Nelson–Aalen hazard and the early loss of new customers.

    Parameters
    ----------
    customers : DataFrame
        A customer table (``entry``, ``duration``, ``event``; tenure in days),
        e.g. from :func:`crmresearch.survival.episodes.customer_table`.
    bandwidth_days : float
        Kernel bandwidth of :meth:`smoothed_hazard`.
    alpha : float
        1 - confidence level of the intervals.

    Examples
    --------
    Usually returned by :func:`lifecycle`; built by hand from a customer table:

    >>> import pandas as pd
    >>> cust = pd.DataFrame({"entry": [0, 0, 0, 0, 0, 0, 400, 400],
    ...                      "duration": [30, 60, 200, 400, 700, 700, 500, 700],
    ...                      "event": [1, 0, 1, 0, 1, 0, 1, 0]})
    >>> r = LifecycleResult(cust)
    >>> r.stages[["stage", "customer_months", "churned"]].round(1)
        stage  customer_months  churned
    0     new             15.0        1
    1  growth             30.6        1
    2  mature             36.3        2
    """

    _table_attr = "stages"

    customers: pd.DataFrame
    bandwidth_days: float = 30.0
    alpha: float = 0.05

    # the fitters are made when first used (not attributes of the result's data: a stored result has none)
    @functools.cached_property
    def nelson_aalen_(self) -> NelsonAalenFitter:
        """Nelson–Aalen cumulative hazard of every customer (delayed entry)."""
        c = self.customers
        return NelsonAalenFitter(alpha=self.alpha).fit(c["duration"], c["event"], entry=c["entry"])

    @functools.cached_property
    def new_customers_km_(self) -> KaplanMeierFitter | None:
        """Kaplan–Meier of the customers followed from opening (None without any)."""
        new = self.customers[self.customers["entry"] == 0]
        return KaplanMeierFitter(alpha=self.alpha).fit(new["duration"], new["event"]) if len(new) else None

    @property
    def stages(self) -> pd.DataFrame:
        """Churn per customer-month by stage (new, growth, mature) with intervals."""
        return stage_rates(self.customers, self.alpha)

    def new_customer_loss(self, months: float = 3.0) -> dict:
        """Share of new customers (followed from opening) lost within ``months``, with its interval.

        Parameters
        ----------
        months : float
            Horizon in months of tenure (30.4375 days each).

        Returns
        -------
        dict
            ``months, loss, lower, upper, customers``: the Kaplan–Meier share
            lost, its interval, and how many customers were followed from
            opening (``entry == 0``; all missing when there are none).

        Examples
        --------
        >>> r = lifecycle(src)  # doctest: +SKIP
        >>> r.new_customer_loss(3)  # doctest: +SKIP
        """
        km = self.new_customers_km_
        if km is None:
            return {"months": months, "loss": np.nan, "lower": np.nan, "upper": np.nan, "customers": 0}
        t = months * DAYS_PER_MONTH
        s = float(km.survival_function_at_times(t).iloc[0])
        ci = km.confidence_interval_survival_function_
        at = ci[ci.index <= t].iloc[-1]
        return {"months": months, "loss": 1 - s, "lower": 1 - float(at.iloc[1]), "upper": 1 - float(at.iloc[0]),
                "customers": int(len(self.customers[self.customers["entry"] == 0]))}  # fmt: skip

    def smoothed_hazard(self, min_at_risk: int = 50) -> pd.DataFrame:
        """Kernel-smoothed Nelson–Aalen hazard per customer-month by tenure (days).

        Only tenures with at least ``min_at_risk`` customers at risk are kept:
        beyond, the estimate is noise.

        Parameters
        ----------
        min_at_risk : int
            Smallest number of customers at risk shown.

        Returns
        -------
        DataFrame
            ``tenure_days, hazard_per_month, at_risk``.

        Examples
        --------
        >>> r = lifecycle(src)  # doctest: +SKIP
        >>> h = r.smoothed_hazard(min_at_risk=200)  # doctest: +SKIP
        >>> h.plot(x="tenure_days", y="hazard_per_month")  # doctest: +SKIP
        """
        h = self.nelson_aalen_.smoothed_hazard_(self.bandwidth_days)
        at_risk = self.nelson_aalen_.event_table["at_risk"].reindex(h.index, method="ffill")
        out = pd.DataFrame({"tenure_days": h.index.to_numpy(), "hazard_per_month": h.iloc[:, 0].to_numpy() * DAYS_PER_MONTH,
                            "at_risk": at_risk.to_numpy()})  # fmt: skip
        return out[out["at_risk"] >= min_at_risk].reset_index(drop=True)

    @property
    def caveats(self) -> list[str]:
        """Plain-words caveats of the stage rates."""
        return ["Churn per customer-month by tenure stage describes when customers leave; the stages differ in "
                "more than tenure (who joined when), so differences are associations."]  # fmt: skip

    def _caption(self) -> str:
        return "Churn per customer-month by tenure stage"

    def plot(self, ax=None, max_months: float = 60, language: str = "en", **kwargs):
        """Smoothed hazard by tenure with the stages shaded; returns the axes.

        Drawn by :func:`crmresearch.viz.plots.hazard_by_tenure_plot` (``language="zh"``
        for Chinese labels; other keyword arguments are passed on).

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw (default: a new figure).
        max_months : float
            Tenure shown, in months.
        language : {'en', 'zh'}
            Language of the labels.

        Returns
        -------
        matplotlib Axes

        Examples
        --------
        >>> ax = lifecycle(src).plot(language="zh")  # doctest: +SKIP
        >>> ax.figure.savefig("hazard_by_tenure.png")  # doctest: +SKIP
        """
        from crmresearch.viz.plots import hazard_by_tenure_plot

        return hazard_by_tenure_plot(self, max_months=max_months, ax=ax, language=language, **kwargs)


def lifecycle(source: Source, params: Params | None = None, *, as_of: dt.date | None = None,
              branch: str | None = None) -> LifecycleResult:  # fmt: skip
    """Churn hazard by tenure for the bank or one branch.

    Not on a flat extract (:class:`~crmresearch.core.errors.InputError`): it holds
    only the customers present at its snapshot, so the stage rates and the
    early loss of new customers would come out too low
    (:data:`crmresearch.data.capabilities.FLAT_REASONS`).

    Parameters
    ----------
    source : Source
        A loaded source with a calendar.
    params : Params, optional
        Churn definition.
    as_of : datetime.date, optional
        Censor follow-up at this day (default: the extract's as-of date).
    branch : str, optional
        Keep only this branch's customers.

    Returns
    -------
    LifecycleResult
        Stage rates, smoothed hazard and the early loss of new customers.

    Raises
    ------
    InputError
        The source is a flat extract.

    Examples
    --------
    >>> r = lifecycle(src)                    # doctest: +SKIP
    >>> r.stages; r.new_customer_loss(3); r.plot()  # doctest: +SKIP
    """
    source.require("lifecycle")
    cust = customer_table(source, params, as_of=as_of)
    if branch is not None:
        cust = cust[cust["branch_id"] == branch]
    return LifecycleResult(cust.reset_index(drop=True))
