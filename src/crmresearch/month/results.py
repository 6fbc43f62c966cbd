"""The results a report's sections compute on their scope, by name: one place for every call.

A branch report computes them on its slice (:meth:`Bundle.branch_source`).
The bank summary would compute them on the whole bank, which at a million
customers means rebuilding the episodes from the slices in its own kernel;
instead the bank stage, which has the validated source and its episodes in
memory already, computes each of them once for the bank
(:func:`bank_results`) and the bundle keeps them as data
(:mod:`crmresearch.core.store`).  The bank summary then renders the stored
results; a result the bank stage could not compute is recomputed by the
section, which shows why it is missing exactly as it would have.

Examples
--------
>>> sorted(SECTION_RESULTS)[:3]
['contact_outcomes', 'early_warnings', 'lifecycle']
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from crmresearch.core.errors import InputError
from crmresearch.core.params import Params
from crmresearch.data.contract import Source

__all__ = ["SECTION_RESULTS", "bank_results", "section_result"]


def _coverage(s: Source, p: Params, month: str, as_of: dt.date, branch: str | None) -> Any:
    from crmresearch.analyses.product_coverage import product_coverage

    return product_coverage(s, p, month=month, branch=branch)


def _rm_exits(s: Source, p: Params, month: str, as_of: dt.date, branch: str | None) -> Any:
    from crmresearch.analyses.rm_turnover import rm_exits

    return rm_exits(s, month=month, branch=branch)


def _orphaned(s: Source, p: Params, month: str, as_of: dt.date, branch: str | None) -> Any:
    from crmresearch.analyses.rm_turnover import orphaned_customers

    return orphaned_customers(s, p, month=month, branch=branch)


def _turnover(s: Source, p: Params, month: str, as_of: dt.date, branch: str | None) -> Any:
    from crmresearch.analyses.rm_turnover import turnover_churn_comparison

    return turnover_churn_comparison(s, p, month=month, branch=branch)


def _orphan_rates(s: Source, p: Params, month: str, as_of: dt.date, branch: str | None) -> Any:
    from crmresearch.analyses.rm_turnover import orphaned_churn_rates

    return orphaned_churn_rates(s, p, as_of=as_of, branch=branch)


def _lifecycle(s: Source, p: Params, month: str, as_of: dt.date, branch: str | None) -> Any:
    from crmresearch.analyses.lifecycle import lifecycle

    return lifecycle(s, p, as_of=as_of, branch=branch)


def _warnings(s: Source, p: Params, month: str, as_of: dt.date, branch: str | None) -> Any:
    from crmresearch.analyses.early_warnings import early_warnings

    return early_warnings(s, p, month=month, branch=branch)


def _contacts(s: Source, p: Params, month: str, as_of: dt.date, branch: str | None) -> Any:
    from crmresearch.analyses.retention_loop import contact_outcomes

    return contact_outcomes(s, p, month=month, branch=branch)


def _winbacks(s: Source, p: Params, month: str, as_of: dt.date, branch: str | None) -> Any:
    from crmresearch.analyses.retention_loop import winbacks

    return winbacks(s, month=month, branch=branch)


#: name -> the call a section makes on its scope: ``(source, params, month, as_of, branch) -> result``
SECTION_RESULTS: dict[str, Callable[[Source, Params, str, dt.date, str | None], Any]] = {
    "product_coverage": _coverage, "rm_exits": _rm_exits, "orphaned_customers": _orphaned,
    "turnover_comparison": _turnover, "orphaned_churn_rates": _orphan_rates, "lifecycle": _lifecycle,
    "early_warnings": _warnings, "contact_outcomes": _contacts, "winbacks": _winbacks,
}  # fmt: skip
#: the results that need the RM tables (relationship_managers and rm_assignments)
RM_RESULTS = ("rm_exits", "orphaned_customers", "turnover_comparison", "orphaned_churn_rates")


def section_result(name: str, source: Source, params: Params, *, month: str, as_of: dt.date,
                   branch: str | None, stored: dict | None = None) -> Any:  # fmt: skip
    """The result ``name`` of :data:`SECTION_RESULTS` for a scope: the stored one of the bank, else computed.

    Parameters
    ----------
    name : str
        A key of :data:`SECTION_RESULTS`.
    source : Source
        The scope's source (a branch's slice, or the bank).
    params : Params
        The report's parameters.
    month : str
        ``YYYY-MM``.
    as_of : datetime.date
        The month's last day.
    branch : str or None
        The branch (None: the bank).
    stored : dict, optional
        :func:`bank_results` of the bundle, used for the bank when it holds ``name``.

    Returns
    -------
    object

    Examples
    --------
    >>> section_result("lifecycle", src, Params(), month="2026-10", as_of=last, branch="B001")  # doctest: +SKIP
    """
    if branch is None and stored is not None and name in stored:
        return stored[name]
    return SECTION_RESULTS[name](source, params, month, as_of, branch)


def _data_only(result: Any) -> Any:
    """A copy of a result with only its fields (no cache a method left) and no fitted model object."""
    if not dataclasses.is_dataclass(result):
        return result
    values = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.init}
    if "model" in values:
        values["model"] = None  # a statsmodels fit is not data; the report shows the result's tables
    return type(result)(**values)


def bank_results(source: Source, params: Params, *, month: str, as_of: dt.date, model: object | None,
                 progress: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """What the bank summary shows, computed on the whole bank in the bank stage.

    Parameters
    ----------
    source : Source
        The whole bank's validated source (its episodes are reused).
    params : Params
        The run's parameters.
    month : str
        ``YYYY-MM``.
    as_of : datetime.date
        The month's last day.
    model : TimeVaryingCox or None
        The bank-wide causes model, slim (as the bundle keeps it).
    progress : callable, optional
        Called with each result's name before it is computed.

    Returns
    -------
    dict
        ``metrics`` (the bank's ``metrics.json`` content,
        :func:`crmresearch.month.metrics.metrics`) and each result of
        :data:`SECTION_RESULTS` that could be computed (one that raises an
        input or model error is left out: the section recomputes it and says
        why it is missing).

    Examples
    --------
    >>> bank_results(src, Params(), month="2026-10", as_of=last, model=None)["metrics"]["kpis"]  # doctest: +SKIP
    """
    from crmresearch.month.metrics import metrics
    from crmresearch.survival.cox import ConvergenceError
    from crmresearch.timelines.rm_exposure import has_rm_tables

    out: dict[str, Any] = {}
    if progress:
        progress("metrics")
    out["metrics"] = metrics(source, params, month=month, model=model)
    dated = source.can("calendar")
    for name, compute in SECTION_RESULTS.items():
        if (not dated and name != "product_coverage") or (name in RM_RESULTS and not has_rm_tables(source)):
            continue  # a flat extract's bank summary shows product coverage only; no RM tables, no RM results
        if progress:
            progress(name)
        try:
            out[name] = _data_only(compute(source, params, month, as_of, None))
        except (InputError, ConvergenceError, ValueError):
            continue
    return out
