"""Small-cell suppression: no group below the minimum is shown, and none can be derived."""

from __future__ import annotations

import pandas as pd

from crmresearch.core.suppression import hidden_determined, suppress_counts


def test_single_small_cell_gets_a_complement_when_a_total_is_shown() -> None:
    t = pd.DataFrame({"group": ["0", "1", "2", "3-4"], "customers": [0, 7, 40, 25],
                      "churned": [0, 3, 10, 4]})  # fmt: skip
    s = suppress_counts(t, "customers", derived=["churned"])
    assert s.hidden["customers"].tolist() == [False, True, False, True]
    assert s.small["customers"].tolist() == [False, True, False, False]  # "fewer than 10", then "suppressed"
    assert s.hidden["churned"].tolist() == [False, True, False, True]
    assert s.rows.tolist() == [False, True, False, True]
    assert t["customers"].tolist() == [0, 7, 40, 25], "the table is not changed: suppression is a mask"
    # the hidden cell cannot be recovered from the total and the cells shown
    assert t["customers"].sum() - t.loc[~s.hidden["customers"], "customers"].sum() == 7 + 25


def test_no_complement_without_a_total_or_with_two_small_cells() -> None:
    t = pd.DataFrame({"customers": [5, 50, 60]})
    assert suppress_counts(t, "customers", total_shown=False).hidden["customers"].tolist() == [True, False, False]
    t2 = pd.DataFrame({"customers": [5, 3, 60]})
    assert suppress_counts(t2, "customers").hidden["customers"].tolist() == [True, True, False]


def test_threshold_is_a_parameter() -> None:
    t = pd.DataFrame({"customers": [12, 30, 31]})
    assert not suppress_counts(t, "customers").hidden.any().any()
    s = suppress_counts(t, "customers", min_cell=20)
    assert s.hidden["customers"].tolist() == [True, True, False] and s.small["customers"].tolist() == [True, False, False]


def test_complements_go_on_until_no_hidden_cell_is_pinned_down_by_the_total() -> None:
    # 1 and 10 hidden: the reader knows their sum (11), that the first is 1-9 and the second at least 10: 1 + 10
    t = pd.DataFrame({"n": [1, 10, 50, 70]})
    assert hidden_determined([1, 10], [True, False], 10)
    assert suppress_counts(t, "n").hidden["n"].tolist() == [True, True, True, False]
    # 9 and 9 hidden: their sum, 18, splits only as 9 + 9
    t = pd.DataFrame({"n": [9, 9, 50, 70]})
    assert suppress_counts(t, "n").hidden["n"].tolist() == [True, True, True, False]
    # 4 and 8: 12 splits as 3 + 9, 4 + 8, ...: no complement needed
    assert suppress_counts(pd.DataFrame({"n": [4, 8, 50]}), "n").hidden["n"].tolist() == [True, True, False]


def test_a_second_pass_keeps_the_first_and_hides_what_is_computed_from_its_count() -> None:
    t = pd.DataFrame({"customers": [5, 40, 30], "churned": [2, 3, 12], "rate": [0.4, 3 / 40, 0.4]})
    first = suppress_counts(t, "customers", derived=["churned", "rate"], total_shown=False)
    s = suppress_counts(t, "churned", derived=["rate"], total_shown=False, prior=first)
    assert s.hidden["customers"].tolist() == [True, False, False]
    assert s.hidden["churned"].tolist() == [True, True, False]
    assert s.hidden["rate"].tolist() == [True, True, False], "3 / 40 x 40 would give back the 3 churners"
    assert s.small["churned"].tolist() == [False, True, False]  # row 0 was hidden by the first pass: "suppressed"


def test_hidden_determined_agrees_with_every_split_a_reader_could_try() -> None:
    import itertools

    import numpy as np

    rng = np.random.default_rng(12)
    for _ in range(1500):
        small = list(rng.random(int(rng.integers(1, 4))) < 0.6)
        values = [int(rng.integers(1, 10)) if s else int(rng.integers(10, 14)) for s in small]
        total = sum(values)
        ranges = [range(1, 10) if s else range(10, total + 1) for s in small]
        splits = [c for c in itertools.product(*ranges) if sum(c) == total]
        pinned = any(len({c[i] for c in splits}) == 1 for i in range(len(values)))
        assert hidden_determined(values, small, 10) == pinned, (values, small)


def test_complements_within_a_group_whose_total_is_shown_too() -> None:
    # churners by tier; the high-value tiers (key, private) have a total of their own (the high-value KPI)
    t = pd.DataFrame({"group": ["mass", "general", "key", "private"], "n": [30, 11, 3, 12]})
    hv = t["group"].isin(["key", "private"]).to_numpy()
    alone = suppress_counts(t, "n")
    assert alone.hidden["n"].tolist() == [False, True, True, False], "the complement of the whole table: general"
    s = suppress_counts(t, "n", within=[hv, ~hv])
    assert s.hidden["n"].tolist() == [True, True, True, True], "private (15 - 12) and then mass (41 - 11)"
