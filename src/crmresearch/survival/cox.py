"""Survival models for whole banks: an exact Cox model fitted on aggregated risk sets.

:class:`TimeVaryingCox` fits the same model as lifelines'
``CoxTimeVaryingFitter`` (Cox partial likelihood with Efron's handling of
ties, counting-process episodes ``(start, stop]``, optional strata) and gives
the same coefficients and standard errors, but it does not loop over
subjects or event times in Python.  It uses the fact that the partial
likelihood depends on the data only through, at every distinct event time
``t`` of each stratum,

* ``r[p, t]``: how many episodes with covariate pattern ``p`` are at risk
  (``start < t <= stop``), and
* ``d[p, t]``: how many of them have their event at ``t``.

Covariates of a churn model are discrete (product counts, flags, tiers,
segments), so a million customers' ten million episodes compress into a few
thousand patterns; the likelihood, gradient and Hessian are then a handful
of sparse products with the risk sets' changes (at most two per episode:
where it enters and where it leaves) and cumulative sums over the event
times, never a patterns × event times matrix.  No time grid or
approximation is involved: event times are used exactly as they are, so the
estimates equal lifelines' to numerical precision
(``tests/survival/test_cox.py`` checks |Δ log HR| < 1e-6; the issue asks for 0.01).

Continuous covariates work too but compress less (each distinct value is a
pattern); band them first when there are many distinct values.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse, stats

from crmresearch.core.jsonsafe import json_records

__all__ = ["ConvergenceError", "CoxResults", "TimeVaryingCox"]


class ConvergenceError(RuntimeError):
    """Newton-Raphson did not converge (e.g. a covariate separates events completely).

    Examples
    --------
    A covariate that repeats another one cannot be told apart from it:

    >>> ep = pd.DataFrame({"start": 0, "stop": [5, 8, 12, 3, 9], "event": [1, 0, 1, 1, 0],
    ...                    "x": [1, 0, 0, 1, 1]})
    >>> TimeVaryingCox().fit(ep.assign(x_again=ep["x"]), ["x", "x_again"])
    Traceback (most recent call last):
    ...
    crmresearch.survival.cox.ConvergenceError: singular information matrix: a covariate is constant or
    collinear with others
    """


@dataclass
class _Stratum:
    patterns: np.ndarray  # (P_s,) indices of the patterns that occur in this stratum
    times: np.ndarray  # distinct event times, ascending (T)
    # (P, T) the changes of the risk set: +1 at the first event time an episode is at risk, -1 at the
    # first after it; the episodes of pattern p at risk at time t, r[p, t], are its cumulative sum over
    # t.  Sparse (at most two entries per episode) where r is dense: patterns x event times grows with
    # every covariate, the episodes do not.
    delta: sparse.csr_matrix
    deaths: sparse.csr_matrix  # (P, T) events of each pattern at each event time (sparse: few per time)
    d_tot: np.ndarray  # (T,) events per time
    d_pat: np.ndarray  # (P,) events per pattern
    pair_t: np.ndarray  # (E,) Efron pairs: time index
    pair_a: np.ndarray  # (E,) Efron pairs: l / d

    def at_risk(self, v: np.ndarray) -> np.ndarray:
        """``v @ r``: a weight per pattern (P,) or per pattern and column (P, k) summed over the risk sets (T, ...)."""
        return np.cumsum(np.asarray(self.delta.T @ v), axis=0)

    def over_times(self, c: np.ndarray) -> np.ndarray:
        """``r @ c``: a value per event time (T,) summed over the times each pattern is at risk (P,)."""
        return self.delta @ np.cumsum(c[::-1])[::-1]


def _patterns(df: pd.DataFrame, covariates: Sequence[str], reference: dict[str, object]
              ) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, object]]:  # fmt: skip
    """Compress rows into covariate patterns.

    Returns the pattern of every row, the design matrix of the patterns
    (numeric and boolean columns as they are; text or categorical columns as
    indicators against a reference level: the most frequent one, or
    ``reference[column]``), the design's column names and the references used.
    Hash-based (``pandas.factorize``): linear in the number of rows.
    """
    n = len(df)
    key = np.zeros(n, dtype=np.int64)
    level_counts: dict[str, pd.Series] = {}
    for c in covariates:
        s = df[c]
        codes, uniques = pd.factorize(s, sort=True)
        if (codes < 0).any():
            raise ValueError(f"covariate {c!r} has {int((codes < 0).sum()):,} missing values; "
                             "fill or drop them before fitting")  # fmt: skip
        if not (pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s)):
            level_counts[c] = pd.Series(np.bincount(codes, minlength=len(uniques)), index=uniques)
        key, _ = pd.factorize(key * len(uniques) + codes)  # stays below n: no overflow
    pattern_of = np.asarray(key, dtype=np.int64)
    n_pat = int(pattern_of.max()) + 1 if n else 0
    first = np.full(n_pat, n, dtype=np.int64)
    np.minimum.at(first, pattern_of, np.arange(n))
    rows = df.iloc[first][list(covariates)]
    cols: list[np.ndarray] = []
    names: list[str] = []
    refs: dict[str, object] = {}
    for c in covariates:
        if c not in level_counts:
            cols.append(rows[c].to_numpy(dtype=float))
            names.append(c)
            continue
        counts = level_counts[c]
        ref = reference.get(c, counts.idxmax())
        if ref not in counts.index:
            raise ValueError(f"reference level {ref!r} of {c!r} does not occur; levels: {list(counts.index)}")
        refs[c] = ref
        for level in sorted(counts.index, key=str):
            if level != ref:
                cols.append((rows[c] == level).to_numpy(dtype=float))
                names.append(f"{c}[{level}]")
    design = np.column_stack(cols) if cols else np.zeros((n_pat, 0))
    return pattern_of, design, names, refs


def _check_strata(df: pd.DataFrame, strata: Sequence[str]) -> None:
    """Every strata column exists and has no missing value: a row without a stratum has no baseline hazard."""
    absent = [c for c in strata if c not in df.columns]
    if absent:
        raise ValueError(f"strata column(s) {', '.join(map(repr, absent))} not in the data "
                         f"(columns: {', '.join(map(str, df.columns))})")  # fmt: skip
    for c in strata:
        n = int(df[c].isna().sum())
        if n:
            raise ValueError(f"strata column {c!r} has missing values in {n:,} of {len(df):,} rows: every row "
                             "needs a stratum (fill them, or drop those rows, before fitting)")  # fmt: skip


class TimeVaryingCox:
    """Cox proportional-hazards model on counting-process episodes (exact, Efron ties).

    Parameters
    ----------
    alpha : float
        1 - confidence level of the intervals (default 0.05: 95% intervals).
    max_iter : int
        Newton-Raphson iterations at most.
    tol : float
        Convergence: largest absolute change of a coefficient.

    Attributes
    ----------
    params_ : pandas.Series
        Coefficients (log hazard ratios), after :meth:`fit`.
    summary : pandas.DataFrame
        ``coef, exp(coef), se(coef), z, p, coef lower/upper 95%, exp(coef) lower/upper 95%``
        (lifelines' column names), one row per term.

    Examples
    --------
    >>> from crmresearch.survival.cox import TimeVaryingCox
    >>> m = TimeVaryingCox().fit(episodes, ["n_products", "rm_turnover_exposed", "tier"],
    ...                          strata=["branch_id"])  # doctest: +SKIP
    >>> m.summary[["exp(coef)", "p"]]  # doctest: +SKIP
    """

    def __init__(self, alpha: float = 0.05, max_iter: int = 50, tol: float = 1e-9):
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, covariates: Sequence[str], *, start_col: str = "start",
            stop_col: str = "stop", event_col: str = "event", strata: Sequence[str] | None = None,
            reference: dict[str, object] | None = None) -> TimeVaryingCox:  # fmt: skip
        """Fit the model.

        Parameters
        ----------
        df : DataFrame
            Episodes: one row per (subject, spell), ``(start, stop]`` with
            ``stop > start``; ``event`` 1 on the spell that ends in the event.
        covariates : sequence of str
            Columns of ``df``.  Numeric and boolean columns enter as they are;
            text or categorical columns become indicators against a reference
            level (the most frequent, or ``reference[column]``).
        strata : sequence of str, optional
            Columns whose combinations get their own baseline hazard.
        start_col, stop_col, event_col : str
            Names of the episode columns (default ``start``, ``stop``, ``event``).
        reference : dict, optional
            Reference level per categorical covariate.

        Returns
        -------
        TimeVaryingCox
            ``self``, fitted.

        Raises
        ------
        ValueError
            An episode has ``stop <= start``, a covariate has missing values,
            a strata column is missing or has missing values (the message names
            the column and how many rows), or there is no event.
        ConvergenceError
            The information matrix is singular or Newton-Raphson does not converge.

        Examples
        --------
        >>> ep = pd.DataFrame({"start": 0, "stop": [5, 8, 12, 3, 9, 15, 4, 7, 11, 6],
        ...                    "event": [1, 0, 1, 1, 1, 0, 1, 0, 1, 1],
        ...                    "x": [1, 1, 0, 1, 0, 0, 0, 1, 0, 1]})
        >>> m = TimeVaryingCox().fit(ep, ["x"])
        >>> m.params_.round(3)
        x    1.231
        Name: coef, dtype: float64
        >>> m.fit(episodes, ["n_products", "tier"], strata=["branch_id"],
        ...       reference={"tier": "mass"})  # doctest: +SKIP
        """
        pattern_of, patterns, names, refs = _patterns(df, covariates, reference or {})
        start = df[start_col].to_numpy(dtype=float)
        stop = df[stop_col].to_numpy(dtype=float)
        event = df[event_col].to_numpy().astype(bool)
        if np.any(stop <= start):
            raise ValueError(f"{int((stop <= start).sum()):,} episodes have stop <= start")
        if strata:
            _check_strata(df, strata)
            stratum_of = df.groupby(list(strata), sort=True, observed=True).ngroup().to_numpy()
        else:
            stratum_of = np.zeros(len(df), dtype=np.int64)
        P = len(patterns)
        order = np.argsort(stratum_of, kind="stable")
        bounds = np.searchsorted(stratum_of[order], np.arange(stratum_of.max() + 2))
        strata_data = []
        for s in range(len(bounds) - 1):
            idx = order[bounds[s]:bounds[s + 1]]
            st = self._stratum(start[idx], stop[idx], event[idx], pattern_of[idx])
            if st is not None:
                strata_data.append(st)
        if not strata_data:
            raise ValueError("no events: nothing to fit")

        beta = np.zeros(patterns.shape[1])
        ll, grad, hess = self._derivatives(beta, patterns, strata_data)
        n_iter = 0
        for _ in range(self.max_iter):
            n_iter += 1
            try:
                step = np.linalg.solve(-hess, grad)
            except np.linalg.LinAlgError as exc:
                raise ConvergenceError("singular information matrix: a covariate is constant or "
                                       "collinear with others") from exc  # fmt: skip
            new = beta + step
            ll_new, g_new, h_new = self._derivatives(new, patterns, strata_data)
            halvings = 0
            while ll_new < ll - 1e-10 and halvings < 30:  # step halving keeps the likelihood rising
                step /= 2
                new = beta + step
                ll_new, g_new, h_new = self._derivatives(new, patterns, strata_data)
                halvings += 1
            beta, ll, grad, hess = new, ll_new, g_new, h_new
            if np.max(np.abs(step)) < self.tol:
                break
        else:
            raise ConvergenceError(f"no convergence after {self.max_iter} iterations "
                                   f"(last step {np.max(np.abs(step)):.2e}); a covariate may separate "
                                   "the events")  # fmt: skip
        self._patterns, self._strata = patterns, strata_data  # kept for diagnostics
        cov = np.linalg.inv(-hess)
        self.params_ = pd.Series(beta, index=names, name="coef")
        self.variance_matrix_ = pd.DataFrame(cov, index=names, columns=names)
        self.log_likelihood_ = float(ll)
        self.n_iter_ = n_iter
        self.references_ = refs
        self.covariates_ = list(covariates)
        self.stratified_ = bool(strata)
        self.n_episodes_ = len(df)
        self.n_events_ = int(event.sum())
        self.n_patterns_ = P
        self.n_event_times_ = int(sum(len(s.times) for s in strata_data))
        self.results_ = CoxResults(self.params_, self.variance_matrix_, self.log_likelihood_, self.alpha,
                                   n_episodes=self.n_episodes_, n_events=self.n_events_, n_patterns=P,
                                   n_event_times=self.n_event_times_, n_iter=n_iter, references=dict(refs),
                                   covariates=list(covariates), stratified=bool(strata))  # fmt: skip
        return self

    @staticmethod
    def _stratum(start: np.ndarray, stop: np.ndarray, event: np.ndarray, pattern_global: np.ndarray
                 ) -> _Stratum | None:  # fmt: skip
        times = np.unique(stop[event])
        T = len(times)
        if T == 0:
            return None
        present, pattern = np.unique(pattern_global, return_inverse=True)  # local pattern ids
        pattern = pattern.ravel()
        P = len(present)
        # at risk at t: start < t <= stop  ->  event-time indices [i0, i1)
        i0 = np.searchsorted(times, start, side="right")
        i1 = np.searchsorted(times, stop, side="right")
        keep = i1 > i0
        # at risk over the event-time indices [i0, i1): +1 at i0 and -1 at i1 (none at T, past the last time);
        # their cumulative sum along the times is r (_Stratum.at_risk), which is never formed
        ends = keep & (i1 < T)
        rows = np.concatenate([pattern[keep], pattern[ends]])
        cols = np.concatenate([i0[keep], i1[ends]])
        step = np.concatenate([np.ones(int(keep.sum())), -np.ones(int(ends.sum()))])
        delta = sparse.csr_matrix((step, (rows, cols)), shape=(P, T))  # duplicates summed
        delta.sum_duplicates()
        delta.eliminate_zeros()  # an episode that enters where another of its pattern leaves
        del rows, cols, step
        ti = np.searchsorted(times, stop[event])
        deaths = sparse.csr_matrix((np.ones(len(ti)), (pattern[event], ti)), shape=(P, T))  # duplicates summed
        deaths.sum_duplicates()
        d_tot = np.asarray(deaths.sum(axis=0)).ravel()
        d_pat = np.asarray(deaths.sum(axis=1)).ravel()
        counts = d_tot.astype(np.int64)
        pair_t = np.repeat(np.arange(T), counts)
        l_idx = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        pair_a = l_idx / np.repeat(d_tot, counts)
        return _Stratum(present, times, delta, deaths, d_tot, d_pat, pair_t, pair_a)

    @staticmethod
    def _derivatives(beta: np.ndarray, patterns: np.ndarray, strata: list[_Stratum]
                     ) -> tuple[float, np.ndarray, np.ndarray]:  # fmt: skip
        """Efron log partial likelihood, its gradient and Hessian, summed over strata."""
        k = len(beta)
        eta_all = patterns @ beta
        shift = eta_all.max()  # exp(eta - shift): the likelihood is invariant to a common factor
        ll, grad, hess = 0.0, np.zeros(k), np.zeros((k, k))
        for s in strata:
            X, eta = patterns[s.patterns], eta_all[s.patterns]
            w = np.exp(eta - shift)
            wX = w[:, None] * X
            S0, E0 = s.at_risk(w), s.deaths.T @ w  # (T,) at risk and events, weighted
            S1, E1 = s.at_risk(wX), s.deaths.T @ wX  # (T, k)
            den = S0[s.pair_t] - s.pair_a * E0[s.pair_t]  # Efron denominators, one per event
            inv = 1.0 / den
            T = len(s.times)

            def per_time(weights: np.ndarray, T: int = T, s: _Stratum = s) -> np.ndarray:
                return np.bincount(s.pair_t, weights=weights, minlength=T)

            c0, c1 = per_time(inv), per_time(s.pair_a * inv)
            q0, q1, q2 = per_time(inv * inv), per_time(s.pair_a * inv * inv), per_time(s.pair_a**2 * inv * inv)
            d_pat = s.d_pat  # events per pattern
            ll += float(d_pat @ eta - np.log(den).sum() - shift * len(den))
            grad += d_pat @ X - (c0 @ S1 - c1 @ E1)
            # sum_t (c0_t S2_t - c1_t E2_t) through the patterns: X' diag(w * (R c0 - D c1)) X
            a0 = w * (s.over_times(c0) - s.deaths @ c1)
            hess -= (X * a0[:, None]).T @ X
            hess += (np.einsum("t,ti,tj->ij", q0, S1, S1) - np.einsum("t,ti,tj->ij", q1, S1, E1)
                     - np.einsum("t,ti,tj->ij", q1, E1, S1) + np.einsum("t,ti,tj->ij", q2, E1, E1))  # fmt: skip
        return ll, grad, hess

    # ------------------------------------------------------------------ prediction
    def design(self, df: pd.DataFrame) -> pd.DataFrame:
        """The model's design matrix for new rows (same columns and reference levels as the fit).

        Parameters
        ----------
        df : DataFrame
            Rows with the fitted covariates' columns.

        Returns
        -------
        DataFrame
            One float column per term of :attr:`params_` (indicators for the
            levels of categorical covariates), indexed like ``df``.

        Examples
        --------
        >>> m.design(episodes.tail(3))  # doctest: +SKIP
        """
        cols = {}
        for name in self.params_.index:
            if name.endswith("]") and "[" in name:
                c, level = name[:-1].split("[", 1)
                cols[name] = (df[c].astype(str) == level).astype(float).to_numpy()
            else:
                cols[name] = df[name].astype(float).to_numpy()
        return pd.DataFrame(cols, index=df.index)

    def predict_log_partial_hazard(self, df: pd.DataFrame) -> pd.Series:
        """``x · beta`` for each row (uncentred, on the scale of :meth:`baseline_cumulative_hazard`).

        Parameters
        ----------
        df : DataFrame
            Rows with the fitted covariates' columns.

        Returns
        -------
        Series
            The log partial hazard of each row, indexed like ``df``.

        Examples
        --------
        >>> m.predict_log_partial_hazard(current_episodes)  # doctest: +SKIP
        """
        return pd.Series(self.design(df).to_numpy() @ self.params_.to_numpy(), index=df.index)

    def baseline_cumulative_hazard(self) -> pd.DataFrame:
        """Breslow's baseline cumulative hazard ``H0(t)`` at every event time (x = 0).

        ``H0(t) = sum over event times s <= t of d_s / sum_{at risk at s} exp(x · beta)``
        (lifelines' estimator).  Only for unstratified models.

        Returns
        -------
        DataFrame
            ``time, cumulative_hazard``.

        Examples
        --------
        >>> m.baseline_cumulative_hazard().tail(1)  # doctest: +SKIP
        """
        if self.stratified_:
            raise ValueError("the baseline hazard of a stratified model differs by stratum; "
                             "fit without strata to predict")  # fmt: skip
        if self._strata is None:
            return self._slim["baseline"].copy()
        (s,) = self._strata
        w = np.exp(self._patterns[s.patterns] @ self.params_.to_numpy())
        return pd.DataFrame({"time": s.times, "cumulative_hazard": np.cumsum(s.d_tot / s.at_risk(w))})

    def predict_churn_probability(self, df: pd.DataFrame, tenure: np.ndarray | pd.Series,
                                  horizon: float) -> pd.Series:  # fmt: skip
        """Probability of the event within ``horizon`` after ``tenure``, covariates held as now.

        ``1 - exp(-(H0(tenure + horizon) - H0(tenure)) * exp(x · beta))``: the
        baseline accounts for where each customer is in their lifecycle.

        Parameters
        ----------
        df : DataFrame
            Rows with the fitted covariates' columns (their values now).
        tenure : array or Series
            Each row's current time on the model's time scale (tenure in days).
        horizon : float
            Length of the window, on the same scale.

        Returns
        -------
        Series
            Probabilities, indexed like ``df``.

        Raises
        ------
        ValueError
            The model was fitted with strata.

        Examples
        --------
        >>> m.predict_churn_probability(now, now["tenure_days"], 90)  # doctest: +SKIP

        On a toy model (time in days):

        >>> ep = pd.DataFrame({"start": 0, "stop": [5, 8, 12, 3, 9, 15, 4, 7, 11, 6],
        ...                    "event": [1, 0, 1, 1, 1, 0, 1, 0, 1, 1],
        ...                    "x": [1, 1, 0, 1, 0, 0, 0, 1, 0, 1]})
        >>> m = TimeVaryingCox().fit(ep, ["x"])
        >>> m.predict_churn_probability(pd.DataFrame({"x": [0, 1]}), [2, 2], 3).round(3)
        0    0.144
        1    0.412
        dtype: float64
        """
        base = self.baseline_cumulative_hazard()
        t = np.asarray(tenure, dtype=float)

        def H(x: np.ndarray) -> np.ndarray:
            i = np.searchsorted(base["time"].to_numpy(), x, side="right")
            return np.r_[0.0, base["cumulative_hazard"].to_numpy()][i]

        dH = H(t + horizon) - H(t)
        return pd.Series(1 - np.exp(-dH * np.exp(self.predict_log_partial_hazard(df).to_numpy())), index=df.index)

    # ------------------------------------------------------------------ diagnostics
    def concordance(self) -> float:
        """Harrell's concordance over risk sets, valid with time-varying covariates.

        Every event at time ``t`` is paired with every episode at risk at ``t``
        that does not have its event at ``t``; both are scored with their
        covariates *at t* (their episode covering ``t``).  A pair is concordant
        when the one who churned had the higher risk score; ties count one half.
        With time-fixed covariates and no tied times this is Harrell's C.

        Returns
        -------
        float
            Between 0 and 1; 0.5 is no better than chance.

        Examples
        --------
        >>> ep = pd.DataFrame({"start": 0, "stop": [5, 8, 12, 3, 9, 15, 4, 7, 11, 6],
        ...                    "event": [1, 0, 1, 1, 1, 0, 1, 0, 1, 1],
        ...                    "x": [1, 1, 0, 1, 0, 0, 0, 1, 0, 1]})
        >>> m = TimeVaryingCox().fit(ep, ["x"])
        >>> m.concordance()
        0.625
        """
        if self._strata is None:
            return self._slim["concordance"]
        eta = self._patterns @ self.params_.to_numpy()
        conc = ties = pairs = 0.0
        for s in self._strata:
            e = eta[s.patterns]
            levels, rank = np.unique(np.round(e, 12), return_inverse=True)
            rank = rank.ravel()
            # at risk and not failing at t, summed over the patterns of each score level: (levels, T)
            group = sparse.csr_matrix((np.ones(len(rank)), (rank, np.arange(len(rank)))), shape=(len(levels), len(rank)))
            by_rank = np.cumsum((group @ s.delta).toarray(), axis=1) - (group @ s.deaths).toarray()
            below = np.cumsum(by_rank, axis=0)
            below -= by_rank  # at risk with a lower score
            d = s.deaths.tocoo()  # the events only: (pattern, time, count)
            conc += float((d.data * below[rank[d.row], d.col]).sum())
            ties += float((d.data * by_rank[rank[d.row], d.col]).sum())
            pairs += float((s.d_tot * (s.at_risk(np.ones(len(s.patterns))) - s.d_tot)).sum())
        return (conc + 0.5 * ties) / pairs if pairs else float("nan")

    def ph_check(self, early_days: float = 91.0, late_days: float = 1096.0, max_change: float = 0.2) -> pd.DataFrame:
        """Proportional-hazards check from scaled Schoenfeld residuals (Grambsch & Therneau).

        Each coefficient is allowed to drift linearly in log tenure,
        ``beta_k(t) = beta_k + theta_k * (log t - mean)``; ``theta`` is the
        slope of the scaled Schoenfeld residuals on log tenure, computed from
        the aggregated risk sets.  The verdict is judged by size, not by the
        p-value alone (which flags everything in a large bank): the hazard
        ratio at ``early_days`` and at ``late_days`` of tenure are compared and
        the covariate is flagged only when they differ by more than
        ``max_change`` (20%) *and* the test is significant.

        Parameters
        ----------
        early_days, late_days : float
            Tenures (days) at which the hazard ratios are compared (about 3
            months and 3 years).
        max_change : float
            Relative change of the hazard ratio above which a significant
            drift is flagged.

        Returns
        -------
        DataFrame
            ``term, hr, hr_early, hr_late, change, chi2, p, verdict``.

        Examples
        --------
        >>> ep = pd.DataFrame({"start": 0, "stop": [5, 8, 12, 3, 9, 15, 4, 7, 11, 6],
        ...                    "event": [1, 0, 1, 1, 1, 0, 1, 0, 1, 1],
        ...                    "x": [1, 1, 0, 1, 0, 0, 0, 1, 0, 1]})
        >>> m = TimeVaryingCox().fit(ep, ["x"])
        >>> check = m.ph_check()
        >>> check[["term", "p"]].round(2)
          term     p
        0    x  0.81
        >>> check.loc[0, "verdict"]
        'holds: the hazard ratio is about the same early and late in the relationship'
        """
        if self._strata is None:
            if (early_days, late_days, max_change) != (91.0, 1096.0, 0.2):
                raise ValueError("a slim model keeps only the default proportional-hazards check")
            return self._slim["ph_check"].copy()
        beta = self.params_.to_numpy()
        V = self.variance_matrix_.to_numpy()
        eta_all = self._patterns @ beta
        g_all, R_all, d_all = [], [], []
        for s in self._strata:
            X = self._patterns[s.patterns]
            w = np.exp(eta_all[s.patterns] - eta_all.max())
            S0 = s.at_risk(w)
            S1 = s.at_risk(w[:, None] * X)
            R = np.asarray(s.deaths.T @ X) - s.d_tot[:, None] * S1 / S0[:, None]  # Schoenfeld sums per time
            g_all.append(np.log(s.times))
            R_all.append(R)
            d_all.append(s.d_tot)
        g, R, d = np.concatenate(g_all), np.vstack(R_all), np.concatenate(d_all)
        D = d.sum()
        gbar = (d * g).sum() / D
        gc = g - gbar
        sgg = (d * gc**2).sum()
        u = gc @ R  # sum over events of (g - gbar) * residual
        theta = D * (V @ u) / sgg
        chi2 = D * (V @ u) ** 2 / (np.diag(V) * sgg)
        p = stats.chi2.sf(chi2, 1)
        hr_early = np.exp(beta + theta * (np.log(early_days) - gbar))
        hr_late = np.exp(beta + theta * (np.log(late_days) - gbar))
        change = hr_late / hr_early - 1
        flagged = (np.abs(change) > max_change) & (p < 0.05)
        verdict = np.where(
            ~flagged, "holds: the hazard ratio is about the same early and late in the relationship",
            np.where(change > 0, "changes: the association is stronger later in the relationship",
                     "changes: the association is stronger early in the relationship"))  # fmt: skip
        return pd.DataFrame({"term": self.params_.index, "hr": np.exp(beta), "hr_early": hr_early,
                             "hr_late": hr_late, "change": change, "chi2": chi2, "p": p, "verdict": verdict})  # fmt: skip

    def slim(self) -> TimeVaryingCox:
        """A copy without the fitting data, to store or ship to workers.

        The fitted model keeps its risk sets for the diagnostics; a bank's
        can weigh tens of megabytes.  The slim copy keeps the coefficients,
        their covariance, the baseline cumulative hazard (unstratified
        models), the concordance and the default :meth:`ph_check`, computed
        now: every prediction and result method gives the same answer.

        Returns
        -------
        TimeVaryingCox

        Examples
        --------
        >>> m = causes_model(src).slim()  # doctest: +SKIP
        >>> m.concordance(), m.hazard_ratios()  # doctest: +SKIP
        """
        import copy

        out = copy.copy(self)
        out._slim = {"baseline": None if self.stratified_ else self.baseline_cumulative_hazard(),
                     "concordance": self.concordance(), "ph_check": self.ph_check()}  # fmt: skip
        out._patterns = out._strata = None
        return out

    # ------------------------------------------------------------------ results
    @property
    def results(self) -> CoxResults:
        """The fit's results (:class:`CoxResults`), apart from the model that made them.

        Raises
        ------
        ValueError
            The model is not fitted.
        """
        if not hasattr(self, "params_"):
            raise ValueError("the model is not fitted: call fit() first")
        r = getattr(self, "results_", None)
        if r is None:  # a model stored before results_ existed
            r = CoxResults(self.params_, self.variance_matrix_, self.log_likelihood_, self.alpha,
                           n_episodes=self.n_episodes_, n_events=self.n_events_, n_patterns=self.n_patterns_,
                           n_event_times=self.n_event_times_, n_iter=self.n_iter_, references=dict(self.references_),
                           covariates=list(self.covariates_), stratified=self.stratified_)  # fmt: skip
        return r

    @property
    def summary(self) -> pd.DataFrame:
        """Coefficients, hazard ratios, standard errors, z, p and intervals (:attr:`CoxResults.summary`)."""
        return self.results.summary

    def hazard_ratios(self) -> pd.DataFrame:
        """Tidy hazard ratios: ``term, hr, lower, upper, p`` (:meth:`CoxResults.hazard_ratios`).

        Examples
        --------
        >>> causes_model(src).hazard_ratios()  # doctest: +SKIP
        """
        return self.results.hazard_ratios()

    def to_metrics(self) -> list[dict]:
        """The hazard ratios as metrics.json records (:meth:`CoxResults.to_metrics`).

        Examples
        --------
        >>> causes_model(src).to_metrics()[0]  # doctest: +SKIP
        {'term': 'n_products', 'hr': 0.71, 'lower': 0.66, 'upper': 0.77, 'p': 1e-20}
        """
        return self.results.to_metrics()

    def _repr_html_(self) -> str:
        return self.results._repr_html_()

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return "TimeVaryingCox(unfitted)"
        return f"TimeVaryingCox({self.n_events_:,} events)\n{self.summary.round(4).to_string()}"


@dataclass(frozen=True)
class CoxResults:
    """What a fitted :class:`TimeVaryingCox` found, apart from the model (as statsmodels' PHRegResults).

    The model keeps what it needs to predict (the compressed risk sets); the
    results hold the estimates and their uncertainty, and render themselves:
    :attr:`summary` (lifelines' columns), :meth:`hazard_ratios` (tidy),
    :meth:`to_metrics` (metrics.json records).  A report's table of them, in
    either language, is :func:`crmresearch.analyses.causes.causes_summary`.

    Attributes
    ----------
    params : Series
        Coefficients (log hazard ratios), one per term.
    variance : DataFrame
        Their covariance matrix.
    log_likelihood : float
        The log partial likelihood at the estimates.
    alpha : float
        1 - confidence level of the intervals.
    n_episodes, n_events, n_patterns, n_event_times, n_iter : int
        Size of the fit and the Newton-Raphson iterations it took.
    references : dict
        Reference level of every categorical covariate.
    covariates : list of str
    stratified : bool

    Examples
    --------
    >>> ep = pd.DataFrame({"start": 0, "stop": [5, 8, 12, 3, 9, 15, 4, 7, 11, 6],
    ...                    "event": [1, 0, 1, 1, 1, 0, 1, 0, 1, 1],
    ...                    "x": [1, 1, 0, 1, 0, 0, 0, 1, 0, 1]})
    >>> r = TimeVaryingCox().fit(ep, ["x"]).results
    >>> r.n_events, r.to_metrics()[0]["term"], round(r.to_metrics()[0]["hr"], 3)
    (7, 'x', 3.423)
    """

    params: pd.Series
    variance: pd.DataFrame
    log_likelihood: float
    alpha: float = 0.05
    n_episodes: int = 0
    n_events: int = 0
    n_patterns: int = 0
    n_event_times: int = 0
    n_iter: int = 0
    references: dict = field(default_factory=dict)
    covariates: list = field(default_factory=list)
    stratified: bool = False

    @property
    def summary(self) -> pd.DataFrame:
        """Coefficients, hazard ratios, standard errors, z, p and intervals (one row per term).

        Returns
        -------
        DataFrame
            ``coef, exp(coef), se(coef), coef lower/upper 95%, exp(coef) lower/upper 95%, z, p``
            (lifelines' column names), indexed by ``covariate``.
        """
        se = np.sqrt(np.diag(self.variance.to_numpy()))
        coef = self.params.to_numpy()
        z = coef / se
        q = stats.norm.ppf(1 - self.alpha / 2)
        pct = round(100 * (1 - self.alpha))
        out = pd.DataFrame({
            "coef": coef, "exp(coef)": np.exp(coef), "se(coef)": se,
            f"coef lower {pct}%": coef - q * se, f"coef upper {pct}%": coef + q * se,
            f"exp(coef) lower {pct}%": np.exp(coef - q * se), f"exp(coef) upper {pct}%": np.exp(coef + q * se),
            "z": z, "p": 2 * stats.norm.sf(np.abs(z)),
        }, index=self.params.index)  # fmt: skip
        out.index.name = "covariate"
        return out

    def hazard_ratios(self) -> pd.DataFrame:
        """Tidy hazard ratios: ``term, hr, lower, upper, p`` (the metrics.json shape).

        Returns
        -------
        DataFrame
            One row per term; ``lower`` and ``upper`` bound the ``1 - alpha``
            interval.

        Examples
        --------
        >>> ep = pd.DataFrame({"start": 0, "stop": [5, 8, 12, 3, 9, 15, 4, 7, 11, 6],
        ...                    "event": [1, 0, 1, 1, 1, 0, 1, 0, 1, 1],
        ...                    "x": [1, 1, 0, 1, 0, 0, 0, 1, 0, 1]})
        >>> TimeVaryingCox().fit(ep, ["x"]).results.hazard_ratios().round(3)
          term     hr  lower   upper      p
        0    x  3.423  0.355  33.025  0.287
        """
        s = self.summary
        pct = round(100 * (1 - self.alpha))
        return pd.DataFrame({"term": s.index, "hr": s["exp(coef)"].to_numpy(),
                             "lower": s[f"exp(coef) lower {pct}%"].to_numpy(),
                             "upper": s[f"exp(coef) upper {pct}%"].to_numpy(), "p": s["p"].to_numpy()})  # fmt: skip

    def to_metrics(self) -> list[dict]:
        """The hazard ratios as metrics.json records (``term, hr, lower, upper, p``; JSON-safe numbers).

        Returns
        -------
        list of dict

        Examples
        --------
        >>> ep = pd.DataFrame({"start": 0, "stop": [5, 8, 12, 3, 9, 15, 4, 7, 11, 6],
        ...                    "event": [1, 0, 1, 1, 1, 0, 1, 0, 1, 1],
        ...                    "x": [1, 1, 0, 1, 0, 0, 0, 1, 0, 1]})
        >>> rec = TimeVaryingCox().fit(ep, ["x"]).results.to_metrics()[0]
        >>> rec["term"], round(rec["hr"], 3), round(rec["p"], 3)
        ('x', 3.423, 0.287)
        """
        return json_records(self.hazard_ratios(), ["term", "hr", "lower", "upper", "p"])

    def _repr_html_(self) -> str:
        # term names come from the data's levels: escaped, as the caption
        caption = (f"Cox model (Efron ties, exact aggregated risk sets): {self.n_episodes:,} episodes, "
                   f"{self.n_events:,} events, {self.n_patterns:,} covariate patterns, "
                   f"{self.n_event_times:,} event times; log-likelihood {self.log_likelihood:.2f}")  # fmt: skip
        style = self.summary.style.format(lambda v: f"{v:.4g}").format_index(escape="html", axis=0)
        return style.format_index(escape="html", axis=1).set_caption(html.escape(caption)).to_html()

    def __repr__(self) -> str:
        return f"CoxResults({self.n_events:,} events)\n{self.summary.round(4).to_string()}"
