"""The causes model: which covariates are associated with churn, as one Cox model of the bank or a branch.

Time-varying covariates (products held, RM turnover exposure, an escalated
complaint in the last 90 days, dormancy) enter as counting-process episodes
(:func:`crmresearch.survival.episodes.episodes`), so nothing is known before
it happened; a flat extract's columns enter as they are
(:func:`crmresearch.data.flat_covariates.flat_covariates`).  The estimates are
associations, not effects of an intervention.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from crmresearch.core.calendar import DAYS_PER_MONTH
from crmresearch.core.errors import InputError
from crmresearch.core.params import Params
from crmresearch.data.capabilities import not_on_flat
from crmresearch.data.contract import Source
from crmresearch.data.flat_covariates import LEAKAGE_PREFIX, MAX_EVENT_CORRELATION, flat_covariates
from crmresearch.survival.cox import ConvergenceError, TimeVaryingCox
from crmresearch.survival.episodes import COVARIATES, episode_frame
from crmresearch.viz.i18n import term_label
from crmresearch.viz.summary import Summary, frame_summary

__all__ = ["CAUSES_COVARIATES", "ConvergenceError", "causes_frame", "causes_model", "causes_summary", "leakage_caveat", "missing_caveats"]

CAUSES_COVARIATES = ["n_products", "rm_turnover_exposed", "complaint_escalated_90d", "dormant", "tier", "segment"]


def leakage_caveat(columns: Sequence[str]) -> list[str]:
    """The caveat of a flat extract's default model that left out columns looking like model scores or the outcome.

    Examples
    --------
    >>> leakage_caveat(["churn_score"])
    ['The causes model leaves out what looks like a model score or leaks the outcome: churn_score (by name, or a rank correlation of at least 0.8 in size with churn); name a column as a covariate to use it.']
    """
    if not columns:
        return []
    return ["The causes model leaves out what looks like a model score or leaks the outcome: "
            f"{', '.join(columns)} (by name, or a rank correlation of at least {MAX_EVENT_CORRELATION:g} in size "
            "with churn); name a column as a covariate to use it."]  # fmt: skip


def missing_caveats(partly: Sequence[str], wholly: Sequence[str]) -> list[str]:
    """The caveats of a default causes model that left out covariates with missing values.

    Parameters
    ----------
    partly : sequence of str
        Covariates left out because some customers (or episodes) have no value.
    wholly : sequence of str
        Covariates left out because no customer has a value (e.g. the table
        they are built from was not supplied).

    Returns
    -------
    list of str
        Zero, one or two English sentences naming the covariates (their
        Chinese is in :data:`crmresearch.viz.caveats.CAVEATS`).

    Examples
    --------
    >>> missing_caveats(["segment"], [])
    ['The causes model leaves out segment: some customers have no value (every covariate of the model needs a value for every customer).']
    """
    out = []
    if partly:
        out.append(f"The causes model leaves out {', '.join(partly)}: some customers have no value (every "
                   "covariate of the model needs a value for every customer).")  # fmt: skip
    if wholly:
        out.append(f"The causes model leaves out {', '.join(wholly)}: no customer has a value.")
    return out



def _flat_causes_model(source: Source, *, branch: str | None, churn_type: str | None,
                       covariates: Sequence[str] | None) -> TimeVaryingCox:  # fmt: skip
    where = f"the flat extract {source.path}"
    data = source.df("customers").drop(columns=["name"], errors="ignore")
    if branch is not None:
        if not (data["branch_id"] == branch).any():
            raise InputError(f"unknown branch {branch!r} in {where}; known: "
                             + ", ".join(sorted(data["branch_id"].unique())[:20]))  # fmt: skip
        data = data[data["branch_id"] == branch].reset_index(drop=True)
    event = data["churned"].astype(bool)
    if churn_type is not None:
        if "churn_type" not in data.columns or data["churn_type"].isna().all():
            raise InputError(f"churn_type={churn_type!r}: {where} records no churn types")
        event = event & (data["churn_type"] == churn_type)
    if not event.any():
        raise InputError(f"{where} has no churned customers{' of type ' + churn_type if churn_type else ''}: "
                         "nothing to model")  # fmt: skip
    selection = flat_covariates(data, covariates, exclude=("branch_id",) if branch else (), source=where)
    used = selection.loc[selection["used"], "covariate"].tolist()
    if not used:
        raise not_on_flat("causes model", source)
    # Tenure days as in the customer table (tenure_months x 30.4375), plus one day: the
    # calendar's convention that the first day of tenure is (0, 1], so that a customer
    # who left with tenure 0 is at risk and churns at 1.  Only the order of the times
    # enters the partial likelihood: the coefficients equal those on tenure in months.
    # (internal column names: an attribute may well be called "start" or "event")
    fit_data = data[used].assign(__start=0.0, __event=event.astype(int).to_numpy(),
                                 __stop=data["tenure_months"].to_numpy(dtype=float) * DAYS_PER_MONTH + 1.0)  # fmt: skip
    model = TimeVaryingCox().fit(fit_data, used, start_col="__start", stop_col="__stop", event_col="__event")
    model.covariate_selection_ = selection
    model.caveats_ = []
    if covariates is None:  # a requested covariate with missing values is an error, never left out
        out = selection[~selection["used"]]
        leaks = out.loc[out["reason"].str.startswith(LEAKAGE_PREFIX), "covariate"].tolist()
        n_missing = {c: int(data[c].isna().sum()) for c in out["covariate"] if c in data.columns and c not in leaks}
        dropped = [c for c, n in n_missing.items() if n]
        model.caveats_ = leakage_caveat(leaks) + missing_caveats([c for c in dropped if n_missing[c] < len(data)],
                                                                 [c for c in dropped if n_missing[c] == len(data)])  # fmt: skip
    return model


def _frame_columns(covariates: Sequence[str], churn_type: str | None) -> list[str]:
    """The episode and customer columns a calendar causes model reads."""
    wanted = list(dict.fromkeys([*CAUSES_COVARIATES, *covariates]))
    return ["start", "stop", "event", *(c for c in wanted if c in COVARIATES), "segment",
            *(["churn_type"] if churn_type is not None else [])]  # fmt: skip


def causes_frame(source: Source, params: Params | None = None, *, as_of: dt.date | None = None,
                 branch: str | None = None, churn_type: str | None = None,
                 covariates: Sequence[str] = ()) -> pd.DataFrame:  # fmt: skip
    """The episodes a calendar causes model reads: times, the default covariates and ``covariates``, the segment.

    Only these columns are read out of the engine
    (:func:`~crmresearch.survival.episodes.episode_frame`); pass the result
    as ``frame`` to :func:`causes_model` (and
    :func:`~crmresearch.analyses.product_coverage.sticky_products`) to fit
    several models on one read.

    Parameters
    ----------
    source, params, as_of, branch, churn_type
        As for :func:`causes_model`.
    covariates : sequence of str
        Episode covariates wanted beside the default ones (e.g. the sticky
        products' indicators).

    Returns
    -------
    DataFrame
        One row per episode, in (customer, start) order.

    Examples
    --------
    >>> ep = causes_frame(src, as_of=dt.date(2026, 10, 31), covariates=STICKY_COVARIATES)  # doctest: +SKIP
    >>> causes_model(src, as_of=dt.date(2026, 10, 31), frame=ep)  # doctest: +SKIP
    """
    cols = _frame_columns(covariates, churn_type)
    customer = [c for c in ("segment", "churn_type") if c in cols]
    return episode_frame(source, params, as_of=as_of, columns=[c for c in cols if c not in customer], branch=branch,
                         customer_columns=customer)  # fmt: skip


def causes_model(source: Source, params: Params | None = None, *, as_of: dt.date | None = None,
                 branch: str | None = None, churn_type: str | None = None,
                 covariates: Sequence[str] | None = None, frame: pd.DataFrame | None = None) -> TimeVaryingCox:  # fmt: skip
    """The multivariable Cox model of why customers leave (``reports.md`` §5).

    Calendar source: the time-varying model.  Covariates (default): product
    count, RM-turnover exposure, escalated complaint, dormancy, tier and
    segment (those whose table was supplied).  On the tenure time scale the
    lifecycle stage is the baseline hazard, so no function of tenure is a
    covariate.

    Flat extract: a Cox model on the static attributes, on the tenure time
    scale in days (``tenure_months × 30.4375``, plus the first day: a
    customer who left with tenure 0 churns in ``(0, 1]``), Efron ties.
    Tenure is in whole months (or years), so ties are heavy; Efron handles
    them exactly as lifelines' ``CoxPHFitter`` does, and since only the
    order of the times matters the coefficients equal lifelines' on the raw
    tenure in any unit.  Covariates: see :func:`flat_covariates` (default:
    ``n_products``, ``segment``, ``channel``, ``birth_year``, ``branch_id``
    and the extra attribute columns, those usable); the model's
    ``covariate_selection_`` says which were used and why the others were
    not.  Attributes are snapshot values: the hazard ratios describe
    association, not cause.

    Text covariates become indicators against the most frequent level
    (calendar: tier ``general`` and segment ``salaried`` when present).
    ``churn_type`` (``transfer`` / ``natural``) fits the cause-specific
    model: other churns are censored at their date.  Hazard ratios are
    associations, not effects of an intervention.

    Parameters
    ----------
    source : Source
        A loaded source (calendar or flat extract).
    params : Params, optional
        Churn definition and windows (calendar sources).
    as_of : datetime.date, optional
        Censoring date (calendar sources only: a flat extract has no dates).
    branch : str, optional
        Fit on this branch's customers only.
    churn_type : str, optional
        ``transfer`` or ``natural``: the cause-specific model.
    covariates : sequence of str, optional
        The covariates to use instead of the default; each must exist in the
        source (an :class:`~crmresearch.core.errors.InputError` names a missing
        one and the source).
    frame : DataFrame, optional
        Calendar source: the episodes already read by :func:`causes_frame`
        with the same ``as_of``, ``branch`` and ``churn_type`` (and at least
        these covariates), so that several models share one read (the bank
        stage's causes model and sticky products); default: read them here.

    Returns
    -------
    TimeVaryingCox
        Fitted: ``summary``, ``hazard_ratios()``, ``concordance()``, ``ph_check()``;
        ``caveats_`` (list of str) names the default covariates left out for
        missing values (:func:`missing_caveats`) and, on a flat extract, as
        likely model scores or leaks of the outcome (:func:`leakage_caveat`);
        metrics.json and the reports show them.

    Examples
    --------
    >>> m = causes_model(src)                     # doctest: +SKIP
    >>> m.summary; m.ph_check(); m.concordance()  # doctest: +SKIP
    >>> flat = causes_model(load_source("data/bank-flat"), covariates=["n_products", "age"])  # doctest: +SKIP
    >>> flat.covariate_selection_                 # doctest: +SKIP
    """
    if not source.can("calendar"):
        if as_of is not None:
            raise InputError(f"as_of={as_of}: the flat extract {source.path} has no dates to censor at")
        return _flat_causes_model(source, branch=branch, churn_type=churn_type, covariates=covariates)
    if frame is None:
        ep = causes_frame(source, params, as_of=as_of, branch=branch, churn_type=churn_type, covariates=covariates or ())
    else:
        ep = frame
        need = _frame_columns(covariates or (), churn_type)
        missing = [c for c in need if c not in ep.columns]
        if missing:
            raise ValueError(f"the episodes given as frame lack the column(s) {', '.join(missing)} "
                             "(read them with causes_frame and these covariates)")  # fmt: skip
    caveats: list[str] = []
    if covariates is None:
        # a covariate with missing values is left out of the default model, and a caveat names it
        n_missing = {c: int(ep[c].isna().sum()) for c in CAUSES_COVARIATES}
        caveats = missing_caveats([c for c, n in n_missing.items() if 0 < n < len(ep)],
                                  [c for c, n in n_missing.items() if n and n == len(ep)])  # fmt: skip
        covariates = [c for c in CAUSES_COVARIATES if not n_missing[c] and ep[c].nunique() > 1]
    else:
        covariates = list(dict.fromkeys(covariates))
        for c in covariates:
            if c not in COVARIATES and c != "segment":
                raise InputError(f"covariate {c!r}: the source {source.path} has no such covariate "
                                 f"(covariates: {', '.join([*COVARIATES, 'segment'])})")  # fmt: skip
            if ep[c].isna().any():
                table = COVARIATES[c][0] if c in COVARIATES else "customers (its segment column)"
                raise InputError(f"covariate {c!r} needs the {table} table, which the source "
                                 f"{source.path} does not supply")  # fmt: skip
    if churn_type is not None:
        ep = ep.assign(event=((ep["event"] == 1) & (ep["churn_type"] == churn_type)).astype(int))
    reference = {"tier": "general", "segment": "salaried"}
    reference = {k: v for k, v in reference.items() if k in covariates and (ep[k] == v).any()}
    model = TimeVaryingCox().fit(ep, covariates, reference=reference)
    model.caveats_ = caveats
    return model


def causes_summary(model: TimeVaryingCox, language: str = "en") -> Summary:
    """The causes model's hazard ratios as a :class:`~crmresearch.viz.summary.Summary` (what a notebook shows).

    :func:`causes_model` returns the fitted
    :class:`~crmresearch.survival.cox.TimeVaryingCox`, which renders nothing
    (the survival layer does not import :mod:`crmresearch.viz`); this is its
    summary: ``model.hazard_ratios()`` with the terms in words, and notes —
    the ratios are associations, and on a flat extract which columns were
    left out and why.  No counts, so nothing to suppress.

    Parameters
    ----------
    model : TimeVaryingCox
        A fitted causes model.
    language : {"en", "zh"}

    Returns
    -------
    Summary

    Examples
    --------
    >>> print(causes_summary(causes_model(src), "zh"))  # doctest: +SKIP
    """
    hr = model.hazard_ratios()
    hr = hr.assign(term=[term_label(t, language) for t in hr["term"]])
    notes = ["Hazard ratios are associations, not effects of an intervention: customers differ in ways the "
             "model does not see."]  # fmt: skip
    selection = getattr(model, "covariate_selection_", None)
    if selection is not None:
        notes += [f"{r['covariate']} is left out: {r['reason']}." for _, r in selection[~selection["used"]].iterrows()]
    else:
        notes += list(getattr(model, "caveats_", []))
    caption = (f"Cox model: {model.n_events_:,} churns over {model.n_episodes_:,} episodes; "
               f"hazard ratios with {round(100 * (1 - model.alpha))}% intervals")
    return frame_summary(hr, language, caption=caption, notes=notes, kinds={"term": "text"})
