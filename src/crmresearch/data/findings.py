"""What a validation pass found: each finding names the table, column, rule, rows and example keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from crmresearch.core.errors import InputError
from crmresearch.data import capabilities

__all__ = ["ContractError", "Finding", "ValidationReport"]


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One violated rule (``severity='error'``) or one caution (``'warning'``).

    Attributes
    ----------
    table, column : str
        Where (``column`` None for a table-level rule).
    rule : str
        The rule's name (``not_null``, ``foreign_key``, ``date_order``, ...).
    n_rows : int
        Rows breaking it.
    examples : tuple of str
        Up to five of them, named by the table's key.
    message : str
        What is wrong, in plain words.
    severity : {'error', 'warning'}
        Errors make the source invalid; warnings do not.

    Examples
    --------
    >>> f = Finding("customers", "churn_date", "date_order", 2,
    ...             ("customer_id=C001", "customer_id=C007"), "must not be before open_date")
    >>> print(f)
    ERROR customers.churn_date [date_order] 2 rows: must not be before open_date;
    e.g. customer_id=C001, customer_id=C007
    """

    table: str
    column: str | None
    rule: str
    n_rows: int
    examples: tuple[str, ...] = ()
    message: str = ""
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.table + (f".{self.column}" if self.column else "")
        ex = f"; e.g. {', '.join(self.examples)}" if self.examples else ""
        rows = f"{self.n_rows:,} row{'s' if self.n_rows != 1 else ''}: " if self.n_rows else ""
        return f"{self.severity.upper()} {where} [{self.rule}] {rows}{self.message}{ex}"


@dataclass
class ValidationReport:
    """All findings of one validation pass, plus the extract's settings used.

    Attributes
    ----------
    source : str
        The source validated.
    findings : list of Finding
        Errors and warnings, in the order found.
    tables : dict
        Table -> rows read.
    settings : dict
        ``as_of`` and ``observation_start`` and how each was chosen.
    flat : bool
        The source is a flat extract.

    Examples
    --------
    >>> f = Finding("customers", "churn_date", "date_order", 2,
    ...             message="must not be before open_date")
    >>> r = ValidationReport("data/demo", [f], tables={"branches": 8, "customers": 24000})
    >>> r.ok, len(r.errors), len(r.warnings)
    (False, 1, 0)

    A real report comes from :func:`validate_source` or a :class:`ContractError`:

    >>> r = validate_source("data/demo")  # doctest: +SKIP
    """

    source: str
    findings: list[Finding] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows
    settings: dict[str, str] = field(default_factory=dict)  # as_of, observation_start, how chosen
    flat: bool = False

    @property
    def errors(self) -> list[Finding]:
        """The findings that make the source invalid."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """The cautions: legal data the user should know about."""
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def to_frame(self) -> pd.DataFrame:
        """The findings as a tidy DataFrame (one row per finding).

        Returns
        -------
        DataFrame
            ``severity, table, column, rule, n_rows, examples, message``.

        Examples
        --------
        >>> f = Finding("customers", "churn_date", "date_order", 2,
        ...             message="must not be before open_date")
        >>> ValidationReport("data/demo", [f]).to_frame()[["severity", "table", "rule", "n_rows"]]
          severity      table        rule  n_rows
        0    error  customers  date_order       2
        """
        cols = ["severity", "table", "column", "rule", "n_rows", "examples", "message"]
        return pd.DataFrame(
            [[f.severity, f.table, f.column, f.rule, f.n_rows, list(f.examples), f.message]
             for f in self.findings],
            columns=cols,
        )  # fmt: skip

    def can(self, question: str) -> bool:
        """Whether the validated source can answer ``question``; before loading, only ``"calendar"`` is known.

        Parameters
        ----------
        question : str
            ``"calendar"``: does the source have dates (False for a flat extract)?

        Returns
        -------
        bool

        Raises
        ------
        ValueError
            Any other question (ask the loaded :class:`Source`).

        Examples
        --------
        >>> ValidationReport(source="data/bank-flat", flat=True).can("calendar")
        False
        """
        if question != capabilities.CALENDAR:
            raise ValueError(f"a validation report answers only {capabilities.CALENDAR!r}; ask the loaded Source")
        return not self.flat

    def to_text(self) -> str:
        """The report as text: tables read, settings, every finding and the verdict.

        Returns
        -------
        str
            What ``crmresearch validate`` prints.

        Examples
        --------
        >>> f = Finding("customers", "churn_date", "date_order", 2,
        ...             message="must not be before open_date")
        >>> print(ValidationReport("data/demo", [f], tables={"customers": 24000}).to_text())
        source: data/demo
        tables: customers (24,000 rows)
        ERROR customers.churn_date [date_order] 2 rows: must not be before open_date
        1 error(s), 0 warning(s): source is NOT valid
        """
        lines = [f"source: {self.source}" + (" (flat extract)" if self.flat else "")]
        lines.append("tables: " + (", ".join(f"{t} ({n:,} rows)" for t, n in self.tables.items()) or "none"))
        for key, value in self.settings.items():
            lines.append(f"{key}: {value}")
        for f in self.errors + self.warnings:
            lines.append(str(f))
        lines.append(
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s): "
            + ("source is valid" if self.ok else "source is NOT valid")
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


class ContractError(InputError):
    """The source breaks the data contract; ``.report`` holds every finding.

    Parameters
    ----------
    report : ValidationReport
        The failed validation; the message is its :meth:`~ValidationReport.to_text`.

    Examples
    --------
    >>> try:
    ...     src = load_source("data/broken")
    ... except ContractError as err:
    ...     print(err.report.to_frame())  # doctest: +SKIP

    >>> f = Finding("customers", "customer_id", "unique", 2, message="value must be unique")
    >>> ContractError(ValidationReport("data/broken", [f])).report.errors[0].rule
    'unique'
    """

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.to_text())
