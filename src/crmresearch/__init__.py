"""crmresearch: churn-and-retention research for bank branches.

Data flows one way: source → validated tables (:mod:`crmresearch.contract`) →
survival data (:mod:`crmresearch.survival`) → analyses → reports.
"""

from importlib.metadata import PackageNotFoundError, version

from .contract import ContractError, Source, ValidationReport, load_source, validate_source
from .params import Params, ParamsError, load_params

try:
    __version__ = version("crmresearch")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

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
