"""Errors caused by what the user supplied (data, parameters, paths, options).

The CLI prints these without a traceback and exits non-zero; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """A problem with the user's input; the message says what and where.

    A subclass of :class:`ValueError`; the command line prints its message
    without a traceback and exits non-zero.

    Examples
    --------
    >>> err = InputError("customers.csv: column churn_date is missing")
    >>> isinstance(err, ValueError), str(err)
    (True, 'customers.csv: column churn_date is missing')
    """
