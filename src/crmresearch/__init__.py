"""crmresearch: churn-and-retention research for bank branches.

Layers, each importing only those before it (docs/architecture.md): core → data →
timelines → survival → viz → analyses → month → report → batch → cli.

Data flows one way: source → validated tables (:mod:`crmresearch.data.contract`) →
survival data (:mod:`crmresearch.survival.episodes`) → analyses → reports.
"""

from crmresearch.core.params import Params, ParamsError, load_params
from crmresearch.core.version import __version__
from crmresearch.data.contract import (
    ContractError,
    Source,
    ValidationReport,
    load_source,
    validate_source,
)

__all__ = [
    "ContractError",
    "Params",
    "ParamsError",
    "Source",
    "ValidationReport",
    "__version__",
    "load_params",
    "load_source",
    "validate_source",
]
