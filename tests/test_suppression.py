"""Small-cell suppression: no group below the minimum is shown, and none can be derived."""

from __future__ import annotations

import pandas as pd

from crmresearch.suppression import suppress_counts


def test_single_small_cell_gets_a_complement_when_a_total_is_shown() -> None:
    t = pd.DataFrame({"group": ["0", "1", "2", "3-4"], "customers": [0, 7, 40, 25],
                      "churned": [0, 3, 10, 4]})  # fmt: skip
    s = suppress_counts(t, "customers", derived=["churned"])
    assert s["customers"].tolist() == [0, "fewer than 10", 40, "suppressed"]
    assert s["churned"].tolist() == [0, "suppressed", 10, "suppressed"]
    assert s["suppressed"].tolist() == [False, True, False, True]
    # the hidden cell cannot be recovered from the total and the cells shown
    assert t["customers"].sum() - sum(v for v in s["customers"] if isinstance(v, int)) == 7 + 25


def test_no_complement_without_a_total_or_with_two_small_cells() -> None:
    t = pd.DataFrame({"customers": [5, 50, 60]})
    assert suppress_counts(t, "customers", total_shown=False)["suppressed"].tolist() == [True, False, False]
    t2 = pd.DataFrame({"customers": [5, 3, 60]})
    assert suppress_counts(t2, "customers")["suppressed"].tolist() == [True, True, False]


def test_threshold_is_a_parameter() -> None:
    t = pd.DataFrame({"customers": [12, 30, 31]})
    assert not suppress_counts(t, "customers")["suppressed"].any()
    s = suppress_counts(t, "customers", min_cell=20)
    assert s["customers"].tolist() == ["fewer than 20", "suppressed", 31]
