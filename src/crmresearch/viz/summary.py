"""One renderer for every table a result shows: a :class:`Summary` of captioned tables and notes.

In the manner of statsmodels' ``iolib/summary.py`` and lifelines'
``utils/printer.py``: a result builds a :class:`Summary` (its tables, each
column with a *kind*, a caption, and notes), and the summary renders
itself — as HTML for a report page or a notebook (``_repr_html_``), or as
plain text.  The HTML comes from a jinja2 template with autoescape on, so
every text from the data (branch names, codes, labels) is escaped by
default; nothing is built by hand.

Column kinds say how a value is shown: ``text`` (as is), ``count``
(thousands separated), ``percent``, ``amount`` (money), ``ratio`` (two
decimals), ``p`` (a p-value).  A cell given as a string is shown as it is
(the caller formatted it); hidden cells (:meth:`Summary.suppress`, or a
mask from :mod:`crmresearch.core.suppression`) read "fewer than N" or
"suppressed".
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from crmresearch.core.jsonsafe import json_records
from crmresearch.core.suppression import Suppression, suppress_counts
from crmresearch.viz.i18n import (
    check_language,
    format_amount,
    format_count,
    format_percent,
    label,
    text,
)

__all__ = ["KINDS", "Renders", "Summary", "SummaryTable", "column_kind", "fragment", "frame_summary", "render"]

KINDS = ("text", "count", "percent", "amount", "ratio", "p")



def _escape(value: object) -> Markup:
    """Every value a template shows is escaped (Python's ``html.escape``, quotes too) unless it is Markup."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value)))


# autoescape on; finalize escapes first with html.escape, so that pages stay byte-identical to the
# reports before templates (markupsafe writes a quote as &#39;, html.escape as &#x27;)
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("crmresearch.viz", "templates"), autoescape=True,
                          finalize=_escape, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)  # fmt: skip


def render(template: str, **context: Any) -> str:
    """Render one of the package's jinja2 templates (``crmresearch/viz/templates``), autoescape on.

    Parameters
    ----------
    template : str
        The template's file name, e.g. ``"table.html.j2"``.
    **context
        Its variables; text is escaped unless marked safe (``markupsafe.Markup``).

    Returns
    -------
    str

    Examples
    --------
    >>> render("section.html.j2", key="notes", title="<Notes>", body="")
    '<section class="report-section" id="notes"><h2>&lt;Notes&gt;</h2></section>'
    """
    return _ENV.get_template(template).render(**context)


def fragment(name: str, *args: Any) -> Markup:
    """A small piece of a page from the macros of ``fragments.html.j2`` (autoescape on).

    Parameters
    ----------
    name : str
        The macro: ``para``, ``note``, ``heading``, ``bullets``, ``summary_box``, ``pairs``, ``lights``.
    *args
        Its arguments; text is escaped unless it is Markup.

    Returns
    -------
    Markup

    Examples
    --------
    >>> str(fragment("para", "fewer than 10 <customers>"))
    '<p>fewer than 10 &lt;customers&gt;</p>'
    >>> str(fragment("pairs", [("month", "2026-10")], "report-meta"))
    '<table class="report-meta"><tr><th>month</th><td>2026-10</td></tr></table>'
    """
    return getattr(_ENV.get_template("fragments.html.j2").module, name)(*args)


def _format(value: object, kind: str, language: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, str) or kind == "text":
        return str(value)
    if kind == "count":
        return format_count(int(value), language)
    if kind == "percent":
        return format_percent(float(value), language)
    if kind == "amount":
        return format_amount(float(value), language)
    if kind == "p":
        return "<0.001" if float(value) < 0.001 else f"{float(value):.3f}"
    return f"{float(value):.2f}"


@dataclass(frozen=True)
class SummaryTable:
    """One captioned table of a :class:`Summary`.

    Attributes
    ----------
    frame : DataFrame
        The values, one column per entry of ``columns``.
    columns : dict of str to (str, str or callable)
        Column -> (header, kind); the kind is one of :data:`KINDS` or a
        function formatting a value.
    caption : str, optional
    mask : Suppression, optional
        Which cells are hidden (and which of them are small).
    min_cell : int
        The minimum cell size the hidden cells name ("fewer than N").
    langs : dict of str to str
        Column -> language of its text, where it differs from the page's
        (a glossary's English terms on a zh page): its cells get ``lang``.

    Examples
    --------
    >>> t = SummaryTable(pd.DataFrame({"group": ["a"], "n": [3]}), {"group": ("group", "text"), "n": ("n", "count")})
    >>> t.cells("en")
    [['a', '3']]
    """

    frame: pd.DataFrame
    columns: dict[str, tuple[str, str | Callable[[object], str]]]
    caption: str | None = None
    mask: Suppression | None = None
    min_cell: int = 10
    langs: dict[str, str] = field(default_factory=dict)

    def _text_columns(self) -> list[bool]:
        """Which columns hold text (left-aligned; numbers are right-aligned): the kind, else the values' type."""
        out = []
        for c, (_, kind) in self.columns.items():
            if kind == "text":
                out.append(True)
            elif callable(kind):
                v = self.frame[c] if c in self.frame else pd.Series(dtype=object)
                out.append(not (pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v)))
            else:
                out.append(False)
        return out

    def cells(self, language: str = "en") -> list[list[str]]:
        """The table's cells as the reader sees them (hidden ones as "fewer than N" / "suppressed").

        Parameters
        ----------
        language : {"en", "zh"}

        Returns
        -------
        list of list of str

        Examples
        --------
        >>> SummaryTable(pd.DataFrame({"n": [1200]}), {"n": ("n", "count")}).cells("zh")
        [['1,200']]
        """
        out = []
        for i, r in self.frame.iterrows():
            row = []
            for c, (_, kind) in self.columns.items():
                if self.mask is not None and self.mask.is_hidden(i, c):
                    small = self.mask.is_small(i, c)
                    row.append(text("fewer", language, n=self.min_cell) if small else text("suppressed", language))
                elif callable(kind):  # the caller's formatter (a label of a code, a unit); as it is if it cannot
                    try:
                        row.append(kind(r[c]))
                    except (TypeError, ValueError):
                        row.append(str(r[c]))
                elif isinstance(r[c], str):
                    row.append(r[c])
                else:
                    row.append(_format(r[c], kind, language))
            out.append(row)
        return out

    def as_html(self, language: str = "en") -> str:
        """The table as HTML (``<table class="report-table">``, every text escaped).

        Parameters
        ----------
        language : {"en", "zh"}

        Returns
        -------
        str

        Examples
        --------
        >>> SummaryTable(pd.DataFrame({"b": ["<x>"]}), {"b": ("branch", "text")}).as_html()
        '<table class="report-table"><thead><tr><th class="text">branch</th></tr></thead><tbody><tr><td class="text">&lt;x&gt;</td></tr></tbody></table>'
        """
        attrs = [{"cls": "text" if t else None, "lang": self.langs.get(c)}
                 for c, t in zip(self.columns, self._text_columns(), strict=True)]  # fmt: skip
        return render("table.html.j2", caption=self.caption, headers=[h for h, _ in self.columns.values()],
                      rows=self.cells(language), attrs=attrs)  # fmt: skip

    def as_text(self, language: str = "en") -> str:
        """The table as aligned plain text (caption first).

        Parameters
        ----------
        language : {"en", "zh"}

        Returns
        -------
        str

        Examples
        --------
        >>> print(SummaryTable(pd.DataFrame({"n": [5]}), {"n": ("count", "count")}, caption="T").as_text())
        T
        count
        -----
            5
        """
        heads = [h for h, _ in self.columns.values()]
        rows = self.cells(language)
        kinds = [k for _, k in self.columns.values()]
        widths = [max([len(h), *(len(r[j]) for r in rows)]) for j, h in enumerate(heads)]

        def line(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if k == "text" else c.rjust(w)
                             for c, w, k in zip(cells, widths, kinds, strict=True)).rstrip()  # fmt: skip

        out = [self.caption] if self.caption else []
        out += [line(heads), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
        return "\n".join(out)


@dataclass(frozen=True)
class Summary:
    """Captioned tables and notes: what a result shows, rendered the same way in a report and a notebook.

    Attributes
    ----------
    tables : list of SummaryTable
    notes : list of str
        Caveats and notes, shown under the tables.
    language : {"en", "zh"}

    Examples
    --------
    >>> df = pd.DataFrame({"group": ["one product", "two+"], "customers": [4, 250]})
    >>> s = Summary([SummaryTable(df, {"group": ("group", "text"), "customers": ("customers", "count")})])
    >>> print(s.suppress(10, count="customers").as_text())
    group            customers
    -----------  -------------
    one product  fewer than 10
    two+            suppressed
    """

    tables: list[SummaryTable]
    notes: list[str] = field(default_factory=list)
    language: str = "en"

    def __post_init__(self) -> None:
        check_language(self.language)

    def suppress(self, min_cell: int, count: str, derived: tuple[str, ...] = (), total_shown: bool = True) -> Summary:
        """Hide small counts, and the cells that would give them away, in every table with column ``count``.

        The rule is the reports' (:func:`crmresearch.core.suppression.suppress_counts`):
        a count below ``min_cell`` reads "fewer than N", the values derived
        from it (``derived``: its rate, its amounts) are hidden with it, and
        where a total is shown a second cell is hidden so the first cannot be
        recovered by subtraction.

        Parameters
        ----------
        min_cell : int
            The minimum cell size.
        count : str
            The count column.
        derived : tuple of str
            Columns computed from it.
        total_shown : bool
            Whether the page shows the column's total.

        Returns
        -------
        Summary

        Examples
        --------
        >>> df = pd.DataFrame({"g": ["a", "b", "c"], "n": [3, 40, 50]})
        >>> s = Summary([SummaryTable(df, {"g": ("g", "text"), "n": ("n", "count")})]).suppress(10, "n")
        >>> s.tables[0].mask.is_hidden(0, "n"), s.tables[0].mask.is_hidden(1, "n")
        (True, True)
        """
        out = []
        for t in self.tables:
            if count in t.frame:
                mask = suppress_counts(t.frame, count, min_cell=min_cell, derived=list(derived),
                                       total_shown=total_shown, prior=t.mask)  # fmt: skip
                t = replace(t, mask=mask, min_cell=min_cell)
            out.append(t)
        return replace(self, tables=out)

    def as_html(self) -> str:
        """The tables and notes as HTML (jinja2, autoescape on).

        Returns
        -------
        str

        Examples
        --------
        >>> Summary([], notes=["<b>n</b> small"]).as_html()
        '<div class="summary"><p class="note">&lt;b&gt;n&lt;/b&gt; small</p></div>'
        """
        return render("summary.html.j2", tables=[Markup(t.as_html(self.language)) for t in self.tables],
                      notes=self.notes)  # fmt: skip

    def as_text(self) -> str:
        """The tables and notes as plain text.

        Returns
        -------
        str

        Examples
        --------
        >>> Summary([], notes=["a caveat"]).as_text()
        '- a caveat'
        """
        parts = [t.as_text(self.language) for t in self.tables] + [f"- {n}" for n in self.notes]
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        return self.as_html()

    def __str__(self) -> str:
        return self.as_text()


_RATIO = ("hr", "or", "odds_ratio", "hazard_ratio", "lower", "upper", "ratio", "expected", "observed_expected",
          "rmst", "coef", "z", "c_index")  # fmt: skip
_PERCENT = ("rate", "share", "pct", "probability", "risk", "incidence", "survival", "cumulative")
_AMOUNT = ("aum", "amount", "balance", "outflow", "drained")


def column_kind(name: str, values: pd.Series) -> str:
    """The kind a column is shown as, from its name and values (:data:`KINDS`).

    Parameters
    ----------
    name : str
    values : Series

    Returns
    -------
    str

    Examples
    --------
    >>> column_kind("customers", pd.Series([1, 2])), column_kind("churn_rate", pd.Series([0.1]))
    ('count', 'percent')
    >>> column_kind("hr", pd.Series([1.2])), column_kind("p", pd.Series([0.04])), column_kind("tier", pd.Series(["a"]))
    ('ratio', 'p', 'text')
    """
    n = name.lower()
    if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
        return "text"
    if n in ("p", "p_value", "pvalue") or n.endswith("_p"):
        return "p"
    if any(k in n for k in _AMOUNT):
        return "amount"
    if any(n == k or n.startswith(k + "_") or n.endswith("_" + k) for k in _RATIO):
        return "ratio"
    if any(k in n for k in _PERCENT):
        return "percent"
    if pd.api.types.is_integer_dtype(values) or (values.dropna() == values.dropna().round()).all():
        return "count"
    return "ratio"


def frame_summary(frame: pd.DataFrame, language: str = "en", *, caption: str | None = None,
                  notes: list[str] | tuple[str, ...] = (), kinds: dict[str, str] | None = None) -> Summary:  # fmt: skip
    """A result's tidy table as a :class:`Summary`: headers from the phrase catalog, kinds from the columns.

    Parameters
    ----------
    frame : DataFrame
        The result's ``.summary`` (one row per group or term).
    language : {"en", "zh"}
    caption : str, optional
    notes : sequence of str
        The result's caveats.
    kinds : dict, optional
        Kinds that override :func:`column_kind`.

    Returns
    -------
    Summary

    Examples
    --------
    >>> s = frame_summary(pd.DataFrame({"stage": ["new"], "churned": [12]}), "zh")
    >>> s.tables[0].cells("zh")
    [['new', '12']]
    """
    frame = frame.reset_index(drop=True)
    kinds = kinds or {}
    columns = {c: (label(str(c), language), kinds.get(str(c)) or column_kind(str(c), frame[c])) for c in frame.columns}
    return Summary([SummaryTable(frame, columns, caption)], list(notes), language)


_DISPLAY = {"language": "en"}


def display_language(language: str | None = None) -> str:
    """The language results show themselves in, in a notebook (``_repr_html_``); set it with ``language``.

    Parameters
    ----------
    language : {"en", "zh"}, optional
        Set it (for the rest of the session); default: only read it.

    Returns
    -------
    str
        The language now in force (``"en"`` until set).

    Examples
    --------
    >>> display_language("zh"); display_language(); display_language("en")
    'zh'
    'zh'
    'en'
    """
    if language is not None:
        check_language(language)
        _DISPLAY["language"] = language
    return _DISPLAY["language"]


class Renders:
    """What a result class mixes in to render itself: ``to_summary(language)``, ``to_metrics()``, ``_repr_html_``.

    The class names the attribute that holds its tidy table (``_table_attr``)
    and gives ``caveats`` and a one-line ``_caption()``; JupyterLab then shows
    the result as the reports show their tables, and ``to_metrics()`` gives
    its figures as JSON-safe records (a result whose metrics.json block has
    another shape overrides it).

    Examples
    --------
    >>> class Stages(Renders):
    ...     _table_attr = "stages"
    ...     caveats = ["associations"]
    ...     stages = pd.DataFrame({"stage": ["new"], "churned": [12]})
    ...     def _caption(self): return "Churn by stage"
    >>> print(Stages().to_summary().as_text())
    Churn by stage
    stage  churned customers
    -----  -----------------
    new                   12
    <BLANKLINE>
    - associations
    >>> Stages().to_metrics()
    [{'stage': 'new', 'churned': 12}]
    """

    _table_attr = "summary"

    def _caption(self) -> str:
        return ""

    def to_summary(self, language: str = "en") -> Summary:
        """The result as a :class:`Summary`: its tidy table, a caption and its caveats.

        The one renderer of every result: ``.as_html()`` (what a notebook
        shows), ``.as_text()``, ``.suppress(min_cell, count=...)``.

        Parameters
        ----------
        language : {"en", "zh"}
            Language of the headers and numbers.

        Returns
        -------
        Summary

        Examples
        --------
        >>> r.to_summary("zh").suppress(10, count="customers").as_html()  # doctest: +SKIP
        """
        return frame_summary(getattr(self, self._table_attr), language, caption=self._caption() or None,
                             notes=list(self.caveats))  # fmt: skip

    def to_metrics(self) -> Any:
        """The result's figures as JSON-safe data (:func:`crmresearch.core.jsonsafe.json_records` of its table).

        Exact counts, no suppression: ``metrics.json`` is for systems under
        the same access as the source (``reports.md``).

        Returns
        -------
        list of dict or dict

        Examples
        --------
        >>> r.to_metrics()  # doctest: +SKIP
        [{'stage': 'new', 'churned': 12}]
        """
        return json_records(getattr(self, self._table_attr))

    def _repr_html_(self) -> str:
        return self.to_summary(display_language()).as_html()
