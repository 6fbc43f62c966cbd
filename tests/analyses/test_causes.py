"""The causes model says which default covariates it left out for missing values (issue 14)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from crmresearch.analyses.causes import causes_model, causes_summary
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
