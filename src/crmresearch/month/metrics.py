"""``metrics.json``: the machine-readable results of a report, for BI tools (``reports.md``).

:func:`metrics` assembles the fields of ``reports.md`` — KPIs, coverage
groups, the causes model's hazard ratios, the retention loop — from the
analyses, for one branch or the bank and one month, without rendering
anything; :func:`write_metrics` writes them atomically.  Exact counts:
suppression of small cells applies to what people read, not to this file
(it is for systems under the same access as the source).

Deterministic: the same inputs give a byte-identical file.  The analyses
sort their inputs, sums of money are exact decimals, nothing random is
unseeded, and floats are written rounded to 12 significant digits so that
harmless last-bit differences cannot change the bytes.

Fields beyond the minimum (all documented in ``docs/metrics.md``):
``data_as_of``, ``kpis_high_value``, ``package_version``, ``params_digest``.
A flat extract gives ``scope: "bank"``, ``month: null``, ``kpis: null``,
``time_unit: "months"`` (its durations are tenure months; ``"days"`` on a
dated source), the coverage groups on ``n_products`` with
``churned_snapshot`` / ``churn_rate_snapshot`` (churn over the whole
snapshot, not within 12 months) and the hazard ratios of the static model,
with caveats saying what is missing and why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from crmresearch.analyses.kpis import month_kpis
from crmresearch.core.calendar import month_bounds
from crmresearch.core.errors import InputError
from crmresearch.core.io import atomic_path
from crmresearch.core.jsonsafe import json_number
from crmresearch.core.params import Params
from crmresearch.core.provenance import params_digest
from crmresearch.core.version import __version__
from crmresearch.data.contract import Source, check_branch

__all__ = ["SCHEMA", "metrics", "metrics_json", "write_metrics"]

SCHEMA = 2  # 2: retention names its two populations (month_warnings, outcome_cohort)


def _coverage(source: Source, params: Params, month: str | None, branch: str | None, caveats: list[str]) -> list:
    from crmresearch.analyses.product_coverage import product_coverage

    try:
        res = product_coverage(source, params, month=month, branch=branch)
    except InputError as exc:
        caveats.append(f"Product coverage is not available: {exc}")
        return []
    return res.to_metrics()


def _hazard_ratios(source: Source, params: Params, last, branch: str | None,
                   caveats: list[str], bank_model=None) -> tuple[str, list]:  # fmt: skip
    from crmresearch.analyses.causes import causes_model
    from crmresearch.survival.cox import ConvergenceError
    from crmresearch.survival.episodes import customer_table

    scope = "bank"
    as_of = last if source.can("calendar") else None
    if branch is not None and params.branch_model_min_events is not None and source.can("calendar"):
        cust = customer_table(source, params, as_of=last)  # churns as the model counts them
        if int(cust.loc[cust["branch_id"] == branch, "event"].sum()) >= params.branch_model_min_events:
            scope = "branch"
    model = None
    if scope == "branch":
        try:
            model = causes_model(source, params, as_of=as_of, branch=branch)
        except (InputError, ConvergenceError, ValueError) as exc:
            caveats.append(f"The branch's own causes model could not be fitted ({exc}); the bank-wide "
                           "model is shown.")  # fmt: skip
            scope = "bank"
    if model is None and bank_model is None and source.cache.get("slice_of"):
        caveats.append("The causes model could not be fitted on the bank's data up to the month's end.")
        return scope, []
    try:
        model = model or bank_model or causes_model(source, params, as_of=as_of)
    except (InputError, ConvergenceError, ValueError) as exc:
        caveats.append(f"The causes model could not be fitted: {exc}")
        return scope, []
    caveats.extend(getattr(model, "caveats_", []))  # covariates left out for missing values
    return scope, model.to_metrics()


def _retention(source: Source, params: Params, month: str, branch: str | None, caveats: list[str]) -> dict | None:
    from crmresearch.analyses.early_warnings import early_warnings, warning_summary
    from crmresearch.analyses.retention_loop import contact_outcomes

    w = warning_summary(early_warnings(source, params, month=month, branch=branch)).set_index("rule")
    # two populations: the warnings raised in the report month (contact speed), and the outcome cohort
    # (customers warned months earlier, whose retention is known by the month's end)
    out: dict[str, Any] = {"month_warnings": {"warnings": int(w.loc["all", "warnings"]),
                                              "contacted_in_target": int(w.loc["all", "contacted_in_target"])},
                           "outcome_cohort": None, "contact_odds_ratio": None}  # fmt: skip
    if not source.has("retention_actions"):
        out["month_warnings"]["contacted_in_target"] = None
        caveats.append("Contact speed and retention outcomes are not available: retention_actions was not "
                       "supplied.")  # fmt: skip
        return out
    try:
        res = contact_outcomes(source, params, month=month, branch=branch)
    except InputError as exc:
        caveats.append(f"Retention outcomes are not available: {exc}")
        return out
    out.update(res.to_metrics())
    caveats.extend(res.caveats)
    return out


def metrics(source: Source, params: Params | None = None, *, month: str | None,
            branch: str | None = None, model=None) -> dict[str, Any]:  # fmt: skip
    """The ``metrics.json`` content of one report (a branch, or the bank when ``branch`` is None).

    Parameters
    ----------
    source : Source
        A loaded source.
    params : Params, optional
        Parameters (churn definition, language, windows, ...).
    month : str or None
        ``YYYY-MM``; required for a calendar source, None for a flat extract.
    branch : str, optional
        The branch; None for the bank-wide file.
    model : TimeVaryingCox, optional
        The bank-wide causes model at the month's end (the month bundle's);
        fitted on ``source`` when not given.  A branch's figures are computed
        on its slice of the source (:func:`bundle.slice_source`), which is
        how the report run computes them: both write identical files.

    Returns
    -------
    dict
        The fields of ``reports.md`` (see the module docstring for the extra ones).

    Examples
    --------
    >>> m = metrics(src, month="2026-10", branch="B001")  # doctest: +SKIP
    >>> m["kpis"]["monthly_churn_rate"], m["hazard_ratios"][0]  # doctest: +SKIP
    """
    from crmresearch.analyses.causes import causes_model
    from crmresearch.month.slices import slice_source
    from crmresearch.survival.cox import ConvergenceError

    params = params or Params()
    check_branch(source, branch)
    slice_of = source.cache.get("slice_of")
    if slice_of is not None and slice_of != branch:
        raise InputError(f"this source is the slice of branch {slice_of}; metrics of "
                         f"{branch or 'the bank'} need the whole source")  # fmt: skip
    if branch is not None and model is None:
        if slice_of is not None:
            raise InputError("a branch's slice needs the bank-wide model (model=...)")
        try:
            last = (month_bounds(month)[1] if month else None) if source.can("calendar") else None
            model = causes_model(source, params, as_of=last)
        except (InputError, ConvergenceError, ValueError):
            model = None  # _hazard_ratios says why
    if branch is not None and slice_of is None:
        source = slice_source(source, branch, params)
    caveats: list[str] = []
    # what the results depend on: the engine's threads and memory do not change them
    digest = params_digest(params)
    base: dict[str, Any] = {"schema": SCHEMA, "scope": "branch" if branch else "bank", "branch_id": branch,
                            "time_unit": source.time_unit}  # fmt: skip
    if not source.can("calendar"):
        if month is not None:
            raise InputError(f"--month {month}: a flat extract has no calendar (omit --month)")
        from crmresearch.data.capabilities import flat_support

        hr_scope, hrs = _hazard_ratios(source, params, None, None, caveats, model)
        out = base | {"month": None, "as_of": None, "churn_definition": "recorded", "language": params.language,
                      "kpis": None, "coverage": _coverage(source, params, None, branch, caveats),
                      "hazard_ratios_scope": hr_scope, "hazard_ratios": hrs, "retention": None}  # fmt: skip
        for row in flat_support(source).itertuples():
            if not row.available:
                caveats.append(f"{row.analysis}: {row.reason}.")
    else:
        if month is None:
            raise InputError("a month (YYYY-MM) is needed for a source with a calendar")
        _, last = month_bounds(month)
        k = month_kpis(source, params, month=month, branch=branch, compare=False, trend=False)
        kpis = k.to_metrics()
        caveats.extend(k.caveats)
        hr_scope, hrs = _hazard_ratios(source, params, last, branch, caveats, model)
        out = base | {"month": month, "as_of": last.isoformat(), "churn_definition": params.churn.definition,
                      "language": params.language, "kpis": kpis["kpis"],
                      "coverage": _coverage(source, params, month, branch, caveats),
                      "hazard_ratios_scope": hr_scope, "hazard_ratios": hrs,
                      "retention": _retention(source, params, month, branch, caveats),
                      "kpis_high_value": kpis["kpis_high_value"]}  # fmt: skip
    out["data_as_of"] = source.as_of.isoformat() if source.as_of else None
    out["package_version"] = __version__
    out["params_digest"] = digest
    out["caveats"] = caveats
    return out


def metrics_json(content: dict[str, Any]) -> str:
    """Serialise metrics deterministically (sorted keys within objects as built, UTF-8, 2-space indent).

    Examples
    --------
    >>> metrics_json({"schema": 2, "x": float("nan")})
    '{\\n  "schema": 2,\\n  "x": null\\n}\\n'
    """
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
        return json_number(v) if not isinstance(v, str) else v

    return json.dumps(clean(content), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def write_metrics(content: dict[str, Any], out: str | Path, *, force: bool = False) -> str:
    """Write ``metrics.json`` atomically; returns ``written``, ``unchanged`` or ``replaced``.

    An existing different file is replaced only with ``force`` (nothing the
    user had is overwritten silently); an identical one is left as it is.

    Examples
    --------
    >>> write_metrics(metrics(src, month="2026-10"), "bank.metrics.json")  # doctest: +SKIP
    """
    out = Path(out)
    text = metrics_json(content)
    if out.exists():
        if out.read_text(encoding="utf-8") == text:
            return "unchanged"
        if not force:
            raise InputError(f"{out} exists with different content; pass --force to replace it")
    status = "replaced" if out.exists() else "written"
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return status
