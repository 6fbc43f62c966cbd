"""Small-cell suppression for what people read (``reports.md``: every HTML report and the index).

No figure or table may show a group smaller than ``min_cell_size`` (default
10): it says "fewer than 10" instead, and every figure computed from that
group (its rate, share, AUM, interval) is hidden with it.  Where a total is
shown on the same page, a hidden cell could be recovered as the total minus
the others, so further cells are hidden (the smallest shown ones) until no
hidden cell can be pinned down from the total, the cells shown and the
bounds a reader knows ("fewer than 10" is 1–9; a complement is at least 10):
*complementary* suppression.

Suppression is a **mask**: :func:`suppress_counts` leaves the values as they
are and returns a :class:`Suppression` saying which cells are hidden and
which of them read "fewer than N" (the rest read "suppressed").  Renderers
show a cell from the mask, never by looking at its value.  Exact counts stay
out of the published folder (``docs/metrics.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Suppression", "hidden_determined", "suppress_counts"]


@dataclass(frozen=True)
class Suppression:
    """Which cells of a table are hidden: a boolean mask per cell.

    Attributes
    ----------
    hidden : DataFrame of bool
        Same index and columns as the table: True where the cell is not shown.
    small : DataFrame of bool
        True where a hidden cell reads "fewer than N" (a count below the
        minimum); the other hidden cells read "suppressed".

    Examples
    --------
    >>> t = pd.DataFrame({"n": [4, 30]})
    >>> s = suppress_counts(t, "n", total_shown=False)
    >>> s.hidden["n"].tolist(), s.small["n"].tolist(), s.rows.tolist()
    ([True, False], [True, False], [True, False])
    """

    hidden: pd.DataFrame
    small: pd.DataFrame

    @classmethod
    def none(cls, table: pd.DataFrame) -> Suppression:
        """Nothing hidden, for ``table``.

        Examples
        --------
        >>> Suppression.none(pd.DataFrame({"n": [1, 2]})).rows.tolist()
        [False, False]
        """
        empty = pd.DataFrame(False, index=table.index, columns=table.columns)
        return cls(empty, empty.copy())

    @property
    def rows(self) -> pd.Series:
        """True for each row with any hidden cell."""
        return self.hidden.any(axis=1)

    def is_hidden(self, index: object, column: str) -> bool:
        """Whether one cell is hidden (a column the mask does not know is shown).

        Examples
        --------
        >>> s = suppress_counts(pd.DataFrame({"n": [4, 30]}), "n", total_shown=False)
        >>> s.is_hidden(0, "n"), s.is_hidden(1, "n"), s.is_hidden(0, "other")
        (True, False, False)
        """
        return column in self.hidden.columns and bool(self.hidden.at[index, column])

    def is_small(self, index: object, column: str) -> bool:
        """Whether one hidden cell reads "fewer than N".

        Examples
        --------
        >>> s = suppress_counts(pd.DataFrame({"n": [4, 30], "rate": [0.5, 0.1]}), "n", derived=["rate"],
        ...                     total_shown=False)  # fmt: skip
        >>> s.is_small(0, "n"), s.is_small(0, "rate")
        (True, False)
        """
        return column in self.small.columns and bool(self.small.at[index, column])

    def hide(self, rows: pd.Series | np.ndarray, columns: Sequence[str], *, small: bool = False) -> Suppression:
        """A copy with ``columns`` hidden in ``rows`` (a boolean row mask).

        Examples
        --------
        >>> s = Suppression.none(pd.DataFrame({"n": [1, 2]})).hide([True, False], ["n", "share"])
        >>> s.hidden.values.tolist()
        [[True, True], [False, False]]
        """
        hidden, sm = self.hidden.copy(), self.small.copy()
        rows = np.asarray(rows, dtype=bool)
        for c in columns:
            if c not in hidden.columns:
                hidden[c] = False
                sm[c] = False
            hidden.loc[rows, c] = True
            if small:
                sm.loc[rows, c] = True
        return Suppression(hidden, sm)


def hidden_determined(values: Sequence[float], small: Sequence[bool], min_cell: int,
                      unknown: Sequence[bool] | None = None) -> bool:  # fmt: skip
    """Whether a shown total would pin down any one of the hidden cells ``values``.

    A reader knows the total of the hidden cells (the shown total minus the
    shown cells), that a "fewer than N" cell is 1 to N−1 and that any other
    hidden cell is at least N (``small`` False; an unknown one counts the
    same).  A cell is determined when those bounds leave it one value.

    Parameters
    ----------
    values : sequence of float
        The hidden cells' true counts.
    small : sequence of bool
        Whether each reads "fewer than N".
    min_cell : int
    unknown : sequence of bool, optional
        Cells hidden for another reason (bounds 0 and up).

    Returns
    -------
    bool

    Examples
    --------
    >>> hidden_determined([4], [True], 10)           # one hidden cell: total minus the rest
    True
    >>> hidden_determined([4, 25], [True, False], 10)
    False
    >>> hidden_determined([1, 10], [True, False], 10)  # 11 = 1 + 10 is the only split
    True
    >>> hidden_determined([9, 9], [True, True], 10)    # 18 = 9 + 9 is the only split
    True
    """
    v = np.asarray(values, dtype=float)
    sm = np.asarray(small, dtype=bool)
    if not len(v):
        return False
    total = v.sum()
    lo = np.where(sm, 1.0, float(min_cell))
    hi = np.where(sm, float(min_cell - 1), np.inf)
    if unknown is not None:
        lo = np.where(np.asarray(unknown, dtype=bool), 0.0, lo)
    others_lo = lo.sum() - lo
    finite = np.isfinite(hi)
    n_inf = int((~finite).sum())
    fin = hi[finite].sum()
    # the others' upper bound: infinite while another cell is unbounded
    others_hi = np.where(finite, np.inf if n_inf else fin - np.where(finite, hi, 0.0),
                         np.inf if n_inf > 1 else fin)  # fmt: skip
    low = np.maximum(lo, total - others_hi)
    high = np.minimum(hi, total - others_lo)
    return bool((high - low < 1).any())  # one integer left for some cell


def suppress_counts(table: pd.DataFrame, count: str, *, min_cell: int = 10, derived: Sequence[str] = (),
                    total_shown: bool = True, prior: Suppression | None = None,
                    within: Sequence[Sequence[bool]] = ()) -> Suppression:  # fmt: skip
    """The cells of ``table`` to hide: counts below ``min_cell``, what is computed from them, and complements.

    Parameters
    ----------
    table : DataFrame
        One row per group.
    count : str
        The column holding each group's count (customers, churners, events).
    min_cell : int
        Smallest count shown.
    derived : sequence of str
        Columns computed from the count (rates, shares, amounts, intervals):
        hidden with it.
    total_shown : bool
        A total of ``count`` is shown on the same page: further groups (the
        smallest shown ones) are hidden until no hidden group can be
        recovered from the total (:func:`hidden_determined`).  A group with 0
        reveals nothing and is never used as the complement.
    prior : Suppression, optional
        The mask of an earlier pass on the same table (another count column):
        its hidden cells stay hidden, and count as hidden for the complement.
    within : sequence of boolean row masks
        Groups of rows whose total is shown too (the high-value tiers of a
        breakdown by tier, whose total is the high-value KPI): complements
        are added within each as well, until no total pins a cell down.

    Returns
    -------
    Suppression
        The mask; ``table`` is not changed.

    Examples
    --------
    >>> t = pd.DataFrame({"group": ["1", "2", "3-4"], "customers": [4, 30, 52], "rate": [0.5, 0.2, 0.1]})
    >>> s = suppress_counts(t, "customers", derived=["rate"])
    >>> s.hidden[["customers", "rate"]].values.tolist(), s.small["customers"].tolist()
    ([[True, True], [True, True], [False, False]], [True, False, False])
    """
    if count not in table.columns:
        raise KeyError(f"suppress_counts: the table has no column {count!r}; it has {', '.join(map(str, table.columns))}")
    mask = prior if prior is not None else Suppression.none(table)
    n = pd.to_numeric(table[count], errors="coerce").to_numpy(dtype=float)
    before = mask.hidden[count].to_numpy(dtype=bool) if count in mask.hidden.columns else np.zeros(len(n), bool)
    known = np.isfinite(n)
    small = known & (n > 0) & (n < min_cell) & ~before
    hidden = small | before
    groups = ([np.ones(len(n), dtype=bool)] if total_shown else []) + [np.asarray(w, dtype=bool) for w in within]
    changed = True
    while changed:  # a complement added for one total may need another for a second one
        changed = False
        for g in groups:
            while True:
                idx = np.flatnonzero(g & hidden & known)
                if not hidden_determined(n[idx], small[idx], min_cell, before[idx]):
                    break
                shown = np.flatnonzero(g & ~hidden & known & (n > 0))
                if not len(shown):
                    break
                hidden[shown[np.argmin(n[shown])]] = True
                changed = True
    mask = mask.hide(small, [count], small=True)
    return mask.hide(hidden, [count, *derived])
