"""The causes model says which default covariates it left out for missing values (issue 14)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from crmresearch.analyses.causes import causes_frame, causes_model, causes_summary
from crmresearch.analyses.product_coverage import sticky_products
from crmresearch.core.errors import InputError
from crmresearch.data.contract import load_source
from crmresearch.data.flat import import_flat
from crmresearch.month.metrics import metrics
from crmresearch.viz.i18n import label, translate


def _flat_with_gaps(tmp_path: Path, n: int = 300) -> Path:
    rng = np.random.default_rng(11)
    df = pd.DataFrame({"id": [f"C{i:04d}" for i in range(n)], "tenure": rng.integers(1, 60, n),
                       "left": rng.integers(0, 2, n), "products": rng.integers(1, 5, n),
                       "income": rng.normal(50, 10, n).round(1).astype(str), "region_code": rng.choice(["a", "b"], n)})
    df.loc[::7, "income"] = ""  # blanks: missing values in an otherwise usable column
    df.to_csv(tmp_path / "in.csv", index=False)
    mapping = {"customer_id": "id", "tenure": {"column": "tenure", "unit": "months"},
               "churned": {"column": "left", "true_values": [1], "false_values": [0]},
               "n_products": {"column": "products"}, "branch": {"id": "ALL", "name": "All"},
               "extras": [{"column": "income", "type": "float"}, "region_code"]}  # fmt: skip
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(mapping), encoding="utf-8")
    return import_flat(tmp_path / "in.csv", tmp_path / "map.yaml", tmp_path / "out")


def test_flat_model_names_the_covariate_it_leaves_out_for_missing_values(tmp_path: Path) -> None:
    source = load_source(_flat_with_gaps(tmp_path))
    m = causes_model(source)
    assert "income" not in m.covariates_ and "region_code" in m.covariates_
    assert m.caveats_ == ["The causes model leaves out income: some customers have no value (every covariate of "
                          "the model needs a value for every customer)."]  # fmt: skip
    zh = translate(m.caveats_[0], "zh")
    assert zh != m.caveats_[0] and "income" in zh and "流失原因模型未纳入" in zh
    # metrics.json (and so the report's caveats) carries it
    assert m.caveats_[0] in metrics(source, month=None)["caveats"]
    # requested, the same column is an error, not a silent drop
    with pytest.raises(InputError, match="'income'.*missing values"):
        causes_model(source, covariates=["n_products", "income"])
    assert causes_model(source, covariates=["n_products"]).caveats_ == []


def test_calendar_model_names_partly_and_wholly_missing_covariates(small_demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "bank"
    shutil.copytree(small_demo, out)
    c = pd.read_parquet(out / "customers.parquet")
    c.loc[c.index[::5], "segment"] = None  # some customers have no segment
    c.to_parquet(out / "customers.parquet", index=False)
    (out / "complaints.parquet").unlink()  # no complaints table: no customer has the escalation covariate
    m = causes_model(load_source(out))
    assert "segment" not in m.covariates_ and "complaint_escalated_90d" not in m.covariates_
    assert m.caveats_ == [
        "The causes model leaves out segment: some customers have no value (every covariate of the model needs a "
        "value for every customer).",
        "The causes model leaves out complaint_escalated_90d: no customer has a value."]
    for caveat in m.caveats_:
        zh = translate(caveat, "zh")
        assert zh != caveat and not any(w in zh for w in ("segment", "complaint"))
    assert label("segment", "zh") in translate(m.caveats_[0], "zh")
    assert any(n.startswith("The causes model leaves out segment") for n in causes_summary(m).notes)
    # the complete bank: nothing left out, no caveat
    assert causes_model(load_source(small_demo)).caveats_ == []


def test_one_read_of_the_episodes_serves_the_causes_model_and_the_sticky_products(small_demo: Path) -> None:
    """The bank stage reads the episodes once (causes_frame with the sticky indicators) for both models."""
    from crmresearch.timelines.products import STICKY_COVARIATES

    src = load_source(small_demo)
    try:
        frame = causes_frame(src, covariates=STICKY_COVARIATES)
        assert {"start", "stop", "event", "n_products", "segment", *STICKY_COVARIATES} <= set(frame.columns)
        own, shared = causes_model(src), causes_model(src, frame=frame)
        pd.testing.assert_series_equal(shared.params_, own.params_, rtol=1e-12)
        assert shared.n_episodes_ == own.n_episodes_ == len(frame) and shared.caveats_ == own.caveats_
        s_own, s_shared = sticky_products(src), sticky_products(src, frame=frame)
        pd.testing.assert_frame_equal(s_shared.table, s_own.table, rtol=1e-12)
        assert s_shared.caveats == s_own.caveats
        # a frame without the columns a model needs is refused, naming them
        with pytest.raises(ValueError, match="holds_payroll"):
            causes_model(src, frame=frame.drop(columns="holds_payroll"), covariates=["n_products", "holds_payroll"])
    finally:
        src.close()
