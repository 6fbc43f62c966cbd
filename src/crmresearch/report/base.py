"""What every report has: its bundle, scope, language and suppression, the table and figure
helpers, metrics.json and the header.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from crmresearch.core.errors import InputError
from crmresearch.core.params import Params
from crmresearch.core.suppression import (
    Suppression,
    suppress_counts,
)
from crmresearch.core.version import __version__
from crmresearch.month.bundle import Bundle, open_bundle
from crmresearch.report.page import Section
from crmresearch.viz.i18n import (
    check_language,
    format_amount,
    format_count,
    format_month,
    format_percent,
    label,
    text,
    translate,
)
from crmresearch.viz.summary import SummaryTable, fragment


class ReportBase:
    """What branch and bank reports share: the bundle, parameters, language, formatting."""

    scope = "bank"

    def __init__(self, bundle: Bundle, *, branch: str | None, language: str | None = None,
                 params: Params | None = None, key: bytes | None = None,
                 generated_at: str | None = None, provenance: dict[str, str] | None = None) -> None:  # fmt: skip
        self.bundle = bundle
        self.ctx = bundle.context
        self.branch = branch
        self.params = params or bundle.params
        self.language = language or self.params.language
        check_language(self.language)
        self.key = key
        self.generated_at = generated_at or dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        #: what the run passed in: source fingerprint, notebook and code digests (``about``)
        self.provenance = dict(provenance or {})
        self.month = self.ctx.month
        self.source = bundle.branch_source(branch) if branch is not None else bundle.bank_source()
        self.dated = self.source.can("calendar")  # False for a flat extract (no dates)
        self._metrics: dict | None = None
        self._coverage = None
        self._flat_regions = None
        self._who_left = None
        from crmresearch.viz.plots import use_chinese_font

        use_chinese_font()  # data text (branch names) may be Chinese in an English report too

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _provenance(provenance_json: str | None) -> dict[str, str]:
        """The run's provenance parameter (JSON; ``None`` for a notebook run by hand)."""
        data = json.loads(provenance_json) if provenance_json else {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    @classmethod
    def _resolve(cls, bundle: str | Path | Bundle, params_json: str | None, key_file: str | None
                 ) -> tuple[Bundle, Params | None, bytes | None]:  # fmt: skip
        from crmresearch.core.privacy import KEY_ENV, key_path, load_key

        b = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
        params = Params.model_validate(json.loads(params_json)) if params_json else None
        try:
            key = load_key(key_file)
        except InputError:
            if key_path(key_file) is not None or os.environ.get(KEY_ENV, "").strip():
                # a key was configured but cannot be used: an error, never a silent omission; the message does
                # not name the file, since the executed notebook that holds it is kept in the published folder
                raise InputError("the pseudonym key configured for this report cannot be used (its file was "
                                 "changed, removed or made unreadable after the run checked it): the watch list "
                                 "cannot be made") from None  # fmt: skip
            key = None  # no key configured: the watch list is withheld
        return b, params, key

    def _result(self, name: str) -> Any:
        """A section's result (:data:`crmresearch.month.results.SECTION_RESULTS`) of this report's scope.

        The bank summary takes the one the bank stage computed when the
        report's parameters are the bundle's; otherwise it is computed on
        the scope's source.
        """
        from crmresearch.month.results import section_result

        return section_result(name, self.source, self.params, month=self.month, as_of=self.ctx.as_of,
                              branch=self.branch, stored=self._stored_bank())  # fmt: skip

    def _stored_bank(self) -> dict | None:
        if self.branch is not None or self.ctx.bank is None or self.params != self.bundle.params:
            return None
        return self.ctx.bank

    def t(self, key: str, **fields: Any) -> str:
        return text(key, self.language, **fields)

    def _section(self, key: str, *parts: str) -> Section:
        return Section(key, self.t(key), "".join(parts))

    def _fig(self, ax, alt: str) -> str:
        from crmresearch.viz.plots import figure_to_html

        return figure_to_html(ax, alt=alt, close=True, dpi=110)

    @property
    def _scope_key(self) -> str:
        return self.branch or "bank"

    @property
    def min_cell(self) -> int:
        return int(self.params.min_cell_size)

    def _suppress(self, df: pd.DataFrame, count: str, derived: tuple[str, ...] = (), total_shown: bool = True,
                  prior: Suppression | None = None) -> Suppression:  # fmt: skip
        """The mask of ``df``'s cells to hide (:func:`crmresearch.core.suppression.suppress_counts`)."""
        return suppress_counts(df, count, min_cell=self.min_cell, derived=derived, total_shown=total_shown, prior=prior)

    def _table(self, df: pd.DataFrame, columns: dict[str, tuple[str, Any]], caption: str | None = None,
               mask: Suppression | None = None) -> str:  # fmt: skip
        """An escaped HTML table: ``columns`` maps a column to (header, formatter); ``mask`` says which cells are hidden.

        Rendered by the one renderer of every result (:class:`crmresearch.viz.summary.SummaryTable`).
        """
        return SummaryTable(df, columns, caption, mask, self.min_cell).as_html(self.language)

    def _count(self, n: object) -> str:
        if n is None or (isinstance(n, float) and not math.isfinite(n)):
            return "–"
        n = int(n)
        return self.t("fewer", n=self.min_cell) if 0 < n < self.min_cell else format_count(n, self.language)

    def _pct(self, x: object) -> str:
        return format_percent(float(x), self.language) if x is not None else "–"

    def _amt(self, x: object) -> str:
        return format_amount(float(x), self.language) if x is not None else "–"

    def _lbl(self, x: object) -> str:
        return label(x, self.language)

    def _period(self, x: object) -> str:
        """A period code of a table (``month``: the report month; ``last_12_months``)."""
        return self.t({"month": "in_month"}.get(str(x), str(x)))

    def _unavailable(self, key: str, reason: str) -> Section:
        return self._section(key, fragment("para", self.t("not_available", reason=translate(reason, self.language))))

    def _flat_reason(self, analysis: str) -> str:
        from crmresearch.data.capabilities import flat_support

        s = flat_support(self.source).set_index("analysis")
        return translate(str(s.loc[analysis, "reason"]), self.language) if analysis in s.index else analysis

    # ------------------------------------------------------------------ metrics and header
    def metrics(self) -> dict:
        """The report's ``metrics.json`` content (:func:`crmresearch.month.metrics.metrics` on its slice).

        Examples
        --------
        >>> BranchReport.open(path, "B001").metrics()["kpis"]  # doctest: +SKIP
        """
        if self._metrics is None:
            from crmresearch.month.metrics import metrics

            stored = self._stored_bank()
            if stored is not None and "metrics" in stored:  # computed in the bank stage, the same call
                self._metrics = stored["metrics"]
            elif self.branch is None:
                # the bank file: the bank-wide model of the bundle, on the whole bank
                self._metrics = metrics(self.source, self.params, month=self.month, model=self.ctx.model)
            else:
                self._metrics = metrics(self.source, self.params, month=self.month, branch=self.branch,
                                        model=self.ctx.model)  # fmt: skip
        return self._metrics

    def write_metrics(self, path: str | Path | None) -> None:
        """Write ``metrics.json`` to ``path`` (replacing a file there: the runner gives a fresh temp path).

        Examples
        --------
        >>> BranchReport.open(path, "B001").write_metrics("/tmp/B001.metrics.json")  # doctest: +SKIP
        """
        if path is None:
            return
        from crmresearch.month.metrics import write_metrics

        write_metrics(self.metrics(), path, force=True)

    def _title(self) -> str:
        if not self.dated:
            return self.t("snapshot_report")
        return self.t("branch_report" if self.branch else "bank_report")

    def _branch_name(self) -> str:
        b = self.ctx.branches
        if self.branch is None:
            return label("whole_bank", self.language)
        row = b[b["branch_id"] == self.branch]
        name = row["branch_name"].iloc[0] if len(row) and pd.notna(row["branch_name"].iloc[0]) else ""
        return f"{name} ({self.branch})" if name else self.branch

    #: the sections of the page, in order (the contents list links each one)
    CONTENTS: tuple[str, ...] = ()

    def header(self) -> Section:
        """The top of the page: title, the month's answer (:meth:`first_screen`) and the contents.

        The parameters, version and time made are at the end (:meth:`about`).

        Examples
        --------
        >>> BranchReport.open(path, "B001").header()  # doctest: +SKIP
        """
        month = format_month(self.month, self.language) if self.month else "–"
        contents = fragment("contents", self.t("contents") + self.t("colon").rstrip(), [(k, self.t(k)) for k in self.CONTENTS])
        return Section("header", f"{self._title()} — {self._branch_name()} — {month}",
                       self.first_screen() + contents)  # fmt: skip

    def about(self) -> Section:
        """"About this report": branch, month, data as-of date, churn definition and parameters, provenance, time made.

        The provenance (as ``manifest.json`` records it, :mod:`crmresearch.core.provenance`): package
        version, the digest of the environment that rendered the page (every installed distribution),
        the source fingerprint, the parameters digest, and the notebook and code digests the run
        passed in (``–`` for a notebook run by hand).

        Examples
        --------
        >>> BranchReport.open(path, "B001").about()  # doctest: +SKIP
        """
        p = self.params
        month = format_month(self.month, self.language) if self.month else "–"
        as_of = self.ctx.data_as_of.isoformat() if self.ctx.data_as_of else "–"
        definition = self.t(p.churn.definition) if self.dated else self.t("recorded")
        sep = ", " if self.language == "en" else "、"
        settings = self.t("settings", min_cell=p.min_cell_size, target=p.retention.response_target_days,
                          grace=p.retention.grace, outcome=p.retention.outcome_days,
                          tiers=sep.join(self._lbl(t) for t in p.high_value_tiers),
                          digest=self.metrics().get("params_digest"))  # fmt: skip
        where = ("branch_label", self._branch_name()) if self.branch else ("scope_label", self._branch_name())
        from crmresearch.core.provenance import environment_digest

        prov = self.provenance
        rows = [where, ("month_label", month), ("as_of_label", as_of),
                ("churn_def_label", definition), ("params_label", settings),
                ("version_label", __version__), ("environment_label", environment_digest()),
                ("source_fp_label", prov.get("source_fingerprint") or "–"),
                ("params_digest_label", self.metrics().get("params_digest") or "–"),
                ("notebook_digest_label", prov.get("notebook_digest") or "–"),
                ("code_digest_label", prov.get("code_digest") or "–"),
                ("generated_label", self.generated_at)]  # fmt: skip
        return Section("about", self.t("about"), fragment("pairs", [(self.t(k), v) for k, v in rows], "report-meta"))
