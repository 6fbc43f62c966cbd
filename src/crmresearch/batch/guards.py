"""The run's input guards: a month, a branch ID, the scope of a source, the branches asked for.

Every check runs before any work and fails with a one-line :class:`InputError`.
"""

from __future__ import annotations

import datetime as dt
import re
from importlib import resources
from pathlib import Path

import pandas as pd

from crmresearch.core.errors import InputError

#: a branch ID usable as a file name: letters, digits, ``_ . -``, not starting with a dot or dash
BRANCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
#: report names that are not branches (manifest keys, ``notebooks/bank.ipynb``)
RESERVED = ("bank", "index")
#: seconds one notebook may run (``--timeout``, else ``engine.report_timeout_seconds``)
DEFAULT_TIMEOUT = 600.0
#: the longest ``--timeout`` (a day, as ``engine.report_timeout_seconds``)
MAX_TIMEOUT = 86400.0
#: cells with this tag are kept in the executed notebook but left out of the HTML page
HIDE_TAG = "hide-in-report"
MANIFEST_SCHEMA = 1
EXIT_FAILED, EXIT_ABORTED = 1, 3
#: the report notebooks, shipped as package data (crmresearch/report/notebooks)
NOTEBOOK_DIR = Path(str(resources.files("crmresearch.report") / "notebooks"))
NOTEBOOKS = {"branch": "branch_report.ipynb", "bank": "bank_report.ipynb"}
ABORT_ENV, FAIL_ENV = "CRMRESEARCH_TEST_ABORT_AFTER", "CRMRESEARCH_TEST_FAIL_BRANCH"


# --------------------------------------------------------------------------- input guards


def check_month(month: str) -> str:
    """Check a report month is ``YYYY-MM`` (before it becomes a folder name).

    Parameters
    ----------
    month : str

    Returns
    -------
    str
        ``month`` unchanged.

    Raises
    ------
    InputError
        Anything but a calendar month ``YYYY-MM``.

    Examples
    --------
    >>> check_month("2026-10")
    '2026-10'
    >>> check_month("2026-13")
    Traceback (most recent call last):
    ...
    crmresearch.core.errors.InputError: --month '2026-13': must be a calendar month YYYY-MM (e.g. 2026-10)
    """
    if not isinstance(month, str) or not _MONTH.fullmatch(month):
        raise InputError(f"--month {month!r}: must be a calendar month YYYY-MM (e.g. 2026-10)")
    return month


def check_branch_id(branch: str) -> str:
    """Check a branch ID can be used as a file name (before it becomes one).

    1 to 64 letters, digits, ``_``, ``.`` or ``-``, starting with a letter or
    digit, without ``..``; ``bank`` and ``index`` are reserved for the bank
    summary and the index page.

    Parameters
    ----------
    branch : str

    Returns
    -------
    str
        ``branch`` unchanged.

    Raises
    ------
    InputError
        The ID could escape the output folder or clash with another file.

    Examples
    --------
    >>> check_branch_id("B001")
    'B001'
    >>> check_branch_id("../x")
    Traceback (most recent call last):
    ...
    crmresearch.core.errors.InputError: branch ID '../x' cannot be used as a file name: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..'
    """
    if not isinstance(branch, str) or not BRANCH_ID.fullmatch(branch) or ".." in branch:
        raise InputError(f"branch ID {branch!r} cannot be used as a file name: use 1-64 letters, digits, "
                         "'_', '.' or '-', starting with a letter or digit, without '..'")  # fmt: skip
    if branch.lower() in RESERVED:
        raise InputError(f"branch ID {branch!r} is reserved for the {branch.lower()} page; rename the branch")
    return branch


def _check_scope(month: str | None, flat: bool, as_of: dt.date | None, start: dt.date | None) -> None:
    from crmresearch.core.calendar import month_bounds

    if flat:
        if month is not None:
            raise InputError(f"--month {month}: this source is a flat extract (no calendar); omit --month "
                             "(its reports go to <out>/snapshot/)")  # fmt: skip
        return
    if month is None:
        raise InputError(f"--month is required for this source (it has a calendar: months {start:%Y-%m} "
                         f"to {as_of:%Y-%m})")  # fmt: skip
    _, last = month_bounds(month)
    if last > as_of or last < start:
        raise InputError(f"--month {month} is outside the data: it covers months {start:%Y-%m} to {as_of:%Y-%m} "
                         f"(a month must have closed by the as-of date {as_of})")  # fmt: skip


def _known(branches: pd.DataFrame, requested: list[str] | None) -> list[str]:
    """The branches to render: the requested ones (each must exist and have customers), else all with customers."""
    ids = branches["branch_id"].tolist()
    with_customers = branches.loc[branches["customers"] > 0, "branch_id"].tolist()
    if requested:
        listing = ", ".join(ids[:20]) + (" ..." if len(ids) > 20 else "")
        for b in requested:
            if b not in ids:
                raise InputError(f"unknown branch {b!r}; known: {listing}")
            if b not in with_customers:
                raise InputError(f"branch {b!r} has no customers in this source; nothing to report")
        return list(dict.fromkeys(requested))
    for b in with_customers:  # they become file names
        try:
            check_branch_id(b)
        except InputError as exc:
            raise InputError(f"the source's {exc}") from None
    return with_customers
