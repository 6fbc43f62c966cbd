"""Product coverage and churn: the landmark view of ``reports.md`` section 3.

No immortal time: customers are grouped by the number of distinct products
they held **on the landmark day** ``L`` (a month's end minus 12 months), as
known that day (the coverage covariate of :mod:`crmresearch.coverage`, which
reads only holdings dated on or before the day), among the customers in
follow-up on ``L``; their churn is then counted *after* ``L``.  Grouping by
the products held at the end, or by the most ever held, would credit long
stayers with products they only added later (``tests/test_truth.py`` shows
how far that biases a model).

For a flat extract (no calendar) the groups are the static ``n_products`` and
the curves run on tenure from 0; this is the only view such data supports,
and it is read as tenure at exit for churners.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import AalenJohansenFitter, KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from scipy import stats

from .contract import Source
from .errors import InputError
from .flat import not_on_flat
from .kpis import month_bounds
from .params import Params
from .survival import customer_table, episodes

__all__ = ["CoverageResult", "coverage_group", "cumulative_incidence", "product_coverage", "rmst"]

GROUP_ORDER = ["0", "1", "2", "3-4", "5+"]


def coverage_group(n: pd.Series) -> pd.Series:
    """Coverage groups of ``reports.md``: 0, 1, 2, 3–4, 5+ products."""
    n = n.astype(int)
    out = np.select([n <= 0, n == 1, n == 2, n <= 4], ["0", "1", "2", "3-4"], default="5+")
    return pd.Series(pd.Categorical(out, categories=GROUP_ORDER, ordered=True), index=n.index)


def rmst(duration: np.ndarray, event: np.ndarray, tau: float) -> tuple[float, float]:
    """Restricted mean survival time to ``tau`` of the Kaplan–Meier curve, and its standard error.

    The variance is Greenwood's for the area under the curve (Klein &
    Moeschberger, 4.5): ``sum_j A_j**2 * d_j / (n_j * (n_j - d_j))`` over event
    times ``t_j <= tau``, with ``A_j`` the area under the curve from ``t_j`` to
    ``tau``.  (lifelines' ``return_variance`` is the variance of ``min(T, tau)``
    itself, not of its estimate, so it cannot give an interval.)
    """
    duration = np.asarray(duration, dtype=float)
    event = np.asarray(event).astype(bool)
    times = np.unique(duration[event & (duration <= tau)])
    if len(times) == 0:
        return float(tau), 0.0
    d = np.bincount(np.searchsorted(times, duration[event & (duration <= tau)]), minlength=len(times)).astype(float)
    n = len(duration) - np.searchsorted(np.sort(duration), times, side="left").astype(float)
    surv = np.cumprod(1 - d / n)
    edges = np.append(times, tau)
    pieces = surv * np.diff(edges)  # area under S on [t_j, t_j+1)
    area = times[0] + pieces.sum()  # S = 1 before the first event
    a_after = np.cumsum(pieces[::-1])[::-1]  # A_j: area from t_j to tau
    ok = n > d
    var = float(np.sum(a_after[ok] ** 2 * d[ok] / (n[ok] * (n[ok] - d[ok]))))
    return float(area), float(np.sqrt(var))


@dataclass
class CoverageResult:
    """Churn by product coverage from a landmark: table, curves, test, survival and RMST.

    Attributes
    ----------
    landmark : datetime.date or None
        The landmark day (None for a flat extract: curves start at tenure 0).
    horizon_days : float
        Follow-up after the landmark (365 for 12 months).
    data : DataFrame
        One row per customer: ``group, n_products, duration`` (days from the
        landmark, or tenure days for a flat extract), ``event``.
    """

    landmark: dt.date | None
    horizon_days: float
    data: pd.DataFrame
    alpha: float = 0.05

    def __post_init__(self) -> None:
        self.fitters_: dict[str, KaplanMeierFitter] = {}
        for g, part in self.data.groupby("group", observed=True):
            km = KaplanMeierFitter(alpha=self.alpha, label=f"{g} product{'s' if g != '1' else ''}")
            self.fitters_[str(g)] = km.fit(part["duration"], part["event"])

    @property
    def table(self) -> pd.DataFrame:
        """``group, customers, churned_12m, churn_rate_12m`` (the metrics.json rows)."""
        d = self.data
        churned = d["event"].astype(bool) & (d["duration"] <= self.horizon_days)
        t = (d.assign(churned=churned).groupby("group", observed=True)
             .agg(customers=("event", "size"), churned_12m=("churned", "sum")).reset_index())  # fmt: skip
        t["group"] = t["group"].astype(str)
        t["churned_12m"] = t["churned_12m"].astype(int)
        t["churn_rate_12m"] = t["churned_12m"] / t["customers"]
        return t

    def table_by_count(self) -> pd.DataFrame:
        """Like :attr:`table`, by the exact number of products instead of the groups."""
        d = self.data
        churned = d["event"].astype(bool) & (d["duration"] <= self.horizon_days)
        t = (d.assign(churned=churned).groupby("n_products")
             .agg(customers=("event", "size"), churned=("churned", "sum")).reset_index())  # fmt: skip
        t["churn_rate"] = t["churned"] / t["customers"]
        return t

    @property
    def summary(self) -> pd.DataFrame:
        """Per group: the table, survival at the horizon and RMST to it, with intervals."""
        q = stats.norm.ppf(1 - self.alpha / 2)
        rows = []
        for g, km in self.fitters_.items():
            s = float(km.survival_function_at_times(self.horizon_days).iloc[0])
            ci = km.confidence_interval_survival_function_
            at = ci[ci.index <= self.horizon_days].iloc[-1]
            part = self.data[self.data["group"] == g]
            area, se = rmst(part["duration"].to_numpy(), part["event"].to_numpy(), self.horizon_days)
            rows.append({"group": g, "survival": s, "survival_lower": float(at.iloc[0]),
                         "survival_upper": float(at.iloc[1]), "rmst_days": area,
                         "rmst_lower": area - q * se, "rmst_upper": area + q * se})  # fmt: skip
        return self.table.merge(pd.DataFrame(rows), on="group")

    def at_risk(self, every_days: float | None = None) -> pd.DataFrame:
        """Customers still at risk per group at regular times (default: every quarter of the horizon)."""
        step = every_days or self.horizon_days / 4
        times = np.arange(0, self.horizon_days + 1e-9, step)
        rows = {g: [int((self.data.loc[self.data["group"] == g, "duration"] >= t).sum()) for t in times]
                for g in self.fitters_}  # fmt: skip
        return pd.DataFrame(rows, index=pd.Index(times, name="days")).T.rename_axis("group")

    @property
    def logrank(self) -> dict:
        """Log-rank test of equal retention across groups: statistic, degrees of freedom, p."""
        cens = self.data.copy()
        cens["event"] = np.where(cens["duration"] > self.horizon_days, 0, cens["event"])
        cens["duration"] = cens["duration"].clip(upper=self.horizon_days)
        r = multivariate_logrank_test(cens["duration"], cens["group"].astype(str), cens["event"])
        return {"statistic": float(r.test_statistic), "df": int(r.degrees_of_freedom), "p": float(r.p_value)}

    def plot(self, ax=None, language: str = "en", **kwargs):
        """Kaplan–Meier retention by group with censor marks and at-risk counts; returns the axes.

        Drawn by :func:`crmresearch.plots.km_plot` (``language="zh"`` for Chinese
        labels; other keyword arguments are passed on).
        """
        from .plots import km_plot

        return km_plot(self, alpha=self.alpha, ax=ax, language=language, **kwargs)

    def _repr_html_(self) -> str:
        lr = self.logrank
        head = (f"<p>Product coverage {'at landmark ' + str(self.landmark) if self.landmark else '(flat extract)'}: "
                f"log-rank {lr['statistic']:.1f} on {lr['df']} df, p = {lr['p']:.3g}</p>")  # fmt: skip
        return head + self.summary.to_html(index=False, float_format=lambda v: f"{v:.3g}")


def product_coverage(source: Source, params: Params | None = None, *, month: str | None = None,
                     branch: str | None = None, horizon_months: int = 12) -> CoverageResult:  # fmt: skip
    """Churn within ``horizon_months`` by coverage group at the landmark ``month end − horizon``.

    Parameters
    ----------
    source : Source
        A loaded source (a flat extract gives the tenure view instead).
    params : Params, optional
    month : str
        ``YYYY-MM``: the report month (required unless the source is flat).
    branch : str, optional
        Only this branch's customers.
    horizon_months : int
        12 (or 24 for the longer view, where the data reaches back that far).

    Returns
    -------
    CoverageResult

    Examples
    --------
    >>> r = product_coverage(src, month="2026-10")   # doctest: +SKIP
    >>> r.table; r.summary; r.logrank; r.plot()       # doctest: +SKIP
    """
    if source.flat:
        if not source.has_column("customers", "n_products"):
            raise not_on_flat("product coverage", source)
        cust = customer_table(source, params)
        if cust["n_products_at_entry"].isna().all():
            raise not_on_flat("product coverage", source)
        if branch is not None:
            cust = cust[cust["branch_id"] == branch]
        data = pd.DataFrame({"n_products": cust["n_products_at_entry"].astype(int),
                             "duration": cust["tenure_months"], "event": cust["event"].astype(int)})  # fmt: skip
        data["group"] = coverage_group(data["n_products"])
        return CoverageResult(None, float(data["duration"].max()), data.reset_index(drop=True))
    if month is None:
        raise InputError("month is required for a source with a calendar")
    _, last = month_bounds(month)
    landmark = (pd.Timestamp(last) - pd.DateOffset(months=horizon_months) + pd.offsets.MonthEnd(0)).date()
    if landmark < source.observation_start:
        raise InputError(f"the landmark {landmark} ({horizon_months} months before {month}'s end) is before "
                         f"the observation start {source.observation_start}: the data does not reach back")  # fmt: skip
    ep = episodes(source, params, as_of=last)
    L = pd.Timestamp(landmark)
    on_l = ep[(ep["start_date"] <= L) & (ep["stop_date"] >= L)]
    if branch is not None:
        on_l = on_l[on_l["branch_id"] == branch]
    if on_l["n_products"].isna().all() and len(on_l):
        raise InputError("no product_holdings table: coverage is unknown")
    cust = customer_table(source, params, as_of=last).set_index("customer_id")
    c = cust.loc[on_l["customer_id"]]
    # in follow-up on L and not churned on L itself (it was churned "on or before L")
    alive = ~((c["event"] == 1) & (c["end_date"] == L)).to_numpy()
    on_l, c = on_l[alive], c[alive]
    data = pd.DataFrame({
        "customer_id": on_l["customer_id"].to_numpy(),
        "n_products": on_l["n_products"].astype(int).to_numpy(),
        "duration": (c["end_date"] - L).dt.days.to_numpy().astype(float),
        "event": c["event"].to_numpy().astype(int),
    })  # fmt: skip
    data["group"] = coverage_group(data["n_products"])
    return CoverageResult(landmark, float((pd.Timestamp(last) - L).days), data)


def cumulative_incidence(result: CoverageResult, churn_types: pd.Series, *, seed: int = 0,
                         causes: tuple[str, ...] = ("transfer", "natural")) -> pd.DataFrame:  # fmt: skip
    """Cumulative incidence of each churn type by coverage group (Aalen–Johansen), competing risks.

    Transfer and natural churn compete: a customer who died cannot later move
    their assets.  ``1 - KM`` per cause would overstate each; the
    Aalen–Johansen estimator does not.  lifelines breaks tied times with a
    small random jitter: it is seeded, so results are reproducible.

    Parameters
    ----------
    result : CoverageResult
        From :func:`product_coverage` (its landmark data).
    churn_types : Series
        ``churn_type`` by ``customer_id`` (from the customer table).

    Returns
    -------
    DataFrame
        ``group, cause, cif, lower, upper`` at the horizon.

    Examples
    --------
    >>> r = product_coverage(src, month="2026-10")                       # doctest: +SKIP
    >>> cumulative_incidence(r, customer_table(src).set_index("customer_id").churn_type)  # doctest: +SKIP
    """
    d = result.data
    if "customer_id" not in d:
        raise not_on_flat("competing risks")
    kind = d["customer_id"].map(churn_types).where(d["event"] == 1)
    code = {c: i + 1 for i, c in enumerate(causes)}
    # other or unknown churn types compete too (code 99); censored customers are 0
    ev = np.where(d["event"] == 1, kind.map(code).fillna(99), 0).astype(int)
    rows = []
    for g in d["group"].cat.categories:
        m = (d["group"] == g).to_numpy()
        if not m.any():
            continue
        for cause, k in code.items():
            if not (ev[m] == k).any():
                rows.append({"group": g, "cause": cause, "cif": 0.0, "lower": 0.0, "upper": 0.0})
                continue
            with warnings.catch_warnings():  # "data is randomly jittered": expected, and seeded
                warnings.simplefilter("ignore")
                aj = AalenJohansenFitter(seed=seed, alpha=result.alpha).fit(
                    pd.Series(d.loc[m, "duration"].to_numpy()), pd.Series(ev[m]), event_of_interest=k)
            cif = aj.cumulative_density_
            ci = aj.confidence_interval_
            at = cif[cif.index <= result.horizon_days].iloc[-1, 0]
            ci_at = ci[ci.index <= result.horizon_days].iloc[-1]
            rows.append({"group": g, "cause": cause, "cif": float(at), "lower": float(ci_at.iloc[0]),
                         "upper": float(ci_at.iloc[1])})  # fmt: skip
    return pd.DataFrame(rows)
