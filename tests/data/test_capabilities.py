"""What a source can answer (data/capabilities): one call, the same answers and errors as the support matrix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crmresearch import load_source
from crmresearch.core.errors import InputError
from crmresearch.data.capabilities import ANALYSES, CALENDAR, FLAT_REASONS, flat_support
from crmresearch.data.contract import ValidationReport


def _flat(tmp_path: Path, **columns) -> Path:
    n = 40
    df = pd.DataFrame({"customer_id": [f"C{i:03d}" for i in range(n)], "branch_id": ["B1", "B2"] * (n // 2),
                       "tenure_months": [i % 30 for i in range(n)], "churned": [i % 3 == 0 for i in range(n)],
                       **columns})  # fmt: skip
    folder = tmp_path / "flat"
    folder.mkdir()
    df.to_parquet(folder / "customers.parquet", index=False)
    pd.DataFrame({"branch_id": ["B1", "B2"], "branch_name": ["One", "Two"]}).to_parquet(folder / "branches.parquet",
                                                                                       index=False)  # fmt: skip
    return folder


def test_a_dated_source_can_answer_everything(small_demo: Path) -> None:
    src = load_source(small_demo)
    try:
        assert src.can(CALENDAR)
        assert all(src.can(a.name) for a in ANALYSES)
        for a in ANALYSES:
            src.require(a.name)  # raises nothing
    finally:
        src.close()


def test_a_flat_extract_answers_what_its_columns_support(tmp_path: Path) -> None:
    src = load_source(_flat(tmp_path, n_products=[1 + i % 4 for i in range(40)]))
    try:
        assert not src.can(CALENDAR)
        assert src.can("product coverage") and src.can("metrics.json")
        for name in ("monthly KPIs", "lifecycle", "RM turnover", "early warnings", "watch list", "retention outcomes"):
            assert not src.can(name)
            with pytest.raises(InputError) as e:
                src.require(name)
            assert str(e.value) == f"{name} cannot run on the flat extract {src.path}: {FLAT_REASONS[name]}"
        support = flat_support(src).set_index("analysis")["available"]
        assert {a.name: src.can(a.name) for a in ANALYSES} == support.to_dict()
    finally:
        src.close()


def test_without_n_products_a_flat_extract_cannot_group_by_products(tmp_path: Path) -> None:
    src = load_source(_flat(tmp_path))
    try:
        assert not src.can("product coverage")
        with pytest.raises(InputError, match="has no n_products column"):
            src.require("product coverage")
    finally:
        src.close()


def test_an_unknown_question_is_an_error(small_demo: Path) -> None:
    src = load_source(small_demo)
    try:
        with pytest.raises(ValueError, match="unknown question 'churn'"):
            src.can("churn")
    finally:
        src.close()
    assert not ValidationReport(source="x", flat=True).can(CALENDAR)
    assert ValidationReport(source="x").can(CALENDAR)
    with pytest.raises(ValueError, match="ask the loaded Source"):
        ValidationReport(source="x").can("lifecycle")
