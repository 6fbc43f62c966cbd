"""What a source can answer: the one place that knows what each kind of source supports.

Two kinds of source stand behind the one :class:`~crmresearch.data.contract.Source`
interface: a **dated** source (a folder of Parquet/CSV files or a DuckDB
file with the contract's tables: events carry dates, so there are months,
an as-of date, censoring and time-varying episodes) and a **flat extract**
(one row per customer with ``tenure_months`` and ``churned``, no dates).
The analyses never test which kind they have: they ask

* ``source.can(question)`` — ``True`` or ``False``; a question is
  :data:`CALENDAR` ("does the source have dates?") or the name of an
  analysis of :data:`ANALYSES` (``"lifecycle"``, ``"product coverage"``…);
* ``source.require(analysis)`` — raises the one :class:`InputError` that
  says, in plain words, why the analysis cannot run on this source
  (:data:`FLAT_REASONS`);
* ``source.time_unit`` (:func:`time_unit`) — the unit of the durations the
  source gives: ``"days"`` on a dated source (days from a landmark or from
  opening), ``"months"`` on a flat extract (its ``tenure_months``).  Result
  fields, metrics.json keys and report labels follow it.

On a dated source every analysis can run (whether a table it needs was
supplied is the analysis's own check, and :func:`flat_support` lists it);
on a flat extract only product coverage (with an ``n_products`` column),
the causes model (with a usable attribute) and metrics.json can.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

from crmresearch.core.errors import InputError
from crmresearch.data.flat_covariates import LeakageWarning, flat_covariates

# A loaded Source (crmresearch.data.contract imports this module, so the type is not imported here).
Source = Any

__all__ = ["ANALYSES", "CALENDAR", "FLAT_REASONS", "TIME_UNITS", "Analysis", "can", "flat_support", "not_on_flat",
           "require", "time_unit"]

#: the question "does the source have dates (months, an as-of date, censoring, time-varying episodes)?"
CALENDAR = "calendar"
#: the units a source's durations come in: days (a dated source), months (a flat extract's tenure_months)
TIME_UNITS = ("days", "months")


def time_unit(source: Source) -> str:
    """The unit of the durations ``source`` gives: ``"days"`` (dated source) or ``"months"`` (flat extract).

    A dated source counts days (from a landmark, from opening); a flat
    extract has only ``tenure_months``, so its durations, horizons and
    restricted means are in months.  Names and labels follow this unit
    (``rmst_months``, not ``rmst_days``, on a flat extract).

    Parameters
    ----------
    source : Source
        A loaded source.

    Returns
    -------
    str
        One of :data:`TIME_UNITS`.

    Examples
    --------
    >>> load_source("data/demo").time_unit, load_source("data/bank-flat").time_unit  # doctest: +SKIP
    ('days', 'months')
    """
    return "months" if source.flat else "days"

@dataclass(frozen=True)
class Analysis:
    """One analysis of the library, for the support matrix (:func:`flat_support`).

    Attributes
    ----------
    name : str
        Its name in the matrix and in error messages.
    functions : str
        Where it lives (empty when not built yet).
    tables : tuple of str
        Tables it needs besides ``customers`` and ``branches`` (calendar sources).
    built : bool
        False for the analyses of ``reports.md`` not built yet.

    Examples
    --------
    >>> a = next(a for a in ANALYSES if a.name == "lifecycle")
    >>> a.functions, a.tables, a.built
    ('crmresearch.analyses.lifecycle.lifecycle', (), True)
    """

    name: str
    functions: str
    tables: tuple[str, ...] = ()
    built: bool = True


ANALYSES: tuple[Analysis, ...] = (
    Analysis("monthly KPIs", "crmresearch.analyses.kpis.monthly_kpis"),
    Analysis("product coverage", "crmresearch.analyses.product_coverage.product_coverage", ("product_holdings",)),
    Analysis("competing risks", "crmresearch.analyses.product_coverage.cumulative_incidence", ("product_holdings",)),
    Analysis("causes model", "crmresearch.analyses.causes.causes_model"),
    Analysis("lifecycle", "crmresearch.analyses.lifecycle.lifecycle"),
    Analysis("RM turnover", "crmresearch.analyses.rm_turnover.rm_exits, crmresearch.analyses.rm_turnover.orphaned_churn_rates, "
             "crmresearch.analyses.rm_turnover.turnover_churn_comparison, crmresearch.analyses.rm_turnover.orphaned_customers",
             ("relationship_managers", "rm_assignments")),
    Analysis("retention outcomes", "crmresearch.analyses.retention_loop.contact_outcomes, "
             "crmresearch.analyses.retention_loop.rm_table, crmresearch.analyses.retention_loop.winbacks", ("retention_actions",)),
    Analysis("early warnings", "crmresearch.analyses.early_warnings.early_warnings"),
    Analysis("watch list", "crmresearch.analyses.watchlist.watch_list"),
    Analysis("metrics.json", "crmresearch.month.metrics.metrics"),
)  # fmt: skip

_ANALYSIS = {a.name: a for a in ANALYSES}
NOT_BUILT = "not built yet"

# The one place for every reason an analysis cannot run on a flat extract: the
# analyses raise not_on_flat(name), which quotes it, and flat_support lists it.
# "product coverage" and "causes model" run on a flat extract; their reasons
# apply only when the extract lacks what they need.
FLAT_REASONS: dict[str, str] = {
    "monthly KPIs": (
        "a flat extract has no dates: there are no months to count active and churned customers "
        "in, and no month-end balances for the money lost"),
    "product coverage": (
        "the extract has no n_products column, so customers cannot be grouped by the number of "
        "products they hold"),
    "competing risks": (
        "no churn types and no landmark date: competing risks split churn into transfer and "
        "natural among customers followed from a landmark date, and a flat extract has no dates "
        "(its coverage view runs on tenure and carries no churn types)"),
    "causes model": (
        "no attribute can enter the model: every column other than the identifiers and the "
        "outcome has missing values, takes a single value or repeats another one"),
    "lifecycle": (
        "a flat extract holds only the customers present at its snapshot (and those who left "
        "just around it): customers who left earlier are missing and nobody is followed from "
        "opening, so churn per customer-month by tenure stage and the share of new customers "
        "lost within 3 months would come out too low"),
    "RM turnover": (
        "a flat extract has no relationship managers and no dates: who served each customer, "
        "and when an RM left, is unknown"),
    "retention outcomes": (
        "a flat extract has no early warnings, no retention contacts and no dates, so contact "
        "within the response target and retention 90 days later cannot be measured"),
    "early warnings": (
        "early warnings are dated events in a customer's monthly history (months without "
        "transactions, an outflow, a complaint, an RM exit, a falling product count), and a "
        "flat extract has one row per customer and no dates"),
    "watch list": (
        "the watch list scores customers at the report month's end and is validated out of time "
        "(scored at an earlier date, checked on who left afterwards), and a flat extract has no "
        "dates and no early warnings"),
    "metrics.json": (
        "never: a flat extract's metrics.json holds the coverage groups and the static model's "
        "hazard ratios, with KPIs and retention null (no dates) and caveats saying why"),
}  # fmt: skip


def not_on_flat(analysis: str, source: Source | None = None) -> InputError:
    """The error an analysis raises when it cannot run on a flat extract, with the reason.

    Parameters
    ----------
    analysis : str
        A name in :data:`FLAT_REASONS` (``"monthly KPIs"``, ``"lifecycle"``, ...).
    source : Source, optional
        Named in the message.

    Returns
    -------
    InputError
        To raise: ``raise not_on_flat("lifecycle", source)``.

    Examples
    --------
    >>> str(not_on_flat("RM turnover"))
    'RM turnover cannot run on a flat extract: a flat extract has no relationship managers and no dates: who served each customer, and when an RM left, is unknown'
    """
    where = f"the flat extract {source.path}" if source is not None else "a flat extract"
    return InputError(f"{analysis} cannot run on {where}: {FLAT_REASONS[analysis]}")


def _flat_row(a: Analysis, source: Source) -> tuple[bool, str]:
    if a.name == "product coverage":
        ok = source.has_column("customers", "n_products") and bool(
            source.con.execute("SELECT count(n_products) FROM customers").fetchone()[0])
    elif a.name == "causes model":
        data = source.df("customers").drop(columns=["name"], errors="ignore")
        with warnings.catch_warnings():  # whether any column can enter; the model itself warns about the others
            warnings.simplefilter("ignore", LeakageWarning)
            ok = bool(flat_covariates(data, source=f"the flat extract {source.path}")["used"].any())
    elif a.name == "metrics.json":
        ok = True  # partial: the fields the data supports, the rest null with caveats
    else:
        ok = False
    return ok, "" if ok else FLAT_REASONS[a.name]


def _calendar_row(a: Analysis, source: Source) -> tuple[bool, str]:
    missing = [t for t in a.tables if not source.has(t)]
    need = (f"needs the {' and '.join(missing)} table{'s' if len(missing) > 1 else ''}, which this "
            "source does not supply") if missing else ""  # fmt: skip
    if not a.built:
        return False, NOT_BUILT + (f" (it {need})" if need else "")
    return not missing, need


def flat_support(source: Source) -> pd.DataFrame:
    """Which analyses of the library run on a source, and why the others do not.

    For a flat extract (no calendar) the analyses that the data supports are
    available (product coverage on ``n_products`` when the extract has it,
    the causes model on the static attributes when one is usable) and every
    other one gives its reason in plain words (:data:`FLAT_REASONS`, the
    same text the analysis raises).  For a calendar source every built
    analysis is available unless a table it needs is missing, which the
    reason names.  Analyses of ``reports.md`` not built yet are listed as
    unavailable ("not built yet").

    Parameters
    ----------
    source : Source
        A loaded source (flat extract or calendar).

    Returns
    -------
    DataFrame
        One row per analysis of :data:`ANALYSES`: ``analysis, functions,
        available, reason`` (``reason`` empty when available).

    Examples
    --------
    >>> s = flat_support(load_source("data/bank-flat"))      # doctest: +SKIP
    >>> s.loc[~s.available, ["analysis", "reason"]]           # doctest: +SKIP
    """
    rows = []
    for a in ANALYSES:
        ok, reason = (_calendar_row if source.can(CALENDAR) else _flat_row)(a, source)
        rows.append({"analysis": a.name, "functions": a.functions, "available": ok, "reason": reason})
    return pd.DataFrame(rows, columns=["analysis", "functions", "available", "reason"])


def can(source: Source, question: str) -> bool:
    """Whether ``source`` can answer ``question`` (:data:`CALENDAR` or an analysis of :data:`ANALYSES`).

    Parameters
    ----------
    source : Source
        A loaded source.
    question : str
        ``"calendar"`` or an analysis name (``"monthly KPIs"``, ``"lifecycle"``, ...).

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        ``question`` is neither.

    Examples
    --------
    >>> src = load_source("data/demo")            # doctest: +SKIP
    >>> src.can("calendar"), src.can("lifecycle")  # doctest: +SKIP
    (True, True)
    """
    dated = not source.flat
    if question == CALENDAR:
        return dated
    analysis = _ANALYSIS.get(question)
    if analysis is None:
        raise ValueError(f"unknown question {question!r}: ask {CALENDAR!r} or one of "
                         + ", ".join(repr(a) for a in _ANALYSIS))  # fmt: skip
    return dated or _flat_row(analysis, source)[0]


def require(source: Source, analysis: str) -> None:
    """Raise the plain-words error when ``source`` cannot run ``analysis`` (:func:`not_on_flat`).

    Parameters
    ----------
    source : Source
        A loaded source.
    analysis : str
        A name in :data:`ANALYSES`.

    Raises
    ------
    InputError
        The analysis cannot run on this kind of source; the message says why.

    Examples
    --------
    >>> require(load_source("data/bank-flat"), "lifecycle")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    crmresearch.core.errors.InputError: lifecycle cannot run on the flat extract data/bank-flat: ...
    """
    if not can(source, analysis):
        raise not_on_flat(analysis, source)
