"""The shared estimators of crmresearch.survival.estimators against an independent implementation."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines.utils import concordance_index as lifelines_concordance

from crmresearch.survival.estimators import concordance_index


@pytest.mark.parametrize("seed", range(8))
def test_concordance_equals_lifelines_with_ties_everywhere(seed: int) -> None:
    """Tied times (events and censorings at one time), tied scores, censorings before the first event."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 3000))
    times = rng.integers(0, int(rng.integers(3, 95)), n).astype(float)  # days within a horizon: many ties
    events = (rng.random(n) < rng.uniform(0.05, 0.9)).astype(int)
    scores = np.round(rng.normal(size=n) + 0.1 * times, int(rng.integers(0, 3)))  # tied scores too
    times[events == 0] = np.where(rng.random((events == 0).sum()) < 0.7, times.max(), times[events == 0])
    want = lifelines_concordance(times, scores, events)
    got = concordance_index(times, scores, events)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0.5 < got < 1.0  # the scores carry signal: not a constant the comparison could not catch


def test_concordance_of_a_perfect_and_a_reversed_ranking() -> None:
    times = np.array([1.0, 2.0, 3.0, 4.0, 4.0])
    events = np.array([1, 1, 1, 1, 0])
    longer = times + 0.5 * (1 - events)  # the censoring at 4 outlives the death at 4
    assert concordance_index(times, longer, events) == 1.0
    assert concordance_index(times, -longer, events) == 0.0
    assert np.isnan(concordance_index(times, times, np.zeros(5)))  # no usable pair
