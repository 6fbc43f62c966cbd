"""Relationship-manager turnover views (``reports.md`` §4).

The covariates (exposure, orphaned) are defined in :mod:`crmresearch.timelines.rm_exposure`;
this module describes turnover for a month: RM exits by type, the customers
they orphaned and their handover gaps, and churn per customer-month by the
number of days a customer has been orphaned *so far*.

Why "so far": a customer's eventual handover gap is only known when the gap
ends, and grouping by it would give long gaps immortal time (a customer who
waited 60 days had to stay 60 days to be counted in that group).  Each
orphaned day is instead counted in the band of the days already spent
without an RM (0–7, 8–30, 31+), and a churn on that day in the same band.

Churn after an RM's exit versus comparable customers (:func:`turnover_churn_comparison`)
-----------------------------------------------------------------------------------------
A matched comparison with time zero at the exit date ``e`` (risk-set
sampling), so that nothing after ``e`` decides who is compared:

1. **cohort**: RM exits dated in the 12 months ending ``max(horizons)`` days
   before the report month's end (and not before the observation start), so
   that every horizon is fully observed by the month's end;
2. **exposed**: the customers assigned to the exiting RM on ``e`` (the
   contract's exposure) who are still customers after that day (churn date
   after ``e``);
3. **controls**: customers of the same branch, in the same tier on ``e``
   (the activity tier known that day, ``unknown`` allowed) and the same
   tenure band (:data:`TENURE_BANDS`), still customers after ``e``, with an RM
   assigned on ``e`` who did not leave on or before ``e``, and not exposed to
   turnover on ``e + 1`` (their RM did not leave in the previous
   ``windows.rm_turnover_days``).  Up to ``controls_per_exposed`` of them are
   drawn for each exposed customer with a seeded generator; a customer can
   serve in several matched sets, as in incidence-density sampling;
4. **outcome**: churn in ``(e, e + h]`` for each horizon ``h``.  A control
   whose own RM later leaves is censored on that RM's exit date (a churn
   that day still counts: the RM's last day), so the controls stay "customers
   whose RM stayed".  Cumulative churn is the Kaplan–Meier estimate at ``h``
   (for the exposed, who are never censored, the plain proportion); each
   control carries weight ``1 / m`` in a set of ``m`` controls, so the
   controls are standardised to the exposed customers' mix of branch, tier
   and tenure;
5. **intervals** (95% by default) come from a bootstrap over exiting RMs
   (each RM resampled with all its customers and their matched sets): one
   RM's customers may leave together (a departing RM can take a book of
   customers to a competitor), so they are not independent observations.
   Percentile intervals; none with fewer than :data:`MIN_CLUSTERS` exiting
   RMs (too few distinct resamples), and a caveat below 10.  Differences
   and ratios are given only when at least ``min_cell_size`` exposed
   customers were matched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crmresearch.core.calendar import DAYS_PER_MONTH, month_bounds
from crmresearch.core.errors import InputError
from crmresearch.core.params import Params
from crmresearch.data.contract import Source
from crmresearch.survival.episodes import context, episode_frame, materialize
from crmresearch.survival.estimators import rate_row
from crmresearch.timelines.context import date_lit
from crmresearch.timelines.rm_exposure import ORPHAN_BANDS, exits_sql, handovers
from crmresearch.viz.summary import Renders

__all__ = ["MIN_CLUSTERS", "ORPHAN_BANDS", "TENURE_BANDS", "TurnoverComparison", "orphaned_churn_rates", "orphaned_customers",
           "rm_exits", "tenure_band", "turnover_churn_comparison"]  # fmt: skip

MIN_CLUSTERS = 5  # exiting RMs needed for a bootstrap interval clustered by RM

# band -> (first month, end month) of tenure at the exit date; the last is open
TENURE_BANDS: dict[str, tuple[float, float | None]] = {"0-3m": (0, 3), "3-12m": (3, 12), "1-3y": (12, 36),
                                                        "3y+": (36, None)}  # fmt: skip


def _need_rm(source: Source) -> None:
    source.require("RM turnover")
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
    ep = episode_frame(source, params, as_of=as_of, columns=["start", "stop", "event", "orphaned_band"], branch=branch)
    days = (ep["stop"] - ep["start"]).groupby(ep["orphaned_band"]).sum()
    events = ep["event"].groupby(ep["orphaned_band"]).sum()
    bands = [*ORPHAN_BANDS, "none"]
    return pd.DataFrame([rate_row(b if b != "none" else "not orphaned", float(days.get(b, 0)),
                                  int(events.get(b, 0)), alpha, key="band") for b in bands])  # fmt: skip


def tenure_band(days: pd.Series | np.ndarray) -> pd.Series:
    """Tenure band (:data:`TENURE_BANDS`) of tenures in days (``day - open_date + 1``).

    Examples
    --------
    >>> tenure_band(pd.Series([1, 92, 400, 2000])).tolist()
    ['0-3m', '3-12m', '1-3y', '3y+']
    """
    days = pd.Series(days)
    months = days.astype(float).to_numpy() / DAYS_PER_MONTH
    edges = [hi for _, hi in TENURE_BANDS.values() if hi is not None]
    labels = np.array(list(TENURE_BANDS), dtype=object)
    return pd.Series(labels[np.searchsorted(edges, months, side="right")], index=days.index, dtype=object)


def _km_curve(d: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Cumulative churn ``1 - S(t)`` from events ``d`` and numbers at risk ``r`` per day (last axis)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(r > 0, 1 - d / np.where(r > 0, r, 1), 1.0)
    return 1 - np.cumprod(factor, axis=-1)


def _cluster_tables(part: pd.DataFrame, clusters: pd.Index, hmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted events and numbers at risk on days ``1..hmax`` after the exit, per cluster (exiting RM)."""
    g = clusters.get_indexer(part["rm_id"])
    t = part["time"].to_numpy(dtype=int)
    w = part["weight"].to_numpy(dtype=float)
    ev = part["event"].to_numpy(dtype=bool)
    d = np.zeros((len(clusters), hmax))
    leave = np.zeros((len(clusters), hmax))  # weight whose follow-up ends on day t
    np.add.at(d, (g[ev], t[ev] - 1), w[ev])
    np.add.at(leave, (g, t - 1), w)
    return d, leave[:, ::-1].cumsum(axis=1)[:, ::-1]  # at risk on day t: follow-up reaching t


@dataclass
class TurnoverComparison(Renders):
    """Churn after an RM's exit: exposed customers versus matched customers whose RM stayed.

    Attributes
    ----------
    sets : DataFrame
        One row per member of a matched set: ``set_id, role`` (``exposed`` /
        ``control``), ``customer_id, rm_id`` (the exiting RM: the cluster),
        ``exit_date, exit_type, branch_id, tier, tenure_band, weight``
        (``1 / m`` for each of ``m`` controls), ``churn_day`` (days from the
        exit to the churn, missing when none by the month end),
        ``censor_day`` (controls: days to the exit of their own RM within the
        longest horizon), ``time`` and ``event`` (follow-up to the longest
        horizon).  Exposed customers without any comparable customer are
        not in it (see ``unmatched``).
    summary : DataFrame
        Per ``exit_type`` (``all`` first) and horizon: ``exiting_rms,
        exposed, exposed_unmatched, exposed_churned, exposed_churn,
        exposed_lower, exposed_upper, controls, controls_churned,
        controls_censored, controls_churn, controls_lower, controls_upper,
        risk_difference, rd_lower, rd_upper, risk_ratio, rr_lower,
        rr_upper``.  Churn figures are cumulative proportions (0–1); the
        intervals come from the bootstrap over exiting RMs.  Counts of
        controls count matched-set places (a customer may fill several).
    curves : DataFrame
        ``day, exposed, controls``: cumulative churn of all matched sets,
        day by day from the exit to the longest horizon.
    unmatched : DataFrame
        Exposed customers with no comparable customer: ``customer_id,
        rm_id, exit_date, exit_type, branch_id, tier, tenure_band``.
    cohort_from, cohort_to : Timestamp
        The exit dates of the cohort.
    caveats : list of str
        Plain-words caveats.

    Examples
    --------
    >>> res = turnover_churn_comparison(src, month="2026-10")  # doctest: +SKIP
    >>> res.summary.query("exit_type == 'all'")[["horizon_days", "risk_ratio", "rr_lower", "rr_upper"]]  # doctest: +SKIP
    """

    _table_attr = "summary"

    sets: pd.DataFrame
    summary: pd.DataFrame
    curves: pd.DataFrame
    unmatched: pd.DataFrame
    horizons: tuple[int, ...]
    cohort_from: pd.Timestamp
    cohort_to: pd.Timestamp
    controls_per_exposed: int
    alpha: float = 0.05
    caveats: list[str] = field(default_factory=list)

    def plot(self, ax=None, language: str = "en"):
        """Cumulative churn by days since the RM's exit, exposed vs controls, with intervals at the horizons.

        Draws on ``ax`` (default: a new figure) and returns the axes.

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
        >>> ax = turnover_churn_comparison(src, month="2026-10").plot()  # doctest: +SKIP
        """
        import matplotlib.pyplot as plt

        from crmresearch.viz.i18n import label
        from crmresearch.viz.plots import use_fonts

        use_fonts(language)
        own = ax is None
        if own:
            _, ax = plt.subplots(figsize=(7, 3.5))
        c = self.curves
        ax.step(c["day"], c["exposed"], where="post", color="#c33", label=label("plot_rm_left", language))
        ax.step(c["day"], c["controls"], where="post", color="#36a", label=label("plot_rm_stayed", language))
        s = self.summary[self.summary["exit_type"] == "all"]
        for col, colour, shift in (("exposed", "#c33", -1.5), ("controls", "#36a", 1.5)):
            est, lo, hi = s[f"{col}_churn"], s[f"{col}_lower"], s[f"{col}_upper"]
            ok = lo.notna() & hi.notna()
            ax.errorbar(s.loc[ok, "horizon_days"] + shift, est[ok], yerr=[(est - lo)[ok], (hi - est)[ok]],
                        fmt="o", color=colour, capsize=3)  # fmt: skip
        ax.set_xlim(0, max(self.horizons) + 5)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(label("plot_days_since_exit", language))
        ax.set_ylabel(label("plot_cumulative_churn", language))
        ax.legend(loc="upper left", frameon=False)
        if own:
            ax.figure.tight_layout()
        return ax

    def _caption(self) -> str:
        n = int((self.sets["role"] == "exposed").sum()) if len(self.sets) else 0
        return (f"RM exits {self.cohort_from:%Y-%m-%d} to {self.cohort_to:%Y-%m-%d}: {n} customers whose RM "
                f"left, each matched to up to {self.controls_per_exposed} customers of the same branch, tier and "
                f"tenure band whose RM stayed; {100 * (1 - self.alpha):.0f}% intervals clustered by RM.")  # fmt: skip



def _exit_window(month: str, hmax: int, observation_start: dt.date) -> tuple[pd.Timestamp, pd.Timestamp, dt.date]:
    _, last = month_bounds(month)
    latest = pd.Timestamp(last) - pd.Timedelta(days=hmax)
    earliest = latest - pd.DateOffset(months=12) + pd.Timedelta(days=1)
    return max(earliest, pd.Timestamp(observation_start)), latest, last


def _exposed_and_pool(source: Source, params: Params, last: dt.date, earliest: pd.Timestamp,
                      latest: pd.Timestamp, hmax: int, branch: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Exposed customers of the cohort's exits, and every eligible control on each exit date."""
    ctx = context(source, params, last)
    cust, ep = materialize(source, ctx)
    con = ctx.con
    args = {"b": branch} if branch else {}
    exposed = con.execute(f"""
        WITH x AS ({exits_sql(ctx)})
        SELECT x.customer_id, x.rm_id, CAST(x.exit_date AS DATE) AS exit_date,
               COALESCE(x.exit_type, 'unknown') AS exit_type, c.branch_id,
               CAST(x.exit_date - c.open_date + 1 AS INTEGER) AS tenure_days,
               COALESCE(e.tier, 'unknown') AS tier,
               CASE WHEN c.event THEN CAST(c.end_date - x.exit_date AS INTEGER) END AS churn_day
        FROM x JOIN {cust} c USING (customer_id)
        LEFT JOIN {ep} e ON e.customer_id = x.customer_id AND x.exit_date BETWEEN e.start_date AND e.stop_date
        WHERE x.exit_date BETWEEN {date_lit(earliest.date())} AND {date_lit(latest.date())}
          AND c.entry_date <= x.exit_date AND c.end_date > x.exit_date
          {"AND c.branch_id = $b" if branch else ""}
        ORDER BY x.exit_date, x.rm_id, x.customer_id""", args).df()  # fmt: skip
    if exposed.empty:
        return exposed, exposed.iloc[0:0].assign(censor_day=pd.Series(dtype=float))
    con.register("__exposed_days", exposed[["exit_date", "branch_id"]].drop_duplicates())
    try:
        pool = con.execute(f"""
            WITH d AS (SELECT DISTINCT CAST(exit_date AS DATE) AS e, branch_id FROM __exposed_days),
                 x AS ({exits_sql(ctx)})
            SELECT d.e AS exit_date, c.customer_id, c.branch_id,
                   CAST(d.e - c.open_date + 1 AS INTEGER) AS tenure_days,
                   COALESCE(e0.tier, 'unknown') AS tier,
                   CASE WHEN c.event THEN CAST(c.end_date - d.e AS INTEGER) END AS churn_day,
                   (SELECT CAST(min(x.exit_date) - d.e AS INTEGER) FROM x
                     WHERE x.customer_id = c.customer_id AND x.exit_date > d.e
                       AND x.exit_date <= d.e + {int(hmax)}) AS censor_day
            FROM d JOIN {cust} c ON c.branch_id = d.branch_id AND c.entry_date <= d.e AND c.end_date > d.e
            JOIN {ep} e0 ON e0.customer_id = c.customer_id AND d.e BETWEEN e0.start_date AND e0.stop_date
            JOIN {ep} e1 ON e1.customer_id = c.customer_id AND d.e + 1 BETWEEN e1.start_date AND e1.stop_date
            WHERE COALESCE(e1.rm_turnover_exposed, 0) = 0
              AND EXISTS (SELECT 1 FROM rm_assignments a JOIN relationship_managers m ON m.rm_id = a.rm_id
                          WHERE a.customer_id = c.customer_id AND a.start_date <= d.e
                            AND (a.end_date IS NULL OR a.end_date >= d.e)
                            AND (m.exit_date IS NULL OR m.exit_date > d.e))
            ORDER BY d.e, c.customer_id""").df()  # fmt: skip
    finally:
        con.unregister("__exposed_days")
    return exposed, pool


def choose_distinct(rng: np.random.Generator, n: np.ndarray, k: int) -> np.ndarray:
    """Uniform samples without replacement, one per row: ``min(k, n[i])`` distinct positions of ``range(n[i])``.

    Vectorised over the rows (the matched comparison draws the controls of
    every exposed customer at once): draw ``j`` takes a uniform position among
    the ``n[i] - j`` not yet taken and shifts it past those taken before it
    (in ascending order), so every subset of size ``min(k, n[i])`` is equally
    likely.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of randomness (seeded for a reproducible month).
    n : numpy.ndarray
        The population size of each row (integers >= 0).
    k : int
        Positions wanted per row.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(n), k)``, each row ascending; positions beyond a row's
        ``n[i]`` are padded with ``n[i]`` or more (``chosen < n[:, None]``
        marks the real ones).

    Examples
    --------
    >>> choose_distinct(np.random.default_rng(1), np.array([10, 2]), 3)  # doctest: +SKIP
    array([[                  4,                   7,                   9],
           [                  0,                   1, 9223372036854775807]])
    """
    n = np.asarray(n, dtype=np.int64)
    pad = np.iinfo(np.int64).max
    out = np.full((len(n), k), pad, dtype=np.int64)
    for j in range(k):
        r = rng.integers(0, np.maximum(n - j, 1))
        for taken in np.sort(out[:, :j], axis=1).T:  # ascending: each shift can only meet later ones
            r = r + (r >= taken)
        out[:, j] = np.where(n > j, r, pad)
    return np.sort(out, axis=1)


def _match(exposed: pd.DataFrame, pool: pd.DataFrame, k: int, hmax: int,
           rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Matched sets (exposed + up to ``k`` controls each) and the exposed customers left unmatched."""
    key = ["exit_date", "branch_id", "tier", "tenure_band"]
    for df in (exposed, pool):
        df["exit_date"] = pd.to_datetime(df["exit_date"])
        df["tenure_band"] = tenure_band(df["tenure_days"])
    # the pool arrives in (exit date, customer) order (_exposed_and_pool's ORDER BY): each key's rows in that order
    # the pool's rows of each matching key, in pool order: one stable sort by group (a dict of groups
    # would build a frame per group; a day's pool holds every eligible customer of the branch)
    group = pool.groupby(key, sort=True, observed=True).ngroup().to_numpy()
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(group.max() + 2 if len(group) else 1))
    keys = pool[key].iloc[order[bounds[:-1]]].assign(__g=np.arange(len(bounds) - 1))
    of_exposed = exposed[key].merge(keys, on=key, how="left")["__g"].to_numpy()
    matched = np.flatnonzero(~np.isnan(of_exposed))
    g = of_exposed[matched].astype(np.int64)
    start, size = bounds[g], bounds[g + 1] - bounds[g]
    chosen = choose_distinct(rng, size, k)  # each exposed customer's controls: positions in its key's rows
    valid = chosen < size[:, None]
    m = valid.sum(axis=1)  # min(k, size): every key's group has a row
    cols = ["set_id", "role", "customer_id", "rm_id", "exit_date", "exit_type", "branch_id", "tier", "tenure_band",
            "weight", "churn_day", "censor_day"]  # fmt: skip
    ex = exposed.iloc[matched].reset_index(drop=True)
    ex = ex.assign(set_id=np.arange(len(ex)), role="exposed", weight=1.0, censor_day=np.nan)
    set_id = np.repeat(np.arange(len(ex)), m)
    ctl = pool.iloc[order[(start[:, None] + np.where(valid, chosen, 0))[valid]]].reset_index(drop=True)
    ctl = ctl.assign(set_id=set_id, role="control", weight=np.repeat(1.0 / m, m),
                     rm_id=ex["rm_id"].to_numpy()[set_id], exit_type=ex["exit_type"].to_numpy()[set_id])  # fmt: skip
    for df in (ex, ctl):
        for c in ("churn_day", "censor_day", "weight"):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    sets = pd.DataFrame({c: np.concatenate([ex[c].to_numpy(), ctl[c].to_numpy()]) for c in cols})
    sets = sets.sort_values(["set_id", "role"], ascending=[True, False], kind="stable").reset_index(drop=True)
    stop = np.fmin(sets["censor_day"].to_numpy(), float(hmax))
    churn = sets["churn_day"].to_numpy()
    sets["event"] = (churn <= stop).astype(int)  # a churn on the day a control's RM leaves still counts
    sets["time"] = np.fmin(churn, stop).astype(int)
    unmatched = np.setdiff1d(np.arange(len(exposed)), matched)
    un = exposed.iloc[unmatched][["customer_id", "rm_id", "exit_date", "exit_type", "branch_id", "tier",
                                  "tenure_band"]].reset_index(drop=True)  # fmt: skip
    return sets, un


def _quantiles(x: np.ndarray, alpha: float) -> tuple[float, float]:
    x = x[~np.isnan(x)]
    if not len(x):
        return np.nan, np.nan
    lo, hi = np.quantile(x, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    return float(lo), float(hi)


def _compare(part: pd.DataFrame, horizons: tuple[int, ...], hmax: int, n_boot: int, alpha: float,
             rng: np.random.Generator, ratios: bool) -> list[dict]:  # fmt: skip
    """Summary rows of one subset of matched sets (all exits, or one exit type)."""
    clusters = pd.Index(sorted(part["rm_id"].unique()))
    exp, ctl = part[part["role"] == "exposed"], part[part["role"] == "control"]
    de, re_ = _cluster_tables(exp, clusters, hmax)
    dc, rc = _cluster_tables(ctl, clusters, hmax)
    f1, f0 = _km_curve(de.sum(0), re_.sum(0)), _km_curve(dc.sum(0), rc.sum(0))
    boot = None
    if ratios and len(clusters) >= MIN_CLUSTERS:
        c = rng.multinomial(len(clusters), np.full(len(clusters), 1 / len(clusters)), size=n_boot).astype(float)
        boot = (_km_curve(c @ de, c @ re_), _km_curve(c @ dc, c @ rc))
    rows = []
    for h in horizons:
        e1, e0 = f1[h - 1], f0[h - 1]
        churned = part["churn_day"].le(np.fmin(part["censor_day"].fillna(np.inf), h))
        row = {"horizon_days": h, "exiting_rms": len(clusters), "exposed": len(exp),
               "exposed_churned": int(churned[exp.index].sum()), "exposed_churn": e1 if len(exp) else np.nan,
               "exposed_lower": np.nan, "exposed_upper": np.nan, "controls": len(ctl),
               "controls_churned": int(churned[ctl.index].sum()),
               "controls_censored": int((ctl["censor_day"].lt(h) & ~churned[ctl.index]).sum()),
               "controls_churn": e0 if len(ctl) else np.nan, "controls_lower": np.nan, "controls_upper": np.nan,
               "risk_difference": np.nan, "rd_lower": np.nan, "rd_upper": np.nan,
               "risk_ratio": np.nan, "rr_lower": np.nan, "rr_upper": np.nan}  # fmt: skip
        if ratios:
            with np.errstate(divide="ignore", invalid="ignore"):
                row["risk_difference"] = e1 - e0
                row["risk_ratio"] = e1 / e0 if e0 > 0 else (np.inf if e1 > 0 else np.nan)
                if boot is not None:
                    b1, b0 = boot[0][:, h - 1], boot[1][:, h - 1]
                    rr = np.where(b0 > 0, b1 / np.where(b0 > 0, b0, 1), np.where(b1 > 0, np.inf, np.nan))
                    row["exposed_lower"], row["exposed_upper"] = _quantiles(b1, alpha)
                    row["controls_lower"], row["controls_upper"] = _quantiles(b0, alpha)
                    row["rd_lower"], row["rd_upper"] = _quantiles(b1 - b0, alpha)
                    row["rr_lower"], row["rr_upper"] = _quantiles(rr, alpha)
        rows.append(row)
    return rows


def turnover_churn_comparison(source: Source, params: Params | None = None, *, month: str,
                              branch: str | None = None, horizons: tuple[int, ...] = (90, 180), seed: int = 0,
                              controls_per_exposed: int = 4, n_boot: int = 2000,
                              alpha: float = 0.05) -> TurnoverComparison:  # fmt: skip
    """Churn within 90 and 180 days after the RM's exit versus comparable customers whose RM stayed.

    The design (time zero at the exit date, exact matching on branch, tier
    and tenure band, controls censored when their own RM leaves, intervals
    clustered by RM) is described in the module docstring and in
    ``docs/decisions.md``.  The cohort is the exits dated in the 12 months
    ending ``max(horizons)`` days before the month's end, so every horizon
    is fully observed; only data dated up to the month's end is read.

    Parameters
    ----------
    source : Source
        A loaded calendar source with ``relationship_managers`` and
        ``rm_assignments``.
    params : Params, optional
        ``windows.rm_turnover_days`` (a control's RM must not have left in
        that many days before the exit), ``min_cell_size`` (fewer exposed
        customers than this: counts only, no differences or ratios), tiers
        and the churn definition.
    month : str
        The report month ``YYYY-MM``.
    branch : str, optional
        Keep the customers of this branch (default: the whole bank).
    horizons : tuple of int
        Days after the exit (default 90 and 180).
    seed : int
        Seeds the control sampling and the bootstrap: the same inputs and
        seed give the same result.
    controls_per_exposed : int
        Controls drawn for each exposed customer (fewer when fewer are
        eligible).
    n_boot : int
        Bootstrap replicates (resampling exiting RMs).
    alpha : float
        1 − the interval's coverage.

    Returns
    -------
    TurnoverComparison
        Matched sets, the summary per exit type and horizon, the curves and
        caveats.

    Raises
    ------
    InputError
        A flat extract, the RM tables are missing, the month's end is after
        the extract's as-of date, or no exit can have a fully observed
        horizon within the data.

    Examples
    --------
    >>> res = turnover_churn_comparison(src, month="2026-10")  # doctest: +SKIP
    >>> res.summary[["exit_type", "horizon_days", "exposed_churn", "controls_churn", "risk_ratio"]]  # doctest: +SKIP
    """
    _need_rm(source)
    params = params or Params()
    horizons = tuple(sorted({int(h) for h in horizons}))
    if not horizons or horizons[0] < 1:
        raise InputError(f"horizons must be positive numbers of days, got {horizons}")
    if controls_per_exposed < 1:
        raise InputError(f"controls_per_exposed must be at least 1, got {controls_per_exposed}")
    hmax = horizons[-1]
    earliest, latest, last = _exit_window(month, hmax, source.observation_start)
    if latest.date() < source.observation_start:
        raise InputError(f"no RM exit before {latest:%Y-%m-%d} has a fully observed {hmax}-day horizon within "
                         f"the data (observation start {source.observation_start})")  # fmt: skip
    exposed, pool = _exposed_and_pool(source, params, last, earliest, latest, hmax, branch)
    sets, unmatched = _match(exposed, pool, controls_per_exposed, hmax, np.random.default_rng(seed))
    caveats: list[str] = []
    if exposed.empty:
        caveats.append(f"No customer was assigned to an RM who left between {earliest:%Y-%m-%d} and "
                       f"{latest:%Y-%m-%d}.")  # fmt: skip
    if len(unmatched):
        n_un = len(unmatched)
        caveats.append(f"{n_un} customer{'s' if n_un > 1 else ''} whose RM left had no comparable customer "
                       f"(same branch, tier and tenure band, RM stayed): left out of the comparison.")  # fmt: skip
    m = params.min_cell_size
    rows = []
    kinds = ["all", *sorted(sets["exit_type"].unique())]
    for i, kind in enumerate(kinds):
        part = sets if kind == "all" else sets[sets["exit_type"] == kind]
        n_exposed = int((part["role"] == "exposed").sum())
        rng = np.random.default_rng([seed, 1, i])
        for row in _compare(part, horizons, hmax, n_boot, alpha, rng, ratios=n_exposed >= m):
            n_unmatched = len(unmatched) if kind == "all" else int((unmatched["exit_type"] == kind).sum())
            rows.append({"exit_type": kind, **row, "exposed_unmatched": n_unmatched})
    cols = ["exit_type", "horizon_days", "exiting_rms", "exposed", "exposed_unmatched", "exposed_churned",
            "exposed_churn", "exposed_lower", "exposed_upper", "controls", "controls_churned", "controls_censored",
            "controls_churn", "controls_lower", "controls_upper", "risk_difference", "rd_lower", "rd_upper",
            "risk_ratio", "rr_lower", "rr_upper"]  # fmt: skip
    summary = pd.DataFrame(rows, columns=cols)
    n_all = int((sets["role"] == "exposed").sum())
    rms = sets["rm_id"].nunique()
    if 0 < n_all < m:
        caveats.append(f"Fewer than {m} customers whose RM left were matched: counts only, no risk difference "
                       f"or ratio.")  # fmt: skip
    elif n_all >= m and rms < MIN_CLUSTERS:
        caveats.append(f"Only {rms} RM{'s' if rms > 1 else ''} left in the cohort: too few for an interval "
                       f"clustered by RM (at least {MIN_CLUSTERS} are needed), so none is shown.")  # fmt: skip
    elif n_all >= m and rms < 10:
        caveats.append(f"Only {rms} RMs left in the cohort: the intervals, clustered by RM, are rough.")
    small = [k for k in kinds[1:] if 0 < int(((sets["exit_type"] == k) & (sets["role"] == "exposed")).sum()) < m]
    if n_all >= m and small:
        caveats.append(f"Exit types with fewer than {m} matched customers ({', '.join(small)}): counts only.")
    few = [k for k in kinds[1:] if k not in small and sets.loc[sets["exit_type"] == k, "rm_id"].nunique() < MIN_CLUSTERS]
    if rms >= MIN_CLUSTERS and few:
        caveats.append(f"Exit types with fewer than {MIN_CLUSTERS} exiting RMs ({', '.join(few)}): no interval.")
    clusters = pd.Index(sorted(sets["rm_id"].unique()))
    de, re_ = _cluster_tables(sets[sets["role"] == "exposed"], clusters, hmax)
    dc, rc = _cluster_tables(sets[sets["role"] == "control"], clusters, hmax)
    curves = pd.DataFrame({"day": np.arange(hmax + 1),
                           "exposed": np.r_[0.0, _km_curve(de.sum(0), re_.sum(0))],
                           "controls": np.r_[0.0, _km_curve(dc.sum(0), rc.sum(0))]})  # fmt: skip
    return TurnoverComparison(sets, summary, curves, unmatched, horizons, earliest, latest, controls_per_exposed,
                              alpha, caveats)  # fmt: skip


def _km_quantile(time: np.ndarray, event: np.ndarray, q: float) -> float:
    """Smallest event time at which the Kaplan–Meier ``1 - S`` reaches ``q`` (missing when it does not)."""
    time, event = np.asarray(time, dtype=float), np.asarray(event, dtype=bool)
    times = np.unique(time[event])
    if not len(times):
        return np.nan
    d = np.array([(event & (time == t)).sum() for t in times], dtype=float)
    n = np.array([(time >= t).sum() for t in times], dtype=float)
    reached = np.nonzero(1 - np.cumprod(1 - d / n) >= q - 1e-12)[0]
    return float(times[reached[0]]) if len(reached) else np.nan


def orphaned_customers(source: Source, params: Params | None = None, *, month: str,
                       branch: str | None = None) -> pd.DataFrame:  # fmt: skip
    """Customers orphaned by RM exits in the month and in the 12 months to its end, and their handover gaps.

    A customer is counted when assigned to the exiting RM on the exit date
    (:func:`crmresearch.timelines.rm_exposure.handovers`) and still a customer after
    that day.  Only data dated up to the month's end is read: a handover
    after it is not yet known.

    The handover gap (``next assignment − exit date``, days) only
    *describes* how fast customers were handed over.  It is never used to
    group churn: a customer's gap is known only once it ends, so a group of
    "long gaps" would consist of customers who had to stay to have one
    (immortal time).  Churn by days orphaned *so far* is
    :func:`orphaned_churn_rates`.  The median and 75th percentile of the gap
    are Kaplan–Meier estimates in which customers still orphaned at the
    month's end are censored there, and customers who churned while
    orphaned at their churn date; the simple median of the completed gaps
    would leave out the longest, still open ones.  They are missing when
    not reached.  Exits before the observation start count only customers
    still in follow-up at it.

    Parameters
    ----------
    source : Source
        A loaded calendar source with the RM tables.
    params : Params, optional
        The churn definition.
    month : str
        The report month ``YYYY-MM``.
    branch : str, optional
        Keep this branch's customers (default: the whole bank).

    Returns
    -------
    DataFrame
        Per ``period`` (``month``, ``last_12_months``) and ``exit_type``
        (``all`` first): ``rms`` (exiting RMs with such customers),
        ``customers_orphaned, with_new_rm`` (a new RM by the month's end),
        ``median_gap_days, p75_gap_days, churned_while_orphaned,
        still_orphaned`` (no new RM and still a customer at the month's end).

    Examples
    --------
    >>> orphaned_customers(src, month="2026-10", branch="B001")  # doctest: +SKIP
    """
    _need_rm(source)
    first, last = month_bounds(month)
    ctx = context(source, params, last)
    cust, _ = materialize(source, ctx)
    fu = ctx.con.execute(f"SELECT customer_id, branch_id, end_date, event FROM {cust}").df()
    h = handovers(ctx).merge(fu, on="customer_id")
    if branch is not None:
        h = h[h["branch_id"] == branch]
    for c in ("exit_date", "next_start", "end_date"):
        h[c] = pd.to_datetime(h[c])
    end = pd.Timestamp(last)
    year_start = end - pd.DateOffset(months=12) + pd.Timedelta(days=1)
    still_customer = ~h["event"].astype(bool) | (h["end_date"] > h["exit_date"])  # after the exit day
    h = h[still_customer & (h["exit_date"] >= year_start)].copy()
    h["exit_type"] = h["exit_type"].fillna("unknown")
    churn = h["end_date"].where(h["event"].astype(bool))
    h["handed_over"] = h["next_start"].notna() & ~(churn < h["next_start"])
    h["churned_orphaned"] = churn.notna() & ~h["handed_over"]
    cens = np.where(h["churned_orphaned"], (churn - h["exit_date"]).dt.days, (end - h["exit_date"]).dt.days)
    h["time"] = np.where(h["handed_over"], h["handover_gap_days"], cens)
    rows = []
    kinds = ["all", *sorted(h["exit_type"].unique())]
    for period, part in (("month", h[h["exit_date"] >= pd.Timestamp(first)]), ("last_12_months", h)):
        for kind in kinds:
            p = part if kind == "all" else part[part["exit_type"] == kind]
            ev = p["handed_over"].to_numpy()
            rows.append({"period": period, "exit_type": kind, "rms": int(p["rm_id"].nunique()),
                         "customers_orphaned": len(p), "with_new_rm": int(ev.sum()),
                         "median_gap_days": _km_quantile(p["time"], ev, 0.5),
                         "p75_gap_days": _km_quantile(p["time"], ev, 0.75),
                         "churned_while_orphaned": int(p["churned_orphaned"].sum()),
                         "still_orphaned": int((~p["handed_over"] & ~p["churned_orphaned"]).sum())})  # fmt: skip
    return pd.DataFrame(rows)
