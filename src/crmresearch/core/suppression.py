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

__all__ = ["Sum", "Suppression", "hidden_determined", "protect", "suppress_counts", "suppress_nested", "suppress_split"]


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


def _others(a: np.ndarray) -> np.ndarray:
    """For each i, the sum of ``a`` over the other cells (an infinite term makes it infinite)."""
    inf_pos, inf_neg = np.isposinf(a), np.isneginf(a)
    fin = np.where(np.isfinite(a), a, 0.0)
    total = fin.sum() - fin
    n_pos, n_neg = inf_pos.sum() - inf_pos, inf_neg.sum() - inf_neg
    return np.where(n_pos > 0, np.inf, np.where(n_neg > 0, -np.inf, total))


def _pinned(values: np.ndarray, signs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether ``sum(signs * x) = sum(signs * values)`` with ``lo <= x <= hi`` leaves some ``x_i`` one integer."""
    if not len(values):
        return False
    c = float((signs * values).sum())
    tlo, thi = np.where(signs > 0, lo, -hi), np.where(signs > 0, hi, -lo)  # bounds of each term s_i x_i
    low = np.maximum(tlo, c - _others(thi))
    high = np.minimum(thi, c - _others(tlo))
    return bool((high - low < 1).any())


def _bounds(small: np.ndarray, unknown: np.ndarray, min_cell: int) -> tuple[np.ndarray, np.ndarray]:
    """What a reader knows of hidden cells: "fewer than N" is 1 to N−1, "suppressed" at least N (or 0 and up)."""
    lo = np.where(small, 1.0, float(min_cell))
    lo = np.where(unknown & ~small, 0.0, lo)
    return lo, np.where(small, float(min_cell - 1), np.inf)


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
    unk = np.zeros(len(v), bool) if unknown is None else np.asarray(unknown, dtype=bool)
    lo, hi = _bounds(sm, unk, min_cell)
    return _pinned(v, np.ones(len(v)), lo, hi)


@dataclass(frozen=True)
class Sum:
    """One published (or implied) sum: the cells ``members`` add up to the cell ``total``.

    ``total`` None: the sum is a figure shown elsewhere on the page (a KPI,
    a total row) that is never hidden.  Indices are positions in the cell
    vector given to :func:`protect`.

    Examples
    --------
    >>> Sum(2, (0, 1))   # cell 2 is the total of cells 0 and 1
    Sum(total=2, members=(0, 1))
    """

    total: int | None
    members: tuple[int, ...]


def protect(values: Sequence[float], sums: Sequence[Sum], *, min_cell: int,
            hidden: Sequence[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Complementary suppression over linked tables: which cells to hide so no sum pins a hidden one down.

    Each cell is a count on the page (of one table or another); each
    :class:`Sum` says that some of them add up to another (a region's
    branches to the region's row) or to a figure that is always shown.
    Counts from 1 to ``min_cell`` − 1 are hidden; then, while some sum
    leaves a hidden cell one possible value (given the shown cells and the
    bounds a reader knows, :func:`hidden_determined`), the smallest shown
    member with a positive count is hidden too, or — when all its members
    are hidden already — the sum's total itself (a total hidden with all its
    members shown is their sum: that too is a sum that pins it).  Rounds
    repeat until no sum changes: hiding a region for its branches can call
    for a second region, for the bank's total.

    Each sum is checked on its own (no linear programme across sums), which
    is what a reader adding up one table against another does.

    Parameters
    ----------
    values : sequence of float
        Every cell's true count (NaN: not shown, and not part of any sum a reader can use).
    sums : sequence of Sum
    min_cell : int
    hidden : sequence of bool, optional
        Cells already hidden for another reason (an earlier count's pass): a reader
        knows only that they are 0 or more.

    Returns
    -------
    hidden, small : ndarray of bool
        Hidden cells, and the hidden ones that read "fewer than N".

    Examples
    --------
    Two branches of 9 customers make a region of 18: both branches read
    "fewer than 10", which with 18 leaves one split, so the region is hidden:

    >>> h, s = protect([9, 9, 18, 40], [Sum(2, (0, 1)), Sum(None, (2, 3))], min_cell=10)
    >>> h.tolist(), s.tolist()   # and the other region too, or the bank's total would give it back
    ([True, True, True, True], [True, True, False, False])
    """
    n = np.asarray(values, dtype=float)
    known = np.isfinite(n)
    before = np.zeros(len(n), bool) if hidden is None else np.asarray(hidden, dtype=bool).copy()
    small = known & (n > 0) & (n < min_cell) & ~before
    hid = small | before
    lo, hi = _bounds(small, before, min_cell)
    usable = [s for s in sums if known[list(s.members)].all() and (s.total is None or known[s.total])]

    def pinned(s: Sum) -> bool:
        idx = [i for i in s.members if hid[i]]
        signs = [1.0] * len(idx)
        if s.total is not None and hid[s.total]:
            if not idx:
                return True  # the members are all shown: the total is their sum
            idx.append(s.total)
            signs.append(-1.0)
        if not idx:
            return False
        return _pinned(n[idx], np.asarray(signs), lo[idx], hi[idx])

    changed = True
    while changed:  # a complement added for one sum may need another for a second one
        changed = False
        for s in usable:
            while pinned(s):
                shown = [i for i in s.members if not hid[i] and n[i] > 0]
                if shown:
                    pick = min(shown, key=lambda i: n[i])
                elif s.total is not None and not hid[s.total]:
                    pick = s.total
                else:
                    break  # nothing left to hide: every cell of this sum is hidden already
                hid[pick] = True
                lo[pick], hi[pick] = float(min_cell), np.inf
                changed = True
    return hid, small


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
    groups = ([np.ones(len(n), dtype=bool)] if total_shown else []) + [np.asarray(w, dtype=bool) for w in within]
    sums = [Sum(None, tuple(np.flatnonzero(g & known).tolist())) for g in groups]
    hidden, small = protect(n, sums, min_cell=min_cell, hidden=before)
    mask = mask.hide(small, [count], small=True)
    return mask.hide(hidden, [count, *derived])


def suppress_nested(members: pd.DataFrame, totals: pd.DataFrame, count: str, *, by: str, min_cell: int = 10,
                    derived: Sequence[str] = (), totals_derived: Sequence[str] | None = None,
                    total_shown: bool = True, prior: tuple[Suppression, Suppression] | None = None,
                    ) -> tuple[Suppression, Suppression]:  # fmt: skip
    """Suppression of two linked tables: ``members`` rows (branches) that add up to ``totals`` rows (regions).

    Each ``totals`` row is the sum of ``count`` over the ``members`` rows
    with the same ``by`` value (a NaN total, or a NaN member, is no usable
    sum), and the ``totals`` add up to a figure shown on the page when
    ``total_shown``.  Both tables are suppressed at once with
    :func:`protect`: a hidden branch is not given back by its region's row,
    nor a hidden region by its branches.

    Parameters
    ----------
    members, totals : DataFrame
        Both have the column ``by`` and ``count``.
    count, by : str
    min_cell : int
    derived : sequence of str
        Columns of ``members`` hidden with the count.
    totals_derived : sequence of str, optional
        Columns of ``totals`` hidden with the count (default: ``derived``, those present).
    total_shown : bool
    prior : (Suppression, Suppression), optional
        Earlier passes' masks of both tables.

    Returns
    -------
    (Suppression, Suppression)
        The masks of ``members`` and ``totals``.

    Examples
    --------
    >>> br = pd.DataFrame({"region": ["N", "N", "S", "S"], "customers": [9, 9, 20, 30]})
    >>> rg = pd.DataFrame({"region": ["N", "S"], "customers": [18, 50]})
    >>> mb, mr = suppress_nested(br, rg, "customers", by="region")
    >>> mb.hidden["customers"].tolist(), mr.hidden["customers"].tolist()
    ([True, True, True, False], [True, True])
    """
    for name, t in (("members", members), ("totals", totals)):
        if count not in t.columns or by not in t.columns:
            raise KeyError(f"suppress_nested: the {name} table needs columns {count!r} and {by!r}")
    pm, pt = prior if prior is not None else (Suppression.none(members), Suppression.none(totals))
    nm = pd.to_numeric(members[count], errors="coerce").to_numpy(dtype=float)
    nt = pd.to_numeric(totals[count], errors="coerce").to_numpy(dtype=float)
    k = len(nm)
    values = np.concatenate([nm, nt])
    before = np.concatenate([pm.hidden[count].to_numpy(bool) if count in pm.hidden else np.zeros(k, bool),
                             pt.hidden[count].to_numpy(bool) if count in pt.hidden else np.zeros(len(nt), bool)])  # fmt: skip
    keys = members[by].astype(object).where(members[by].notna(), None).to_numpy()
    sums = [Sum(k + j, tuple(np.flatnonzero(keys == key).tolist()))
            for j, key in enumerate(totals[by].astype(object).where(totals[by].notna(), None))]  # fmt: skip
    if total_shown:
        sums.append(Sum(None, tuple(range(k, k + len(nt)))))
    hidden, small = protect(values, sums, min_cell=min_cell, hidden=before)
    tder = [c for c in (derived if totals_derived is None else totals_derived) if c in totals.columns]
    pm = pm.hide(small[:k], [count], small=True).hide(hidden[:k], [count, *derived])
    pt = pt.hide(small[k:], [count], small=True).hide(hidden[k:], [count, *tder])
    return pm, pt


def suppress_split(table: pd.DataFrame, count: str, part: Sequence[bool], *, min_cell: int = 10,
                   derived: Sequence[str] = ()) -> tuple[Suppression, bool]:  # fmt: skip
    """Suppression of a table whose total is shown, and whose ``part`` rows' total is shown too.

    The month's churners by tier: all tiers add up to the month's churners
    (a KPI, always shown), the high-value tiers (``part``) to the high-value
    KPI, and so the other tiers to the first KPI minus the second.  The
    part's total is a cell of these sums: a small one (it reads "fewer than
    N") is not given back by the other tiers, and one the part's rows would
    pin down (two tiers of "fewer than 10" under 18) must be hidden where it
    is shown — the second value returned.

    Parameters
    ----------
    table : DataFrame
    count : str
    part : sequence of bool
        The rows of the part.
    min_cell : int
    derived : sequence of str
        Columns hidden with the count.

    Returns
    -------
    (Suppression, bool)
        The table's mask, and whether the part's total must be hidden as a complement
        (a small total reads "fewer than N" anyway: False).

    Examples
    --------
    Two high-value tiers of 3 and 4 churners, 33 others: 40 − 33 would give
    back the high-value KPI's 7, so an other tier is hidden too:

    >>> t = pd.DataFrame({"tier": ["mass", "affluent", "key", "private"], "n": [33, 12, 3, 4]})
    >>> mask, total_hidden = suppress_split(t, "n", [False, False, True, True])
    >>> mask.hidden["n"].tolist(), total_hidden
    ([False, True, True, True], False)
    >>> mask, total_hidden = suppress_split(t.assign(n=[33, 12, 9, 9]), "n", [False, False, True, True])
    >>> total_hidden   # 18 over two "fewer than 10" tiers: the KPI's 18 is hidden in the headline
    True
    """
    n = pd.to_numeric(table[count], errors="coerce").to_numpy(dtype=float)
    inside = np.asarray(part, dtype=bool)
    k = len(n)
    rows = np.arange(k)
    sums = [Sum(None, tuple(rows.tolist())), Sum(k, tuple(rows[inside].tolist())), Sum(None, (*rows[~inside].tolist(), k))]
    hidden, small = protect(np.append(n, np.nansum(n[inside])), sums, min_cell=min_cell)
    mask = Suppression.none(table).hide(small[:k], [count], small=True).hide(hidden[:k], [count, *derived])
    return mask, bool(hidden[k] and not small[k])
