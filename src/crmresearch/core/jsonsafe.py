"""JSON-safe numbers and records: how every result writes its figures into ``metrics.json``.

One rule for every number a machine reads: ``None`` for NaN or infinity,
integers as integers, floats to 12 significant digits (so harmless last-bit
differences cannot change a byte of the file).  Results' ``to_metrics()``
and :mod:`crmresearch.month.metrics` both use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["json_number", "json_records"]


def json_number(v: Any) -> Any:
    """A JSON-safe number: None for NaN/inf, ints as ints, floats to 12 significant digits.

    Parameters
    ----------
    v : object
        A number (Python, numpy, decimal) or anything else (text included: returned as it is).

    Returns
    -------
    int, float, bool, None or the input

    Examples
    --------
    >>> json_number(float("nan")), json_number(3), json_number(0.1 + 0.2), json_number("1")
    (None, 3, 0.3, '1')
    """
    if v is None or isinstance(v, bool | int | str):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    if math.isnan(f) or math.isinf(f):
        return None
    if f.is_integer() and abs(f) < 2**53 and not isinstance(v, float):
        return int(f)
    return float(f"{f:.12g}")


def json_records(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """A tidy table as a list of JSON-safe records (text as str, numbers by :func:`json_number`).

    Parameters
    ----------
    frame : DataFrame
    columns : iterable of str, optional
        The columns to keep, in this order (default: all).

    Returns
    -------
    list of dict

    Examples
    --------
    >>> json_records(pd.DataFrame({"stage": ["new"], "rate": [0.125], "n": [8]}))
    [{'stage': 'new', 'rate': 0.125, 'n': 8}]
    """
    cols = list(frame.columns if columns is None else columns)
    out = []
    for row in frame[cols].itertuples(index=False, name=None):
        rec = {}
        for c, v in zip(cols, row, strict=True):
            if isinstance(v, np.bool_):
                v = bool(v)
            elif hasattr(v, "isoformat"):  # dates and timestamps
                v = v.isoformat()
            rec[str(c)] = json_number(v)
        out.append(rec)
    return out
