"""Import a one-table churn CSV as a flat-extract source, through a declarative mapping.

Many analysts hold a single cross-sectional table (one row per customer, a
tenure, a churn flag, a few attributes).  The data contract accepts such a
table as a *flat extract* (``docs/data-contract.md``, "Flat extracts"):
``customers`` with ``tenure_months`` and ``churned`` instead of dates.  This
module turns any such CSV into that form.  What each contract column is made
from is written down in a small YAML *mapping* (:class:`FlatMapping`), never in
code, so the same function imports the two public datasets shipped with
mappings (``bank-churn-modelling``, ``telco-customer-churn``) and a bank's own
export.

:func:`import_flat` reads every CSV column as text (identifiers keep their
leading zeros), converts each mapped column explicitly, writes
``customers.parquet``, ``branches.csv`` and a provenance ``README.md`` into a
temporary directory, validates it with :func:`crmresearch.data.contract.load_source`
and only then renames it into place: a bad import writes nothing.

A flat extract has no calendar, so only some analyses run on it.
:func:`crmresearch.data.capabilities.flat_support` lists every analysis of the library with whether it runs
on a source and, if not, why in plain words; :data:`~crmresearch.data.capabilities.FLAT_REASONS` is the one
place each reason is written, and the analyses that cannot run on a flat
extract raise :func:`~crmresearch.data.capabilities.not_on_flat`, which quotes it.

``docs/flat-extracts.md`` explains every mapping key for users, and what runs.
"""

from __future__ import annotations

import codecs
import csv as csv_module
import hashlib
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from crmresearch.core.calendar import DAYS_PER_MONTH
from crmresearch.core.errors import InputError
from crmresearch.core.io import atomic_dir, first_undecodable, read_yaml
from crmresearch.data.contract import FLAT_CUSTOMERS, TABLES, ContractError, load_source

__all__ = [
    "FlatMapping",
    "FlatMappingError",
    "import_flat",
    "load_mapping",
    "shipped_mappings",
]

BRANCH_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MONTHS_PER_UNIT = {"days": 1 / DAYS_PER_MONTH, "months": 1.0, "years": 12.0}
MAX_EXAMPLES = 5
TRUE_TOKENS = ("true", "t", "1", "yes", "y")
FALSE_TOKENS = ("false", "f", "0", "no", "n")
# Output names an extra column may not take: the contract's customer columns
# (calendar and flat forms), so an extra can never change how the source is read.
RESERVED_NAMES = frozenset(
    {c.name for c in TABLES["customers"].columns} | {c.name for c in FLAT_CUSTOMERS.columns} | {"__row"}
)


class FlatMappingError(InputError):
    """A mapping is invalid or does not fit the CSV; the message names the file and the key.

    Examples
    --------
    >>> load_mapping("no-such-mapping")
    Traceback (most recent call last):
    ...
    crmresearch.data.flat.FlatMappingError: mapping 'no-such-mapping' is neither a YAML file nor a
    shipped mapping (shipped: bank-churn-modelling, telco-customer-churn)
    """


# --------------------------------------------------------------------------- the mapping

RawValue = str | int | float


def _no_yaml_bools(values: Any) -> Any:
    """Reject YAML booleans: unquoted ``Yes``/``No`` are read as true/false by YAML."""
    items = values if isinstance(values, list) else [values]
    if any(isinstance(v, bool) for v in items):
        raise ValueError(
            "YAML reads unquoted yes/no/true/false as booleans; quote the raw value "
            'exactly as it appears in the CSV, e.g. "Yes" or "1"'
        )
    return values


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CsvOptions(_Model):
    """How to read the CSV file."""

    sep: str = Field(",", min_length=1, max_length=1, description="field separator (one character)")
    encoding: str = Field("utf-8-sig", min_length=1, description="text encoding (utf-8-sig accepts a BOM)")


class TenureSpec(_Model):
    """The tenure column and its unit; converted to ``tenure_months``."""

    column: str = Field(min_length=1)
    unit: Literal["days", "months", "years"]


class ChurnSpec(_Model):
    """The churn-flag column and which raw values mean churned / not churned."""

    column: str = Field(min_length=1)
    true_values: list[RawValue] = Field(min_length=1)
    false_values: list[RawValue] = Field(min_length=1)

    @field_validator("true_values", "false_values", mode="before")
    @classmethod
    def _quoted(cls, v: Any) -> Any:
        return _no_yaml_bools(v)

    @model_validator(mode="after")
    def _disjoint(self) -> ChurnSpec:
        both = set(self.true_set) & set(self.false_set)
        if both:
            raise ValueError(f"values {sorted(both)} are in both true_values and false_values")
        return self

    @property
    def true_set(self) -> list[str]:
        return [str(v).strip() for v in self.true_values]

    @property
    def false_set(self) -> list[str]:
        return [str(v).strip() for v in self.false_values]


class NProductsSpec(_Model):
    """``n_products`` from one column, or as the count of columns equal to a value."""

    column: str | None = Field(None, min_length=1)
    count_of: list[str] | None = Field(None, min_length=1)
    equal_to: RawValue | None = None

    @field_validator("equal_to", mode="before")
    @classmethod
    def _quoted(cls, v: Any) -> Any:
        return _no_yaml_bools(v)

    @model_validator(mode="after")
    def _one_way(self) -> NProductsSpec:
        if (self.column is None) == (self.count_of is None):
            raise ValueError("give either column or count_of (with equal_to), not both or neither")
        if self.count_of is not None and self.equal_to is None:
            raise ValueError("count_of needs equal_to: the raw value that counts as holding")
        if self.column is not None and self.equal_to is not None:
            raise ValueError("equal_to only goes with count_of")
        if self.count_of is not None and len(set(self.count_of)) != len(self.count_of):
            raise ValueError("count_of lists a column twice")
        return self

    @property
    def columns(self) -> list[str]:
        return [self.column] if self.column is not None else list(self.count_of or [])


class BranchSpec(_Model):
    """The branch: one per distinct value of a column, or one constant branch."""

    column: str | None = Field(None, min_length=1)
    id: str | None = Field(None, pattern=BRANCH_ID_PATTERN)
    name: str | None = Field(None, min_length=1)
    region: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_way(self) -> BranchSpec:
        if self.column is not None and (self.id is not None or self.name is not None):
            raise ValueError("give either column, or a constant id and name, not both")
        if self.column is None and (self.id is None or self.name is None):
            raise ValueError("give either column, or both id and name of a single constant branch")
        return self


class AttributesSpec(_Model):
    """CSV columns renamed to the contract's optional customer columns."""

    name: str | None = Field(None, min_length=1, description="personal data: masked in reports")
    segment: str | None = Field(None, min_length=1)
    channel: str | None = Field(None, min_length=1)
    birth_year: str | None = Field(None, min_length=1)
    churn_reason: str | None = Field(None, min_length=1)
    churn_type: str | None = Field(None, min_length=1)

    def items(self) -> list[tuple[str, str]]:
        """(contract column, CSV column) for every attribute mapped."""
        return [(k, v) for k, v in self.model_dump().items() if v is not None]


ATTRIBUTE_TYPES = {"birth_year": "int"}  # every other attribute is a string


class ExtraSpec(_Model):
    """An extra CSV column kept in ``customers`` under its own (snake_cased) name."""

    column: str = Field(min_length=1)
    as_: str | None = Field(None, alias="as", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    type: Literal["auto", "string", "int", "float", "bool"] = "auto"

    @property
    def output(self) -> str:
        return self.as_ or snake_case(self.column)


class FlatMapping(_Model):
    """A declarative mapping from one flat CSV's columns to the contract's flat form.

    Attributes
    ----------
    description : str, optional
        What the CSV is; copied into the output's README.
    notes : list of str
        Assumptions specific to this dataset; copied into the output's README.
    csv : CsvOptions
        ``sep`` and ``encoding`` of the CSV.
    customer_id : str
        The customer-ID column (kept as text).
    tenure : TenureSpec
        ``column`` and ``unit`` (``days``, ``months`` or ``years``).
    churned : ChurnSpec
        ``column``, ``true_values`` and ``false_values`` (raw values as in the CSV).
    n_products : NProductsSpec, optional
        ``column``, or ``count_of`` (columns) with ``equal_to`` (a raw value).
    branch : BranchSpec
        ``column`` (one branch per distinct value) or a constant ``id`` and
        ``name``; optional constant ``region``.
    attributes : AttributesSpec
        Contract column -> CSV column for ``name``, ``segment``, ``channel``,
        ``birth_year``, ``churn_reason``, ``churn_type``.
    extras : list of ExtraSpec
        Other columns kept under their snake_cased names (or ``as``), typed by
        ``type`` (``auto``, ``string``, ``int``, ``float``, ``bool``).

    Examples
    --------
    Usually read from YAML by :func:`load_mapping`; the same keys as a dict:

    >>> m = FlatMapping.model_validate({
    ...     "customer_id": "CustID",
    ...     "tenure": {"column": "TenureMonths", "unit": "months"},
    ...     "churned": {"column": "Left", "true_values": ["Y"], "false_values": ["N"]},
    ...     "branch": {"id": "HQ", "name": "Head office"},
    ...     "extras": ["CreditScore"],
    ... })
    >>> m.tenure.unit, m.extras[0].output
    ('months', 'credit_score')
    """

    description: str | None = None
    notes: list[str] = Field(default_factory=list)
    csv: CsvOptions = CsvOptions()
    customer_id: str = Field(min_length=1)
    tenure: TenureSpec
    churned: ChurnSpec
    n_products: NProductsSpec | None = None
    branch: BranchSpec
    attributes: AttributesSpec = AttributesSpec()
    extras: list[ExtraSpec] = Field(default_factory=list)

    _origin: str = PrivateAttr("(in memory)")
    _text: str = PrivateAttr("")

    @field_validator("extras", mode="before")
    @classmethod
    def _bare_names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"column": x} if isinstance(x, str) else x for x in v]
        return v

    @model_validator(mode="after")
    def _output_names(self) -> FlatMapping:
        seen: dict[str, str] = {}
        for i, e in enumerate(self.extras):
            out = e.output
            if not out:
                raise ValueError(f"extras.{i}: column {e.column!r} gives an empty name; set 'as'")
            if out in RESERVED_NAMES:
                hint = (" (map it under attributes)" if out in AttributesSpec.model_fields
                        else " (a contract column)")  # fmt: skip
                raise ValueError(f"extras.{i}: output name {out!r} is reserved{hint}; set 'as'")
            if out in seen:
                raise ValueError(f"extras.{i}: output name {out!r} is also given to column "
                                 f"{seen[out]!r}; set 'as'")  # fmt: skip
            seen[out] = e.column
        return self

    @property
    def origin(self) -> str:
        """Where the mapping was read from (file path, or shipped name and path)."""
        return self._origin

    @property
    def text(self) -> str:
        """The mapping's YAML text as read."""
        return self._text

    def columns(self) -> list[str]:
        """Every CSV column the mapping reads, in mapping order, without repeats.

        Returns
        -------
        list of str
            Raw CSV column names; :func:`import_flat` checks the CSV has them all.

        Examples
        --------
        >>> load_mapping("bank-churn-modelling").columns()[:4]
        ['CustomerId', 'Tenure', 'Exited', 'NumOfProducts']
        """
        cols = [self.customer_id, self.tenure.column, self.churned.column]
        if self.n_products is not None:
            cols += self.n_products.columns
        if self.branch.column is not None:
            cols.append(self.branch.column)
        cols += [c for _, c in self.attributes.items()]
        cols += [e.column for e in self.extras]
        return list(dict.fromkeys(cols))


def snake_case(name: str) -> str:
    """``CreditScore`` -> ``credit_score``, ``customerID`` -> ``customer_id``, ``Num Of`` -> ``num_of``."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name.strip())
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()
    return f"c_{s}" if s[:1].isdigit() else s


def _mappings_dir() -> Any:
    return resources.files("crmresearch.data").joinpath("mappings")


def shipped_mappings() -> list[str]:
    """Names of the mappings shipped with the package.

    Returns
    -------
    list of str
        Sorted names, each usable as ``mapping`` in :func:`load_mapping` and
        :func:`import_flat`.

    Examples
    --------
    >>> shipped_mappings()
    ['bank-churn-modelling', 'telco-customer-churn']
    """
    d = _mappings_dir()
    if not d.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in d.iterdir() if p.name.endswith(".yaml"))


def _format_errors(origin: str, err: ValidationError) -> str:
    lines = [f"invalid flat-extract mapping {origin}:"]
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        key = ".".join(loc) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        got = e.get("input")
        shown = "" if e["type"] in ("extra_forbidden", "missing") or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {origin}: {key}: {msg}{shown}")
    return "\n".join(lines)


def load_mapping(mapping: str | Path | FlatMapping) -> FlatMapping:
    """Load and validate a flat-extract mapping.

    Parameters
    ----------
    mapping : str, Path or FlatMapping
        A YAML file, or the bare name of a shipped mapping
        (``bank-churn-modelling``, ``telco-customer-churn``).  A
        :class:`FlatMapping` is returned unchanged.

    Returns
    -------
    FlatMapping
        The validated mapping; ``.origin`` says where it came from.

    Raises
    ------
    FlatMappingError
        The file is missing, not YAML or not a mapping, or a key is unknown,
        missing or invalid; the message names the file and the key.

    Examples
    --------
    >>> m = load_mapping("bank-churn-modelling")
    >>> m.tenure
    TenureSpec(column='Tenure', unit='years')
    >>> m.origin
    'bank-churn-modelling (shipped mapping .../bank-churn-modelling.yaml)'
    >>> load_mapping("mappings/my-bank.yaml")  # doctest: +SKIP
    """
    if isinstance(mapping, FlatMapping):
        return mapping
    p = Path(mapping)
    name = str(mapping)
    if p.is_file():
        origin = str(p)
        data = read_yaml(p, "mapping file", FlatMappingError)  # one-line errors: unreadable, not UTF-8, not YAML
        text = p.read_text(encoding="utf-8-sig")
    elif re.fullmatch(r"[A-Za-z0-9_.-]+", name) and not name.endswith((".yaml", ".yml")):
        shipped = shipped_mappings()
        if name not in shipped:
            raise FlatMappingError(
                f"mapping {name!r} is neither a YAML file nor a shipped mapping "
                f"(shipped: {', '.join(shipped) or 'none'})"
            )
        res = _mappings_dir().joinpath(f"{name}.yaml")
        origin, text = f"{name} (shipped mapping {res})", res.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    else:
        raise FlatMappingError(
            f"mapping file not found: {p} (shipped mappings: {', '.join(shipped_mappings()) or 'none'})"
        )
    try:
        model = FlatMapping.model_validate(data)
    except ValidationError as exc:
        raise FlatMappingError(_format_errors(origin, exc)) from None
    model._origin = origin
    model._text = text
    return model


# --------------------------------------------------------------------------- conversions


class _Ctx:
    """What an error message names: the CSV and the mapping."""

    def __init__(self, csv: Path, mapping: FlatMapping):
        self.csv = csv
        self.mapping = mapping

    def error(self, key: str, message: str) -> FlatMappingError:
        return FlatMappingError(f"{self.csv}: column {message} (mapping {self.mapping.origin}, key {key})")


def _examples(s: pd.Series, bad: pd.Series) -> str:
    """``row N: 'value'`` for the first bad rows (rows numbered from 1, after the header)."""
    idx = s.index[bad.to_numpy()][:MAX_EXAMPLES]
    return ", ".join(f"row {i + 1}: {s.at[i]!r}" for i in idx)


def _to_number(s: pd.Series, key: str, ctx: _Ctx, *, whole: bool = False) -> pd.Series:
    """Text -> float (blank -> NaN); any other unparseable or non-finite value is an error."""
    blank = s.eq("")
    num = pd.to_numeric(s.where(~blank), errors="coerce").astype("float64")
    bad = ~blank & ~np.isfinite(num)
    what = "a finite number"
    if whole:
        bad |= np.isfinite(num) & (num % 1 != 0)
        what = "a whole number"
    if bad.any():
        raise ctx.error(key, f"{s.name!r}: {int(bad.sum()):,} value(s) are not {what}; "
                             f"e.g. {_examples(s, bad)}")  # fmt: skip
    return num


def _to_int(s: pd.Series, key: str, ctx: _Ctx) -> pd.Series:
    return _to_number(s, key, ctx, whole=True).astype("Int64")


def _to_bool(s: pd.Series, key: str, ctx: _Ctx) -> pd.Series:
    low = s.str.lower()
    is_true, is_false = low.isin(TRUE_TOKENS), low.isin(FALSE_TOKENS)
    bad = s.ne("") & ~is_true & ~is_false
    if bad.any():
        raise ctx.error(key, f"{s.name!r}: {int(bad.sum()):,} value(s) are not one of "
                             f"{'/'.join(TRUE_TOKENS + FALSE_TOKENS)}; e.g. {_examples(s, bad)}")  # fmt: skip
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[is_true] = True
    out[is_false] = False
    return out


def _to_string(s: pd.Series) -> pd.Series:
    return s.where(s.ne(""), None).astype(object)


def _auto(s: pd.Series) -> pd.Series:
    """int if every non-blank value is a whole number, float if a number, else text."""
    blank = s.eq("")
    num = pd.to_numeric(s.where(~blank), errors="coerce").astype("float64")
    if (blank | np.isfinite(num)).all() and not blank.all():
        return num.astype("Int64") if (num.dropna() % 1 == 0).all() else num
    return _to_string(s)


def _convert(s: pd.Series, kind: str, key: str, ctx: _Ctx) -> pd.Series:
    if kind == "string":
        return _to_string(s)
    if kind == "int":
        return _to_int(s, key, ctx)
    if kind == "float":
        return _to_number(s, key, ctx)
    if kind == "bool":
        return _to_bool(s, key, ctx)
    return _auto(s)


def _churned(raw: pd.DataFrame, spec: ChurnSpec, ctx: _Ctx) -> pd.Series:
    s = raw[spec.column]
    is_true, is_false = s.isin(spec.true_set), s.isin(spec.false_set)
    bad = ~is_true & ~is_false
    if bad.any():
        counts = s[bad].value_counts()
        shown = ", ".join(f"{v!r} ({n:,} row{'s' if n != 1 else ''})" for v, n in counts.head(MAX_EXAMPLES).items())
        more = f" and {len(counts) - MAX_EXAMPLES} other value(s)" if len(counts) > MAX_EXAMPLES else ""
        raise ctx.error(
            "churned.true_values/false_values",
            f"{spec.column!r}: {int(bad.sum()):,} row(s) hold a value that is in neither "
            f"true_values {spec.true_set} nor false_values {spec.false_set}: {shown}{more}; "
            f"e.g. {_examples(s, bad)}",
        )
    return is_true.astype(bool)


def _tenure(raw: pd.DataFrame, spec: TenureSpec, ctx: _Ctx) -> pd.Series:
    s = raw[spec.column]
    num = _to_number(s, "tenure.column", ctx)
    blank = num.isna()
    if blank.any():
        raise ctx.error("tenure.column", f"{spec.column!r}: {int(blank.sum()):,} value(s) are blank; "
                                         f"tenure is required, e.g. {_examples(s, blank)}")  # fmt: skip
    return num * MONTHS_PER_UNIT[spec.unit]


def _n_products(raw: pd.DataFrame, spec: NProductsSpec, ctx: _Ctx) -> pd.Series:
    if spec.column is not None:
        return _to_int(raw[spec.column], "n_products.column", ctx)
    held = raw[list(spec.count_of or [])].eq(str(spec.equal_to).strip())
    return held.sum(axis=1).astype("Int64")


def _safe_id(value: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", value).strip("_").upper()[:64]
    return slug


def _branches(raw: pd.DataFrame, spec: BranchSpec, ctx: _Ctx) -> tuple[pd.Series, pd.DataFrame]:
    """The customers' branch_id and the branches table."""
    if spec.column is None:
        ids = pd.Series(spec.id, index=raw.index, dtype=object)
        table = pd.DataFrame({"branch_id": [spec.id], "branch_name": [spec.name], "region": [spec.region]})
        return ids, table
    s = raw[spec.column]
    blank = s.eq("")
    if blank.any():
        raise ctx.error("branch.column", f"{spec.column!r}: {int(blank.sum()):,} row(s) have no branch "
                                         f"value; e.g. {_examples(s, blank)}")  # fmt: skip
    names = pd.Series(pd.unique(s), dtype=object)  # in order of first appearance
    ids = names.map(_safe_id)
    # a value with no ASCII letters or digits (e.g. 北京分行), or two values giving
    # the same slug, get a short, stable hash suffix so every id is distinct and safe
    clash = ids.eq("") | ids.duplicated(keep=False)
    digest = names.map(lambda v: hashlib.sha1(v.encode("utf-8")).hexdigest()[:8])
    ids = ids.where(~clash, ids.str[:55].where(ids.ne(""), "BRANCH") + "_" + digest)
    if ids.duplicated().any():  # pragma: no cover - a sha1 prefix collision
        raise ctx.error("branch.column", f"{spec.column!r}: branch ids are not distinct: {ids[ids.duplicated()].tolist()}")
    table = pd.DataFrame({"branch_id": ids, "branch_name": names, "region": spec.region})
    table = table.sort_values("branch_id", ignore_index=True)
    return s.map(dict(zip(names, ids, strict=True))), table


def _check_columns(raw: pd.DataFrame, mapping: FlatMapping, ctx: _Ctx) -> None:
    have = list(raw.columns)
    missing = [c for c in mapping.columns() if c not in have]
    if not missing:
        return
    lowered = {c.strip().lower(): c for c in have}
    hints = [f"{m!r} (found {lowered[m.strip().lower()]!r}: names are case-sensitive)"
             if m.strip().lower() in lowered else repr(m) for m in missing]  # fmt: skip
    raise FlatMappingError(
        f"{ctx.csv}: the mapping {mapping.origin} names column(s) the CSV does not have: "
        f"{', '.join(hints)}. The CSV's columns are: {', '.join(map(repr, have))}"
    )


def _read_csv(csv: Path, mapping: FlatMapping) -> pd.DataFrame:
    sep, encoding = mapping.csv.sep, mapping.csv.encoding
    how = f"(sep {sep!r}, encoding {encoding!r}, mapping {mapping.origin})"
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"{csv}: unknown encoding {encoding!r} (csv.encoding of mapping {mapping.origin})") from None
    try:
        # every row must have the header's fields: pandas would pad a short row with blanks silently
        with csv.open(newline="", encoding=encoding) as f:
            reader = csv_module.reader(f, delimiter=sep)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{csv}: empty file (no header row)")
            for row in reader:
                if row and len(row) != len(header):
                    raise InputError(f"{csv}: line {reader.line_num} has {len(row)} fields, the header has "
                                     f"{len(header)}; every row must have one field per column {how}")  # fmt: skip
        raw = pd.read_csv(csv, dtype=str, keep_default_na=False, na_filter=False, sep=sep, encoding=encoding)
    except UnicodeDecodeError:
        line, byte = first_undecodable(csv, encoding) or (0, 0)
        raise InputError(f"{csv}: not {encoding} text (byte 0x{byte:02x} on line {line}); save it as "
                         f"{encoding} or set csv.encoding in the mapping ({mapping.origin})") from None  # fmt: skip
    except (csv_module.Error, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{csv}: cannot be read as CSV {how}: {' '.join(str(exc).split())}") from None
    if raw.empty:
        raise InputError(f"{csv}: holds no data rows")
    return raw


def build_flat(raw: pd.DataFrame, mapping: FlatMapping, csv: str | Path = "(data frame)"
               ) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The contract's flat ``customers`` and ``branches`` tables from a text-typed frame.

    Parameters
    ----------
    raw : DataFrame
        The CSV as read with every column as ``str`` (no NaN: blanks are ``""``).
    mapping : FlatMapping
        What to make each contract column from.
    csv : str or Path
        Named in error messages.

    Returns
    -------
    customers, branches : DataFrame
        ``customers`` has customer_id (text), branch_id, tenure_months
        (float), churned (bool), n_products (Int64) when mapped, the mapped
        attributes and the extras; ``branches`` has branch_id, branch_name,
        region.

    Raises
    ------
    FlatMappingError
        A mapped column is missing, or holds a value the mapping cannot convert.
    """
    ctx = _Ctx(Path(csv), mapping)
    _check_columns(raw, mapping, ctx)
    raw = raw[mapping.columns()].apply(lambda s: s.str.strip()).reset_index(drop=True)
    branch_ids, branches = _branches(raw, mapping.branch, ctx)
    cols: dict[str, pd.Series] = {
        "customer_id": _to_string(raw[mapping.customer_id]),
        "branch_id": branch_ids,
        "tenure_months": _tenure(raw, mapping.tenure, ctx),
        "churned": _churned(raw, mapping.churned, ctx),
    }
    if mapping.n_products is not None:
        cols["n_products"] = _n_products(raw, mapping.n_products, ctx)
    for contract_col, csv_col in mapping.attributes.items():
        kind = ATTRIBUTE_TYPES.get(contract_col, "string")
        cols[contract_col] = _convert(raw[csv_col], kind, f"attributes.{contract_col}", ctx)
    for i, e in enumerate(mapping.extras):
        cols[e.output] = _convert(raw[e.column], e.type, f"extras.{i}", ctx)
    return pd.DataFrame(cols), branches


# --------------------------------------------------------------------------- output


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


GENERAL_ASSUMPTIONS = (
    "There are no dates. `tenure_months` is read as the tenure at exit for churned "
    "customers and at the snapshot for the others; the snapshot date itself is unknown.",
    "Without a calendar there are no monthly KPIs, no time-varying covariates (product "
    "coverage over time, RM turnover, complaints) and no landmark analysis. What runs: "
    "retention curves on tenure, churn by `n_products`, a Cox model on the static attributes.",
    "The package never invents dates: none are derived from tenure, age or anything else.",
    "Every attribute (including `n_products`) is a value at the snapshot, not at the start "
    "of the customer's tenure; a model on them describes association, not cause.",
)


_KIND_LABELS = {"Int64": "int", "float64": "float", "boolean": "bool", "object": "text"}


def _readme(csv: Path, mapping: FlatMapping, customers: pd.DataFrame, branches: pd.DataFrame) -> str:
    from crmresearch.core.version import __version__

    m = mapping
    sources = [
        ("customer_id", f"`{m.customer_id}` (kept as text)"),
        ("branch_id", f"derived from `{m.branch.column}` (one branch per distinct value)"
         if m.branch.column else f"constant `{m.branch.id}`"),
        ("tenure_months", f"`{m.tenure.column}` in {m.tenure.unit}"
         + {"days": f" ÷ {DAYS_PER_MONTH:g}", "months": "", "years": " × 12"}[m.tenure.unit]),
        ("churned", f"`{m.churned.column}` in {m.churned.true_set} (not churned: {m.churned.false_set})"),
    ]  # fmt: skip
    if m.n_products is not None:
        np_src = (f"`{m.n_products.column}`" if m.n_products.column else
                  f"number of {', '.join(f'`{c}`' for c in m.n_products.count_of or [])} "
                  f"equal to {str(m.n_products.equal_to)!r}")  # fmt: skip
        sources.append(("n_products", np_src))
    for contract_col, csv_col in m.attributes.items():
        pd_note = " — personal data: masked in every report, never shown" if contract_col == "name" else ""
        sources.append((contract_col, f"`{csv_col}`{pd_note}"))
    for e in m.extras:
        kind = _KIND_LABELS.get(str(customers[e.output].dtype), str(customers[e.output].dtype))
        sources.append((e.output, f"`{e.column}` (extra, {kind})"))
    n, n_churned = len(customers), int(customers["churned"].sum())
    by_branch = customers.groupby("branch_id", sort=False)["churned"].agg(["size", "sum"])
    lines = [
        f"# Flat extract imported from `{csv.name}`",
        "",
        f"Written by `crmresearch import-flat` (crmresearch {__version__}). This directory is a",
        "*flat extract* source (data contract, \"Flat extracts\"): read it with",
        "`crmresearch.load_source(<this directory>)`. Do not edit it by hand: re-run the import.",
        "",
        "## Where it came from",
        "",
        "| item | value |",
        "| --- | --- |",
        f"| input CSV | `{csv.resolve()}` |",
        f"| input sha256 | `{_sha256(csv)}` |",
        f"| input size | {csv.stat().st_size:,} bytes |",
        f"| mapping | {m.origin} |",
        f"| mapping sha256 | `{hashlib.sha256(m.text.encode('utf-8')).hexdigest()}` |",
        f"| customers | {n:,} ({n_churned:,} churned, {n_churned / n:.4f}) |",
        f"| branches | {len(branches):,} |",
        "",
    ]
    if m.description:
        lines += [m.description.strip(), ""]
    lines += ["## Columns of `customers.parquet`", "", "| column | made from |", "| --- | --- |"]
    lines += [f"| {c} | {src} |" for c, src in sources]
    lines += ["", "## Branches (`branches.csv`)", "", "| branch_id | branch_name | customers | churned |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    lines += [f"| {r.branch_id} | {r.branch_name} | {by_branch.at[r.branch_id, 'size']:,} | "
              f"{int(by_branch.at[r.branch_id, 'sum']):,} |" for r in branches.itertuples()]  # fmt: skip
    lines += ["", "## Assumptions this forces", ""]
    lines += [f"- {a}" for a in (*GENERAL_ASSUMPTIONS, *m.notes)]
    lines += ["", "## The mapping used", "", "```yaml", m.text.rstrip(), "```", ""]
    return "\n".join(lines)


def _check_out(out: Path, inputs: Sequence[Path], force: bool) -> None:
    if not out.exists():
        return
    if not force:
        raise FileExistsError(f"output {out} already exists; pass force=True (--force) to replace it")
    if not out.is_dir():
        raise FileExistsError(f"output {out} exists and is not a directory; refusing to replace it")
    resolved = out.resolve()
    for p in inputs:
        if resolved == p.resolve() or resolved in p.resolve().parents:
            raise FileExistsError(f"output {out} holds the input {p}; refusing to replace it")
    contents = {p.name for p in out.iterdir()}
    if contents and not contents & {"customers.parquet", "customers.csv"}:
        raise FileExistsError(
            f"output {out} exists and does not look like a source (no customers table); "
            "refusing to replace it even with force"
        )


def import_flat(csv: str | Path, mapping: str | Path | FlatMapping, out: str | Path, *,
                force: bool = False) -> Path:  # fmt: skip
    """Import a one-table churn CSV as a flat-extract source directory.

    Parameters
    ----------
    csv : str or Path
        The CSV file: one row per customer, a header row.
    mapping : str, Path or FlatMapping
        A mapping YAML file, or the name of a shipped mapping
        (``bank-churn-modelling``, ``telco-customer-churn``); see
        ``docs/flat-extracts.md``.
    out : str or Path
        The source directory to write: ``customers.parquet``,
        ``branches.csv`` and ``README.md`` (provenance and assumptions).
    force : bool, default False
        Replace ``out`` if it exists (only a directory holding a source).

    Returns
    -------
    Path
        ``out``.  ``crmresearch.load_source(out)`` reads it as a flat extract.

    Raises
    ------
    FlatMappingError
        The mapping is invalid, names a column the CSV lacks, or a value cannot
        be converted (e.g. a churn value in neither ``true_values`` nor
        ``false_values``).  Nothing is written.
    ContractError
        The converted table breaks the data contract (e.g. duplicate customer
        IDs, negative tenure).  Nothing is written.
    FileExistsError
        ``out`` exists and ``force`` is false.
    FileNotFoundError
        ``csv`` does not exist.

    Examples
    --------
    >>> out = import_flat("Churn_Modelling.csv", "bank-churn-modelling", "data/bank-flat")  # doctest: +SKIP
    >>> load_source(out).flat  # doctest: +SKIP
    True
    """
    csv, out = Path(csv), Path(out)
    m = load_mapping(mapping)
    if not csv.is_file():
        raise FileNotFoundError(f"input CSV not found: {csv}")
    mapping_file = [Path(m.origin)] if Path(m.origin).is_file() else []
    _check_out(out, [csv, *mapping_file], force)
    customers, branches = build_flat(_read_csv(csv, m), m, csv)
    with atomic_dir(out) as tmp:
        customers.to_parquet(tmp / "customers.parquet", index=False)
        branches.to_csv(tmp / "branches.csv", index=False)
        (tmp / "README.md").write_text(_readme(csv, m, customers, branches), encoding="utf-8")
        try:
            source = load_source(tmp)
        except ContractError as exc:
            exc.report.source = f"{out} (imported from {csv} with mapping {m.origin}; nothing was written)"
            raise ContractError(exc.report) from None
        try:
            if not source.flat:  # pragma: no cover - the output always has tenure_months, churned
                raise AssertionError(f"{out}: the imported source was not read as a flat extract")
        finally:
            source.close()
    return out
