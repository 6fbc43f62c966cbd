"""Errors caused by what the user supplied (data, parameters, paths, options).

The CLI prints these without a traceback and exits non-zero; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """A problem with the user's input; the message says what and where."""
