"""The exact aggregated Cox model equals lifelines' CoxTimeVaryingFitter."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxTimeVaryingFitter

from crmresearch import load_source
from crmresearch.survival.cox import ConvergenceError, TimeVaryingCox
from crmresearch.survival.episodes import customer_table, episodes

matplotlib.use("Agg")


def _lifelines(df: pd.DataFrame, numeric: list[str], categorical: dict[str, str], strata=None) -> pd.DataFrame:
    X = pd.get_dummies(df[list(categorical)], prefix_sep="[", dtype=float)
    X.columns = [f"{c}]" for c in X.columns]
    X = X.drop(columns=[f"{c}[{ref}]" for c, ref in categorical.items()])
    d = pd.concat([df[["customer_id", "start", "stop", "event", *numeric, *(strata or [])]], X], axis=1)
    ctv = CoxTimeVaryingFitter().fit(d, id_col="customer_id", start_col="start", stop_col="stop",
                                     event_col="event", strata=strata)  # fmt: skip
    return ctv.summary


@pytest.fixture(scope="module")
def demo_episodes(small_demo: Path) -> pd.DataFrame:
    src = load_source(small_demo)
    return episodes(src).merge(customer_table(src)[["customer_id", "segment"]], on="customer_id")


def test_same_as_lifelines_on_the_demo_with_strata(demo_episodes: pd.DataFrame) -> None:
    numeric = ["n_products", "rm_turnover_exposed", "complaint_escalated_90d", "dormant"]
    ours = TimeVaryingCox().fit(demo_episodes, [*numeric, "tier", "segment"], strata=["branch_id"],
                                reference={"tier": "general", "segment": "salaried"})  # fmt: skip
    theirs = _lifelines(demo_episodes, numeric, {"tier": "general", "segment": "salaried"}, ["branch_id"])
    s = ours.summary
    assert set(s.index) == set(theirs.index)
    assert np.allclose(s["coef"], theirs.loc[s.index, "coef"], atol=1e-6, rtol=0)
    assert np.allclose(s["se(coef)"], theirs.loc[s.index, "se(coef)"], atol=1e-6, rtol=0)


def test_same_as_lifelines_with_heavy_ties() -> None:
    """Event times on a coarse grid (whole months): many tied events per time, Efron's case."""
    rng = np.random.default_rng(4)
    n = 3000
    x1 = rng.integers(0, 4, n)
    x2 = rng.random(n) < 0.4
    grp = rng.choice(["a", "b", "c"], n)
    t = np.ceil(rng.exponential(12 / np.exp(0.3 * x1 - 0.5 * x2 + (grp == "b") * 0.4)))
    c = rng.integers(1, 30, n)
    entry = rng.integers(0, 3, n)
    stop = np.maximum(np.minimum(t, c), entry + 1)
    df = pd.DataFrame({"customer_id": np.arange(n).astype(str), "start": entry, "stop": stop,
                       "event": ((t <= c) & (t > entry)).astype(int), "x1": x1, "x2": x2.astype(int), "grp": grp})  # fmt: skip
    ours = TimeVaryingCox().fit(df, ["x1", "x2", "grp"], reference={"grp": "a"}).summary
    theirs = _lifelines(df, ["x1", "x2"], {"grp": "a"})
    assert np.allclose(ours["coef"], theirs.loc[ours.index, "coef"], atol=1e-8, rtol=0)
    assert np.allclose(ours["se(coef)"], theirs.loc[ours.index, "se(coef)"], atol=1e-8, rtol=0)


def test_results_api(demo_episodes: pd.DataFrame) -> None:
    m = TimeVaryingCox(alpha=0.1).fit(demo_episodes, ["n_products", "dormant"])
    s = m.summary
    assert list(s.columns[:3]) == ["coef", "exp(coef)", "se(coef)"] and "exp(coef) lower 90%" in s
    hr = m.hazard_ratios()
    assert list(hr.columns) == ["term", "hr", "lower", "upper", "p"]
    assert (hr["lower"] < hr["hr"]).all() and (hr["hr"] < hr["upper"]).all()
    from crmresearch.viz.plots import (
        forest_plot,  # the survival layer draws nothing (viz is to its right)
    )

    ax = forest_plot(m.hazard_ratios(), level=90)
    assert ax.get_xlabel().startswith("hazard ratio")
    assert "events" in m._repr_html_() and "n_products" in repr(m)


def test_results_are_apart_from_the_model(tmp_path) -> None:
    """The fit's results are their own object (as statsmodels' PHRegResults): stored as data, rendered escaped."""
    from crmresearch.core.store import dump, load
    from crmresearch.survival.cox import CoxResults

    ep = pd.DataFrame({"start": 0, "stop": [5, 8, 12, 3, 9, 15, 4, 7, 11, 6], "event": [1, 0, 1, 1, 1, 0, 1, 0, 1, 1],
                       "x": [1, 1, 0, 1, 0, 0, 0, 1, 0, 1], "seg": ["<b>x</b>", "z"] * 5})  # fmt: skip
    with pytest.raises(ValueError, match="not fitted"):
        _ = TimeVaryingCox().results
    m = TimeVaryingCox().fit(ep, ["x", "seg"], reference={"seg": "z"})
    r = m.results
    assert isinstance(r, CoxResults) and r.n_events == 7 and r.references == {"seg": "z"}
    pd.testing.assert_frame_equal(r.summary, m.summary)
    hr = m.hazard_ratios()
    assert [d["term"] for d in r.to_metrics()] == list(hr["term"])
    assert [d["hr"] for d in r.to_metrics()] == pytest.approx(list(hr["hr"]), rel=1e-11)
    html = r._repr_html_()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html and "7 events" in html
    back = load(dump(m.slim(), tmp_path), tmp_path)  # data-only storage of the model keeps its results
    assert back.results.to_metrics() == r.to_metrics() and isinstance(back.results, CoxResults)


def test_bad_inputs() -> None:
    df = pd.DataFrame({"start": [0, 0, 0], "stop": [1, 2, 3], "event": [1, 0, 1], "x": [1.0, None, 0.0]})
    with pytest.raises(ValueError, match="missing values"):
        TimeVaryingCox().fit(df, ["x"])
    with pytest.raises(ValueError, match="no events"):
        TimeVaryingCox().fit(df.assign(event=0, x=1.0), ["x"])
    with pytest.raises(ValueError, match="stop <= start"):
        TimeVaryingCox().fit(df.assign(start=[0, 2, 0], x=1.0), ["x"])
    separated = pd.DataFrame({"start": 0, "stop": [1, 2, 3, 4, 5, 6], "event": [1, 1, 1, 0, 0, 0],
                              "x": [1, 1, 1, 0, 0, 0]})  # fmt: skip
    with pytest.raises(ConvergenceError):
        TimeVaryingCox(max_iter=30).fit(separated, ["x"])


def test_concordance_equals_harrell_for_fixed_covariates() -> None:
    from lifelines.utils import concordance_index

    rng = np.random.default_rng(1)
    n = 1500
    x, z = rng.integers(0, 5, n), (rng.random(n) < 0.5).astype(int)
    t = rng.exponential(100 / np.exp(0.4 * x - 0.7 * z)) + rng.random(n) * 1e-3  # no tied times
    c = rng.uniform(0, 300, n)
    df = pd.DataFrame({"start": 0.0, "stop": np.minimum(t, c), "event": (t <= c).astype(int), "x": x, "z": z})
    m = TimeVaryingCox().fit(df, ["x", "z"])
    eta = m.params_["x"] * x + m.params_["z"] * z
    assert m.concordance() == pytest.approx(concordance_index(df["stop"], -eta, df["event"]), abs=1e-12)


def test_ph_check_matches_lifelines_and_flags_only_real_changes() -> None:
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    rng = np.random.default_rng(2)
    n = 2000
    x, z = rng.integers(0, 5, n), rng.random(n) < 0.5
    early = rng.random(n) < 0.5  # z matters only early: half of z customers leave fast
    t = np.where(z & early, rng.exponential(20, n), rng.exponential(100, n)) * np.exp(-0.3 * x)
    c = rng.uniform(0, 300, n)
    df = pd.DataFrame({"start": 0.0, "stop": np.minimum(t, c), "event": (t <= c).astype(int), "x": x,
                       "z": z.astype(int)})  # fmt: skip
    check = TimeVaryingCox().fit(df, ["x", "z"]).ph_check(early_days=10, late_days=200).set_index("term")
    ref = proportional_hazard_test(CoxPHFitter().fit(df.drop(columns="start"), "stop", "event"),
                                   df.drop(columns="start"), time_transform="log").summary  # fmt: skip
    assert np.allclose(check["chi2"], ref.loc[check.index, "test_statistic"], rtol=1e-6)
    assert check.loc["z", "verdict"].startswith("changes: the association is stronger early")
    assert check.loc["x", "verdict"].startswith("holds")


def test_causes_model_on_the_demo(small_demo: Path) -> None:
    from crmresearch.analyses.causes import causes_model

    src = load_source(small_demo)
    m = causes_model(src)
    assert {"n_products", "rm_turnover_exposed", "complaint_escalated_90d", "dormant"} <= set(m.params_.index)
    hr = m.hazard_ratios().set_index("term")
    assert hr.loc["n_products", "upper"] < 1 and hr.loc["rm_turnover_exposed", "lower"] > 1
    assert 0.6 < m.concordance() < 0.95
    ph = m.ph_check()
    assert set(ph["term"]) == set(m.params_.index)
    transfer = causes_model(src, churn_type="transfer")
    assert transfer.n_events_ < m.n_events_


def test_predicted_survival_equals_lifelines() -> None:
    """Breslow baseline and predicted churn probabilities equal lifelines' CoxPHFitter's
    (fixed covariates, tied times): the watch list's risk is the model's, not an approximation."""
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(8)
    n = 2000
    x1, x2 = rng.integers(0, 4, n), rng.integers(0, 2, n)
    t = np.ceil(rng.exponential(200 / np.exp(-0.4 * x1 + 0.6 * x2)))
    e = (t < 300).astype(int)
    t = np.minimum(t, 300)
    df = pd.DataFrame({"start": 0.0, "stop": t, "event": e, "x1": x1, "x2": x2})
    ours = TimeVaryingCox().fit(df, ["x1", "x2"])
    cph = CoxPHFitter().fit(df[["stop", "event", "x1", "x2"]], "stop", "event")
    new = pd.DataFrame({"x1": [0, 3, 1], "x2": [1, 0, 0]})
    tenure, horizon = np.array([0.0, 50.0, 120.0]), 90.0
    theirs = cph.predict_survival_function(new, times=np.r_[tenure, tenure + horizon]).to_numpy()
    expected = 1 - np.array([theirs[3 + i, i] / theirs[i, i] if tenure[i] > 0 else theirs[3 + i, i]
                             for i in range(3)])  # fmt: skip
    got = ours.predict_churn_probability(new, tenure, horizon).to_numpy()
    assert np.allclose(got, expected, atol=1e-8)
    with pytest.raises(ValueError, match="stratified"):
        TimeVaryingCox().fit(df.assign(s=x2), ["x1"], strata=["s"]).baseline_cumulative_hazard()


@pytest.mark.parametrize("missing", [1, 3])
def test_missing_stratum_names_the_column_and_rows(missing: int) -> None:
    """A missing value in a strata column is a clear error naming the column and the row count
    (numpy's "arange: cannot compute length" before), whether one row or several lack a stratum."""
    rng = np.random.default_rng(5)
    n = 40
    df = pd.DataFrame({"start": 0.0, "stop": rng.integers(1, 50, n).astype(float),
                       "event": rng.integers(0, 2, n), "x": rng.normal(size=n),
                       "branch": rng.choice(["A", "B"], n).astype(object)})  # fmt: skip
    df.loc[df.index[:missing], "branch"] = None
    with pytest.raises(ValueError, match=rf"strata column 'branch' has missing values in {missing} of {n} rows"):
        TimeVaryingCox().fit(df, ["x"], strata=["branch"])
    with pytest.raises(ValueError, match=r"strata column\(s\) 'nope' not in the data"):
        TimeVaryingCox().fit(df, ["x"], strata=["nope"])
    # all rows with a stratum: fits (the check does not refuse good data)
    TimeVaryingCox().fit(df.dropna(subset=["branch"]), ["x"], strata=["branch"])
