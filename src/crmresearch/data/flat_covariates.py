"""Which columns of a flat extract enter its causes model, and why the others do not.

A flat extract (one row per customer, no dates) has whatever columns its
bank kept; the causes model (:func:`crmresearch.analyses.causes.causes_model`)
takes the ones that can be covariates: not identifiers or personal data, not
the outcome or its time scale, not a text column with too many levels, not a
number that mostly measures tenure, not a constant.  Nor, unless named, a
column that looks like a model score or leaks the outcome: its name holds
one of :data:`SUSPECT_NAME_PARTS` (``score``, ``prob``, ``naive_bayes``,
``churn``), or its rank correlation with the churn flag is at least
:data:`MAX_EVENT_CORRELATION` in size.  Those are left out with a
:class:`LeakageWarning` that names them and why.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from crmresearch.core.errors import InputError

__all__ = ["FLAT_NOT_COVARIATES", "MAX_EVENT_CORRELATION", "SUSPECT_NAME_PARTS", "LeakageWarning",
           "flat_covariates", "leakage_reason"]

# Flat extracts: columns that are never covariates (identifiers, personal data,
# the outcome and its time scale), and the default selection's limits.
FLAT_NOT_COVARIATES = ("customer_id", "name", "tenure_months", "churned", "churn_type", "churn_reason")
FLAT_FIRST_COVARIATES = ("n_products", "segment", "channel", "birth_year", "branch_id")
MAX_LEVELS = 20  # text columns with more levels stay out of the default
MAX_TENURE_CORRELATION = 0.8  # numeric columns that mostly measure tenure stay out of the default
#: parts of a column name (any case) that mark a model score or the outcome: out of the default, with a warning
SUSPECT_NAME_PARTS = ("score", "prob", "naive_bayes", "churn")
#: a numeric or boolean column whose |Spearman correlation| with the churn flag is at least this leaks the outcome
MAX_EVENT_CORRELATION = 0.8
LEAKAGE_PREFIX = "looks like a model score or leaks the outcome"


class LeakageWarning(UserWarning):
    """Default covariates of a flat extract were left out: they look like model scores or leak the outcome.

    Examples
    --------
    >>> import warnings
    >>> warnings.simplefilter("error", LeakageWarning)  # doctest: +SKIP
    >>> flat_covariates(customers)  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    LeakageWarning: ...: credit_score (its name contains 'score')
    """


def leakage_reason(name: str, values: pd.Series, event: pd.Series) -> str:
    """Why a column looks like a model score or leaks the outcome, or ``""`` when it does not.

    Parameters
    ----------
    name : str
        The column's name: one holding a part of :data:`SUSPECT_NAME_PARTS`
        (any case) is suspect.
    values : Series
        Its values: a numeric or boolean column whose Spearman rank
        correlation with ``event`` is at least :data:`MAX_EVENT_CORRELATION`
        in size (on the rows with a value) is suspect.
    event : Series
        The churn flag (0/1 or bool), aligned with ``values``.

    Returns
    -------
    str
        The reason in words (starting with "looks like a model score or leaks
        the outcome"), or ``""``.

    Examples
    --------
    >>> ev = pd.Series([0, 0, 1, 1, 0, 1])
    >>> leakage_reason("Naive_Bayes_Classifier_1", pd.Series([0.1, 0.2, 0.9, 0.8, 0.1, 0.7]), ev)
    "looks like a model score or leaks the outcome: its name contains 'naive_bayes'"
    >>> leakage_reason("months_inactive", pd.Series([1, 1, 6, 5, 2, 4]), ev)
    'looks like a model score or leaks the outcome: rank correlation 0.89 with churn (at least 0.8 in size)'
    >>> leakage_reason("age", pd.Series([30, 50, 41, 38, 29, 60]), ev)
    ''
    """
    lowered = name.lower()
    part = next((p for p in SUSPECT_NAME_PARTS if p in lowered), None)
    if part is not None:
        return f"{LEAKAGE_PREFIX}: its name contains {part!r}"
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        ok = values.notna().to_numpy()
        x = values[ok].astype(float)
        y = event[ok].astype(float)
        if len(x) > 2 and x.nunique() > 1 and y.nunique() > 1:
            rho = float(np.corrcoef(x.rank().to_numpy(), y.rank().to_numpy())[0, 1])
            if abs(rho) >= MAX_EVENT_CORRELATION:
                return (f"{LEAKAGE_PREFIX}: rank correlation {rho:.2f} with churn (at least "
                        f"{MAX_EVENT_CORRELATION:g} in size)")  # fmt: skip
    return ""


def _columns_block(s: pd.Series) -> np.ndarray:
    """A covariate's columns in the design, centred and scaled: the values, or indicators of all levels but the most frequent."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        x = s.to_numpy(dtype=float)[:, None]
    else:
        codes, _ = pd.factorize(s, sort=True)
        counts = np.bincount(codes)
        others = [k for k in range(len(counts)) if k != int(np.argmax(counts))]
        x = (codes[:, None] == np.array(others)[None, :]).astype(float)
    x = x - x.mean(axis=0)
    scale = np.sqrt((x**2).mean(axis=0))
    return x / np.where(scale > 0, scale, 1.0)


def flat_covariates(data: pd.DataFrame, covariates: Sequence[str] | None = None, *,
                    exclude: Sequence[str] = (), source: str = "the flat extract") -> pd.DataFrame:  # fmt: skip
    """Which columns of a flat extract's customers enter the causes model, and why the others do not.

    Parameters
    ----------
    data : DataFrame
        The flat ``customers`` table (``tenure_months``, ``churned`` and the attributes).
    covariates : sequence of str, optional
        Requested covariates.  Each must be a column of ``data``, have no
        missing values, take at least two values and not be a linear
        combination of the ones before it; anything else is an error.
        Default (``None``): ``n_products``, ``segment``, ``channel``,
        ``birth_year``, ``branch_id`` and then every other attribute column in
        the table's order, keeping those with no missing values, at least two
        values, at most :data:`MAX_LEVELS` levels if text, a rank correlation
        with tenure of at most :data:`MAX_TENURE_CORRELATION` if numeric (a
        column that mostly measures tenure, such as a total charged to date,
        repeats the time scale) and not a linear combination of the ones
        already kept, and not looking like a model score or leaking the
        outcome (:func:`leakage_reason`: a name with ``score``, ``prob``,
        ``naive_bayes`` or ``churn``, or an absolute Spearman correlation with
        the churn flag of at least :data:`MAX_EVENT_CORRELATION`); those are
        left out with a :class:`LeakageWarning` naming them and why, and
        enter only when requested.  Never: :data:`FLAT_NOT_COVARIATES`.
    exclude : sequence of str
        Columns left out of the default (e.g. ``branch_id`` when one branch is fitted).
    source : str
        Named in error messages.

    Returns
    -------
    DataFrame
        ``covariate, used, reason`` (``reason`` empty when used), in the
        order considered.

    Raises
    ------
    InputError
        A requested covariate is missing from ``data``, is the outcome or an
        identifier, has missing values, is constant or is collinear.

    Warns
    -----
    LeakageWarning
        Default selection only: the columns left out because they look like
        model scores or leak the outcome, each with its reason.

    Examples
    --------
    >>> flat_covariates(source.df("customers"))             # doctest: +SKIP
    >>> flat_covariates(customers, ["n_products", "gender"])  # doctest: +SKIP
    """
    requested = covariates is not None
    never = (*FLAT_NOT_COVARIATES, "__row")
    if requested:
        candidates = list(dict.fromkeys(covariates or []))
        if not candidates:
            raise InputError(f"covariates=[]: name at least one column of {source}, or pass None for the default")
    else:
        first = [c for c in FLAT_FIRST_COVARIATES if c in data.columns]
        candidates = [c for c in first + [c for c in data.columns if c not in first] if c not in never]
    tenure = data["tenure_months"].rank().to_numpy(dtype=float)
    reasons: dict[str, str] = {}
    blocks: dict[str, np.ndarray] = {}
    for c in candidates:
        if c in never:
            raise InputError(f"covariate {c!r} of {source}: an identifier, personal data or the outcome "
                             "and its time scale, never a covariate")  # fmt: skip
        if c not in data.columns:
            have = ", ".join(col for col in data.columns if col not in never)
            raise InputError(f"covariate {c!r}: {source} has no such column (its attribute columns: {have})")
        s = data[c]
        text = not (pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s))
        n_levels = int(s.nunique())
        reason = ""
        if not requested and c in exclude:
            reason = "left out (constant within the branch fitted)"
        elif not requested and (leak := leakage_reason(c, s, data["churned"])):
            reason = leak + "; request it to use it"
        elif s.isna().any():
            reason = f"has {int(s.isna().sum()):,} missing values"
        elif n_levels < 2:
            reason = "takes a single value"
        elif not requested and text and n_levels > MAX_LEVELS:
            reason = f"text with {n_levels:,} levels (more than {MAX_LEVELS}); request it to use it"
        elif not requested and not text:
            rho = float(np.corrcoef(s.rank().to_numpy(dtype=float), tenure)[0, 1])
            if abs(rho) > MAX_TENURE_CORRELATION:
                reason = (f"mostly measures tenure (rank correlation {rho:.2f}): tenure is the time "
                          "scale, not a covariate")  # fmt: skip
        if reason:
            reasons[c] = reason
        else:
            blocks[c] = _columns_block(s)
    # Redundancy, in order: a covariate is left out when its columns, with those kept
    # before it and a constant, are (nearly) linearly dependent.  The columns are
    # centred and scaled, so their cross-products form a correlation matrix, built once.
    if blocks:
        Z = np.hstack(list(blocks.values()))
        G = Z.T @ Z / len(Z)
        ends = np.cumsum([b.shape[1] for b in blocks.values()])
        kept: list[int] = []
        for (c, _), end, width in zip(blocks.items(), ends, (b.shape[1] for b in blocks.values()), strict=True):
            idx = kept + list(range(end - width, end))
            eig = np.linalg.eigvalsh(G[np.ix_(idx, idx)])
            if eig[0] < 1e-10 * max(eig[-1], 1.0):
                reasons[c] = ("a linear combination of the covariates kept before it and a constant: "
                              "its hazard ratio is not identified")  # fmt: skip
            else:
                kept = idx
    rows = []
    for c in candidates:
        reason = reasons.get(c, "")
        if reason and requested:
            raise InputError(f"covariate {c!r} of {source} cannot enter the model: {reason}")
        rows.append((c, not reason, reason))
    _warn_leaks(reasons, source)
    return pd.DataFrame(rows, columns=["covariate", "used", "reason"])


def _warn_leaks(reasons: dict[str, str], source: str) -> None:
    """One :class:`LeakageWarning` naming every column left out as a likely score or leak, and why."""
    suspect = [(c, r) for c, r in reasons.items() if r.startswith(LEAKAGE_PREFIX)]
    if suspect:
        warnings.warn(f"{source}: left out of the default covariates, as they look like model scores or leak the "
                      "outcome (name them in covariates= to use them): "
                      + "; ".join(f"{c} ({r.removeprefix(LEAKAGE_PREFIX + ': ').removesuffix('; request it to use it')})"
                                  for c, r in suspect), LeakageWarning, stacklevel=3)  # fmt: skip
