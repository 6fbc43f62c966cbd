"""Small-cell suppression for what people read (``reports.md``: every HTML report).

No figure or table may show a group smaller than ``min_cell_size`` (default
10): it says "fewer than 10" instead.  Where a total is shown beside the
groups, one suppressed cell could be recovered as total minus the others, so
a second cell is suppressed too (the smallest shown one): *complementary*
suppression.  ``metrics.json`` keeps exact counts (it is for systems under the
same access as the source); suppression is applied only when rendering.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["suppress_counts"]


def suppress_counts(table: pd.DataFrame, count: str, *, min_cell: int = 10,
                    derived: Sequence[str] = (), total_shown: bool = True) -> pd.DataFrame:  # fmt: skip
    """Mask the rows of ``table`` whose ``count`` is below ``min_cell`` (and a complement).

    Parameters
    ----------
    table : DataFrame
        One row per group.
    count : str
        The column holding each group's number of customers.
    min_cell : int
        Smallest group shown.
    derived : sequence of str
        Columns computed from the group (rates, amounts): masked with it.
    total_shown : bool
        A total of ``count`` is shown beside the groups: when exactly one
        group is suppressed (so it could be derived from the total), the
        smallest shown group is suppressed as well.  A group with 0 customers
        reveals nothing and is never used as the complement.

    Returns
    -------
    DataFrame
        A copy with ``count`` and ``derived`` as text for display: the
        number, or ``"fewer than <min_cell>"`` / ``"suppressed"`` (the
        complement) — and a boolean column ``suppressed``.

    Examples
    --------
    >>> t = pd.DataFrame({"group": ["1", "2", "3-4"], "customers": [4, 30, 52], "rate": [0.5, 0.2, 0.1]})
    >>> suppress_counts(t, "customers", derived=["rate"])[["group", "customers", "rate"]]
      group         customers        rate
    0     1  fewer than 10  suppressed
    1     2     suppressed  suppressed
    2   3-4              52         0.1
    """
    out = table.copy()
    n = out[count].to_numpy()
    small = (n > 0) & (n < min_cell)
    complement = np.zeros(len(out), dtype=bool)
    if total_shown and small.sum() == 1:
        shown = np.flatnonzero(~small & (n > 0))
        if len(shown):
            complement[shown[np.argmin(n[shown])]] = True
    hidden = small | complement
    for col in [count, *derived]:
        values = out[col].astype(object)
        values[small] = f"fewer than {min_cell}" if col == count else "suppressed"
        values[complement] = "suppressed"
        out[col] = values
    out["suppressed"] = hidden
    return out
