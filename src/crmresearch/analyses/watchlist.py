"""The watch list (``reports.md`` §8): the customers most at risk now, and what to do.

Scoring rule
------------
The risk of a customer active at the scoring date ``S`` (the report month's
end) is the bank-wide causes model's probability of churning in the next
``horizon_days`` (90), with their covariates as they are on ``S``:
``1 - exp(-(H0(t + 90) - H0(t)) · exp(x · beta))`` where ``t`` is their
tenure and ``H0`` Breslow's baseline cumulative hazard on the tenure scale,
pooled into a constant rate per tenure band (:func:`pooled_baseline`: far
out in tenure the raw steps rest on a handful of customers)
— so a new customer, whose baseline hazard is highest, ranks above a
long-standing one with the same covariates.  It assumes the covariates stay
as they are for the horizon (an RM-turnover window that is about to end is
not anticipated).

Suggested actions follow from what fired (one line per customer, most
urgent first): a complaint → supervisor follow-up; an RM exit or an
orphaned customer → handover visit by the new RM; no transactions or
dormant → re-activation call; a large outflow → call about the outflow; a
product dropped or at most one product → cross-sell a sticky product
(mobile banking, fund SIP, payroll, third-party custody).

Validation out of time (backtest)
---------------------------------
The same rule is applied at ``S - horizon``: the model is refitted on data
dated up to then, every customer active then is scored, and the score is
checked against who actually churned in the following ``horizon`` days
(all of which lie before ``S``): the AUC (with a Hanley–McNeil interval),
Harrell's concordance on the time to churn within the horizon, and expected
vs observed churners (calibration).  In-sample fit is never reported as
validation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from crmresearch.analyses.causes import causes_model
from crmresearch.analyses.early_warnings import early_warnings
from crmresearch.core.calendar import month_bounds
from crmresearch.core.errors import InputError
from crmresearch.core.params import Params
from crmresearch.data.contract import Source, check_branch
from crmresearch.survival.cox import ConvergenceError, TimeVaryingCox
from crmresearch.survival.episodes import context, materialize
from crmresearch.viz.summary import Renders

__all__ = ["ACTIONS", "BASELINE_BANDS", "WatchList", "backtest", "pooled_baseline", "suggested_actions",
           "watch_list"]

# (rule or state, action), most urgent first
ACTIONS: tuple[tuple[str, str], ...] = (
    ("complaint", "supervisor follow-up of the complaint"),
    ("rm_exit", "handover visit by the new RM"),
    ("orphaned", "handover visit by the new RM"),
    ("no_transaction", "re-activation call"),
    ("dormant", "re-activation call"),
    ("outflow", "call about the outflow"),
    ("product_drop", "cross-sell a sticky product"),
    ("few_products", "cross-sell a sticky product"),
)


def suggested_actions(signals: pd.DataFrame) -> pd.Series:
    """One line of suggested actions per row of 0/1 signal columns (names of :data:`ACTIONS`).

    Examples
    --------
    >>> suggested_actions(pd.DataFrame({"complaint": [1, 0], "few_products": [1, 0]})).tolist()
    ['supervisor follow-up of the complaint; cross-sell a sticky product', 'relationship review']
    """
    out = []
    for _, row in signals.iterrows():
        acts = list(dict.fromkeys(a for key, a in ACTIONS if key in row and row[key]))
        out.append("; ".join(acts) if acts else "relationship review")
    return pd.Series(out, index=signals.index, dtype=object)


def _state_at(source: Source, params: Params, as_of: dt.date) -> pd.DataFrame:
    """Every customer active on ``as_of`` with their covariates that day and tenure."""
    ctx = context(source, params, as_of)
    cust, ep = materialize(source, ctx)
    seg = "k.segment" if ctx.has_column("customers", "segment") else "CAST(NULL AS VARCHAR)"
    df = ctx.con.execute(f"""
        SELECT e.* EXCLUDE (event), {seg} AS segment, e.stop AS tenure_days
        FROM {ep} e JOIN {cust} c USING (customer_id) JOIN customers k USING (customer_id)
        WHERE e.stop_date = {ctx.as_of_sql} AND c.end_date = {ctx.as_of_sql} AND NOT c.event
        ORDER BY e.customer_id""").df()  # fmt: skip
    return df


# tenure bands (days) over which the baseline hazard is pooled for prediction
BASELINE_BANDS: tuple[float, ...] = (0, 91, 366, 731, 1096, 1827, 3653, float("inf"))


def pooled_baseline(model: TimeVaryingCox, bands: tuple[float, ...] = BASELINE_BANDS) -> pd.DataFrame:
    """Breslow's baseline hazard pooled into a constant rate per tenure band.

    The step-function baseline is exact for the fit, but far out in tenure
    its steps rest on a handful of customers at risk, so a 90-day window can
    catch one big jump or none.  For prediction the increments are pooled
    per band (first 3 months, rest of year 1, years 2, 3, 4–5, 6–10, beyond)
    into a rate per day; the last band runs to the last event time.

    Returns
    -------
    DataFrame
        ``lower, upper, rate_per_day``.

    Examples
    --------
    >>> pooled_baseline(causes_model(src))  # doctest: +SKIP
    """
    base = model.baseline_cumulative_hazard()
    t = base["time"].to_numpy()
    dh = np.diff(np.r_[0.0, base["cumulative_hazard"].to_numpy()])
    rows = []
    for lo, hi in zip(bands[:-1], bands[1:], strict=True):
        inside = (t > lo) & (t <= hi)
        end = hi if np.isfinite(hi) else (t[inside].max() if inside.any() else lo + 1)
        rows.append({"lower": lo, "upper": hi, "rate_per_day": float(dh[inside].sum()) / max(end - lo, 1.0)})
    return pd.DataFrame(rows)


def _pooled_cumhaz(pooled: pd.DataFrame, x: np.ndarray) -> np.ndarray:
    lo, hi, rate = (pooled[c].to_numpy() for c in ("lower", "upper", "rate_per_day"))
    overlap = np.clip(np.minimum(x[:, None], hi[None, :]) - lo[None, :], 0, None)
    return overlap @ rate


def _scores(model: TimeVaryingCox, state: pd.DataFrame, horizon: int) -> pd.Series:
    """Probability of churning within ``horizon`` days: pooled baseline × the model's relative hazard."""
    ok = state[model.covariates_].notna().all(axis=1)
    risk = pd.Series(np.nan, index=state.index)
    if ok.any():
        pooled = pooled_baseline(model)
        t = state.loc[ok, "tenure_days"].to_numpy(dtype=float)
        dH = _pooled_cumhaz(pooled, t + horizon) - _pooled_cumhaz(pooled, t)
        risk[ok] = 1 - np.exp(-dH * np.exp(model.predict_log_partial_hazard(state[ok]).to_numpy()))
    return risk


def _auc(score: np.ndarray, y: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """AUC (Mann–Whitney, ties one half) with the Hanley–McNeil interval."""
    n1, n0 = int(y.sum()), int((1 - y).sum())
    if n1 == 0 or n0 == 0:
        return np.nan, np.nan, np.nan
    r = stats.rankdata(score)
    auc = (r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = np.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0))
    z = stats.norm.ppf(1 - alpha / 2)
    return float(auc), float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se))


def backtest(source: Source, params: Params | None = None, *, as_of: dt.date | None = None,
             horizon_days: int = 90, branch: str | None = None) -> dict:  # fmt: skip
    """Score at ``as_of - horizon_days`` with a model fitted on data up to then; check on what followed.

    Parameters
    ----------
    source, params
        As for :func:`watch_list`.
    as_of : datetime.date, optional
        The end of the check (default: the extract's as-of date).
    horizon_days : int
        The horizon of the score, and how far back the scoring date lies.
    branch : str, optional
        Check on this branch's customers only (the model stays bank-wide).

    Returns
    -------
    dict
        ``scoring_date, horizon_days, customers, churned, auc, auc_lower,
        auc_upper, concordance, expected, observed``.

    Examples
    --------
    >>> backtest(src, as_of=dt.date(2026, 10, 31))["auc"]  # doctest: +SKIP
    """
    from crmresearch.survival.episodes import customer_table
    from crmresearch.survival.estimators import concordance_index

    params = params or Params()
    as_of = as_of or source.as_of
    scored_on = as_of - dt.timedelta(days=horizon_days)
    if scored_on < source.observation_start:
        raise InputError(f"the backtest scores on {scored_on}, before the observation start "
                         f"{source.observation_start}: the data is too short")  # fmt: skip
    model = causes_model(source, params, as_of=scored_on)
    state = _state_at(source, params, scored_on)
    if branch is not None:
        state = state[state["branch_id"] == branch]
    state = state.assign(risk=_scores(model, state, horizon_days)).dropna(subset=["risk"])
    later = customer_table(source, params, as_of=as_of)[["customer_id", "end_date", "event"]]
    later["end_date"] = pd.to_datetime(later["end_date"])
    d = state.merge(later, on="customer_id", how="left")
    days = (d["end_date"] - pd.Timestamp(scored_on)).dt.days
    y = ((d["event"] == 1) & (days <= horizon_days)).to_numpy(dtype=int)
    auc, lo, hi = _auc(d["risk"].to_numpy(), y)
    t = np.where(y == 1, days, horizon_days)
    conc = float(concordance_index(t, -d["risk"].to_numpy(), y)) if 0 < y.sum() < len(y) else np.nan
    return {"scoring_date": scored_on.isoformat(), "horizon_days": horizon_days, "customers": len(d),
            "churned": int(y.sum()), "auc": auc, "auc_lower": lo, "auc_upper": hi, "concordance": conc,
            "expected": float(d["risk"].sum()), "observed": int(y.sum())}  # fmt: skip


@dataclass
class WatchList(Renders):
    """The ranked watch list of a branch, with its out-of-time validation.

    Attributes
    ----------
    table : DataFrame
        One row per customer, most at risk first: ``rank, customer_id,
        pseudonym, tier, aum, n_products, rm_id, warnings, suggested_action,
        churn_risk_90d`` (``pseudonym`` when a key was given).
    backtest : dict or None
        :func:`backtest`'s result (None when the data is too short).
    scoring_date : datetime.date
        The day scored (the report month's last day).
    horizon_days : int
        Horizon of the churn risk.
    caveats : list of str
        Why the out-of-time check is missing, when it is.

    Examples
    --------
    >>> wl = watch_list(src, month="2026-10", branch="B001", key=b"secret")  # doctest: +SKIP
    >>> wl.summary.head(); wl.backtest["auc"]  # doctest: +SKIP
    """

    _table_attr = "summary"

    table: pd.DataFrame
    backtest: dict | None
    scoring_date: dt.date
    horizon_days: int
    caveats: list[str] = field(default_factory=list)

    @property
    def summary(self) -> pd.DataFrame:
        """The table without customer IDs (pseudonyms only), for reports."""
        return self.table.drop(columns=["customer_id"])

    def plot(self, ax=None, language: str = "en"):
        """Risk of the listed customers (bars), most at risk on top; returns the axes.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw (default: a new figure).
        language : {"en", "zh"}
            Language of the labels (Chinese with the bundled font).

        Returns
        -------
        matplotlib Axes

        Examples
        --------
        >>> watch_list(src, month="2026-10", branch="B001", top=20).plot()  # doctest: +SKIP
        """
        import matplotlib.pyplot as plt

        from crmresearch.viz.i18n import label as phrase
        from crmresearch.viz.plots import use_fonts

        use_fonts(language)
        if ax is None:
            _, ax = plt.subplots(figsize=(7, max(2.0, 0.25 * len(self.table))))
        t = self.table.iloc[::-1]
        label = t["pseudonym"] if t["pseudonym"].notna().all() else t["rank"].astype(str)
        ax.barh(label, t["churn_risk_90d"], color="#c44")
        ax.set_xlabel(phrase("plot_risk_within", language, days=self.horizon_days))
        return ax

    def _caption(self) -> str:
        b = self.backtest
        head = f"Watch list on {self.scoring_date}: {len(self.table)} customers."
        if b:
            head += (f" Out-of-time check (scored {b['scoring_date']}): AUC {b['auc']:.2f} "
                     f"({b['auc_lower']:.2f}–{b['auc_upper']:.2f}), {b['observed']} churned vs "
                     f"{b['expected']:.0f} expected.")  # fmt: skip
        return head



def watch_list(source: Source, params: Params | None = None, *, month: str, branch: str | None = None,
               top: int = 50, horizon_days: int = 90, key: bytes | None = None,
               model: TimeVaryingCox | None = None, validate: bool = True) -> WatchList:  # fmt: skip
    """The customers of a branch most at risk at the report month's end.

    Parameters
    ----------
    source : Source
        A loaded source with a calendar.
    params : Params, optional
        Churn definition, windows, warning rules.
    month : str
        ``YYYY-MM``: scored on its last day, from data dated up to it.
    branch : str, optional
        The branch (default: the whole bank).
    top : int
        How many customers to list.
    horizon_days : int
        Horizon of the churn risk (and of the backtest).
    key : bytes, optional
        Pseudonym key (:mod:`crmresearch.core.privacy`); without it the
        ``pseudonym`` column is empty and only analysts' own views should
        show the table.
    model : TimeVaryingCox, optional
        A bank-wide causes model fitted at the month's end (reused across
        branches); fitted here when not given.
    validate : bool
        Run the out-of-time backtest.

    Returns
    -------
    WatchList

    Examples
    --------
    >>> wl = watch_list(src, month="2026-10", branch="B001", key=load_key())  # doctest: +SKIP
    >>> wl.summary.head(10); wl.backtest["auc"]  # doctest: +SKIP
    """
    from crmresearch.core.privacy import pseudonymize
    source.require("watch list")
    check_branch(source, branch)
    params = params or Params()
    _, last = month_bounds(month)
    if model is None:
        try:
            model = causes_model(source, params, as_of=last)
        except (ConvergenceError, ValueError) as exc:
            raise InputError(f"the watch list needs the causes model, which could not be fitted on the data "
                             f"up to {last}: {exc}") from exc  # fmt: skip
    state = _state_at(source, params, last)
    if branch is not None:
        state = state[state["branch_id"] == branch]
    state = state.assign(churn_risk_90d=_scores(model, state, horizon_days)).dropna(subset=["churn_risk_90d"])
    state = state.sort_values(["churn_risk_90d", "customer_id"], ascending=[False, True]).head(top)
    w = early_warnings(source, params, as_of=last, branch=branch)
    w = w[(w["active_until"] >= pd.Timestamp(last)) & w["customer_id"].isin(state["customer_id"])]
    fired = w.groupby("customer_id")["rule"].agg(lambda r: ", ".join(sorted(set(r))))
    signals = pd.DataFrame(index=state.index)
    for rule in params.warnings.rules:
        signals[rule] = state["customer_id"].isin(w.loc[w["rule"] == rule, "customer_id"]).to_numpy()
    signals["orphaned"] = state["orphaned"].fillna(0).astype(bool)
    signals["dormant"] = state["dormant"].fillna(0).astype(bool)
    signals["few_products"] = state["n_products"].fillna(99) <= 1
    con = source.con
    extra = pd.DataFrame({"customer_id": state["customer_id"]})
    con.register("__wl", extra)
    try:
        aum = (con.execute(f"""SELECT w.customer_id, arg_max(b.aum, b.month) AS aum FROM __wl w
                               JOIN monthly_balances b USING (customer_id)
                               WHERE CAST(last_day(b.month) AS DATE) <= DATE '{last}' GROUP BY w.customer_id""").df()
               if source.has("monthly_balances") else pd.DataFrame(columns=["customer_id", "aum"]))  # fmt: skip
        rm = (con.execute(f"""SELECT w.customer_id, a.rm_id FROM __wl w JOIN rm_assignments a USING (customer_id)
                              WHERE a.start_date <= DATE '{last}' AND (a.end_date IS NULL
                                    OR a.end_date >= DATE '{last}')""").df()
              if source.has("rm_assignments") else pd.DataFrame(columns=["customer_id", "rm_id"]))  # fmt: skip
    finally:
        con.unregister("__wl")
    table = pd.DataFrame({
        "rank": np.arange(1, len(state) + 1), "customer_id": state["customer_id"].to_numpy(),
        "pseudonym": pseudonymize(state["customer_id"], key).to_numpy() if key is not None else None,
        "tier": state["tier"].to_numpy(), "n_products": state["n_products"].to_numpy(),
        "warnings": state["customer_id"].map(fired).fillna("").to_numpy(),
        "suggested_action": suggested_actions(signals).to_numpy(),
        "churn_risk_90d": state["churn_risk_90d"].to_numpy(),
    })  # fmt: skip
    table = table.merge(aum, on="customer_id", how="left").merge(rm, on="customer_id", how="left")
    table = table[["rank", "customer_id", "pseudonym", "tier", "aum", "n_products", "rm_id", "warnings",
                   "suggested_action", "churn_risk_90d"]]  # fmt: skip
    check, caveats = None, []
    if validate:
        try:
            check = backtest(source, params, as_of=last, horizon_days=horizon_days, branch=branch)
        except (InputError, ConvergenceError, ValueError) as exc:
            caveats.append(f"The out-of-time check could not be run: {exc}")
    return WatchList(table, check, last, horizon_days, caveats)
