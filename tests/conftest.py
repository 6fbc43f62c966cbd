"""Shared fixtures: small demo banks, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmresearch.core.privacy import new_key_file
from crmresearch.data.demo import DemoConfig, write_demo_bank

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo bank (3 branches x 800 customers x 24 months), parquet."""
    out = tmp_path_factory.mktemp("demo") / "bank"
    return write_demo_bank(out, DemoConfig(branches=3, customers_per_branch=800, months=24, seed=7))


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pseudonym key file of the module's report runs (outside every output folder)."""
    return new_key_file(tmp_path_factory.mktemp("key") / "pseudonym.key")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache folder of the module's report runs (not created: the run creates it owner-only)."""
    return tmp_path_factory.mktemp("cache") / "cache"


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL cluster (tests/postgres_server.py); skipped without one, failed under CI=true."""
    import atexit

    from postgres_server import server_or_skip, stop

    server = server_or_skip()
    atexit.register(stop, server)  # also when the session ends abnormally (stop is idempotent)
    try:
        yield server
    finally:
        stop(server)
        atexit.unregister(stop)
