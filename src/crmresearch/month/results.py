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

from crmresearch.analyses.early_warnings import early_warnings
from crmresearch.analyses.lifecycle import lifecycle
from crmresearch.analyses.product_coverage import product_coverage
from crmresearch.analyses.retention_loop import contact_outcomes, winbacks
from crmresearch.analyses.rm_turnover import (
    orphaned_churn_rates,
    orphaned_customers,
    rm_exits,
    turnover_churn_comparison,
)
from crmresearch.core.errors import InputError
from crmresearch.core.params import Params
from crmresearch.data.contract import Source

__all__ = ["SECTION_RESULTS", "bank_results", "section_result"]


#: name -> (the analysis, whether it takes the parameters, whether it is dated by the month or the as-of day):
#: the call a section makes on its scope (``branch=None``: the bank)
SECTION_RESULTS: dict[str, tuple[Callable[..., Any], bool, str]] = {
    "product_coverage": (product_coverage, True, "month"), "rm_exits": (rm_exits, False, "month"),
    "orphaned_customers": (orphaned_customers, True, "month"),
    "turnover_comparison": (turnover_churn_comparison, True, "month"),
    "orphaned_churn_rates": (orphaned_churn_rates, True, "as_of"), "lifecycle": (lifecycle, True, "as_of"),
    "early_warnings": (early_warnings, True, "month"), "contact_outcomes": (contact_outcomes, True, "month"),
    "winbacks": (winbacks, False, "month"),
}  # fmt: skip


def _compute(name: str, source: Source, params: Params, month: str | None, as_of: dt.date | None,
             branch: str | None) -> Any:  # fmt: skip
    analysis, with_params, dated_by = SECTION_RESULTS[name]
    args = (source, params) if with_params else (source,)
    return analysis(*args, branch=branch, **{dated_by: month if dated_by == "month" else as_of})


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
    return _compute(name, source, params, month, as_of, branch)


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
    for name in SECTION_RESULTS:
        if (not dated and name != "product_coverage") or (name in RM_RESULTS and not has_rm_tables(source)):
            continue  # a flat extract's bank summary shows product coverage only; no RM tables, no RM results
        if progress:
            progress(name)
        try:
            out[name] = _data_only(_compute(name, source, params, month, as_of, None))
        except (InputError, ConvergenceError, ValueError):
            continue
    return out
