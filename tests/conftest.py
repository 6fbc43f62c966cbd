"""Shared fixtures: small demo banks, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmresearch.demo import DemoConfig, write_demo_bank

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo bank (3 branches x 800 customers x 24 months), parquet."""
    out = tmp_path_factory.mktemp("demo") / "bank"
    return write_demo_bank(out, DemoConfig(branches=3, customers_per_branch=800, months=24, seed=7))
