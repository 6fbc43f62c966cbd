"""Parameters: one validated object, loaded once, passed down.

Every tunable rule of the package lives in :class:`Params`.  Its defaults are
the single source of truth; ``params/defaults.yaml`` spells them out for
users (a test keeps the two identical).  A parameters file may be partial: it
is merged over the defaults.  Unknown keys, wrong types and impossible values
raise :class:`ParamsError`, which names the file and the dotted key.

No other module reads YAML or environment variables for parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crmresearch.core.errors import InputError
from crmresearch.core.io import read_yaml

__all__ = [
    "AssetAttrition",
    "ChurnParams",
    "EngineParams",
    "RetentionParams",
    "WARNING_RULES",
    "WarningParams",
    "Params",
    "ParamsError",
    "branch_params",
    "Tier",
    "WindowParams",
    "load_params",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class AssetAttrition(_Strict):
    """Parameters of the ``asset_attrition`` churn definition (data contract).

    A customer churns at the end of the first month of ``months`` consecutive
    months whose month-end AUM is below ``fraction`` of the reference AUM (the
    largest month-end AUM of the ``reference_months`` months before), when that
    reference is at least ``min_reference_aum``.

    Examples
    --------
    >>> AssetAttrition()
    AssetAttrition(months=3, fraction=0.2, min_reference_aum=50000, reference_months=12)
    >>> AssetAttrition(months=6, fraction=0.1).months
    6
    """

    months: int = Field(3, ge=1, le=24, description="k: consecutive months below the threshold")
    fraction: float = Field(0.2, gt=0, lt=1, description="threshold as a share of the reference AUM")
    min_reference_aum: float = Field(50_000, ge=0, description="smallest reference AUM considered")
    reference_months: int = Field(12, ge=1, le=60, description="months looked back for the reference (maximum month-end AUM)")


class ChurnParams(_Strict):
    """Which churn definition to use and its parameters.

    Examples
    --------
    >>> ChurnParams().definition
    'recorded'
    >>> c = ChurnParams(definition="asset_attrition", asset_attrition={"months": 4})
    >>> c.asset_attrition.months
    4
    """

    definition: Literal["recorded", "asset_attrition"] = "recorded"
    asset_attrition: AssetAttrition = AssetAttrition()


class WindowParams(_Strict):
    """Lengths (days) of the windows that time-varying covariates look back over.

    Examples
    --------
    >>> WindowParams(rm_turnover_days=60)
    WindowParams(rm_turnover_days=60, complaint_days=90, retention_contact_days=90)
    """

    rm_turnover_days: int = Field(90, ge=1, le=3650, description="exposure after an RM's exit")
    complaint_days: int = Field(90, ge=1, le=3650, description="an escalated complaint counts this long")
    retention_contact_days: int = Field(90, ge=1, le=3650, description="a retention contact counts this long")


WARNING_RULES = ("no_transaction", "outflow", "complaint", "rm_exit", "product_drop")
WarningRule = Literal["no_transaction", "outflow", "complaint", "rm_exit", "product_drop"]


class WarningParams(_Strict):
    """The early-warning rules of ``reports.md`` and their thresholds.

    ``no_transaction`` uses ``dormancy_months`` (it is the day a customer
    becomes dormant); the ``*_days`` / ``*_months`` values are how long a
    warning stays active (the watch list shows active warnings).

    Examples
    --------
    >>> WarningParams().rules
    ('no_transaction', 'outflow', 'complaint', 'rm_exit', 'product_drop')
    >>> WarningParams(rules=["complaint", "rm_exit"], complaint_days=60).complaint_days
    60
    """

    rules: tuple[WarningRule, ...] = WARNING_RULES
    outflow_fraction: float = Field(0.5, gt=0, le=10, description="outflow above this share of the previous month-end AUM")
    complaint_days: int = Field(30, ge=1, le=365, description="an escalated complaint warns for this long")
    rm_exit_days: int = Field(90, ge=1, le=365, description="an RM exit without handover contact warns for this long")
    handover_lookback_days: int = Field(30, ge=0, le=365, description="a contact this many days before the exit counts as handover contact")
    product_drop_months: int = Field(3, ge=1, le=24, description="a fall in the product count warns for this long")


class RetentionParams(_Strict):
    """How the retention loop is judged (``reports.md`` §7).

    ``grace_days`` (default: the response target) is the window after a
    warning in which a contact counts as "contacted"; the outcome is counted
    over ``outcome_days`` from the end of that window, among warned customers
    still active then.  The cohort is the warnings of the last
    ``cohort_months`` calendar months whose outcome is known by the report
    month's end.

    Examples
    --------
    >>> RetentionParams().grace, RetentionParams(grace_days=7).grace
    (1, 7)
    """

    response_target_days: int = Field(1, ge=0, le=90, description="contact within this many days of the warning")
    grace_days: int | None = Field(None, ge=0, le=90, description="contact window of the outcome analysis")
    outcome_days: int = Field(90, ge=1, le=365)
    cohort_months: int = Field(3, ge=1, le=24)

    @property
    def grace(self) -> int:
        """The grace window in days (``grace_days``, else the response target)."""
        return self.response_target_days if self.grace_days is None else self.grace_days


class Tier(_Strict):
    """One AUM tier: customers whose daily-average AUM is at least ``min_aum``.

    Examples
    --------
    >>> Tier(name="vip", min_aum=5_000_000)
    Tier(name='vip', min_aum=5000000.0)
    """

    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    min_aum: float = Field(ge=0)


_DEFAULT_TIERS = (
    Tier(name="mass", min_aum=0),
    Tier(name="potential", min_aum=20_000),
    Tier(name="general", min_aum=50_000),
    Tier(name="key", min_aum=200_000),
    Tier(name="private", min_aum=1_000_000),
)


class EngineParams(_Strict):
    """Resources the engine may use (they never change a result).

    ``threads: null`` lets DuckDB use every core; ``memory_limit: null`` caps it
    at the smaller of 6 GB and 50% of RAM (beyond that it spills to a
    temporary folder).  ``report_timeout_seconds`` is how long one report
    notebook may run before the report run stops it and marks it failed
    (``crmresearch report --timeout`` overrides it).
    ``scheduler_connect_seconds`` is how long ``crmresearch report
    --scheduler`` waits for the Dask scheduler to answer before it gives up
    with an error (before anything is written).
    ``database_timeout_seconds`` is how long connecting to a PostgreSQL
    source may take, and how long reading all its tables may take.

    Examples
    --------
    >>> EngineParams(threads=2, memory_limit="4GB")
    EngineParams(threads=2, memory_limit='4GB', report_timeout_seconds=600, scheduler_connect_seconds=30, database_timeout_seconds=600)
    """

    threads: int | None = Field(None, ge=1, le=256)
    memory_limit: str | None = Field(None, pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
    report_timeout_seconds: int = Field(600, ge=10, le=86400)
    scheduler_connect_seconds: int = Field(30, ge=1, le=3600)
    database_timeout_seconds: int = Field(600, ge=1, le=86400)


class Params(_Strict):
    """All parameters of crmresearch.

    Attributes
    ----------
    churn : ChurnParams
        Churn definition (``recorded`` or ``asset_attrition``) and its parameters.
    windows : WindowParams
        Look-back windows of the time-varying covariates, in days.
    dormancy_months : int
        A customer is dormant after this many consecutive closed months with no
        customer-initiated transaction.
    tiers : tuple of Tier
        Daily-average-AUM tiers, lowest first; the first must start at 0.
    high_value_tiers : tuple of str
        Tiers counted as high-value customers.
    warnings : WarningParams
        Early-warning rules and thresholds.
    retention : RetentionParams
        Response target, grace window and outcome horizon of the retention loop.
    language : {'en', 'zh'}
        Language of reports and of ``metrics.json``'s ``language`` field.
    branch_model_min_events : int or None
        A branch's report shows its own causes model instead of the
        bank-wide one when the branch has at least this many churns; None
        (default): always the bank-wide model (thousands of branch models
        throw up chance findings).
    min_cell_size : int
        Smallest group a report shows (smaller ones say "fewer than ..."); the
        contact odds ratio needs this many customers in each of its four cells.
    engine : EngineParams
        DuckDB threads and memory limit.

    Examples
    --------
    >>> p = Params()
    >>> p.churn.definition, p.dormancy_months, p.tier_names
    ('recorded', 2, ['mass', 'potential', 'general', 'key', 'private'])
    >>> Params(dormancy_months=3).dormancy_months
    3

    Usually loaded with :func:`load_params`, which merges a file over these
    defaults and names the file and key of an invalid value.
    """

    churn: ChurnParams = ChurnParams()
    windows: WindowParams = WindowParams()
    dormancy_months: int = Field(2, ge=1, le=24)
    tiers: tuple[Tier, ...] = _DEFAULT_TIERS
    high_value_tiers: tuple[str, ...] = ("key", "private")
    warnings: WarningParams = WarningParams()
    retention: RetentionParams = RetentionParams()
    language: Literal["en", "zh"] = "en"
    branch_model_min_events: int | None = Field(None, ge=20)
    min_cell_size: int = Field(10, ge=1, le=1000)
    engine: EngineParams = EngineParams()

    @model_validator(mode="after")
    def _check_tiers(self) -> Params:
        names = [t.name for t in self.tiers]
        if not self.tiers:
            raise ValueError("tiers: at least one tier is needed")
        if self.tiers[0].min_aum != 0:
            raise ValueError("tiers: the first tier must start at min_aum 0")
        mins = [t.min_aum for t in self.tiers]
        if any(b <= a for a, b in zip(mins, mins[1:], strict=False)):
            raise ValueError("tiers: min_aum must increase strictly from one tier to the next")
        if len(set(names)) != len(names):
            raise ValueError("tiers: tier names must be unique")
        if "unknown" in names:
            raise ValueError("tiers: 'unknown' is reserved for customers with no closed month yet")
        missing = [t for t in self.high_value_tiers if t not in names]
        if missing:
            raise ValueError(f"high_value_tiers: {missing} are not tier names {names}")
        return self

    @property
    def tier_names(self) -> list[str]:
        """Tier names, lowest first."""
        return [t.name for t in self.tiers]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers) as in a YAML file.

        Returns
        -------
        dict
            Every parameter, nested by section; ``Params(**d)`` rebuilds it.

        Examples
        --------
        >>> Params().to_dict()["windows"]
        {'rm_turnover_days': 90, 'complaint_days': 90, 'retention_contact_days': 90}
        """
        return self.model_dump(mode="json")


class ParamsError(InputError):
    """A parameters file or override is invalid; the message names file and key.

    Examples
    --------
    >>> load_params(overrides={"dormancy_months": 0})
    Traceback (most recent call last):
    ...
    crmresearch.core.params.ParamsError: invalid parameters in command-line options:
      command-line options: dormancy_months: Input should be greater than or equal to 1 (got 0)
    """


def branch_params(base: Params, branches_dir: str | Path | None, branch_ids: list[str]) -> dict[str, Params]:
    """Per-branch parameters: ``<branches_dir>/<branch_id>.yaml`` merged over ``base``.

    Every override file is read and validated up front (before any report
    runs), so one bad file stops the run with an error naming the file and
    the key; a file for a branch the source does not have is an error too
    (a typo would otherwise be ignored silently).

    Parameters
    ----------
    base : Params
        The run's parameters (defaults + params file + command-line options).
    branches_dir : str or Path, optional
        Folder of per-branch overrides (e.g. ``params/branches``); missing or
        None: no overrides.
    branch_ids : list of str
        The source's branches.

    Returns
    -------
    dict of str to Params
        Only the branches that have an override file.

    Raises
    ------
    ParamsError
        An invalid file or key, or a file whose name is not a known branch.

    Examples
    --------
    >>> branch_params(Params(), "params/branches", ["B001", "B002"])  # doctest: +SKIP
    {'B002': Params(...)}
    """
    if branches_dir is None or not Path(branches_dir).is_dir():
        return {}
    known = set(branch_ids)
    out: dict[str, Params] = {}
    errors: list[str] = []
    for f in sorted([*Path(branches_dir).glob("*.yaml"), *Path(branches_dir).glob("*.yml")]):
        if f.stem not in known:
            errors.append(f"{f}: no branch {f.stem!r} in the source (known: {', '.join(sorted(known)[:10])}"
                          f"{' ...' if len(known) > 10 else ''})")  # fmt: skip
            continue
        try:
            out[f.stem] = load_params(f, base=base)
        except ParamsError as exc:
            errors.append(str(exc))
    if errors:
        raise ParamsError("per-branch parameters are invalid:\n" + "\n".join(errors))
    return out


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ParamsError(f"override {dotted!r}: {p!r} is not a section")
    node[parts[-1]] = value


def _format_errors(origin: str, err: ValidationError) -> str:
    lines = [f"invalid parameters in {origin}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        got = e.get("input")
        shown = "" if e["type"] == "extra_forbidden" or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {origin}: {key}: {msg}{shown}")
    return "\n".join(lines)


def load_params(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    base: Params | None = None,
) -> Params:
    """Load and validate parameters.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file, complete or partial; merged over ``base`` (default: the
        built-in defaults, identical to ``params/defaults.yaml``).
    overrides : mapping, optional
        Dotted keys (``"churn.definition"``) set after the file, e.g. from
        command-line options.
    base : Params, optional
        Parameters to merge over instead of the defaults.

    Returns
    -------
    Params

    Raises
    ------
    ParamsError
        The file is missing, unreadable, not UTF-8, not valid YAML or not a
        mapping, or a key is unknown, of the wrong type or impossible; the
        message names the file and the key (or the line).

    Examples
    --------
    >>> load_params().churn.definition
    'recorded'
    >>> load_params(overrides={"churn.definition": "asset_attrition"}).churn.definition
    'asset_attrition'

    A partial file keeps the defaults of everything it does not name:

    >>> import tempfile
    >>> from pathlib import Path
    >>> f = Path(tempfile.mkdtemp()) / "params.yaml"
    >>> _ = f.write_text("windows: {complaint_days: 30}")
    >>> p = load_params(f)
    >>> p.windows.complaint_days, p.windows.rm_turnover_days
    (30, 90)
    >>> f.unlink(); f.parent.rmdir()
    """
    data = (base or Params()).to_dict()
    origin = "defaults"
    if path is not None:
        p = Path(path)
        origin = str(p)
        if not p.is_file():
            raise ParamsError(f"parameters file not found: {p}")
        data = _deep_merge(data, read_yaml(p, "parameters file", ParamsError))
    if overrides:
        origin = f"{origin} + command-line options" if path is not None else "command-line options"
        for key, value in overrides.items():
            _set_dotted(data, key, value)
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(_format_errors(origin, exc)) from None
