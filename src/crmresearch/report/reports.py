"""The monthly reports' content: each section of ``reports.md`` as headed HTML, in English or Chinese.

The report notebooks (``notebooks/branch_report.ipynb``,
``notebooks/bank_report.ipynb``) are thin: they open a :class:`BranchReport`
or :class:`BankReport` on a month bundle (:mod:`crmresearch.month.bundle`) and show
one section per cell.  Everything shown is computed here from the library's
analyses, so an analyst can rebuild any table by hand.

What a reader sees is safe to publish:

* customers appear only under their keyed pseudonym (:mod:`crmresearch.core.privacy`),
  never by name or ID; the watch list is withheld when no key is configured;
* groups smaller than ``params.min_cell_size`` show "fewer than N"
  (:func:`crmresearch.core.suppression.suppress_counts`), with a complement where a
  total is shown, and a rate whose numerator is hidden shows only a bound;
* every text that comes from the data (branch names, codes) is HTML-escaped;
* a branch report holds only that branch's customers (its slice of the bank);
  the bank report only aggregates.

Observational results are worded as associations, every effect carries its
interval, and the plain-language summary (:func:`plain_summary`) is generated
from the results: it describes what the data shows.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmresearch.core.errors import InputError
from crmresearch.core.params import Params
from crmresearch.core.suppression import (
    Suppression,
    suppress_counts,
    suppress_nested,
    suppress_split,
)
from crmresearch.core.version import __version__
from crmresearch.month.bundle import Bundle, open_bundle
from crmresearch.viz.i18n import (
    check_language,
    coverage_group_label,
    format_amount,
    format_count,
    format_month,
    format_percent,
    label,
    term_label,
)

__all__ = ["BankReport", "BranchReport", "GLOSSARY", "SECTIONS", "Section", "plain_summary", "text"]

#: section key -> (English title, Chinese title); numbered as in reports.md
SECTIONS: dict[str, tuple[str, str]] = {
    "headline": ("1. Headline", "1. 概览"),
    "who_left": ("2. Who left", "2. 流失客户构成"),
    "product_coverage": ("3. Product coverage", "3. 产品覆盖度"),
    "rm_turnover": ("4. Relationship-manager turnover", "4. 客户经理离职/调岗"),
    "causes": ("5. Why customers leave", "5. 流失原因"),
    "lifecycle": ("6. Lifecycle", "6. 客户生命周期"),
    "retention": ("7. Retention outcomes", "7. 挽留成效"),
    "watch_list": ("8. Watch list", "8. 重点关注客户名单"),
    "notes": ("9. Data and method notes", "9. 数据与方法说明"),
    "regions": ("Regional roll-up", "分区域汇总"),
    "branch_comparison": ("Branches compared: observed versus expected churn", "支行比较：实际与预期流失"),
}

_TEXT: dict[str, tuple[str, str]] = {
    "branch_report": ("Branch monthly report", "支行月度报告"),
    "bank_report": ("Bank monthly summary", "全行月度汇总"),
    "snapshot_report": ("Churn snapshot", "流失快照"),
    "branch_label": ("Branch", "支行"),
    "month_label": ("Report month", "报告月份"),
    "as_of_label": ("Data as of", "数据截至"),
    "churn_def_label": ("Churn definition", "流失定义"),
    "params_label": ("Parameters", "参数"),
    "version_label": ("crmresearch version", "crmresearch 版本"),
    "generated_label": ("Generated", "生成时间"),
    "recorded": ("recorded churn date (account closed)", "登记流失日期（销户）"),
    "asset_attrition": ("asset attrition", "资产流失"),
    "kpi": ("measure", "指标"),
    "this_month": ("this month", "本月"),
    "previous_month": ("vs last month", "较上月"),
    "same_month_last_year": ("vs same month last year", "较去年同月"),
    "vs_bank": ("vs the bank", "较全行"),
    "better": ("better", "改善"),
    "worse": ("worse", "恶化"),
    "same": ("about the same", "基本持平"),
    "n/a": ("–", "–"),
    "high_value_title": ("High-value customers ({tiers})", "高价值客户（{tiers}）"),
    "trend_title": ("Monthly churn rate, last 13 months", "近 13 个月月流失率"),
    "summary_title": ("In brief", "本月要点"),
    "not_available": ("Not available: {reason}", "无法提供：{reason}"),
    "unavailable_flat": ("This section needs data a flat extract does not have: {reason}",
                         "本节所需数据在平面数据中缺失：{reason}"),
    "by_count": ("Churned customers by {by}", "按{by}划分的流失客户"),
    "coverage_table": ("Customers active at the landmark {landmark} and churned within 12 months, by products held",
                       "基准日 {landmark} 的有效客户及其 12 个月内流失情况（按持有产品数）"),
    "coverage_table_flat": ("Customers and churn by products held (snapshot)", "按持有产品数的客户与流失（快照）"),
    "logrank": ("Log-rank test across groups: χ² = {stat:.1f}, df = {df}, p {p}.",
                "组间 Log-rank 检验：χ² = {stat:.1f}，自由度 {df}，p {p}。"),
    "sticky_title": ("Hazard ratio of each additional product and of the sticky products (bank-wide model)",
                     "每多持有一个产品及持有“粘性产品”的风险比（全行模型）"),
    "survival_12m": ("retained at 12 months", "12 个月留存率"),
    "rmst": ("restricted mean months retained (of 12)", "12 个月内平均留存月数"),
    "exits_title": ("RMs who left", "离任客户经理"),
    "in_month": ("in the month", "本月"),
    "last_12_months": ("last 12 months", "近 12 个月"),
    "orphaned_title": ("Customers orphaned by RM exits", "因客户经理离任而无人维护的客户"),
    "turnover_title": ("Churn after the RM left versus comparable customers whose RM stayed",
                       "客户经理离任后的流失率与客户经理未离任的可比客户对比"),
    "orphan_rates_title": ("Churn per customer-month by days without an RM so far",
                           "按已无客户经理天数划分的每客户每月流失率"),
    "turnover_hr": ("Hazard ratio of RM-turnover exposure (time-varying model, {scope}): {hr}.",
                    "客户经理离任暴露的风险比（时变模型，{scope}）：{hr}。"),
    "forest_title": ("Hazard ratios of churn ({scope} model, 95% intervals)", "流失风险比（{scope}模型，95% 置信区间）"),
    "model_scope_bank": ("bank-wide", "全行"),
    "model_scope_branch": ("this branch's own", "本支行"),
    "ph_title": ("Does each hazard ratio hold over tenure? (proportional-hazards check)",
                 "风险比在客户生命周期内是否稳定？（比例风险检验）"),
    "ph_ok": ("Every hazard ratio is about the same early and late in tenure (change under 20%).",
              "各风险比在开户早期与后期基本一致（变化小于 20%）。"),
    "cif_title": ("Transfer versus natural churn within 12 months, by products held (competing risks)",
                  "12 个月内转移流失与自然流失（竞争风险），按持有产品数"),
    "stages_title": ("Churn hazard by lifecycle stage", "各生命周期阶段的流失风险"),
    "new_loss": ("Of new customers, {loss} ({lo}–{hi}) were lost within their first 3 months ({n} customers).",
                 "新客户中有 {loss}（{lo}–{hi}）在开户 3 个月内流失（共 {n} 位客户）。"),
    "warnings_title": ("Early warnings raised in the month and contact within the response target ({days} day(s))",
                       "本月触发的流失预警及在响应时限（{days} 天）内的接触情况"),
    "outcomes_title": ("Warned customers retained 90 days, with and without contact (warnings whose outcome is known)",
                       "已知结果的预警客户 90 天留存情况：接触与未接触"),
    "odds_ratio": ("Adjusted odds ratio of retention for contact within the grace window: {or_} ({lo}–{hi}), p {p}, "
                   "n = {n}. This is an observational association: contacted customers may differ from the others in "
                   "ways the adjustment does not capture.",
                   "宽限期内接触对留存的调整后比值比：{or_}（{lo}–{hi}），p {p}，n = {n}。这是观察性关联："
                   "被接触客户可能在未调整的方面与其他客户不同。"),
    "rm_title": ("Per relationship manager", "按客户经理"),
    "winback_title": ("Win-back attempts", "挽回尝试"),
    "watch_title": ("The customers now most at risk (90-day churn risk from the bank-wide model)",
                    "当前流失风险最高的客户（全行模型预测的 90 天流失风险）"),
    "watch_no_key": ("The watch list is withheld: no pseudonym key is configured (set CRMRESEARCH_PSEUDONYM_KEY "
                     "or pass --key-file), and customers are never shown by their ID.",
                     "未配置化名密钥，名单不予显示（请设置 CRMRESEARCH_PSEUDONYM_KEY 或使用 --key-file）；"
                     "客户编号从不在报告中出现。"),
    "backtest": ("Out-of-time check of the bank-wide model (scored {days} days before the month end): "
                 "AUC {auc}, concordance {c}, {n} customers.",
                 "全行模型的样本外检验（月末前 {days} 天评分）：AUC {auc}，一致性 {c}，客户 {n} 位。"),
    "rows_title": ("Rows used", "使用的数据行数"),
    "table": ("table", "数据表"),
    "rows": ("rows", "行数"),
    "diagnostics_title": ("Model diagnostics", "模型诊断"),
    "concordance": ("concordance", "一致性指数"),
    "events": ("churn events", "流失事件数"),
    "events_per_term": ("events per model term", "每个模型变量的事件数"),
    "glossary_title": ("Glossary / 术语表", "术语表 / Glossary"),
    "caveats_title": ("Caveats", "注意事项"),
    "findings_title": ("Data findings (validation)", "数据检查发现"),
    "region": ("region", "区域"),
    "branches": ("branches", "支行数"),
    "observed": ("observed churn (12 months)", "实际流失（12 个月）"),
    "expected": ("expected given the customer mix", "按客户结构预期流失"),
    "ratio": ("observed / expected (95% interval)", "实际/预期（95% 置信区间）"),
    "funnel_note": ("Expected churn comes from the bank-wide model (products, RM turnover, complaints, dormancy, "
                    "tier, segment, tenure). Branches outside the funnel's 99.8% limits lose more (or fewer) "
                    "customers than their customer mix explains; this is an association, not a verdict on the "
                    "branch's staff.",
                    "预期流失来自全行模型（产品、客户经理离任、投诉、休眠、层级、客群、开户时长）。"
                    "落在漏斗图 99.8% 控制限之外的支行，其流失多于（或少于）客户结构所能解释的水平；"
                    "这是关联而非对支行员工的评判。"),
    "rank": ("rank", "排名"),
    "fewer": ("fewer than {n}", "少于 {n}"),
    "suppressed": ("suppressed", "已隐藏"),
    "below": ("below {x}", "低于 {x}"),
    "significant": ("p < 0.001", "p < 0.001"),
    "customers_total": ("customers", "客户数"),
    "churned_total": ("churned", "已流失"),
    "churn_share": ("share churned", "流失占比"),
}

#: the bilingual glossary of section 9: (English term, Chinese term, English definition)
GLOSSARY: tuple[tuple[str, str, str], ...] = (
    ("churn", "流失", "the customer's relationship ended: the recorded churn date (or asset attrition, per the parameters)"),
    ("active at month start", "月初有效客户", "opened before the month began and not churned before it"),
    ("monthly churn rate", "月流失率", "customers churned in the month / customers active at its start"),
    ("AUM lost", "流失资产", "last month-end AUM before churn, summed over the month's churners"),
    ("AUM drained", "流失前资产流出", "peak month-end AUM in the 12 months before churn, summed over the month's churners"),
    ("high-value customers", "高价值客户", "customers in the top tiers (parameter high_value_tiers)"),
    ("product coverage", "产品覆盖度", "number of distinct products held on a day"),
    ("landmark", "基准日", "the day groups are formed (month end − 12 months), using only what was known then"),
    ("sticky products", "粘性产品", "mobile banking, fund SIP, payroll, third-party custody"),
    ("orphaned", "无人维护客户", "a customer whose RM left and who has no new RM yet"),
    ("hazard ratio (HR)", "风险比", "how much higher the churn rate is with a factor, others held equal; 1 = no difference"),
    ("95% interval", "95% 置信区间", "the range of values consistent with the data"),
    ("odds ratio (OR)", "比值比", "how the odds of retention differ with contact, adjusted for risk factors"),
    ("early warning", "流失预警", "a rule of the parameters that fired for a customer on a date"),
    ("response target", "响应时限", "contact within this many days of a warning counts as in target"),
    ("pseudonym", "化名", "a keyed hash of the customer ID; staff holding the key can resolve it"),
    ("observed / expected", "实际/预期", "churn against what the bank-wide model expects for the branch's customers"),
)


def text(key: str, language: str = "en", **fields: Any) -> str:
    """A report phrase of :data:`_TEXT` (or a section title of :data:`SECTIONS`) in ``language``.

    Parameters
    ----------
    key : str
        A phrase key.
    language : {"en", "zh"}
    **fields
        Values for the phrase's placeholders.

    Returns
    -------
    str

    Examples
    --------
    >>> text("headline", "zh"), text("fewer", "en", n=10)
    ('1. 概览', 'fewer than 10')
    """
    i = check_language(language)
    entry = SECTIONS.get(key) or _TEXT.get(key)
    s = entry[i] if entry else key
    return s.format(**fields) if fields else s


@dataclass
class Section:
    """One headed section of a report; shows itself as HTML in a notebook.

    Attributes
    ----------
    key : str
        The key of :data:`SECTIONS`.
    title : str
        The heading (translated).
    body : str
        Its HTML (escaped where it holds data text).

    Examples
    --------
    >>> Section("notes", "9. Data and method notes", "<p>ok</p>")._repr_html_()[:30]
    '<section class="report-section'
    """

    key: str
    title: str
    body: str

    def _repr_html_(self) -> str:
        return (f'<section class="report-section" id="{self.key}"><h2>{html.escape(self.title)}</h2>'
                f"{self.body}</section>")  # fmt: skip


def _e(x: object) -> str:
    return html.escape("" if x is None else str(x))


def _p(x: str) -> str:
    return f"<p>{x}</p>"


def _pval(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _num(x: float, digits: int = 2) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}f}"


def plain_summary(comparison: pd.DataFrame | None, coverage: pd.DataFrame | None, hazard_ratios: pd.DataFrame | None,
                  retention: dict | None, *, scope: str, language: str = "en", min_cell: int = 10,
                  model_scope: str = "bank") -> list[str]:  # fmt: skip
    """The report's short plain-language summary, generated from its results.

    Sentences, in order: how the churn rate moved against last month (and
    whether chance explains it), AUM lost; which coverage group churned most
    and least within 12 months (as the data shows it, whichever way round);
    the strongest associations of the causes model whose interval excludes 1;
    the share of warnings contacted in target.  Nothing is asserted that the
    results do not show; small groups are not described.

    Parameters
    ----------
    comparison : DataFrame or None
        :func:`kpis.kpi_comparison` rows of the report's scope, all customers.
    coverage : DataFrame or None
        The coverage table (``group, customers, churned_12m, churn_rate_12m``).
    hazard_ratios : DataFrame or None
        ``term, hr, lower, upper, p`` of the model shown.
    retention : dict or None
        The ``retention`` object of ``metrics.json``.
    scope : str
        ``"branch"`` or ``"bank"``.
    language : {"en", "zh"}
    min_cell : int
        Groups below it are not described.
    model_scope : str
        Which model the hazard ratios come from.

    Returns
    -------
    list of str
        Plain text (not HTML); escape before showing.

    Examples
    --------
    >>> cov = pd.DataFrame({"group": ["1", "2", "3-4"], "customers": [500, 400, 100],
    ...                     "churned_12m": [100, 40, 60], "churn_rate_12m": [0.2, 0.1, 0.6]})
    >>> plain_summary(None, cov, None, None, scope="branch")[0]
    'Within 12 months of the landmark, customers with 3–4 products churned most (60.0%) and those with 2 products least (10.0%).'
    """
    zh = language == "zh"
    out: list[str] = []
    who = ("本支行" if scope == "branch" else "全行") if zh else ("the branch" if scope == "branch" else "the bank")
    if comparison is not None and len(comparison):
        c = comparison.set_index(["kpi", "against"])

        def _small(col: str) -> bool:  # fewer than min_cell churners (or active customers): not described
            for kpi in ("churned_in_month", "active_at_start"):
                if (kpi, "previous_month") in c.index:
                    x = float(c.loc[(kpi, "previous_month"), col])
                    if math.isfinite(x) and 0 < x < min_cell:
                        return True
            return False

        if ("monthly_churn_rate", "previous_month") in c.index and not _small("value") and not _small("reference"):
            r = c.loc[("monthly_churn_rate", "previous_month")]
            now, ref, status = float(r["value"]), float(r["reference"]), str(r["status"])
            if math.isfinite(now) and math.isfinite(ref):
                if zh:
                    move = {"worse": "上升", "better": "下降"}.get(status, "与上月基本持平")
                    tail = "（超出随机波动范围）" if status in ("worse", "better") else "（差异在随机波动范围内）"
                    out.append(f"本月{who}月流失率为 {format_percent(now, language)}，上月为 "
                               f"{format_percent(ref, language)}，{move}{tail}。")  # fmt: skip
                else:
                    move = {"worse": "rose", "better": "fell"}.get(status, "was about the same as")
                    tail = ("more than chance explains" if status in ("worse", "better")
                            else "within what chance explains")  # fmt: skip
                    verb = f"{move} from" if status in ("worse", "better") else move
                    out.append(f"This month {who}'s churn rate was {format_percent(now, language)}; it {verb} "
                               f"{format_percent(ref, language)} last month ({tail}).")  # fmt: skip
        if ("aum_lost", "previous_month") in c.index and not _small("value"):
            r = c.loc[("aum_lost", "previous_month")]
            if math.isfinite(float(r["value"])):
                out.append(f"流失客户带走资产 {format_amount(float(r['value']), language)}。" if zh else
                           f"Churned customers took {format_amount(float(r['value']), language)} of AUM with them.")
    if coverage is not None and len(coverage):
        churned = coverage["churned_12m"] if "churned_12m" in coverage else coverage["customers"]
        cov = coverage[(coverage["customers"] >= min_cell) & ~churned.between(1, min_cell - 1)].dropna(subset=["churn_rate_12m"])
        if len(cov) >= 2:
            hi = cov.loc[cov["churn_rate_12m"].idxmax()]
            lo = cov.loc[cov["churn_rate_12m"].idxmin()]
            if hi["group"] != lo["group"]:
                g_hi, g_lo = coverage_group_label(hi["group"], language), coverage_group_label(lo["group"], language)
                if zh:
                    out.append(f"基准日后 12 个月内，持有{g_hi}的客户流失最多（{format_percent(hi['churn_rate_12m'], language)}），"
                               f"持有{g_lo}的客户最少（{format_percent(lo['churn_rate_12m'], language)}）。")  # fmt: skip
                else:
                    out.append(f"Within 12 months of the landmark, customers with {g_hi} churned most "
                               f"({format_percent(hi['churn_rate_12m'], language)}) and those with {g_lo} least "
                               f"({format_percent(lo['churn_rate_12m'], language)}).")  # fmt: skip
    if hazard_ratios is not None and len(hazard_ratios):
        hr = hazard_ratios[(hazard_ratios["lower"] > 1) | (hazard_ratios["upper"] < 1)].copy()
        if len(hr):
            hr["size"] = np.abs(np.log(hr["hr"].astype(float)))
            top = hr.sort_values("size", ascending=False).head(3)
            parts = [f"{term_label(r.term, language)} (HR {r.hr:.2f}, {r.lower:.2f}–{r.upper:.2f})"
                     for r in top.itertuples()]  # fmt: skip
            src = text("model_scope_" + model_scope, language)
            if zh:
                out.append(f"{src}模型中关联最强的因素：" + "；".join(parts) + "。这些是关联，不一定是因果。")
            else:
                out.append(f"The strongest associations with churn in the {src} model: " + "; ".join(parts)
                           + ". These are associations, not proof of cause.")  # fmt: skip
    if retention and retention.get("warnings") and retention.get("contacted_in_target") is not None:
        n, k = int(retention["warnings"]), int(retention["contacted_in_target"])
        share = format_percent(k / n, language) if n else "–"
        if n >= min_cell and not 0 < k < min_cell:  # a share of few warnings gives back the count contacted
                out.append(f"本月触发预警 {format_count(n, language)} 次，{share} 在响应时限内得到接触。" if zh else
                       f"{format_count(n, language)} early warnings were raised; {share} were contacted within the "
                       "response target.")  # fmt: skip
    return out


class _Report:
    """What branch and bank reports share: the bundle, parameters, language, formatting."""

    scope = "bank"

    def __init__(self, bundle: Bundle, *, branch: str | None, language: str | None = None,
                 params: Params | None = None, key: bytes | None = None,
                 generated_at: str | None = None) -> None:  # fmt: skip
        self.bundle = bundle
        self.ctx = bundle.context
        self.branch = branch
        self.params = params or bundle.params
        self.language = language or self.params.language
        check_language(self.language)
        self.key = key
        self.generated_at = generated_at or dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        self.month = self.ctx.month
        self.flat = bool(bundle.meta["flat"])
        self.source = bundle.branch_source(branch) if branch is not None else bundle.bank_source()
        self._metrics: dict | None = None
        self._coverage = None
        self._flat_regions = None
        self._who_left = None
        from crmresearch.viz.plots import use_chinese_font

        use_chinese_font()  # data text (branch names) may be Chinese in an English report too

    # ------------------------------------------------------------------ helpers
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

    def _cell(self, v: object, fmt, hidden: bool = False, small: bool = False) -> str:
        if hidden:
            return self.t("fewer", n=self.min_cell) if small else self.t("suppressed")
        if isinstance(v, str):
            return v
        try:
            return fmt(v)
        except (TypeError, ValueError):
            return str(v)

    def _table(self, df: pd.DataFrame, columns: dict[str, tuple[str, Any]], caption: str | None = None,
               mask: Suppression | None = None) -> str:  # fmt: skip
        """An escaped HTML table: ``columns`` maps a column to (header, formatter); ``mask`` says which cells are hidden."""
        head = "".join(f"<th>{_e(h)}</th>" for h, _ in columns.values())
        rows = []
        for i, r in df.iterrows():
            cells = "".join(
                f"<td>{_e(self._cell(r[c], f, mask is not None and mask.is_hidden(i, c), mask is not None and mask.is_small(i, c)))}</td>"
                for c, (_, f) in columns.items())  # fmt: skip
            rows.append(f"<tr>{cells}</tr>")
        cap = f"<caption>{_e(caption)}</caption>" if caption else ""
        return f'<table class="report-table">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'

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

    def _unavailable(self, key: str, reason: str) -> Section:
        return self._section(key, _p(_e(self.t("not_available", reason=reason))))

    def _flat_reason(self, analysis: str) -> str:
        from crmresearch.data.flat import flat_support

        s = flat_support(self.source).set_index("analysis")
        return str(s.loc[analysis, "reason"]) if analysis in s.index else analysis

    # ------------------------------------------------------------------ metrics and header
    def metrics(self) -> dict:
        """The report's ``metrics.json`` content (:func:`crmresearch.month.metrics.metrics` on its slice).

        Examples
        --------
        >>> BranchReport.open(path, "B001").metrics()["kpis"]  # doctest: +SKIP
        """
        if self._metrics is None:
            from crmresearch.month.metrics import metrics

            if self.branch is None:
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
        if self.flat:
            return self.t("snapshot_report")
        return self.t("branch_report" if self.branch else "bank_report")

    def _branch_name(self) -> str:
        b = self.ctx.branches
        if self.branch is None:
            return label("bank", self.language)
        row = b[b["branch_id"] == self.branch]
        name = row["branch_name"].iloc[0] if len(row) and pd.notna(row["branch_name"].iloc[0]) else ""
        return f"{name} ({self.branch})" if name else self.branch

    def header(self) -> Section:
        """Title block: branch, month, data as-of date, churn definition and parameters, version, time made.

        Examples
        --------
        >>> BranchReport.open(path, "B001").header()  # doctest: +SKIP
        """
        p = self.params
        month = format_month(self.month, self.language) if self.month else "–"
        as_of = self.ctx.data_as_of.isoformat() if self.ctx.data_as_of else "–"
        definition = self.t(p.churn.definition) if not self.flat else self.t("recorded")
        settings = (f"min cell {p.min_cell_size}; response target {p.retention.response_target_days} d; "
                    f"grace {p.retention.grace} d; outcome {p.retention.outcome_days} d; "
                    f"high-value tiers {', '.join(p.high_value_tiers)}; digest {self.metrics().get('params_digest')}")  # fmt: skip
        rows = [("branch_label", self._branch_name()), ("month_label", month), ("as_of_label", as_of),
                ("churn_def_label", definition), ("params_label", settings),
                ("version_label", __version__), ("generated_label", self.generated_at)]  # fmt: skip
        body = "".join(f"<tr><th>{_e(self.t(k))}</th><td>{_e(v)}</td></tr>" for k, v in rows)
        return Section("header", f"{self._title()} — {self._branch_name()} — {month}",
                       f'<table class="report-meta">{body}</table>')  # fmt: skip

    # ------------------------------------------------------------------ 1. headline
    def _comparison(self) -> pd.DataFrame | None:
        c = self.ctx.kpi_comparison
        if c is None:
            return None
        return c[(c["scope"] == self._scope_key)]

    def headline(self) -> Section:
        """§1: KPIs with traffic lights against last month, last year and the bank; summary; 13-month trend.

        Examples
        --------
        >>> BranchReport.open(path, "B001").headline()  # doctest: +SKIP
        """
        if self.flat:
            return self._flat_headline()
        comp = self._comparison()
        parts = [self._summary_html(comp[comp["customers"] == "all"], self.metrics().get("retention"))]
        for who in ("all", "high_value"):
            sub = comp[comp["customers"] == who]
            title = (label("all", self.language) if who == "all"
                     else self.t("high_value_title", tiers=", ".join(self._lbl(t) for t in self.params.high_value_tiers)))  # fmt: skip
            hidden = who == "high_value" and self._who_left_masks()[1]
            parts.append(f"<h3>{_e(title)}</h3>" + self._lights(sub, hidden_churn=hidden))
        trend = self.ctx.kpi_trend
        t = trend[(trend["customers"] == "all") & trend["scope"].isin([self._scope_key, "bank"])]
        if "churned_in_month" in t.columns:  # a month of fewer than min_cell churners is not plotted
            few = t["churned_in_month"].between(1, self.min_cell - 1)
            if "active_at_start" in t.columns:
                few |= t["active_at_start"].between(1, self.min_cell - 1) & (t["churned_in_month"] > 0)
            t = t.assign(monthly_churn_rate=t["monthly_churn_rate"].where(~few))
        wide = t.pivot_table(index="month", columns="scope", values="monthly_churn_rate", dropna=False).reset_index()
        from crmresearch.viz.plots import trend_plot

        if self.branch and "bank" in wide:
            ax = trend_plot(wide, self._scope_key, compare="bank", value_format="percent",
                            ylabel=label("monthly_churn_rate", self.language), series_label=self._branch_name(),
                            compare_label=label("bank", self.language), title=self.t("trend_title"),
                            language=self.language)  # fmt: skip
        else:
            ax = trend_plot(wide, "bank", value_format="percent", ylabel=label("monthly_churn_rate", self.language),
                            series_label=label("bank", self.language), title=self.t("trend_title"),
                            language=self.language)  # fmt: skip
        parts.append(self._fig(ax, self.t("trend_title")))
        return self._section("headline", *parts)

    def _coverage_mask(self, summ: pd.DataFrame) -> Suppression:
        """The suppression of the coverage groups' table: every figure of a coverage group follows it.

        The §3 table, its curves, the §5 cumulative-incidence curves and the
        summary's coverage sentence all show a group only where this mask does.
        """
        derived = tuple(c for c in ("churned_12m", "churn_rate_12m", "survival", "rmst_months") if c in summ)
        prior = self._suppress(summ, "customers", derived)
        return self._suppress(summ, "churned_12m", derived[1:], prior=prior) if "churned_12m" in summ else prior

    def _summary_html(self, comparison: pd.DataFrame | None, retention: dict | None) -> str:
        """The generated plain-language summary (:func:`plain_summary`) of this report's results."""
        m = self.metrics()
        coverage = pd.DataFrame(m["coverage"]) if m["coverage"] else None
        if coverage is not None:  # a group the coverage table hides is not described either
            coverage = coverage[~self._coverage_mask(coverage).rows.to_numpy()]
        summary = plain_summary(comparison, coverage,
                                pd.DataFrame(m["hazard_ratios"]) if m["hazard_ratios"] else None, retention,
                                scope="branch" if self.branch else "bank", language=self.language,
                                min_cell=self.min_cell, model_scope=m["hazard_ratios_scope"])  # fmt: skip
        return (f'<div class="summary"><h3>{_e(self.t("summary_title"))}</h3><ul>'
                + "".join(f"<li>{_e(x)}</li>" for x in summary) + "</ul></div>")  # fmt: skip

    def _kpi_text(self, kpi: str, v: float, churned: float | None, active: float | None, *,
                  hidden_churn: bool = False) -> str:  # fmt: skip
        """One KPI cell: a count below the minimum, and every figure computed from it, is not shown exactly.

        The churn rate of fewer than ``min_cell`` churners reads "below x%"
        (x = ``min_cell`` / active: a bound that gives back nothing, the active
        count being shown), or "suppressed" when the active count is hidden too;
        AUM lost and drained by fewer than ``min_cell`` churners read "suppressed".
        ``hidden_churn``: the churners' count is hidden as a complement (a
        breakdown's cells add up to it, :meth:`_who_left_masks`), with its rate and amounts.
        """
        if v is None or not math.isfinite(v):
            return "–"
        if hidden_churn and kpi != "active_at_start":
            return self.t("suppressed")
        m = self.min_cell
        small_churn = churned is not None and 0 < churned < m
        small_active = active is not None and 0 < active < m
        if kpi in ("active_at_start", "churned_in_month"):
            return self._count(v)
        if kpi == "monthly_churn_rate":
            if small_churn or (small_active and churned):
                if small_active or not active:
                    return self.t("suppressed")
                return self.t("below", x=format_percent(m / active, self.language))
            return format_percent(v, self.language, digits=2)
        if small_churn:  # the AUM of fewer than min_cell churners
            return self.t("suppressed")
        return format_amount(v, self.language)

    def _lights(self, sub: pd.DataFrame, hidden_churn: bool = False) -> str:
        from crmresearch.analyses.kpis import KPI_COLUMNS

        def counts(rows: pd.DataFrame, col: str) -> tuple[float | None, float | None]:
            out = []
            for kpi in ("churned_in_month", "active_at_start"):
                x = rows.loc[rows["kpi"] == kpi, col]
                out.append(float(x.iloc[0]) if len(x) and pd.notna(x.iloc[0]) else None)
            return out[0], out[1]

        cur = sub[sub["against"] == "previous_month"]
        churned, active = counts(cur, "value")
        head = [self.t("kpi"), self.t("this_month"), self.t("previous_month"), self.t("same_month_last_year")]
        againsts = ["previous_month", "same_month_last_year"] + (["bank"] if self.branch else [])
        if self.branch:
            head.append(self.t("vs_bank"))
        ref_counts = {a: counts(sub[sub["against"] == a], "reference") for a in againsts}
        rows = []
        for kpi in KPI_COLUMNS:
            k = sub[sub["kpi"] == kpi].set_index("against")
            if not len(k):
                continue
            v = float(k["value"].iloc[0])
            cells = [f"<th>{_e(label(kpi, self.language))}</th>", f"<td>{_e(self._kpi_text(kpi, v, churned, active, hidden_churn=hidden_churn))}</td>"]
            for against in againsts:
                if against not in k.index:
                    cells.append("<td>–</td>")
                    continue
                r = k.loc[against]
                ref = float(r["reference"])
                ref_txt = self._kpi_text(kpi, ref, *ref_counts[against])
                status = str(r["status"])
                light = "" if status == "n/a" else f' <span class="tl tl-{status}">{_e(self.t(status))}</span>'
                cells.append(f'<td class="tl-cell tl-{status.replace("/", "")}">{_e(ref_txt)}{light}</td>')
            rows.append("<tr>" + "".join(cells) + "</tr>")
        heads = "".join(f"<th>{_e(h)}</th>" for h in head)
        return f'<table class="report-table kpi-lights"><thead><tr>{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table>'

    def _flat_headline(self) -> Section:
        where = "WHERE branch_id = ?" if self.branch else ""
        n, churned = self.source.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE churned) FROM customers {where}",
            [self.branch] if self.branch else []).fetchone()  # fmt: skip
        rows = [(self.t("customers_total"), self._count(n)), (self.t("churned_total"), self._count(churned)),
                (self.t("churn_share"), self._pct(churned / n if n and churned >= self.min_cell else float("nan")))]
        body = "".join(f"<tr><th>{_e(a)}</th><td>{_e(b)}</td></tr>" for a, b in rows)
        reason = self._flat_reason("monthly KPIs")
        return self._section("headline", self._summary_html(None, None),
                             f'<table class="report-table">{body}</table>',
                             _p(_e(self.t("unavailable_flat", reason=reason))))  # fmt: skip

    # ------------------------------------------------------------------ 2. who left
    def who_left(self) -> Section:
        """§2: the month's churners by tier, segment, channel, churn type and reason, by count and AUM.

        Examples
        --------
        >>> BranchReport.open(path, "B001").who_left()  # doctest: +SKIP
        """
        if self.flat:
            return self._flat_who_left()

        parts = []
        reasons = self.ctx.breakdowns.iloc[:0]
        for by, (part, mask) in self._who_left_masks()[0].items():
            key = "churn_reason" if by == "reason" else by
            cols = {"group": (label(key, self.language), self._lbl),
                    "churned_in_month": (label("churned", self.language), lambda v: format_count(v, self.language)),
                    "share_of_churned": (f"{label('share', self.language)} ({label('count', self.language)})", self._pct),
                    "aum_lost": (label("aum_lost", self.language), self._amt),
                    "share_of_aum_lost": (f"{label('share', self.language)} ({label('aum_weighted', self.language)})", self._pct)}  # fmt: skip
            parts.append(self._table(part, cols, caption=self.t("by_count", by=label(key, self.language)), mask=mask))
            if by == "reason":  # the chart labels each bar with its count: only the bars the table shows
                reasons = part[~mask.rows.to_numpy()]
        if len(reasons):
            from crmresearch.viz.plots import bar_plot

            ax = bar_plot(reasons, "group", "churned_in_month", xlabel=label("churned", self.language),
                          title=self.t("by_count", by=label("churn_reason", self.language)), language=self.language)
            parts.append(self._fig(ax, self.t("by_count", by=label("churn_reason", self.language))))
        return self._section("who_left", *parts)

    def _flat_branches_and_regions(self) -> tuple[pd.DataFrame, Suppression, pd.DataFrame, Suppression]:
        """A flat extract's customers and churners per branch and per region, suppressed as one.

        The bank page shows both tables: each region's row is the sum of its
        branches' rows (and the regions add up to the headline), so a cell
        hidden in one must not come back from the other
        (:func:`crmresearch.core.suppression.suppress_nested`).
        """
        if self._flat_regions is None:
            df = self.source.sql("""SELECT CAST(branch_id AS VARCHAR) AS "group", count(*) AS customers,
                                           count(*) FILTER (WHERE churned) AS churned FROM customers
                                    GROUP BY 1 ORDER BY 1""")  # fmt: skip
            df["share"] = df["churned"] / df["customers"]
            br = self.ctx.branches.assign(branch_id=lambda d: d["branch_id"].astype(str))
            region = br.set_index("branch_id")["region"].fillna("–")
            df["region"] = df["group"].map(region).fillna("–")
            g = df.groupby("region", as_index=False).agg(branches=("group", "nunique"), customers=("customers", "sum"),
                                                         churned=("churned", "sum"))  # fmt: skip
            g["rate"] = g["churned"] / g["customers"]
            mb, mr = suppress_nested(df, g, "churned", by="region", min_cell=self.min_cell, derived=("share",),
                                     totals_derived=("rate",))  # fmt: skip
            mb, mr = suppress_nested(df, g, "customers", by="region", min_cell=self.min_cell, derived=("churned", "share"),
                                     totals_derived=("churned", "rate"), prior=(mb, mr))  # fmt: skip
            self._flat_regions = (df, mb, g, mr)
        return self._flat_regions

    def _who_left_masks(self) -> tuple[dict[str, tuple[pd.DataFrame, Suppression]], bool]:
        """§2's breakdowns with their masks, and whether the headline's high-value churners are hidden too.

        Each breakdown adds up to the month's churners (a headline KPI).  By
        tier, the high-value tiers add up to the high-value KPI, and the
        other tiers to the month's churners minus it: the high-value count
        is a cell of these sums (:func:`crmresearch.core.suppression.suppress_split`), so
        a small one is not given back by the other tiers, and one that the
        high-value tiers shown would pin down (two tiers of "fewer than 10"
        under 18) is hidden in the headline.
        """
        if self._who_left is None:
            from crmresearch.month.bundle import BREAKDOWN_BY

            b = self.ctx.breakdowns
            b = b[b["scope"] == self._scope_key]
            derived = ("share_of_churned", "aum_lost", "share_of_aum_lost")
            out, hv_hidden = {}, False
            for by in BREAKDOWN_BY:
                part = b[(b["by"] == by) & ((b["churned_in_month"] > 0) | (b["active_at_start"] > 0))]
                if not len(part):
                    continue
                part = part.reset_index(drop=True)
                hv = part["group"].isin(self.params.high_value_tiers).to_numpy()
                if by == "tier" and hv.any():
                    mask, hv_hidden = suppress_split(part, "churned_in_month", hv, min_cell=self.min_cell, derived=derived)
                else:
                    mask = suppress_counts(part, "churned_in_month", min_cell=self.min_cell, derived=derived)
                out[by] = (part, mask)
            self._who_left = (out, hv_hidden)
        return self._who_left

    def _flat_who_left(self) -> Section:
        cols = [c for c in ("segment", "channel") if self.source.has_column("customers", c)]
        if not self.branch:
            cols.append("branch_id")
        parts = []
        where = "WHERE branch_id = ?" if self.branch else ""
        for c in cols:
            if c == "branch_id":  # the bank's branches add up to its regions: suppressed with the regions table
                df, mask, _, _ = self._flat_branches_and_regions()
            else:
                df = self.source.con.execute(
                    f"""SELECT CAST({c} AS VARCHAR) AS "group", count(*) AS customers,
                               count(*) FILTER (WHERE churned) AS churned FROM customers {where}
                        GROUP BY 1 ORDER BY 1""", [self.branch] if self.branch else []).df()  # fmt: skip
                df["share"] = df["churned"] / df["customers"]
                mask = self._suppress(df, "customers", ("churned", "share"), prior=self._suppress(df, "churned", ("share",)))
            parts.append(self._table(df, {"group": (label(c if c != "branch_id" else "branch", self.language), self._lbl),
                                          "customers": (self.t("customers_total"), lambda v: format_count(v, self.language)),
                                          "churned": (self.t("churned_total"), lambda v: format_count(v, self.language)),
                                          "share": (self.t("churn_share"), self._pct)}, mask=mask))  # fmt: skip
        return self._section("who_left", *parts) if parts else self._unavailable("who_left", "no attributes")

    # ------------------------------------------------------------------ 3. product coverage
    def _coverage_result(self):
        if self._coverage is None:
            from crmresearch.analyses.product_coverage import product_coverage

            self._coverage = product_coverage(self.source, self.params, month=self.month, branch=self.branch)
        return self._coverage

    def product_coverage(self) -> Section:
        """§3: churn within 12 months by products held at the landmark, KM curves, log-rank, sticky products.

        Examples
        --------
        >>> BranchReport.open(path, "B001").product_coverage()  # doctest: +SKIP
        """
        try:
            res = self._coverage_result()
        except InputError as exc:
            return self._unavailable("product_coverage", str(exc))
        summ = res.summary.copy()
        summ["rmst_months"] = summ["rmst_days"] / 30.4375
        mask = self._coverage_mask(summ)
        summ["group_label"] = summ["group"].map(lambda g: coverage_group_label(g, self.language))
        landmark = res.landmark.isoformat() if res.landmark else ""
        cols = {"group_label": (label("products_at_landmark", self.language), str),
                "customers": (label("customers", self.language), lambda v: format_count(v, self.language)),
                "churned_12m": (label("churned", self.language), lambda v: format_count(v, self.language)),
                "churn_rate_12m": (label("churn_rate_12m", self.language), self._pct)}  # fmt: skip
        if not self.flat:
            cols["survival"] = (self.t("survival_12m"), self._pct)
            cols["rmst_months"] = (self.t("rmst"), lambda v: _num(v, 1))
        parts = [self._table(summ, cols, caption=self.t("coverage_table", landmark=landmark) if not self.flat
                             else self.t("coverage_table_flat"), mask=mask)]  # fmt: skip
        lr = res.logrank
        if lr and math.isfinite(lr.get("statistic", float("nan"))) and not mask.rows.any():  # a test on hidden groups
            parts.append(_p(_e(self.t("logrank", stat=lr["statistic"], df=lr["df"], p=_pval(lr["p"])))))
        try:
            from crmresearch.viz.plots import km_plot

            # each step of a curve is a churner: no curve of a group whose count is hidden
            shown = set(summ.loc[~mask.rows, "group"].astype(str))
            data = res.data[res.data["group"].astype(str).isin(shown)]
            if len(data):
                ax = km_plot(data, horizon_days=res.horizon_days, min_cell=self.min_cell, language=self.language,
                             xlabel="tenure_months" if res.landmark is None else "months_since_landmark")  # fmt: skip
                parts.append(self._fig(ax, label("retention", self.language)))
        except (ValueError, InputError):
            pass
        sticky = self.ctx.sticky
        if sticky is not None and not self.flat:
            t = sticky.table
            cols = {"term": (label("term", self.language), lambda v: term_label(v, self.language)),
                    "hr": (label("hazard_ratio", self.language), lambda v: _num(v)),
                    "lower": ("95% ↓", lambda v: _num(v)), "upper": ("95% ↑", lambda v: _num(v)),
                    "p": ("p", lambda v: _pval(v).lstrip("= "))}  # fmt: skip
            parts.append(self._table(t, cols, caption=self.t("sticky_title")))
        return self._section("product_coverage", *parts)

    # ------------------------------------------------------------------ 4. RM turnover
    def _model_hr(self, term: str) -> dict | None:
        for r in self.metrics()["hazard_ratios"]:
            if r["term"] == term:
                return r
        return None

    def rm_turnover(self) -> Section:
        """§4: RM exits, orphaned customers, matched 90/180-day churn comparison, HR, rates by days orphaned.

        Examples
        --------
        >>> BranchReport.open(path, "B001").rm_turnover()  # doctest: +SKIP
        """
        if self.flat:
            return self._unavailable("rm_turnover", self._flat_reason("RM turnover"))
        from crmresearch.analyses.rm_turnover import (
            orphaned_churn_rates,
            orphaned_customers,
            rm_exits,
            turnover_churn_comparison,
        )
        from crmresearch.timelines.rm_exposure import has_rm_tables

        if not has_rm_tables(self.source):
            return self._unavailable("rm_turnover", "relationship_managers and rm_assignments were not supplied")
        parts = []
        ex = rm_exits(self.source, month=self.month, branch=self.branch)
        parts.append(self._table(ex, {"exit_type": (label("exit_type", self.language), self._lbl),
                                      "in_month": (self.t("in_month"), lambda v: format_count(v, self.language)),
                                      "last_12_months": (self.t("last_12_months"), lambda v: format_count(v, self.language))},
                                 caption=self.t("exits_title")))  # fmt: skip
        oc = orphaned_customers(self.source, self.params, month=self.month, branch=self.branch)
        oc = oc[oc["exit_type"] == "all"] if "all" in set(oc["exit_type"]) else oc
        mask = self._suppress(oc, "customers_orphaned", ("with_new_rm", "churned_while_orphaned", "still_orphaned",
                                                         "median_gap_days"), total_shown=False)  # fmt: skip
        mask = self._suppress(oc, "churned_while_orphaned", (), total_shown=False, prior=mask)
        parts.append(self._table(oc, {"period": (self.t("month_label"), lambda v: self.t(v) if v in _TEXT else str(v)),
                                      "rms": (self.t("exits_title"), lambda v: format_count(v, self.language)),
                                      "customers_orphaned": (label("orphaned", self.language), lambda v: format_count(v, self.language)),
                                      "churned_while_orphaned": (label("churned", self.language), lambda v: format_count(v, self.language)),
                                      "median_gap_days": ("median days without RM" if self.language == "en" else "无客户经理天数中位数",
                                                          lambda v: _num(v, 0))},
                                 caption=self.t("orphaned_title"), mask=mask))  # fmt: skip
        try:
            tc = turnover_churn_comparison(self.source, self.params, month=self.month, branch=self.branch)
            s = tc.summary
            s = s[s["exit_type"] == "all"] if "all" in set(s["exit_type"]) else s
            cols = {"horizon_days": ("days" if self.language == "en" else "天数", lambda v: str(int(v))),
                    "risk_ratio": ("risk ratio" if self.language == "en" else "风险比值", lambda v: _num(v)),
                    "rr_lower": ("95% ↓", lambda v: _num(v)), "rr_upper": ("95% ↑", lambda v: _num(v))}  # fmt: skip
            for c in ("exposed", "exposed_churn", "control_churn"):
                if c in s.columns:
                    cols[c] = (c.replace("_", " "), (lambda v: format_count(v, self.language)) if c == "exposed" else self._pct)
            rr = ("risk_ratio", "rr_lower", "rr_upper")
            mask = self._suppress(s, "exposed", ("exposed_churn", *rr), total_shown=False)
            for n_col, rate_col in (("exposed_churned", "exposed_churn"), ("controls_churned", "controls_churn")):
                if n_col in s.columns:
                    mask = self._suppress(s, n_col, (rate_col, *rr), total_shown=False, prior=mask)
            parts.append(self._table(s, cols, caption=self.t("turnover_title"), mask=mask))
            for cv in tc.caveats:
                parts.append(_p(f"<i>{_e(cv)}</i>"))
        except (InputError, ValueError) as exc:
            parts.append(_p(_e(self.t("not_available", reason=str(exc)))))
        hr = self._model_hr("rm_turnover_exposed")
        if hr:
            parts.append(_p(_e(self.t("turnover_hr", scope=self.t("model_scope_" + self.metrics()["hazard_ratios_scope"]),
                                     hr=f"{hr['hr']:.2f} ({hr['lower']:.2f}–{hr['upper']:.2f})"))))  # fmt: skip
        rates = orphaned_churn_rates(self.source, self.params, as_of=self.ctx.as_of, branch=self.branch)
        cols = {"band": (label("orphaned_band", self.language), lambda v: str(v)),
                "customer_months": ("customer-months" if self.language == "en" else "客户月数", lambda v: format_count(v, self.language))}
        for c in rates.columns:
            if c not in ("band", "customer_months"):
                cols[c] = (c.replace("_", " "), (lambda v: format_count(v, self.language)) if c in ("churned", "events")
                           else (lambda v: format_percent(v, self.language, 2)))  # fmt: skip
        events_col = "churned" if "churned" in rates.columns else ("events" if "events" in rates.columns else None)
        mask = None
        if events_col:
            # the bands' churners add up to the lifecycle stages' (§6, same page): complements
            mask = self._suppress(rates, events_col, tuple(c for c in rates.columns if c not in ("band", "customer_months", events_col)))
        parts.append(self._table(rates, cols, caption=self.t("orphan_rates_title"), mask=mask))
        return self._section("rm_turnover", *parts)

    # ------------------------------------------------------------------ 5. causes
    def causes(self) -> Section:
        """§5: forest plot of the causes model, proportional-hazards check, transfer vs natural churn.

        Examples
        --------
        >>> BranchReport.open(path, "B001").causes()  # doctest: +SKIP
        """
        from crmresearch.viz.plots import forest_plot

        m = self.metrics()
        hrs = pd.DataFrame(m["hazard_ratios"])
        parts = []
        scope = self.t("model_scope_" + m["hazard_ratios_scope"])
        if not len(hrs):
            return self._unavailable("causes", "; ".join(m["caveats"]) or "no model")
        ax = forest_plot(hrs, language=self.language, title=self.t("forest_title", scope=scope))
        parts.append(self._fig(ax, self.t("forest_title", scope=scope)))
        model = self.ctx.model
        if model is not None and not self.flat and m["hazard_ratios_scope"] == "bank":
            ph = model.ph_check()
            changes = ph[ph["verdict"].astype(str).str.startswith("changes")]
            if len(changes):
                cols = {"term": (label("term", self.language), lambda v: term_label(v, self.language)),
                        "verdict": ("", str)}
                parts.append(self._table(changes, cols, caption=self.t("ph_title")))
            else:
                parts.append(_p(_e(self.t("ph_ok"))))
        if not self.flat:
            try:
                from crmresearch.analyses.product_coverage import cumulative_incidence
                from crmresearch.viz.plots import cumulative_incidence_plot

                res = self._coverage_result()
                types = self.source.df("customers").set_index("customer_id")["churn_type"]
                cif = cumulative_incidence(res, types)
                summ = res.summary
                shown = summ.loc[~self._coverage_mask(summ).rows.to_numpy(), "group"]
                cif = cif[cif["group"].isin(shown)]  # each step is a churner: no curve of a group §3 hides
                # a cause's incidence times the group's customers (shown in §3) is about its churners: a cause of
                # fewer than min_cell churners is not drawn, nor (its complement) the next smallest of its group
                keep = [g[~self._suppress(g, "events").rows.to_numpy()] for _, g in cif.groupby("group", sort=False, observed=True)]
                cif = pd.concat(keep) if keep else cif
                if len(cif):
                    ax = cumulative_incidence_plot(cif, language=self.language, title=self.t("cif_title"))
                    parts.append(self._fig(ax, self.t("cif_title")))
            except (InputError, ValueError) as exc:
                parts.append(_p(_e(self.t("not_available", reason=str(exc)))))
        return self._section("causes", *parts)

    # ------------------------------------------------------------------ 6. lifecycle
    def lifecycle(self) -> Section:
        """§6: churn hazard by tenure stage (new 0–3 months, growth 3–12, mature 12+).

        Examples
        --------
        >>> BranchReport.open(path, "B001").lifecycle()  # doctest: +SKIP
        """
        if self.flat:
            return self._unavailable("lifecycle", self._flat_reason("lifecycle"))
        from crmresearch.analyses.lifecycle import lifecycle

        res = lifecycle(self.source, self.params, as_of=self.ctx.as_of, branch=self.branch)
        st = res.stages.copy()
        ev = "events" if "events" in st.columns else "churned"
        # the stages' churners add up to the orphaned bands' (§4, same page): complements
        mask = self._suppress(st, ev, tuple(c for c in st.columns if c not in ("stage", "customer_months", ev)))
        cols = {"stage": (self.t("kpi"), self._lbl),
                "customer_months": ("customer-months" if self.language == "en" else "客户月数", lambda v: format_count(v, self.language)),
                ev: (label("churned", self.language), lambda v: format_count(v, self.language))}  # fmt: skip
        for c in st.columns:
            if c not in cols:
                cols[c] = (label("hazard_per_month", self.language) if c in ("rate", "hazard_per_month") else c,
                           lambda v: format_percent(v, self.language, 2))  # fmt: skip
        parts = [self._table(st, cols, caption=self.t("stages_title"), mask=mask)]
        loss = res.new_customer_loss()
        lost = loss.get("loss", float("nan")) * loss.get("customers", 0)  # about how many were lost: not shown below min_cell
        if loss.get("customers", 0) >= self.min_cell and math.isfinite(lost) and not 0 < round(lost) < self.min_cell:
            parts.append(_p(_e(self.t("new_loss", loss=self._pct(loss["loss"]), lo=self._pct(loss["lower"]),
                                      hi=self._pct(loss["upper"]), n=format_count(loss["customers"], self.language)))))  # fmt: skip
        try:
            if not mask.rows.any():  # the smoothed hazard of a few churners shows each of them
                ax = res.plot(language=self.language)
                parts.append(self._fig(ax, self.t("stages_title")))
        except (ValueError, InputError):
            pass
        return self._section("lifecycle", *parts)

    # ------------------------------------------------------------------ 7. retention
    def retention(self) -> Section:
        """§7: warnings and contact speed, outcomes with and without contact and the adjusted OR, per RM, win-backs.

        Examples
        --------
        >>> BranchReport.open(path, "B001").retention()  # doctest: +SKIP
        """
        if self.flat:
            return self._unavailable("retention", self._flat_reason("retention outcomes"))
        from crmresearch.analyses.early_warnings import early_warnings, warning_summary
        from crmresearch.analyses.retention_loop import contact_outcomes, rm_table, winbacks

        p = self.params
        parts = []
        ws = warning_summary(early_warnings(self.source, p, month=self.month, branch=self.branch))
        ws = ws.assign(share=np.where(ws["warnings"] > 0, ws["contacted_in_target"] / ws["warnings"].where(ws["warnings"] > 0), np.nan))
        mask = self._suppress(ws, "warnings", ("contacted_in_target", "share"))
        mask = self._suppress(ws, "contacted_in_target", ("share",), prior=mask)
        parts.append(self._table(ws, {"rule": ("rule" if self.language == "en" else "预警规则", lambda v: self._lbl(v)),
                                      "warnings": ("warnings" if self.language == "en" else "预警数", lambda v: format_count(v, self.language)),
                                      "contacted_in_target": ("contacted in target" if self.language == "en" else "时限内接触",
                                                              lambda v: format_count(v, self.language)),
                                      "share": (label("share", self.language), self._pct)},
                                 caption=self.t("warnings_title", days=p.retention.response_target_days), mask=mask))  # fmt: skip
        if self.source.has("retention_actions"):
            try:
                co = contact_outcomes(self.source, p, month=self.month, branch=self.branch)
                counts = co.counts
                mask = self._suppress(counts, "customers", ("retained", "churned", "retention_rate"))
                for c in ("retained", "churned"):  # retained + churned = customers: hiding one hides the other
                    if c in counts.columns:
                        mask = self._suppress(counts, c, ("retained", "churned", "retention_rate"), total_shown=False,
                                              prior=mask)  # fmt: skip
                parts.append(self._table(counts, {"group": ("", lambda v: self._lbl(v)),
                                                  "customers": (label("customers", self.language), lambda v: format_count(v, self.language)),
                                                  "retained": ("retained" if self.language == "en" else "留存", lambda v: format_count(v, self.language)),
                                                  "churned": (label("churned", self.language), lambda v: format_count(v, self.language)),
                                                  "retention_rate": ("retention rate" if self.language == "en" else "留存率", self._pct)},
                                         caption=self.t("outcomes_title"), mask=mask))  # fmt: skip
                o = co.odds_ratio
                if o and o["n"] >= self.min_cell:
                    parts.append(_p(_e(self.t("odds_ratio", or_=_num(o["or"]), lo=_num(o["lower"]), hi=_num(o["upper"]),
                                              p=_pval(o["p"]), n=format_count(o["n"], self.language)))))  # fmt: skip
                for cv in co.caveats:
                    parts.append(_p(f"<i>{_e(cv)}</i>"))
            except InputError as exc:
                parts.append(_p(_e(self.t("not_available", reason=str(exc)))))
            if self.branch:
                rt = rm_table(self.source, p, month=self.month, branch=self.branch)
                # the branch's active customers, churners and warnings are shown elsewhere on the page: totals
                mask = self._suppress(rt, "book", ("churned", "aum_lost", "warnings", "contacted_in_target", "share_in_target"))
                mask = self._suppress(rt, "churned", ("aum_lost",), prior=mask)
                mask = self._suppress(rt, "warnings", ("contacted_in_target", "share_in_target"), prior=mask)
                mask = self._suppress(rt, "contacted_in_target", ("share_in_target",), total_shown=False, prior=mask)
                parts.append(self._table(rt, {"rm_id": ("RM", str),
                                              "book": ("book" if self.language == "en" else "管户数", lambda v: format_count(v, self.language)),
                                              "churned": (label("churned", self.language), lambda v: format_count(v, self.language)),
                                              "aum_lost": (label("aum_lost", self.language), self._amt),
                                              "warnings": ("warnings" if self.language == "en" else "预警数", lambda v: format_count(v, self.language)),
                                              "share_in_target": ("contacted in target" if self.language == "en" else "时限内接触比例", self._pct)},
                                         caption=self.t("rm_title"), mask=mask))  # fmt: skip
            wb = winbacks(self.source, month=self.month, branch=self.branch)
            rates = ("success_rate", "lower", "upper")
            mask = self._suppress(wb, "attempts", rates, total_shown=False)
            for c in ("won_back", "lost"):  # the success rate's numerator and denominator
                if c in wb.columns:
                    mask = self._suppress(wb, c, rates, total_shown=False, prior=mask)
            cols = {"period": (self.t("month_label"), lambda v: self.t(v) if v in _TEXT else str(v)),
                    "attempts": ("attempts" if self.language == "en" else "尝试次数", lambda v: format_count(v, self.language))}
            for c in ("success_rate", "lower", "upper"):
                if c in wb.columns:
                    cols[c] = (c.replace("_", " "), self._pct)
            parts.append(self._table(wb, cols, caption=self.t("winback_title"), mask=mask))
        return self._section("retention", *parts)

    # ------------------------------------------------------------------ 9. notes
    def notes(self) -> Section:
        """§9: rows used, model diagnostics, parameters, caveats and the bilingual glossary.

        Examples
        --------
        >>> BranchReport.open(path, "B001").notes()  # doctest: +SKIP
        """
        parts = []
        rows = pd.DataFrame({"table": list(self.source.tables), "rows": list(self.source.tables.values())})
        # the slice's row counts are counts of customers and their records: below min_cell they are hidden too
        parts.append(self._table(rows, {"table": (self.t("table"), str), "rows": (self.t("rows"), lambda v: format_count(v, self.language))},
                                 caption=self.t("rows_title"), mask=self._suppress(rows, "rows", total_shown=False)))  # fmt: skip
        # what the bank's source check found (counts and rules only: its examples name customers)
        findings = [f"{w.table}{'.' + w.column if w.column else ''} [{w.rule}] {w.n_rows:,} rows: {w.message}"
                    for w in getattr(self.ctx.validation, "warnings", [])]  # fmt: skip
        if findings:
            parts.append(f"<h3>{_e(self.t('findings_title'))}</h3><ul>" + "".join(f"<li>{_e(f)}</li>" for f in findings) + "</ul>")
        model = self.ctx.model
        if model is not None:
            k = len(model.params_)
            diag = pd.DataFrame({"k": [self.t("concordance"), self.t("events"), self.t("events_per_term")],
                                 "v": [_num(model.concordance(), 3), format_count(model.n_events_, self.language),
                                       _num(model.n_events_ / k if k else float("nan"), 0)]})  # fmt: skip
            parts.append(self._table(diag, {"k": ("", str), "v": ("", str)}, caption=self.t("diagnostics_title")))
        caveats = list(self.metrics().get("caveats", [])) + list(self.ctx.caveats)
        if self.ctx.backtest:
            bt = self.ctx.backtest
            parts.append(_p(_e(self.t("backtest", days=bt.get("horizon_days", 90), auc=_num(bt.get("auc"), 3),
                                      c=_num(bt.get("concordance"), 3), n=format_count(bt.get("customers", float("nan")), self.language)))))  # fmt: skip
        if caveats:
            parts.append(f"<h3>{_e(self.t('caveats_title'))}</h3><ul>" + "".join(f"<li>{_e(c)}</li>" for c in caveats) + "</ul>")
        g = pd.DataFrame(GLOSSARY, columns=["en", "zh", "definition"])
        parts.append(self._table(g, {"en": ("English", str), "zh": ("中文", str), "definition": ("definition / 定义", str)},
                                 caption=self.t("glossary_title")))  # fmt: skip
        return self._section("notes", *parts)


class BranchReport(_Report):
    """One branch's monthly report (sections 1–9 of ``reports.md``) from a month bundle.

    Examples
    --------
    >>> r = BranchReport.open("~/.cache/crmresearch/2026-10-ab12", "B001", language="zh")  # doctest: +SKIP
    >>> r.header(); r.headline(); r.watch_list()  # doctest: +SKIP
    """

    scope = "branch"

    @classmethod
    def open(cls, bundle: str | Path | Bundle, branch: str, *, language: str | None = None,
             params_json: str | None = None, key_file: str | None = None,
             generated_at: str | None = None) -> BranchReport:  # fmt: skip
        """Open the report of ``branch`` on a month bundle.

        Parameters
        ----------
        bundle : str, Path or Bundle
            The month bundle (:func:`crmresearch.month.bundle.build_bundle`).
        branch : str
            The branch.
        language : {"en", "zh"}, optional
            Default: the parameters' language.
        params_json : str, optional
            The branch's parameters as JSON (default: the bundle's).
        key_file : str, optional
            The pseudonym key file (default: ``$CRMRESEARCH_PSEUDONYM_KEY_FILE``, else the key in
            ``$CRMRESEARCH_PSEUDONYM_KEY``; without either, the watch list is withheld).
        generated_at : str, optional
            When the report was made (default: now).

        Returns
        -------
        BranchReport

        Examples
        --------
        >>> BranchReport.open(path, "B001")  # doctest: +SKIP
        """
        if branch is None:
            raise InputError("a branch report needs a branch")
        b, params, key = cls._resolve(bundle, params_json, key_file)
        return cls(b, branch=str(branch), language=language, params=params, key=key, generated_at=generated_at)

    def watch_list(self) -> Section:
        """§8: the customers most at risk, under pseudonyms, with the warnings fired and a suggested action.

        Examples
        --------
        >>> BranchReport.open(path, "B001").watch_list()  # doctest: +SKIP
        """
        if self.flat:
            return self._unavailable("watch_list", self._flat_reason("watch list"))
        if self.key is None:
            return self._section("watch_list", _p(_e(self.t("watch_no_key"))))
        if self.ctx.model is None:
            return self._unavailable("watch_list", "; ".join(self.ctx.caveats))
        from crmresearch.analyses.watchlist import watch_list

        wl = watch_list(self.source, self.params, month=self.month, branch=self.branch, key=self.key,
                        model=self.ctx.model, validate=False)  # fmt: skip
        t = wl.table.drop(columns=["customer_id"])
        cols = {"rank": ("#", str), "pseudonym": ("pseudonym" if self.language == "en" else "化名", str),
                "tier": (label("tier", self.language), self._lbl),
                "aum": ("AUM" if self.language == "en" else "资产", self._amt),
                "n_products": ("products held" if self.language == "en" else "持有产品数", lambda v: _num(v, 0)),
                "rm_id": ("RM", lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)),
                "warnings": ("warnings" if self.language == "en" else "预警",
                             lambda v: ", ".join(self._lbl(x.strip()) for x in str(v).split(",") if x.strip())),
                "suggested_action": ("suggested action" if self.language == "en" else "建议行动", self._lbl),
                "churn_risk_90d": ("90-day churn risk" if self.language == "en" else "90 天流失风险", self._pct)}  # fmt: skip
        parts = [self._table(t, cols, caption=self.t("watch_title"))]
        for cv in wl.caveats:
            parts.append(_p(f"<i>{_e(cv)}</i>"))
        return self._section("watch_list", *parts)


class BankReport(_Report):
    """The bank's monthly summary: the headline and trend, every section on the whole bank,
    the regional roll-up and the risk-adjusted comparison of branches.

    Examples
    --------
    >>> r = BankReport.open("~/.cache/crmresearch/2026-10-ab12")  # doctest: +SKIP
    >>> r.regions(); r.branch_comparison()  # doctest: +SKIP
    """

    @classmethod
    def open(cls, bundle: str | Path | Bundle, *, language: str | None = None, params_json: str | None = None,
             key_file: str | None = None, generated_at: str | None = None) -> BankReport:  # fmt: skip
        """Open the bank summary on a month bundle (parameters as for :meth:`BranchReport.open`).

        Examples
        --------
        >>> BankReport.open(path, language="en")  # doctest: +SKIP
        """
        b, params, key = cls._resolve(bundle, params_json, key_file)
        return cls(b, branch=None, language=language, params=params, key=key, generated_at=generated_at)

    def regions(self) -> Section:
        """The regional roll-up: customers, active at start, churned and churn rate per region.

        Examples
        --------
        >>> BankReport.open(path).regions()  # doctest: +SKIP
        """
        br = self.ctx.branches.copy()
        br["region"] = br["region"].fillna("–")
        mask = None
        if self.flat:
            _, _, g, mask = self._flat_branches_and_regions()
            rate_head = self.t("churn_share")
        else:
            k = self.ctx.kpi_comparison
            k = k[(k["customers"] == "all") & (k["against"] == "previous_month")]
            wide = k.pivot_table(index="scope", columns="kpi", values="value").reset_index().rename(columns={"scope": "branch_id"})
            g = br[["branch_id", "region"]].merge(wide, on="branch_id").groupby("region", as_index=False).agg(
                branches=("branch_id", "nunique"), customers=("active_at_start", "sum"),
                churned=("churned_in_month", "sum"), aum_lost=("aum_lost", "sum"))  # fmt: skip
            g["rate"] = g["churned"] / g["customers"].where(g["customers"] > 0)
            rate_head = label("monthly_churn_rate", self.language)
        # the regions add up to the bank's figures (shown in the headline): complements
        amounts = tuple(c for c in ("aum_lost",) if c in g.columns)
        if mask is None:
            mask = self._suppress(g, "customers", ("churned", "rate", *amounts))
            mask = self._suppress(g, "churned", ("rate", *amounts), prior=mask)
        cols = {"region": (self.t("region"), str), "branches": (self.t("branches"), lambda v: format_count(v, self.language)),
                "customers": (label("active_at_start" if not self.flat else "customers", self.language), lambda v: format_count(v, self.language)),
                "churned": (label("churned", self.language), lambda v: format_count(v, self.language)),
                "rate": (rate_head, lambda v: format_percent(v, self.language, 2))}  # fmt: skip
        if "aum_lost" in g.columns:
            cols["aum_lost"] = (label("aum_lost", self.language), self._amt)
        return self._section("regions", self._table(g, cols, mask=mask))

    def branch_comparison(self) -> Section:
        """Observed versus expected churn per branch (bank-wide model): funnel plot and ranked table.

        Examples
        --------
        >>> BankReport.open(path).branch_comparison()  # doctest: +SKIP
        """
        if self.flat:
            return self._unavailable("branch_comparison", self._flat_reason("lifecycle"))
        oe = self.ctx.branch_risk
        if oe is None or not len(oe):
            return self._unavailable("branch_comparison", "; ".join(self.ctx.caveats) or "no model")
        from crmresearch.viz.plots import funnel_plot

        names = self.ctx.branches.set_index("branch_id")["branch_name"]
        oe = oe.assign(name=oe["branch_id"].map(lambda b: f"{names.get(b) or ''} ({b})".strip())).reset_index(drop=True)
        # a hidden observed count hides its expected count and ratio (ratio x expected gives it back), in the
        # table and in the funnel plot; the sum of the observed counts is about the sum of the expected: complements
        mask = self._suppress(oe, "observed", ("expected", "ratio", "lower", "upper", "interval"))
        ax = funnel_plot(oe[~mask.rows], language=self.language, title=self.t("branch_comparison"))
        parts = [self._fig(ax, self.t("branch_comparison")), _p(_e(self.t("funnel_note")))]
        ranked = oe.sort_values(["rank", "branch_id"], na_position="last")
        mask = Suppression(mask.hidden.loc[ranked.index], mask.small.loc[ranked.index])
        ranked = ranked.assign(interval=[f"{r:.2f} ({lo:.2f}–{hi:.2f})" for r, lo, hi in
                                         zip(ranked["ratio"], ranked["lower"], ranked["upper"], strict=True)])  # fmt: skip
        parts.append(self._table(ranked, {"rank": (self.t("rank"), lambda v: _num(v, 0)), "name": (label("branch", self.language), str),
                                          "observed": (self.t("observed"), lambda v: format_count(v, self.language)),
                                          "expected": (self.t("expected"), lambda v: _num(v, 1)),
                                          "interval": (self.t("ratio"), str)}, mask=mask))  # fmt: skip
        return self._section("branch_comparison", *parts)
