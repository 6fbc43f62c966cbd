"""The data contract in one import: the spec, the findings, the loader and the Source.

The contract's code lives in five modules of :mod:`crmresearch.data`, one job
each; this module gathers their public names, so that ``from
crmresearch.data.contract import load_source, TABLES`` keeps working:

* :mod:`~crmresearch.data.spec` — the contract as data (:data:`TABLES`:
  every table, column, type and rule; the code lists);
* :mod:`~crmresearch.data.findings` — :class:`Finding`,
  :class:`ValidationReport`, :class:`ContractError`;
* :mod:`~crmresearch.data.loader` — :func:`load_source` and
  :func:`validate_source`: read a folder of Parquet/CSV files or a DuckDB
  file into an in-memory DuckDB database, converting each column once;
* :mod:`~crmresearch.data.rules` — every rule as one SQL query, all findings
  in one pass;
* :mod:`~crmresearch.data.source` — :class:`Source`, the validated tables
  behind one interface whatever the kind of source (what it can answer:
  :mod:`~crmresearch.data.capabilities`).
"""

from __future__ import annotations

from crmresearch.data.findings import ContractError, Finding, ValidationReport
from crmresearch.data.loader import _connect, check_branch, load_source, validate_source
from crmresearch.data.rules import iter_rules
from crmresearch.data.source import Source, default_memory_limit, table_has_column
from crmresearch.data.spec import (
    ACTION_TYPES,
    CALENDAR_TABLES,
    CHANNELS,
    CHURN_TYPES,
    EXIT_TYPES,
    FLAT_CUSTOMERS,
    OUTCOMES,
    PRODUCTS,
    SEGMENTS,
    SEVERITIES,
    STICKY_COVARIATES,
    STICKY_PRODUCTS,
    TABLES,
    TRIGGERS,
    Column,
    TableSpec,
    sticky_covariate,
)

__all__ = [
    "ACTION_TYPES",
    "CALENDAR_TABLES",
    "CHANNELS",
    "CHURN_TYPES",
    "EXIT_TYPES",
    "FLAT_CUSTOMERS",
    "OUTCOMES",
    "PRODUCTS",
    "SEGMENTS",
    "SEVERITIES",
    "STICKY_COVARIATES",
    "STICKY_PRODUCTS",
    "TABLES",
    "TRIGGERS",
    "Column",
    "ContractError",
    "Finding",
    "Source",
    "TableSpec",
    "ValidationReport",
    "_connect",
    "check_branch",
    "default_memory_limit",
    "iter_rules",
    "load_source",
    "sticky_covariate",
    "table_has_column",
    "validate_source",
]
