"""Figures for what management reads, in English or Chinese.

Every helper takes tidy data (a DataFrame or an analysis result), an
optional ``ax=`` to draw on and ``language="en" | "zh"``, and returns the
Axes it drew on.  Figures it creates are 9 inches wide (900 px at
matplotlib's 100 dpi, the report width), with labelled axes, codes and
axis titles translated through :mod:`crmresearch.viz.i18n`, and percentages
shown as ``%``.  :func:`figure_to_html` embeds a figure in a report as a
base64 PNG (no external request).

Chinese text needs a CJK font, and a bank's machines may have none and no
internet: the font comes with the package from PyPI
(``noto-cjk-sans-otc``: Noto Sans CJK, SIL Open Font License 1.1).  The first
Chinese figure registers it with matplotlib (:func:`use_chinese_font`, not
at import) and appends it to ``rcParams["font.family"]`` as a fallback, so
Latin text keeps the default font and Chinese characters come from Noto
Sans CJK SC.  See ``docs/decisions.md`` ("Chinese font in figures").
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import font_manager, ticker
from matplotlib.figure import Figure

from crmresearch.core.calendar import DAYS_PER_MONTH
from crmresearch.viz.fonts import CJK_FONT_FAMILY, chinese_font_path
from crmresearch.viz.i18n import (
    COVERAGE_GROUPS,
    check_language,
    coverage_group_label,
    format_amount,
    format_count,
    format_month,
    format_percent,
    label,
    term_label,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "use_fonts",
    "funnel_plot",
    "CJK_FONT_FAMILY",
    "REPORT_WIDTH_INCHES",
    "bar_plot",
    "chinese_font_path",
    "cumulative_incidence_plot",
    "figure_to_html",
    "forest_plot",
    "hazard_by_tenure_plot",
    "km_plot",
    "trend_plot",
    "use_chinese_font",
]

REPORT_WIDTH_INCHES = 9.0  # 900 px at 100 dpi
_STAGE_SHADES = ("#fde0dd", "#fff7bc", "#e5f5e0")


# --------------------------------------------------------------------------- font
def use_chinese_font() -> str:
    """Register the bundled CJK font with matplotlib and add it as a fallback family.

    Idempotent.  The font file is added to ``matplotlib.font_manager.fontManager``
    (nothing is installed on the system), and its family is appended to
    ``rcParams["font.family"]``: matplotlib (≥ 3.6) takes each glyph from
    the first family in that list that has it, so Latin text keeps the
    default font and Chinese characters come from Noto Sans CJK.  The
    figure helpers call this for ``language="zh"``.

    Returns
    -------
    str
        The family name: ``"Noto Sans CJK SC"`` (matplotlib ≥ 3.11 registers
        every face of the collection), else the collection's first face,
        which holds the same Chinese glyphs in Japanese-style forms.

    Examples
    --------
    >>> use_chinese_font()
    'Noto Sans CJK SC'
    """
    fname = str(chinese_font_path())
    names = {f.name for f in font_manager.fontManager.ttflist if f.fname == fname}
    if not names:
        font_manager.fontManager.addfont(fname)
        names = {f.name for f in font_manager.fontManager.ttflist if f.fname == fname}
    if CJK_FONT_FAMILY in names:
        family = CJK_FONT_FAMILY
    else:  # pragma: no cover - matplotlib < 3.11 registers only the first face of a collection
        from matplotlib.ft2font import FT2Font

        family = FT2Font(fname).family_name
    current = mpl.rcParams["font.family"]
    current = [current] if isinstance(current, str) else list(current)
    if family not in current:
        mpl.rcParams["font.family"] = [*current, family]
    return family


# --------------------------------------------------------------------------- helpers
def use_fonts(language: str) -> None:
    """Check ``language`` and, for Chinese, draw with the bundled CJK font (the results' own ``.plot`` use it).

    Parameters
    ----------
    language : {"en", "zh"}

    Examples
    --------
    >>> use_fonts("en")
    """
    check_language(language)
    if language == "zh":
        use_chinese_font()


_setup = use_fonts


def _axes(ax: Axes | None, height: float, width: float = REPORT_WIDTH_INCHES) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return ax


def _palette(n: int) -> list:
    return sns.color_palette("colorblind", max(n, 1))


def _value_kind(column: str, values: pd.Series, kind: str | None) -> str:
    """``percent``, ``amount``, ``count`` or ``number`` (given, or guessed from the column)."""
    if kind is not None:
        if kind not in ("percent", "amount", "count", "number"):
            raise ValueError(f"value_format must be percent, amount, count or number, not {kind!r}")
        return kind
    name = str(column).lower()
    if any(w in name for w in ("rate", "share", "incidence", "retention", "pct")):
        return "percent"
    if name.startswith("aum") or "amount" in name:
        return "amount"
    if pd.api.types.is_integer_dtype(values):
        return "count"
    return "number"


def _format_value(kind: str, language: str) -> Callable[[float], str]:
    if kind == "percent":
        return lambda v: format_percent(v, language)
    if kind == "amount":
        return lambda v: format_amount(v, language, unit=False)
    if kind == "count":
        return lambda v: format_count(v, language)
    return lambda v: f"{v:,.3g}"


def _axis_formatter(kind: str, language: str) -> ticker.Formatter:
    if kind == "percent":
        return ticker.PercentFormatter(1.0)
    if kind == "amount":
        return ticker.FuncFormatter(lambda v, _: format_amount(v, language, unit=False))
    if kind == "count":
        return ticker.FuncFormatter(lambda v, _: format_count(v, language))
    return ticker.ScalarFormatter()


def _axis_title(text: str, kind: str, language: str) -> str:
    if kind != "amount":
        return text
    unit = label("amount_unit", language)
    return f"{text}（{unit}）" if language == "zh" else f"{text} ({unit})"


def _ordered_groups(values: pd.Series) -> list:
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values.dropna().unique())
        return [c for c in values.cat.categories if c in present]
    uniq = list(pd.unique(values.dropna()))
    if all(str(u) in COVERAGE_GROUPS for u in uniq):
        return sorted(uniq, key=lambda u: COVERAGE_GROUPS.index(str(u)))
    return sorted(uniq, key=str)


def _group_labeller(group_labels: Mapping | Callable | None, groups: Sequence,
                    language: str) -> Callable[[object], str]:  # fmt: skip
    if callable(group_labels):
        return group_labels
    if group_labels is not None:
        return lambda g: str(group_labels.get(g, group_labels.get(str(g), g)))
    if all(str(g) in COVERAGE_GROUPS for g in groups):
        return lambda g: coverage_group_label(g, language)
    return lambda g: label(g, language)


# --------------------------------------------------------------------------- Kaplan–Meier
def km_plot(data: Any, *, horizon: float | None = None, time_unit: str | None = None, group_col: str = "group",
            duration_col: str = "duration", event_col: str = "event", xlabel: str | None = None,
            group_labels: Mapping | Callable | None = None, min_cell: int | None = None,
            ci: bool = True, alpha: float = 0.05, title: str | None = None, ax: Axes | None = None,
            language: str = "en") -> Axes:  # fmt: skip
    """Kaplan–Meier retention curves by group, with censor marks and the number at risk below.

    Time runs in months (durations in days are divided by 30.4375; a flat
    extract's are months already: ``time_unit``).  The
    at-risk row sits in its own axes under the plot (labelled ``"at_risk"``,
    found with ``[a for a in ax.figure.axes if a.get_label() == "at_risk"]``),
    one line per group, counted at each x tick as in
    :meth:`CoverageResult.at_risk <crmresearch.analyses.product_coverage.CoverageResult.at_risk>`
    (``duration >= t``, the last tick counted at the horizon).

    Parameters
    ----------
    data : CoverageResult or DataFrame
        A :class:`~crmresearch.analyses.product_coverage.CoverageResult` (its ``data``,
        ``horizon``, ``time_unit`` and ``landmark`` are used), or one row per
        customer with ``group``, ``duration`` and ``event`` (1 churned, 0 censored).
    horizon : float, optional
        End of the x axis, in ``time_unit`` (default: the result's horizon, or
        the longest duration).
    time_unit : {"days", "months"}, optional
        The unit of ``duration`` and ``horizon`` (default: the result's, else days).
    xlabel : str, optional
        A label key or text (default: months since the landmark; tenure for a
        result without a landmark, i.e. a flat extract).
    group_labels : mapping or callable, optional
        Group names for the legend (default: coverage groups as "1 product"…,
        other codes through :func:`crmresearch.viz.i18n.label`).
    min_cell : int, optional
        Minimum cell size of the reports: groups with fewer customers are left
        out, and at-risk counts between 1 and ``min_cell - 1`` read "<min_cell".
    ci : bool
        Shade the pointwise ``1 - alpha`` interval.
    ax : Axes, optional
        Draw here (the at-risk row is appended below it); default a new figure.
    language : {"en", "zh"}

    Returns
    -------
    Axes
        The curves' axes.

    Examples
    --------
    >>> from crmresearch.analyses.product_coverage import product_coverage  # doctest: +SKIP
    >>> ax = km_plot(product_coverage(src, month="2026-10"), language="zh")  # doctest: +SKIP
    >>> df = pd.DataFrame({"group": ["1", "1", "2", "2"], "duration": [30, 365, 200, 365],
    ...                    "event": [1, 0, 1, 0]})
    >>> ax = km_plot(df, horizon=365)
    >>> ax.get_xlabel()
    'months since the landmark'
    """
    from lifelines import KaplanMeierFitter
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    _setup(language)
    d = getattr(data, "data", data)
    if horizon is None:
        horizon = getattr(data, "horizon", None) or float(d[duration_col].max())
    time_unit = time_unit or getattr(data, "time_unit", "days")
    per_month = {"days": DAYS_PER_MONTH, "months": 1.0}[time_unit]  # durations per month on the x axis
    if xlabel is None:
        flat = hasattr(data, "landmark") and data.landmark is None
        xlabel = "tenure_months" if flat else "months_since_landmark"
    groups = _ordered_groups(d[group_col])
    if min_cell is not None:
        sizes = d.groupby(d[group_col].astype(str), observed=True).size()
        groups = [g for g in groups if sizes.get(str(g), 0) >= min_cell]
    name_of = _group_labeller(group_labels, groups, language)
    colors = _palette(len(groups))

    horizon_m = horizon / per_month
    step = 3 if horizon_m <= 24.1 else 6 if horizon_m <= 60.1 else 12
    ticks = np.arange(0, horizon_m + 0.1, step)
    if ax is None:
        fig, ax = plt.subplots(figsize=(REPORT_WIDTH_INCHES, 4.4 + 0.24 * len(groups)))
        fig.subplots_adjust(left=0.17, right=0.97, top=0.93 if title else 0.97, bottom=0.06)
    for g, color in zip(groups, colors, strict=True):
        part = d[d[group_col].astype(str) == str(g)]
        km = KaplanMeierFitter(alpha=alpha).fit(part[duration_col] / per_month, part[event_col],
                                                label=name_of(g))  # fmt: skip
        km.plot_survival_function(ax=ax, ci_show=ci, show_censors=True, color=color,
                                  censor_styles={"ms": 6, "marker": "|", "mew": 1})  # fmt: skip
    ax.set_xlim(0, max(horizon_m, ticks[-1]))
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylim(top=1.01)
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_xlabel(label(xlabel, language))
    ax.set_ylabel(label("retention", language))
    ax.grid(True, alpha=0.3)
    if groups:
        ax.legend(loc="lower left", frameon=False)
    if title:
        ax.set_title(label(title, language))

    # the at-risk row: one line per group, a count under each tick
    tab = make_axes_locatable(ax).append_axes("bottom", size=0.24 * max(len(groups), 1) + 0.05,
                                              pad=0.75, sharex=ax)  # fmt: skip
    tab.set_label("at_risk")
    tab.set_ylim(len(groups) - 0.5, -0.5)
    tab.set_yticks(range(len(groups)), [name_of(g) for g in groups])
    for tick_label, color in zip(tab.get_yticklabels(), colors, strict=True):
        tick_label.set_color(color)
    tab.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
    tab.tick_params(axis="y", length=0, pad=30)  # room for the counts centred on x = 0
    for spine in tab.spines.values():
        spine.set_visible(False)
    tab.set_title(label("at_risk", language), loc="left", fontsize="medium")
    for i, g in enumerate(groups):
        dur = d.loc[d[group_col].astype(str) == str(g), duration_col].to_numpy(dtype=float)
        for t in ticks:
            n = int((dur >= min(t * per_month, horizon)).sum())
            text = f"<{min_cell}" if min_cell is not None and 0 < n < min_cell else format_count(n, language)
            tab.text(t, i, text, ha="center", va="center", fontsize="small")
    return ax


# --------------------------------------------------------------------------- forest plot
def forest_plot(hazard_ratios: pd.DataFrame, *, level: int = 95, annotate: bool = True,
                title: str | None = None, ax: Axes | None = None, language: str = "en") -> Axes:  # fmt: skip
    """Hazard ratios with their intervals on a log axis, one row per term, a reference line at 1.

    Terms whose interval excludes 1 are drawn solid, the others hollow and
    grey; with ``annotate`` each row shows ``HR (lower–upper)`` on the right.

    Parameters
    ----------
    hazard_ratios : DataFrame
        ``term, hr, lower, upper`` (and ``p``): the shape of
        :meth:`TimeVaryingCox.hazard_ratios <crmresearch.survival.cox.TimeVaryingCox.hazard_ratios>`
        and of metrics.json.  Rows are drawn top to bottom in this order.
    level : int
        The intervals' confidence level, for the axis title.
    ax : Axes, optional
    language : {"en", "zh"}
        Term names are translated with :func:`crmresearch.viz.i18n.term_label`.

    Returns
    -------
    Axes

    Examples
    --------
    >>> hr = pd.DataFrame({"term": ["n_products", "tier[key]"], "hr": [0.6, 1.3],
    ...                    "lower": [0.5, 1.1], "upper": [0.7, 1.6], "p": [1e-9, 0.01]})
    >>> ax = forest_plot(hr, language="zh")
    >>> len(ax.get_yticks())
    2
    """
    _setup(language)
    df = hazard_ratios.reset_index(drop=True)
    n = len(df)
    ax = _axes(ax, 0.42 * n + 1.4)
    y = np.arange(n)[::-1].astype(float)
    hr, lo, up = (df[c].to_numpy(dtype=float) for c in ("hr", "lower", "upper"))
    clear = (lo > 1) | (up < 1)
    for mask, face, color in ((clear, "black", "black"), (~clear, "white", "grey")):
        if mask.any():
            ax.errorbar(hr[mask], y[mask], xerr=[hr[mask] - lo[mask], up[mask] - hr[mask]], fmt="o",
                        color=color, mfc=face, ecolor=color, capsize=3, ms=6, lw=1.5)  # fmt: skip
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in (hr, lo, up)] + [np.array([1.0])])
    xmin, xmax = finite.min() / 1.25, finite.max() * 1.25
    ax.set_xlim(xmin, xmax)
    cands = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
    ticks = [t for t in cands if xmin <= t <= xmax]
    if len(ticks) < 3:
        ticks = [t for t in (0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 1.75, 2) if xmin <= t <= xmax]
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_yticks(y, [term_label(t, language) for t in df["term"]])
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel(label("hazard_ratio_axis", language, level=level))
    ax.set_ylabel(label("term", language))
    ax.grid(True, axis="x", alpha=0.3)
    if annotate and n:
        trans = ax.get_yaxis_transform()  # x in axes fraction, y in data
        ax.text(1.02, n - 0.35, label("hr_interval", language, level=level), transform=trans,
                ha="left", va="bottom", fontsize="small", color="dimgray")  # fmt: skip
        for yi, h, a, b in zip(y, hr, lo, up, strict=True):
            ax.text(1.02, yi, f"{h:.2f} ({a:.2f}–{b:.2f})", transform=trans, ha="left", va="center",
                    fontsize="small")  # fmt: skip
    if title:
        ax.set_title(label(title, language))
    return ax


# --------------------------------------------------------------------------- competing risks
def cumulative_incidence_plot(cif: pd.DataFrame, *, horizon_months: float = 12, annotate: bool = True,
                              title: str | None = None, ax: Axes | None = None,
                              language: str = "en") -> Axes:  # fmt: skip
    """Cumulative incidence of each churn type at the horizon, by coverage group, with intervals.

    Grouped bars (one colour per churn type) for the output of
    :func:`crmresearch.analyses.product_coverage.cumulative_incidence`, whose values
    are the Aalen–Johansen estimates at the horizon.

    Parameters
    ----------
    cif : DataFrame
        ``group, cause, cif, lower, upper``.
    horizon_months : float
        The horizon the estimates are taken at (for the axis title).
    ax : Axes, optional
    language : {"en", "zh"}

    Returns
    -------
    Axes

    Examples
    --------
    >>> cif = pd.DataFrame({"group": ["1", "1", "2", "2"], "cause": ["transfer", "natural"] * 2,
    ...                     "cif": [0.3, 0.05, 0.2, 0.04], "lower": [0.25, 0.03, 0.15, 0.02],
    ...                     "upper": [0.35, 0.07, 0.25, 0.06]})
    >>> ax = cumulative_incidence_plot(cif)
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['transfer', 'natural']
    """
    _setup(language)
    ax = _axes(ax, 4.5)
    groups = _ordered_groups(cif["group"])
    causes = list(dict.fromkeys(cif["cause"]))
    colors = _palette(len(causes))
    width = 0.8 / max(len(causes), 1)
    x = np.arange(len(groups), dtype=float)
    for j, (cause, color) in enumerate(zip(causes, colors, strict=True)):
        part = cif[cif["cause"] == cause].assign(group=lambda f: f["group"].astype(str))
        part = part.set_index("group").reindex([str(g) for g in groups])
        v, lo, up = (part[c].to_numpy(dtype=float) for c in ("cif", "lower", "upper"))
        xs = x + (j - (len(causes) - 1) / 2) * width
        err = np.vstack([np.clip(v - lo, 0, None), np.clip(up - v, 0, None)])
        ax.bar(xs, v, width * 0.95, yerr=err, capsize=3, color=color, label=label(cause, language),
               error_kw={"elinewidth": 1, "ecolor": "#444444"})  # fmt: skip
        if annotate:
            for xi, vi, ui in zip(xs, v, up, strict=True):
                if np.isfinite(vi):
                    ax.annotate(format_percent(vi, language), (xi, ui if np.isfinite(ui) else vi),
                                xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                                fontsize="x-small")  # fmt: skip
    ax.set_xticks(x, [coverage_group_label(g, language) for g in groups])
    ax.set_xlabel(label("products_at_landmark", language))
    ax.set_ylabel(label("cif_axis", language, months=horizon_months))
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_ylim(0, None)
    ax.margins(y=0.12)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(title=label("cause", language), frameon=False)
    if title:
        ax.set_title(label(title, language))
    return ax


# --------------------------------------------------------------------------- lifecycle
def hazard_by_tenure_plot(data: Any, *, max_months: float = 60, min_at_risk: int = 50,
                          title: str | None = None, ax: Axes | None = None,
                          language: str = "en") -> Axes:  # fmt: skip
    """Smoothed churn hazard by tenure, with the lifecycle stages shaded.

    Stages: new (0–3 months), growth (3–12), mature (12+)
    (:data:`crmresearch.analyses.lifecycle.STAGES`), named in the legend.

    Parameters
    ----------
    data : LifecycleResult or DataFrame
        A :class:`~crmresearch.analyses.lifecycle.LifecycleResult` (its
        ``smoothed_hazard(min_at_risk)`` is drawn) or a frame with
        ``tenure_days`` and ``hazard_per_month``.
    max_months : float
        End of the tenure axis.
    ax : Axes, optional
    language : {"en", "zh"}

    Returns
    -------
    Axes

    Examples
    --------
    >>> h = pd.DataFrame({"tenure_days": [0, 100, 400, 900],
    ...                   "hazard_per_month": [0.12, 0.05, 0.02, 0.015]})
    >>> ax = hazard_by_tenure_plot(h, max_months=36)
    >>> ax.get_xlabel()
    'tenure (months)'
    """
    from crmresearch.core.calendar import STAGES

    _setup(language)
    ax = _axes(ax, 4.2)
    h = data.smoothed_hazard(min_at_risk) if hasattr(data, "smoothed_hazard") else data
    h = h[h["tenure_days"] <= max_months * DAYS_PER_MONTH]
    for (name, (lo, hi)), shade in zip(STAGES.items(), _STAGE_SHADES, strict=True):
        ax.axvspan(lo / DAYS_PER_MONTH, min(hi / DAYS_PER_MONTH, max_months), color=shade, alpha=0.8, lw=0,
                   label=label(name, language))  # fmt: skip
    ax.plot(h["tenure_days"] / DAYS_PER_MONTH, h["hazard_per_month"], color="black", lw=1.8,
            label=label("hazard_per_month", language))  # fmt: skip
    ax.set_xlim(0, max_months)
    ax.set_ylim(0, None)
    ax.xaxis.set_major_locator(ticker.MultipleLocator(3 if max_months <= 24 else 6 if max_months <= 72 else 12))
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_xlabel(label("tenure_months", language))
    ax.set_ylabel(label("hazard_per_month", language))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", frameon=False)
    if title:
        ax.set_title(label(title, language))
    return ax


# --------------------------------------------------------------------------- trend
def trend_plot(df: pd.DataFrame, y: str, *, x: str = "month", compare: str | None = None,
               value_format: str | None = None, ylabel: str | None = None, series_label: str | None = None,
               compare_label: str | None = None, annotate_last: bool = True, title: str | None = None,
               ax: Axes | None = None, language: str = "en") -> Axes:  # fmt: skip
    """A KPI over months (13 for a report), with an optional comparison line (e.g. the bank).

    Parameters
    ----------
    df : DataFrame
        One row per month: ``x`` (``YYYY-MM``), ``y`` and optionally ``compare``.
    y : str
        The KPI column (a key of :mod:`crmresearch.viz.i18n` such as
        ``monthly_churn_rate`` gives a translated axis title).
    compare : str, optional
        A second column drawn dashed in grey.
    value_format : {"percent", "amount", "count", "number"}, optional
        Default: ``percent`` for rates and shares, ``amount`` for ``aum*``
        columns (万元 in Chinese), ``count`` for integers.
    ylabel, series_label, compare_label : str, optional
        Label keys or text (defaults: the column names, translated).
    annotate_last : bool
        Write the last month's value next to its point.
    ax : Axes, optional
    language : {"en", "zh"}
        Months read ``2026-10`` or ``2026年10月``.

    Returns
    -------
    Axes

    Examples
    --------
    >>> months = pd.period_range("2025-10", "2026-10", freq="M").astype(str)
    >>> df = pd.DataFrame({"month": months, "monthly_churn_rate": np.linspace(0.01, 0.02, 13),
    ...                    "bank": 0.015})
    >>> ax = trend_plot(df, "monthly_churn_rate", compare="bank", series_label="branch")
    >>> ax.get_xticklabels()[-1].get_text()
    '2026-10'
    """
    _setup(language)
    ax = _axes(ax, 4.2)
    d = df.sort_values(x).reset_index(drop=True)
    kind = _value_kind(y, d[y], value_format)
    fmt = _format_value(kind, language)
    pos = np.arange(len(d), dtype=float)
    colors = _palette(1)
    ax.plot(pos, d[y].to_numpy(dtype=float), marker="o", lw=2, color=colors[0],
            label=label(series_label or y, language))  # fmt: skip
    if compare is not None:
        ax.plot(pos, d[compare].to_numpy(dtype=float), marker="s", ms=4, lw=1.5, ls="--", color="grey",
                label=label(compare_label or compare, language))  # fmt: skip
    if annotate_last and len(d):
        last = float(d[y].iloc[-1])
        if np.isfinite(last):
            ax.annotate(fmt(last), (pos[-1], last), xytext=(7, 0), textcoords="offset points",
                        va="center", ha="left", color=colors[0])  # fmt: skip
    ax.set_xticks(pos, [format_month(m, language) for m in d[x]], rotation=45, ha="right")
    ax.set_xlim(-0.5, len(d) - 0.5 + (1.0 if annotate_last else 0))
    values = d[[c for c in (y, compare) if c is not None]].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if len(values) and values.min() >= 0:
        ax.set_ylim(0, max(values.max() * 1.15, 1e-9))
    ax.yaxis.set_major_formatter(_axis_formatter(kind, language))
    ax.set_xlabel(label(x, language))
    ax.set_ylabel(_axis_title(label(ylabel or y, language), kind, language))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", frameon=False)
    if title:
        ax.set_title(label(title, language))
    return ax


# --------------------------------------------------------------------------- breakdowns
def bar_plot(df: pd.DataFrame, category: str, value: str, *, hue: str | None = None,
             order: Sequence | None = None, value_format: str | None = None, xlabel: str | None = None,
             annotate: bool = True, title: str | None = None, ax: Axes | None = None,
             language: str = "en") -> Axes:  # fmt: skip
    """Horizontal bars for a breakdown (churn by tier, segment, reason…), largest on top.

    Parameters
    ----------
    df : DataFrame
        One row per category (per category and ``hue`` level).
    category : str
        The column of codes on the y axis, translated with :func:`crmresearch.viz.i18n.label`.
    value : str
        The bar length (a count, a rate, an amount).
    hue : str, optional
        A column of a second split (e.g. ``count`` vs ``aum_weighted``), drawn side by side.
    order : sequence, optional
        Category codes top to bottom (default: an ordered categorical's
        order, else by value, largest first).
    value_format : {"percent", "amount", "count", "number"}, optional
        How values and ticks read (default guessed from ``value``, see
        :func:`trend_plot`).
    xlabel : str, optional
        Label key or text (default: ``value`` translated).
    annotate : bool
        Write each bar's value at its end.
    ax : Axes, optional
    language : {"en", "zh"}

    Returns
    -------
    Axes

    Examples
    --------
    >>> df = pd.DataFrame({"tier": ["mass", "key", "private"], "churn_rate": [0.02, 0.01, 0.005]})
    >>> ax = bar_plot(df, "tier", "churn_rate", language="zh")
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['大众客户', '重点客户', '私人银行客户']
    """
    _setup(language)
    d = df.copy()
    if order is None:
        if isinstance(d[category].dtype, pd.CategoricalDtype) and d[category].cat.ordered:
            order = _ordered_groups(d[category])
        else:
            order = list(d.groupby(category, sort=False, dropna=False)[value].sum()
                         .sort_values(ascending=False).index)  # fmt: skip
    else:
        keep_missing = any(pd.isna(c) for c in order)
        d = d[d[category].isin([c for c in order if not pd.isna(c)]) | (keep_missing & d[category].isna())]
    d["_category"] = d[category].map(lambda c: label(c, language)).astype(str)
    kind = _value_kind(value, d[value], value_format)
    fmt = _format_value(kind, language)
    n_hue = d[hue].nunique() if hue else 1
    ax = _axes(ax, max(2.2, 0.32 * len(order) * max(n_hue, 1) ** 0.6 + 1.2))
    kwargs: dict[str, Any] = {}
    if hue:
        hue_order = list(dict.fromkeys(d[hue]))
        d["_hue"] = d[hue].map(lambda c: label(c, language)).astype(str)
        kwargs.update(hue="_hue", hue_order=[label(h, language) for h in hue_order],
                      palette=_palette(len(hue_order)))  # fmt: skip
    else:
        kwargs.update(color=_palette(1)[0])
    sns.barplot(data=d, x=value, y="_category", order=[label(c, language) for c in order], orient="h",
                errorbar=None, ax=ax, **kwargs)  # fmt: skip
    if annotate:
        for container in ax.containers:
            ax.bar_label(container, labels=[fmt(v) for v in container.datavalues], padding=3,
                         fontsize="small")  # fmt: skip
        ax.margins(x=0.15)
    ax.xaxis.set_major_formatter(_axis_formatter(kind, language))
    ax.set_xlabel(_axis_title(label(xlabel or value, language), kind, language))
    ax.set_ylabel(label(category, language))
    ax.grid(True, axis="x", alpha=0.3)
    if hue:
        ax.legend(title=label(hue, language), frameon=False)
    if title:
        ax.set_title(label(title, language))
    return ax


# --------------------------------------------------------------------------- branch comparison
def funnel_plot(oe: pd.DataFrame, *, label_col: str = "name", label_outside: bool = True, title: str | None = None,
                ax: Axes | None = None, language: str = "en") -> Axes:  # fmt: skip
    """Funnel plot of observed / expected churn against expected churn, with 95% and 99.8% limits.

    Parameters
    ----------
    oe : DataFrame
        :func:`crmresearch.analyses.risk_adjustment.observed_expected`: ``expected, ratio,
        outside_998`` and a label column.
    label_col : str
        The column naming each point (a branch's name and ID).
    label_outside : bool
        Name the points outside the 99.8% limits.
    title : str, optional
    ax : Axes, optional
    language : {"en", "zh"}

    Returns
    -------
    Axes

    Examples
    --------
    >>> oe = pd.DataFrame({"expected": [50.0, 120.0], "ratio": [1.1, 0.7], "outside_998": [False, True],
    ...                    "name": ["A", "B"]})
    >>> ax = funnel_plot(oe)
    >>> ax.get_xlabel()
    'expected churn'
    """
    from crmresearch.survival.estimators import funnel_limits

    _setup(language)
    ax = _axes(ax, 4.2)
    e = oe["expected"].to_numpy(float)
    grid = np.linspace(max(0.5, np.nanmin(e) * 0.8), np.nanmax(e) * 1.1, 200)
    for level, style in ((0.95, "--"), (0.998, ":")):
        lo, hi = funnel_limits(grid, level)
        name = f"{level * 100:g}%" + (" limits" if language == "en" else " 控制限")
        ax.plot(grid, lo, style, color="grey", lw=1, label=name)
        ax.plot(grid, hi, style, color="grey", lw=1)
    ax.axhline(1.0, color="black", lw=0.8)
    out = oe["outside_998"].fillna(False).to_numpy(bool)
    colors = _palette(2)
    ax.scatter(e[~out], oe["ratio"].to_numpy(float)[~out], color=colors[0], zorder=3, s=22)
    ax.scatter(e[out], oe["ratio"].to_numpy(float)[out], color=colors[1], zorder=3, s=30)
    if label_outside and label_col in oe:
        for x, y, name in zip(e[out], oe["ratio"].to_numpy(float)[out], oe[label_col].astype(str)[out], strict=True):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="small")
    ax.set_xlabel("expected churn" if language == "en" else "预期流失客户数")
    ax.set_ylabel("observed / expected" if language == "en" else "实际/预期")
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(label(title, language))
    return ax


# --------------------------------------------------------------------------- HTML
#: the PNG text chunks of every figure: no date, no library version (a figure's bytes depend on what it draws)
PNG_METADATA: dict[str, str | None] = {"Software": "crmresearch"}


def deterministic_figures() -> None:
    """Make saved figures the same bytes for the same drawing (called at import).

    PNGs carry :data:`PNG_METADATA` only (``figure_to_html``; matplotlib writes no date into a
    PNG); SVG element IDs come from a fixed salt (``svg.hashsalt``) instead of a random one. For
    an SVG or PDF saved by hand, pass ``metadata={"Date": None}`` (``{"CreationDate": None}`` for a
    PDF) or set ``SOURCE_DATE_EPOCH``.

    Examples
    --------
    >>> deterministic_figures(); mpl.rcParams["svg.hashsalt"]
    'crmresearch'
    """
    mpl.rcParams["svg.hashsalt"] = "crmresearch"


deterministic_figures()


def figure_to_html(fig: Figure | Axes, *, alt: str = "", dpi: int = 150, close: bool = False) -> str:
    """A figure as a self-contained ``<img>``: the PNG inline as base64, no external request.

    The PNG is rendered at ``dpi`` (sharp on high-density screens) and shown
    at its 100-dpi size (a 9-inch figure is 900 px wide), never wider than
    the page.

    Parameters
    ----------
    fig : Figure or Axes
        The figure (or an axes of it).
    alt : str
        Alternative text (escaped).
    dpi : int
        Rendering resolution.
    close : bool
        Close the figure afterwards (frees its memory when a report makes many).

    Returns
    -------
    str
        ``<img src="data:image/png;base64,..." alt="..." width="..." style="max-width:100%;height:auto">``

    Examples
    --------
    >>> fig, ax = plt.subplots()
    >>> figure_to_html(fig, alt="trend").startswith('<img src="data:image/png;base64,')
    True
    """
    figure = fig if isinstance(fig, Figure) else fig.get_figure()
    buf = io.BytesIO()
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    # a constrained layout already fits the figure: a "tight" box would draw it a second time
    tight = None if isinstance(figure.get_layout_engine(), ConstrainedLayoutEngine) else "tight"
    # zlib level 1: as small as the default level here (flat colours), and 3x faster to encode
    figure.savefig(buf, format="png", dpi=dpi, bbox_inches=tight, facecolor="white", metadata=PNG_METADATA,
                   pil_kwargs={"compress_level": 1})  # fmt: skip
    png = buf.getvalue()
    if close:
        plt.close(figure)
    width_px = int.from_bytes(png[16:20], "big")  # IHDR width
    shown = max(1, round(width_px * 100 / dpi))
    data = base64.b64encode(png).decode("ascii")
    from crmresearch.viz.summary import render

    return render("img.html.j2", data=data, alt=alt, width=shown)
