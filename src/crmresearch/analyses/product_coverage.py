"""Product coverage and churn: the landmark view of ``reports.md`` section 3.

No immortal time: customers are grouped by the number of distinct products
they held **on the landmark day** ``L`` (a month's end minus 12 months), as
known that day (the coverage covariate of :mod:`crmresearch.timelines.products`, which
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
import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from scipy import stats

from crmresearch.core.calendar import month_bounds
from crmresearch.core.errors import InputError
from crmresearch.core.jsonsafe import json_records
from crmresearch.core.params import Params
from crmresearch.data.capabilities import not_on_flat
from crmresearch.data.contract import Source
from crmresearch.survival.episodes import (
    COVARIATES,
    context,
    customer_table,
    episode_frame,
    materialize,
)
from crmresearch.timelines.products import STICKY_PRODUCTS, sticky_covariate
from crmresearch.viz.i18n import label
from crmresearch.viz.summary import Renders

__all__ = ["CoverageResult", "StickyProductsResult", "coverage_group", "cumulative_incidence", "product_coverage",
           "rmst", "sticky_products"]  # fmt: skip

GROUP_ORDER = ["0", "1", "2", "3-4", "5+"]


def coverage_group(n: pd.Series) -> pd.Series:
    """Coverage groups of ``reports.md``: 0, 1, 2, 3–4, 5+ products.

    Examples
    --------
    >>> coverage_group(pd.Series([0, 1, 2, 3, 4, 7])).astype(str).tolist()
    ['0', '1', '2', '3-4', '3-4', '5+']
    """
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

    Examples
    --------
    >>> rmst(np.array([2.0, 4.0, 6.0]), np.array([1, 1, 1]), tau=10.0)[0]
    4.0
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
class CoverageResult(Renders):
    """Churn by product coverage from a landmark: table, curves, test, survival and RMST.

    Attributes
    ----------
    landmark : datetime.date or None
        The landmark day (None for a flat extract: curves start at tenure 0).
    horizon : float
        Follow-up, in ``time_unit``: days after the landmark (365 or 366 for
        12 months), or the longest tenure in months of a flat extract.
    data : DataFrame
        One row per customer: ``group, n_products, duration`` (in
        ``time_unit``: days from the landmark, or tenure months for a flat
        extract), ``event``.
    time_unit : {"days", "months"}
        The unit of ``duration`` and ``horizon``: the source's
        (:func:`crmresearch.data.capabilities.time_unit`).  The summary's
        restricted mean is ``rmst_<time_unit>``.
    window : str
        What the counts cover: ``"12m"`` (churned within 12 months of the
        landmark; ``"24m"`` for the longer view) or ``"snapshot"`` (a flat
        extract: churned over the whole snapshot, whatever its window).  The
        count columns are ``churned_<window>`` and ``churn_rate_<window>``.

    Examples
    --------
    >>> res = product_coverage(src, month="2026-10")  # doctest: +SKIP
    >>> res.table; res.summary; res.logrank; res.plot()  # doctest: +SKIP
    """

    _table_attr = "summary"

    landmark: dt.date | None
    horizon: float
    data: pd.DataFrame
    alpha: float = 0.05
    time_unit: str = "days"
    window: str = "12m"

    def __post_init__(self) -> None:
        if self.time_unit not in ("days", "months"):
            raise ValueError(f"time_unit {self.time_unit!r}: days or months")

    @functools.cached_property
    def fitters_(self) -> dict[str, KaplanMeierFitter]:
        """Kaplan–Meier per group (made when first used: not part of the result's data, so a stored result has none)."""
        fitters: dict[str, KaplanMeierFitter] = {}
        for g, part in self.data.groupby("group", observed=True):
            km = KaplanMeierFitter(alpha=self.alpha, label=f"{g} product{'s' if g != '1' else ''}")
            fitters[str(g)] = km.fit(part["duration"], part["event"])
        return fitters

    @property
    def count_col(self) -> str:
        """The churned count's column: ``churned_12m``, or ``churned_snapshot`` on a flat extract."""
        return f"churned_{self.window}"

    @property
    def rate_col(self) -> str:
        """The churn rate's column: ``churn_rate_12m``, or ``churn_rate_snapshot`` on a flat extract."""
        return f"churn_rate_{self.window}"

    @property
    def rmst_col(self) -> str:
        """The restricted mean's column of :attr:`summary`: ``rmst_days``, or ``rmst_months`` on a flat extract."""
        return f"rmst_{self.time_unit}"

    @property
    def table(self) -> pd.DataFrame:
        """``group, customers,`` :attr:`count_col`, :attr:`rate_col` (the metrics.json rows)."""
        d = self.data
        churned = d["event"].astype(bool) & (d["duration"] <= self.horizon)
        t = (d.assign(churned=churned).groupby("group", observed=True)
             .agg(customers=("event", "size"), n=("churned", "sum")).reset_index())  # fmt: skip
        t["group"] = t["group"].astype(str)
        t[self.count_col] = t.pop("n").astype(int)
        t[self.rate_col] = t[self.count_col] / t["customers"]
        return t

    def table_by_count(self) -> pd.DataFrame:
        """Like :attr:`table`, by the exact number of products instead of the groups.

        Examples
        --------
        >>> product_coverage(src, month="2026-10").table_by_count()  # doctest: +SKIP
        """
        d = self.data
        churned = d["event"].astype(bool) & (d["duration"] <= self.horizon)
        t = (d.assign(churned=churned).groupby("n_products")
             .agg(customers=("event", "size"), churned=("churned", "sum")).reset_index())  # fmt: skip
        t["churn_rate"] = t["churned"] / t["customers"]
        return t

    @property
    def summary(self) -> pd.DataFrame:
        """Per group: the table, survival at the horizon and RMST to it (:attr:`rmst_col`, in ``time_unit``), with intervals."""
        q = stats.norm.ppf(1 - self.alpha / 2)
        rows = []
        for g, km in self.fitters_.items():
            s = float(km.survival_function_at_times(self.horizon).iloc[0])
            ci = km.confidence_interval_survival_function_
            at = ci[ci.index <= self.horizon].iloc[-1]
            part = self.data[self.data["group"] == g]
            area, se = rmst(part["duration"].to_numpy(), part["event"].to_numpy(), self.horizon)
            rows.append({"group": g, "survival": s, "survival_lower": float(at.iloc[0]),
                         "survival_upper": float(at.iloc[1]), self.rmst_col: area,
                         "rmst_lower": area - q * se, "rmst_upper": area + q * se})  # fmt: skip
        cols = ["group", "survival", "survival_lower", "survival_upper", self.rmst_col, "rmst_lower", "rmst_upper"]
        return self.table.merge(pd.DataFrame(rows, columns=cols), on="group")  # no group fitted: no rows

    def at_risk(self, every: float | None = None) -> pd.DataFrame:
        """Customers still at risk per group at regular times (default: every quarter of the horizon).

        Parameters
        ----------
        every : float, optional
            The step, in ``time_unit`` (the columns' name).

        Examples
        --------
        >>> product_coverage(src, month="2026-10").at_risk()  # doctest: +SKIP
        """
        step = every or self.horizon / 4
        times = np.arange(0, self.horizon + 1e-9, step)
        rows = {g: [int((self.data.loc[self.data["group"] == g, "duration"] >= t).sum()) for t in times]
                for g in self.fitters_}  # fmt: skip
        return pd.DataFrame(rows, index=pd.Index(times, name=self.time_unit)).T.rename_axis("group")

    @property
    def logrank(self) -> dict:
        """Log-rank test of equal retention across groups: statistic, degrees of freedom, p."""
        cens = self.data.copy()
        cens["event"] = np.where(cens["duration"] > self.horizon, 0, cens["event"])
        cens["duration"] = cens["duration"].clip(upper=self.horizon)
        if cens["group"].nunique() < 2:  # nothing to compare (a small branch may have one group, or none)
            return {"statistic": float("nan"), "df": 0, "p": float("nan")}
        r = multivariate_logrank_test(cens["duration"], cens["group"].astype(str), cens["event"])
        return {"statistic": float(r.test_statistic), "df": int(r.degrees_of_freedom), "p": float(r.p_value)}

    def plot(self, ax=None, language: str = "en", **kwargs):
        """Kaplan–Meier retention by group with censor marks and at-risk counts; returns the axes.

        Drawn by :func:`crmresearch.viz.plots.km_plot` (``language="zh"`` for Chinese
        labels; other keyword arguments are passed on).

        Examples
        --------
        >>> product_coverage(src, month="2026-10").plot(language="zh")  # doctest: +SKIP
        """
        from crmresearch.viz.plots import km_plot

        return km_plot(self, alpha=self.alpha, ax=ax, language=language, **kwargs)

    def to_metrics(self) -> list[dict]:
        """metrics.json's ``coverage``: ``group, customers,`` :attr:`count_col`, :attr:`rate_col` of every group with customers.

        ``churned_12m, churn_rate_12m`` on a dated source; ``churned_snapshot,
        churn_rate_snapshot`` on a flat extract, whose churn flag covers the
        whole snapshot, not 12 months.

        Returns
        -------
        list of dict

        Examples
        --------
        >>> product_coverage(src, month="2026-10").to_metrics()[0]  # doctest: +SKIP
        {'group': '1', 'customers': 5120, 'churned_12m': 911, 'churn_rate_12m': 0.177929687500}
        """
        t = self.table
        t = t[t["customers"] > 0].assign(group=lambda d: d["group"].astype(str),
                                         customers=lambda d: d["customers"].astype(int))  # fmt: skip
        return json_records(t, ["group", "customers", self.count_col, self.rate_col])

    def _caption(self) -> str:
        lr = self.logrank
        return (f"Product coverage {'at landmark ' + str(self.landmark) if self.landmark else '(flat extract)'}: "
                f"log-rank {lr['statistic']:.1f} on {lr['df']} df, p = {lr['p']:.3g}")  # fmt: skip

    @property
    def caveats(self) -> list[str]:
        """Plain-words caveats: groups are formed from what was known at the landmark; associations only."""
        when = f"on the landmark day {self.landmark}" if self.landmark else "at the snapshot (a flat extract)"
        return [f"Customers are grouped by the products they held {when}; differences between the groups are "
                "associations, not effects of holding more products."]  # fmt: skip



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
    params = params or Params()
    return source.memo("product_coverage", (month, branch, horizon_months, params.model_dump_json()),
                       lambda: _product_coverage(source, params, month, branch, horizon_months))  # fmt: skip


def _product_coverage(source: Source, params: Params, month: str | None, branch: str | None,
                      horizon_months: int) -> CoverageResult:  # fmt: skip
    if not source.can("calendar"):
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
        # tenure in months (the source's unit), over the whole snapshot: the horizon is the longest tenure
        return CoverageResult(None, float(data["duration"].max()), data.reset_index(drop=True),
                              time_unit=source.time_unit, window="snapshot")  # fmt: skip
    if month is None:
        raise InputError("month is required for a source with a calendar")
    _, last = month_bounds(month)
    landmark = (pd.Timestamp(last) - pd.DateOffset(months=horizon_months) + pd.offsets.MonthEnd(0)).date()
    if landmark < source.observation_start:
        raise InputError(f"the landmark {landmark} ({horizon_months} months before {month}'s end) is before "
                         f"the observation start {source.observation_start}: the data does not reach back")  # fmt: skip
    L = pd.Timestamp(landmark)
    # the episodes covering the landmark day (start_date <= L <= stop_date), with the customer's end and event
    on_l = episode_frame(source, params, as_of=last, columns=["customer_id", "n_products"], branch=branch,
                         overlapping=(landmark - dt.timedelta(days=1), landmark),
                         customer_columns=["end_date", "event"])  # fmt: skip
    if on_l["n_products"].isna().all() and len(on_l):
        raise InputError("no product_holdings table: coverage is unknown")
    c = on_l.assign(end_date=pd.to_datetime(on_l["end_date"]))
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
    return CoverageResult(landmark, float((pd.Timestamp(last) - L).days), data, time_unit=source.time_unit,
                          window=f"{horizon_months}m")  # fmt: skip


def cumulative_incidence(result: CoverageResult, churn_types: pd.Series, *,
                         causes: tuple[str, ...] = ("transfer", "natural")) -> pd.DataFrame:  # fmt: skip
    """Cumulative incidence of each churn type by coverage group (Aalen–Johansen), competing risks.

    Transfer and natural churn compete: a customer who died cannot later move
    their assets.  ``1 - KM`` per cause would overstate each; the
    Aalen–Johansen estimator does not.  It is statsmodels'
    ``CumIncidenceRight``, which takes tied days as they are (the estimator
    needs no tie-breaking: events of a day share that day's risk set; the
    jitter lifelines' ``AalenJohansenFitter`` applies to ties makes its
    estimate depend on the random draw, and it is ten times slower).  The
    interval is the delta-method standard error on the log(−log) scale, as
    R's ``cmprsk`` reports it, so it stays within (0, 1).

    Parameters
    ----------
    result : CoverageResult
        From :func:`product_coverage` (its landmark data).
    churn_types : Series
        ``churn_type`` by ``customer_id`` (from the customer table).
    causes : tuple of str
        The churn types of interest; every other or unknown churn type
        competes with them.

    Returns
    -------
    DataFrame
        ``group, cause, cif, lower, upper`` at the horizon, and ``events``
        (the group's churners of that cause by the horizon).

    Examples
    --------
    >>> r = product_coverage(src, month="2026-10")                       # doctest: +SKIP
    >>> cumulative_incidence(r, customer_table(src).set_index("customer_id").churn_type)  # doctest: +SKIP
    """
    from statsmodels.duration.survfunc import CumIncidenceRight

    d = result.data
    if "customer_id" not in d:
        raise not_on_flat("competing risks")
    kind = d["customer_id"].map(churn_types).where(d["event"] == 1)
    code = {c: i + 1 for i, c in enumerate(causes)}
    # other or unknown churn types compete too (the next code); censored customers are 0
    ev = np.where(d["event"] == 1, kind.map(code).fillna(len(causes) + 1), 0).astype(int)
    duration = d["duration"].to_numpy(float)
    z = stats.norm.ppf(1 - result.alpha / 2)
    rows = []
    for g in d["group"].cat.categories:
        m = (d["group"] == g).to_numpy()
        if not m.any():
            continue
        fit = CumIncidenceRight(duration[m], ev[m]) if (ev[m] > 0).any() else None
        at = -1 if fit is None else int(np.searchsorted(fit.times, result.horizon, side="right")) - 1
        for cause, k in code.items():
            events = int(((ev[m] == k) & (duration[m] <= result.horizon)).sum())
            if fit is None or at < 0 or k > len(fit.cinc) or fit.cinc[k - 1][at] <= 0:
                rows.append({"group": g, "cause": cause, "cif": 0.0, "lower": 0.0, "upper": 0.0, "events": events})
                continue
            f, se = float(fit.cinc[k - 1][at]), float(fit.cinc_se[k - 1][at])
            lower, upper = _loglog_interval(f, se, z)
            rows.append({"group": g, "cause": cause, "cif": f, "lower": lower, "upper": upper, "events": events})
    return pd.DataFrame(rows, columns=["group", "cause", "cif", "lower", "upper", "events"])


def _loglog_interval(f: float, se: float, z: float) -> tuple[float, float]:
    """The interval of a probability ``f`` with standard error ``se`` on the log(−log) scale."""
    if f >= 1.0 or not np.isfinite(se):
        return float("nan"), float("nan")
    w = np.exp(z * se / (f * np.log(f)))  # log f < 0: w < 1
    return float(f ** (1 / w)), float(f**w)


# --------------------------------------------------------------------------- sticky products

# Why the sticky-product model cannot run on a flat extract (flat.FLAT_REASONS's style; to move
# there with a "sticky products" row of flat.ANALYSES).
STICKY_FLAT_REASON = ("a flat extract has no product_holdings table and no dates: which products each "
                      "customer held, and when, is unknown (its n_products is a bare count)")  # fmt: skip


def _change_words(hr: float) -> str:
    """The words before "churn hazard": ``0.67`` -> "33% lower", ``1.2`` -> "20% higher",
    ``2.35`` -> "2.4 times the", ``1.001`` -> "about the same"."""
    if hr >= 2:
        return f"{hr:.1f} times the"
    pct = round(100 * abs(1 - hr))
    return "about the same" if pct == 0 else f"{pct}% {'lower' if hr < 1 else 'higher'}"


def _note(term: str, hr: float, lower: float, upper: float, level: int) -> str:
    """The plain-words reading of one hazard ratio (an association), with its interval."""
    if term == "n_products":
        head = f"each additional product is associated with {_change_words(hr)} churn hazard"
    else:
        head = (f"holding {label(term.removeprefix('holds_'))} is associated with {_change_words(hr)} "
                "churn hazard, beyond the number of products")  # fmt: skip
    null = "; compatible with no association" if lower <= 1 <= upper else ""
    return f"{head} (hazard ratio {hr:.2f}, {level}% interval {lower:.2f}–{upper:.2f}{null})"


@dataclass
class StickyProductsResult(Renders):
    """Hazard ratios of each additional product and of the sticky products (``reports.md`` §3).

    Attributes
    ----------
    table : DataFrame
        ``term, hr, lower, upper, p, note``: ``n_products`` (per additional
        product) and ``holds_<product>`` for each sticky product that entered
        the model; ``note`` reads the ratio in plain words (an association).
    holders : DataFrame
        One row per sticky product: ``product, term, holders`` (customers in
        follow-up who held it on at least one day; exact: suppress before
        showing it), ``used`` and ``reason`` (why it was left out, else empty).
    model : TimeVaryingCox
        The fitted model (every term: ``model.hazard_ratios()``, drawn by :func:`crmresearch.viz.plots.forest_plot`).
    caveats : list of str
        Plain-words caveats: what was left out and why, what the model adjusts
        for, and that the ratios are associations.

    Examples
    --------
    >>> r = sticky_products(src)                              # doctest: +SKIP
    >>> r.table; r.holders; r.caveats; forest_plot(r.model.hazard_ratios())  # doctest: +SKIP
    """

    _table_attr = "table"

    table: pd.DataFrame
    holders: pd.DataFrame
    model: object
    caveats: list[str] = field(default_factory=list)

    def _caption(self) -> str:
        return "Sticky products: hazard ratios from the time-varying Cox model"



def sticky_products(source: Source, params: Params | None = None, *, as_of: dt.date | None = None,
                    branch: str | None = None, frame: pd.DataFrame | None = None) -> StickyProductsResult:  # fmt: skip
    """The hazard ratio of each additional product and of each sticky product.

    One time-varying Cox model (:func:`crmresearch.analyses.causes.causes_model` with
    its ``covariates``): the causes model's covariates (product count,
    RM-turnover exposure, escalated complaint, dormancy, tier, segment: those
    the source supplies and that vary) plus the indicators ``holds_<product>``
    of the sticky products (:data:`crmresearch.timelines.products.STICKY_PRODUCTS`:
    mobile banking, fund SIP, payroll, third-party custody), 1 on the days the
    customer holds the product.  A sticky product also counts in
    ``n_products``, so its hazard ratio is the association *beyond* that of
    one more product: holding it rather than not, the other products being
    the same, goes with ``HR(n_products) × HR(holds_<product>)``.

    A sticky product held by fewer than ``params.min_cell_size`` (10)
    customers in follow-up (of the branch, when given) is left out of the
    model, and a caveat says so; so is one that every customer holds
    throughout (no contrast).  Hazard ratios are associations, not the
    effect of selling the product: customers who take payroll or mobile
    banking may differ in ways the model does not see.

    Parameters
    ----------
    source : Source
        A loaded calendar source with a ``product_holdings`` table.
    params : Params, optional
        Churn definition, windows and ``min_cell_size``.
    as_of : datetime.date, optional
        Censoring date (default: the extract's as-of date).
    branch : str, optional
        Fit on this branch's customers only.
    frame : DataFrame, optional
        The episodes already read by :func:`crmresearch.analyses.causes.causes_frame`
        with the same ``as_of`` and ``branch`` and the sticky indicators
        (``covariates=STICKY_COVARIATES``), shared with the causes model;
        default: read them here.

    Returns
    -------
    StickyProductsResult
        ``table`` (``term, hr, lower, upper, p, note``), ``holders``,
        ``model`` and ``caveats``.

    Raises
    ------
    InputError
        A flat extract (no holdings, no dates), no ``product_holdings``
        table, or an unknown branch.

    Examples
    --------
    >>> r = sticky_products(src)                    # doctest: +SKIP
    >>> r.table[["term", "hr", "lower", "upper"]]  # doctest: +SKIP
    >>> r.table["note"].tolist(); r.caveats         # doctest: +SKIP
    """
    from crmresearch.analyses.causes import CAUSES_COVARIATES, causes_model

    if not source.can("calendar"):
        raise InputError(f"sticky products cannot run on the flat extract {source.path}: {STICKY_FLAT_REASON}")
    if not source.has("product_holdings"):
        raise InputError(f"sticky products need the product_holdings table, which the source {source.path} "
                         "does not supply")  # fmt: skip
    params = params or Params()
    ctx = context(source, params, as_of)
    _, ep = materialize(source, ctx)
    where, args = ("WHERE branch_id = ?", [branch]) if branch is not None else ("", [])
    if branch is not None and not ctx.con.execute(f"SELECT count(*) FROM {ep} {where}", args).fetchone()[0]:
        known = [r[0] for r in ctx.con.execute(f"SELECT DISTINCT branch_id FROM {ep} ORDER BY 1").fetchall()]
        raise InputError(f"unknown branch {branch!r} (no customer in follow-up) in {source.path}; known: "
                         + ", ".join(known[:20]))  # fmt: skip
    terms = [sticky_covariate(p) for p in STICKY_PRODUCTS]
    # per sticky product: customers who held it on some day, and episodes without it (any contrast?)
    stats_sql = ", ".join(f"count(DISTINCT customer_id) FILTER (WHERE {t} = 1), count(*) FILTER (WHERE {t} = 0)"
                          for t in terms)  # fmt: skip
    # the causes model's default covariates: those known on every episode that vary
    base = [c for c in CAUSES_COVARIATES if c in COVARIATES]
    vary_sql = ", ".join(f"count({c}) = count(*) AND count(DISTINCT {c}) > 1" for c in base)
    row = ctx.con.execute(f"SELECT {stats_sql}, {vary_sql} FROM {ep} {where}", args).fetchone()
    covariates = [c for c, ok in zip(base, row[2 * len(terms):], strict=True) if ok]
    if "segment" in CAUSES_COVARIATES:
        cust = customer_table(source, params, as_of=as_of)
        seg = cust.loc[cust["branch_id"] == branch, "segment"] if branch is not None else cust["segment"]
        if seg.notna().all() and seg.nunique() > 1:
            covariates.append("segment")
    m = params.min_cell_size
    rows, caveats = [], []
    for i, (product, term) in enumerate(zip(STICKY_PRODUCTS, terms, strict=True)):
        holders, without = int(row[2 * i]), int(row[2 * i + 1])
        reason = ""
        if holders < m:
            reason = f"held by fewer than {m} customers"
        elif without == 0:
            reason = "held by every customer throughout (nothing to compare with)"
        rows.append({"product": product, "term": term, "holders": holders, "used": not reason, "reason": reason})
        if reason:
            caveats.append(f"{label(product)} is left out: {reason}.")
    holders_df = pd.DataFrame(rows, columns=["product", "term", "holders", "used", "reason"])
    kept = holders_df.loc[holders_df["used"], "term"].tolist()
    covariates += kept
    model = causes_model(source, params, as_of=as_of, branch=branch, covariates=covariates, frame=frame)
    hr = model.hazard_ratios().set_index("term")
    shown = [t for t in ("n_products", *kept) if t in hr.index]
    if "n_products" not in shown:
        caveats.append("The number of products does not vary among these customers: no ratio per product.")
    level = round(100 * (1 - model.alpha))
    table = hr.loc[shown].reset_index()
    table["note"] = [_note(r.term, r.hr, r.lower, r.upper, level) for r in table.itertuples()]
    others = [c for c in covariates if c not in ("n_products", *kept)]
    if others:
        caveats.append("Adjusted for " + ", ".join(label(c) for c in others) + "; on the tenure time scale "
                       "(the lifecycle stage is the baseline hazard).")  # fmt: skip
    caveats.append("Associations, not effects: customers who take these products may differ in ways the "
                   "model does not see.")  # fmt: skip
    return StickyProductsResult(table, holders_df, model, caveats)
