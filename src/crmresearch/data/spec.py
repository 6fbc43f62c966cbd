"""The data contract as data: every table, column, type and rule a bank's extract must follow.

:data:`TABLES` is the single place where a column, its type and its rules are
declared (``docs/data-contract.md`` explains it for users); :data:`FLAT_CUSTOMERS`
is the one-table form of a flat extract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

__all__ = ["ACTION_TYPES", "CALENDAR_TABLES", "CHANNELS", "CHURN_TYPES", "Column", "EXIT_TYPES", "FLAT_CUSTOMERS", "MAX_EXAMPLES", "OUTCOMES", "PRODUCTS", "SEGMENTS", "SEVERITIES", "STICKY_COVARIATES", "STICKY_PRODUCTS", "TABLES", "TRIGGERS", "TableSpec", "sticky_covariate"]


T = TypeVar("T")

ColType = Literal["id", "string", "date", "month", "float", "int", "bool"]
MAX_EXAMPLES = 5

CHURN_TYPES = ("transfer", "natural", "unknown")
SEVERITIES = ("low", "medium", "high")
EXIT_TYPES = ("resigned", "transferred", "retired", "dismissed")
ACTION_TYPES = ("call", "visit", "offer", "event", "other")
TRIGGERS = ("early_warning", "rm_exit", "complaint", "maturity", "proactive", "winback")
OUTCOMES = ("retained", "won_back", "lost", "pending")
PRODUCTS = (
    "current_account", "time_deposit", "wealth_management", "mutual_fund", "fund_sip",
    "insurance", "credit_card", "mortgage", "consumer_loan", "payroll", "mobile_banking",
    "online_banking", "third_party_custody", "precious_metals", "trust",
)  # fmt: skip
SEGMENTS = ("salaried", "business_owner", "executive", "affluent_retiree", "homemaker")
CHANNELS = ("walk_in", "existing", "outreach")

# The products whose holding is reported beside the product count (reports.md §3).
# To become a parameter (``Params.sticky_products``); the episodes' columns follow it.
STICKY_PRODUCTS: tuple[str, ...] = ("mobile_banking", "fund_sip", "payroll", "third_party_custody")


def sticky_covariate(product: str) -> str:
    """The episodes' column of a sticky product: ``holds_<product>``.

    Examples
    --------
    >>> sticky_covariate("payroll")
    'holds_payroll'
    """
    return f"holds_{product}"


STICKY_COVARIATES: tuple[str, ...] = tuple(sticky_covariate(p) for p in STICKY_PRODUCTS)


@dataclass(frozen=True)
class Column:
    """One column of the contract and the rules on its values.

    Attributes
    ----------
    name : str
        Column name.
    type : {'id', 'string', 'date', 'month', 'float', 'int', 'bool'}
        Contract type; identifiers stay text.
    required : bool
        The column must be present (optional columns may be absent).
    not_null, unique, non_empty : bool
        Value rules.
    allowed : tuple of str, optional
        The only values allowed.
    min_value, max_value : float, optional
        Bounds (``max_value="as_of_year"``: the extract's as-of year).
    pattern : str, optional
        Regular expression every value must match.
    not_before : str, optional
        Another date column of the same row this one may not precede.
    references : (table, column), optional
        Foreign key.
    null_unless : str, optional
        Must be null when this other column is null (or false).
    doc : str
        Description for users.

    Examples
    --------
    >>> c = TABLES["customers"].column("churn_date")
    >>> c.type, c.not_before
    ('date', 'open_date')
    >>> Column("segment", "string", required=False).not_null
    False
    """

    name: str
    type: ColType
    required: bool = True  # the column must be present
    not_null: bool = False
    unique: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | Literal["as_of_year"] | None = None
    pattern: str | None = None
    non_empty: bool = False
    not_before: str | None = None  # another column of the same row
    references: tuple[str, str] | None = None  # (table, column)
    null_unless: str | None = None  # must be null when this column is null
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract.

    Attributes
    ----------
    name : str
        Table (and file) name.
    required : bool
        Every source must supply it.
    columns : tuple of Column
        Its columns, in contract order.
    key : tuple of str
        Columns that name a row in findings.
    unique_together : tuple of str, optional
        Columns whose combination must be unique.
    needs : str, optional
        Another table this one needs when supplied.
    doc : str
        Description for users.

    Examples
    --------
    >>> spec = TABLES["monthly_balances"]
    >>> spec.required, spec.unique_together
    (False, ('customer_id', 'month'))
    >>> [c.name for c in TABLES["branches"].columns]
    ['branch_id', 'branch_name', 'region']
    """

    name: str
    required: bool
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # what an example names
    unique_together: tuple[str, ...] | None = None
    needs: str | None = None
    doc: str = ""

    def column(self, name: str) -> Column:
        """The column called ``name``.

        Parameters
        ----------
        name : str
            A column of this table.

        Returns
        -------
        Column

        Raises
        ------
        StopIteration
            The table has no such column.

        Examples
        --------
        >>> TABLES["customers"].column("churn_type").allowed
        ('transfer', 'natural', 'unknown')
        """
        return next(c for c in self.columns if c.name == name)


def _fk(table: str, column: str) -> tuple[str, str]:
    return (table, column)


TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "extract", False, key=("__row",),
            columns=(
                Column("as_of", "date", required=False, doc="the extract's as-of date"),
                Column("observation_start", "date", required=False,
                       doc="first day from which every churn is in the extract"),
            ),
            doc="one row: the extract's as-of date and observation start",
        ),
        TableSpec(
            "branches", True, key=("branch_id",),
            columns=(
                Column("branch_id", "id", not_null=True, unique=True,
                       pattern=r"^[A-Za-z0-9_-]{1,64}$"),
                Column("branch_name", "string", not_null=True, non_empty=True),
                Column("region", "string", required=False),
            ),
        ),
        TableSpec(
            "customers", True, key=("customer_id",),
            columns=(
                Column("customer_id", "id", not_null=True, unique=True),
                Column("branch_id", "id", not_null=True, references=_fk("branches", "branch_id")),
                Column("open_date", "date", not_null=True),
                Column("churn_date", "date", not_before="open_date"),
                Column("churn_type", "string", allowed=CHURN_TYPES, null_unless="churn_date"),
                Column("churn_reason", "string", required=False),
                Column("segment", "string", required=False),
                Column("channel", "string", required=False),
                Column("birth_year", "int", required=False, min_value=1900, max_value="as_of_year"),
                Column("name", "string", required=False, doc="personal data"),
                Column("n_products", "int", required=False, min_value=0),
            ),
        ),
        TableSpec(
            "product_holdings", False, key=("customer_id", "product", "start_date"),
            columns=(
                Column("customer_id", "id", not_null=True, references=_fk("customers", "customer_id")),
                Column("product", "string", not_null=True, non_empty=True),
                Column("start_date", "date", not_null=True),
                Column("end_date", "date", not_before="start_date"),
            ),
        ),
        TableSpec(
            "relationship_managers", False, key=("rm_id",),
            columns=(
                Column("rm_id", "id", not_null=True, unique=True),
                Column("branch_id", "id", not_null=True, references=_fk("branches", "branch_id")),
                Column("hire_date", "date", not_null=True),
                Column("exit_date", "date", not_before="hire_date"),
                Column("exit_type", "string", allowed=EXIT_TYPES),
            ),
        ),
        TableSpec(
            "rm_assignments", False, key=("customer_id", "rm_id", "start_date"),
            needs="relationship_managers",
            columns=(
                Column("customer_id", "id", not_null=True, references=_fk("customers", "customer_id")),
                Column("rm_id", "id", not_null=True,
                       references=_fk("relationship_managers", "rm_id")),
                Column("start_date", "date", not_null=True),
                Column("end_date", "date", not_before="start_date"),
            ),
        ),
        TableSpec(
            "monthly_balances", False, key=("customer_id", "month"),
            unique_together=("customer_id", "month"),
            columns=(
                Column("customer_id", "id", not_null=True, references=_fk("customers", "customer_id")),
                Column("month", "month", not_null=True),
                Column("aum", "float", not_null=True, min_value=0),
                Column("avg_daily_aum", "float", required=False, min_value=0),
                Column("txn_count", "int", not_null=True, min_value=0),
                Column("outflow", "float", required=False, min_value=0),
            ),
        ),
        TableSpec(
            "complaints", False, key=("complaint_id",),
            columns=(
                Column("complaint_id", "id", not_null=True, unique=True),
                Column("customer_id", "id", not_null=True, references=_fk("customers", "customer_id")),
                Column("complaint_date", "date", not_null=True),
                Column("severity", "string", not_null=True, allowed=SEVERITIES),
                Column("escalated", "bool", not_null=True),
                Column("escalated_date", "date", required=False, not_before="complaint_date"),
            ),
        ),
        TableSpec(
            "retention_actions", False, key=("action_id",),
            columns=(
                Column("action_id", "id", not_null=True, unique=True),
                Column("customer_id", "id", not_null=True, references=_fk("customers", "customer_id")),
                Column("action_date", "date", not_null=True),
                Column("action_type", "string", not_null=True, allowed=ACTION_TYPES),
                Column("rm_id", "id", required=False,
                       references=_fk("relationship_managers", "rm_id")),
                Column("trigger", "string", not_null=True, allowed=TRIGGERS),
                Column("outcome", "string", required=False, allowed=OUTCOMES),
            ),
        ),
    )
}  # fmt: skip

# The flat form of `customers` (contract: "Flat extracts").
FLAT_CUSTOMERS = TableSpec(
    "customers", True, key=("customer_id",),
    columns=(
        Column("customer_id", "id", not_null=True, unique=True),
        Column("branch_id", "id", not_null=True, references=_fk("branches", "branch_id")),
        Column("tenure_months", "float", not_null=True, min_value=0),
        Column("churned", "bool", not_null=True),
        Column("churn_type", "string", required=False, allowed=CHURN_TYPES, null_unless="churned"),
        Column("churn_reason", "string", required=False),
        Column("segment", "string", required=False),
        Column("channel", "string", required=False),
        Column("birth_year", "int", required=False, min_value=1900, max_value=2100),
        Column("name", "string", required=False, doc="personal data"),
        Column("n_products", "int", required=False, min_value=0),
    ),
)  # fmt: skip

CALENDAR_TABLES = ("product_holdings", "relationship_managers", "rm_assignments",
                   "monthly_balances", "complaints", "retention_actions", "extract")  # fmt: skip
