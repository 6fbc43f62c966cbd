"""Labels for what management reads, in English or Chinese.

One dictionary, :data:`LABELS`, maps a key — a data code (tiers, segments,
channels, churn types and reasons, products, RM exit types), a model term, a
KPI name or an axis title — to its English and Chinese text.  Figures
(:mod:`crmresearch.viz.plots`) and reports use :func:`label`; an unknown key is
returned as it is, so a new code shows up verbatim instead of vanishing.

Numbers and dates are formatted for the language too: :func:`format_percent`,
:func:`format_count`, :func:`format_amount` (amounts in 万元 in Chinese) and
:func:`format_month`.

This module has no plotting dependency: the Chinese *font* is set up by
:func:`crmresearch.viz.plots.use_chinese_font`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from crmresearch.viz.caveats import CAVEATS

__all__ = [
    "CAVEATS",
    "COVERAGE_GROUPS",
    "LABELS",
    "LANGUAGES",
    "check_language",
    "coverage_group_label",
    "format_amount",
    "format_count",
    "format_month",
    "format_percent",
    "label",
    "labels",
    "table_label",
    "term_label",
    "translate",
]

LANGUAGES = ("en", "zh")
COVERAGE_GROUPS = ("0", "1", "2", "3-4", "5+")

# key -> (English, Chinese).  Axis titles are sentence case without a capital
# (they read as part of a figure, and existing figures are checked on them).
LABELS: dict[str, tuple[str, str]] = {
    # ---- tiers (params.tiers)
    "mass": ("mass", "大众客户"),
    "potential": ("potential", "潜力客户"),
    "general": ("general", "普通客户"),
    "key": ("key", "重点客户"),
    "private": ("private", "私人银行客户"),
    "high_value": ("high-value customers", "高价值客户"),
    "all": ("all customers", "全部客户"),
    # ---- segments
    "salaried": ("salaried", "工薪客户"),
    "business_owner": ("business owner", "企业主"),
    "executive": ("executive", "企业高管"),
    "affluent_retiree": ("affluent retiree", "富裕退休客户"),
    "homemaker": ("homemaker", "家庭主妇（夫）"),
    # ---- channels
    "walk_in": ("walk-in", "网点到访"),
    "existing": ("existing relationship", "存量关系转介"),
    "outreach": ("outreach", "外拓营销"),
    # ---- churn types and reasons
    "transfer": ("transfer", "转移流失"),
    "natural": ("natural", "自然流失"),
    "unknown": ("unknown", "未知"),
    "rate": ("interest rate", "利率"),
    "service": ("service", "服务"),
    "fintech": ("fintech platforms", "互联网金融平台"),
    "competitor_offer": ("competitor offer", "他行优惠"),
    "rm_left": ("RM left", "客户经理离职/调岗"),
    "relocation": ("relocation", "迁居"),
    "death": ("death", "身故"),
    "emigration": ("emigration", "移民"),
    "life_event": ("life event", "生活变故"),
    "not_recorded": ("not recorded", "未记录"),
    # ---- products (contract.PRODUCTS)
    "current_account": ("current account", "活期账户"),
    "time_deposit": ("time deposit", "定期存款"),
    "wealth_management": ("wealth management", "理财产品"),
    "mutual_fund": ("mutual fund", "基金"),
    "fund_sip": ("fund SIP", "基金定投"),
    "insurance": ("insurance", "保险"),
    "credit_card": ("credit card", "信用卡"),
    "mortgage": ("mortgage", "住房贷款"),
    "consumer_loan": ("consumer loan", "消费贷款"),
    "payroll": ("payroll", "代发工资"),
    "mobile_banking": ("mobile banking", "手机银行"),
    "online_banking": ("online banking", "网上银行"),
    "third_party_custody": ("third-party custody", "第三方存管"),
    "precious_metals": ("precious metals", "贵金属"),
    "trust": ("trust", "信托"),
    # ---- RM exit types
    "resigned": ("resigned", "离职"),
    "transferred": ("transferred", "调岗"),
    "retired": ("retired", "退休"),
    "dismissed": ("dismissed", "解聘"),
    # ---- lifecycle stages
    "new": ("new (0–3 months)", "新客期（0–3 个月）"),
    "growth": ("growth (3–12 months)", "成长期（3–12 个月）"),
    "mature": ("mature (12+ months)", "成熟期（12 个月以上）"),
    # ---- model terms (models.CAUSES_COVARIATES)
    "n_products": ("products held (each one more)", "持有产品数（每多一个）"),
    "rm_turnover_exposed": ("RM left (turnover window)", "客户经理离职/调岗后"),
    "complaint_escalated_90d": ("escalated complaint (last 90 days)", "近 90 天升级投诉"),
    "dormant": ("dormant", "账户休眠"),
    "orphaned": ("without an RM (orphaned)", "无客户经理（交接空档）"),
    "orphaned_band": ("days without an RM so far", "无客户经理天数"),
    "retention_contact_90d": ("retention contact (last 90 days)", "近 90 天挽留接触"),
    "holds_mobile_banking": ("holds mobile banking", "持有手机银行"),
    "holds_fund_sip": ("holds a fund SIP", "持有基金定投"),
    "holds_payroll": ("holds payroll", "持有代发工资"),
    "holds_third_party_custody": ("holds third-party custody", "持有第三方存管"),
    "tier": ("tier", "客户层级"),
    "segment": ("segment", "客群"),
    "channel": ("channel", "获客渠道"),
    "churn_type": ("churn type", "流失类型"),
    "churn_reason": ("recorded reason", "登记原因"),
    "product": ("product", "产品"),
    "exit_type": ("exit type", "离任类型"),
    # ---- KPIs (kpis.KPI_COLUMNS) and scopes
    "active_at_start": ("customers active at month start", "月初有效客户数"),
    "churned_in_month": ("customers churned in the month", "当月流失客户数"),
    "monthly_churn_rate": ("monthly churn rate", "月流失率"),
    "aum_lost": ("AUM lost", "流失资产"),
    "aum_drained": ("AUM drained before churn", "流失前资产流出"),
    "churned": ("churned customers", "流失客户数"),
    "customers": ("customers", "客户数"),
    "churn_rate": ("churn rate", "流失率"),
    "churn_rate_12m": ("churn within 12 months", "12 个月内流失率"),
    "churn_rate_24m": ("churn within 24 months", "24 个月内流失率"),
    "churn_rate_snapshot": ("churn over the whole snapshot", "整个快照期内流失率"),
    "share": ("share", "占比"),
    "bank": ("bank", "全行"),
    "branch": ("branch", "本支行"),
    "count": ("by count", "按客户数"),
    "aum_weighted": ("AUM-weighted", "按资产加权"),
    "measure": ("measure", "口径"),
    # ---- axis titles and figure words
    "month": ("month", "月份"),
    "months_since_landmark": ("months since the landmark", "基准日后月数"),
    "tenure_months": ("tenure (months)", "开户时长（月）"),
    "retention": ("retention (share still a customer)", "留存率（仍为本行客户的比例）"),
    "at_risk": ("at risk", "在险客户数"),
    "hazard_ratio": ("hazard ratio", "风险比"),
    "term": ("factor", "影响因素"),
    "hazard_ratio_axis": ("hazard ratio ({level}% interval, log scale)", "风险比（{level}% 置信区间，对数刻度）"),
    "hr_interval": ("HR ({level}% interval)", "风险比（{level}% 置信区间）"),
    "hazard_per_month": ("churn hazard per customer-month", "月流失风险率（每客户每月）"),
    # ---- the results' own figures (res.plot(language=...))
    "plot_retained_after": ("retained {outcome} days after the {grace}-day contact window",
                            "{grace} 天联系期后 {outcome} 天仍留存"),
    "plot_contacted": ("contacted", "已联系"),
    "plot_not_contacted": ("not contacted", "未联系"),
    "plot_rm_left": ("RM left (exposed)", "客户经理离职（暴露组）"),
    "plot_rm_stayed": ("RM stayed (matched)", "客户经理在职（匹配对照组）"),
    "plot_days_since_exit": ("days since the RM's exit", "客户经理离职后天数"),
    "plot_cumulative_churn": ("cumulative churn", "累计流失率"),
    "plot_risk_within": ("probability of leaving within {days} days", "{days} 天内流失概率"),
    "cumulative_incidence": ("cumulative incidence", "累计流失率"),
    "churned_within": ("churned within {months:g} months", "{months:g} 个月内流失"),
    "cif_axis": ("churned within {months:g} months (cumulative incidence)", "{months:g} 个月内流失（累计发生率）"),
    "products_at_landmark": ("products held at the landmark", "基准日持有产品数"),
    "products_at_snapshot": ("products held (at the snapshot)", "持有产品数（快照时）"),
    "cause": ("churn type", "流失类型"),
    "fewer_than": ("fewer than {n}", "少于 {n}"),
    "reference_line": ("no difference (HR = 1)", "无差异（风险比 = 1）"),
    "amount_unit": ("CNY", "万元"),
    # ---- the index page and page titles (crmresearch.batch.run)
    "index_title": ("Monthly churn reports", "客户流失月度报告"),
    "index_snapshot": ("snapshot (flat extract)", "快照（单表数据）"),
    "bank_summary_title": ("Bank summary", "全行汇总"),
    "index_bank_link": ("Bank summary: the whole bank, regions and risk-adjusted comparison of branches",
                        "全行汇总：全行情况、区域汇总及分支行风险调整对比"),
    "index_branches": ("Branches", "各支行"),
    "index_regions": ("Regional roll-up", "区域汇总"),
    "index_branch_id": ("branch", "支行编号"),
    "index_branch_name": ("name", "支行名称"),
    "index_region": ("region", "区域"),
    "index_hv_churned": ("high-value customers churned", "高价值客户流失数"),
    "index_status": ("report", "报告状态"),
    "index_branches_count": ("branches", "支行数"),
    "index_customers_extract": ("customers in the extract", "数据中客户数"),
    "index_filter_region": ("Region", "区域"),
    "index_all_regions": ("all regions", "全部区域"),
    "index_find": ("Find a branch", "查找支行"),
    "index_find_placeholder": ("part of its name or ID", "支行名称或编号的一部分"),
    "index_shown": ("branches shown:", "显示支行数："),
    "index_vs_bank_note": ("Each churn rate is marked against the bank's: ▼ better, ≈ about the same (within what "
                           "chance explains), ▲ worse, as in the reports' traffic lights.",
                           "各支行月流失率与全行对比：▼ 改善，≈ 基本持平（在随机波动范围内），▲ 恶化；规则与报告中的信号灯相同。"),
    "index_sort_hint": ("Click a column heading to sort; click again to reverse. Each branch ID links to its report.",
                        "点击列标题排序，再次点击反向排序；点击支行编号打开该支行报告。"),
    "index_suppression_note": ("Groups of fewer than {n} customers are not shown (\"fewer than {n}\"), nor a second "
                               "cell where a shown total would reveal them (\"suppressed\").",
                               "少于 {n} 名客户的组不予显示（“少于 {n}”）；若可由合计推算，另一单元格亦予隐藏（“已隐藏”）。"),
    "index_partial_regions": ("A region's totals are shown only when every branch of the region has a report.",
                              "仅当区域内所有支行均有报告时才显示该区域合计。"),
    "index_no_kpis_flat": ("A flat extract has no calendar: monthly KPIs are not available; each report says "
                           "which sections the data supports.",
                           "单表数据没有日历：无法计算月度指标；各报告说明了数据支持哪些章节。"),
    "churn_definition_recorded": ("recorded (the closing date in the data)", "登记流失（按数据中的销户日期）"),
    "churn_definition_asset_attrition": ("asset attrition (assets fell below the threshold)", "资产流失（资产降至阈值以下）"),
    "index_data_as_of": ("data as of", "数据截至"),
    "index_churn_definition": ("churn definition", "流失定义"),
    "index_version": ("made with", "生成工具"),
    "index_environment": ("environment digest", "运行环境摘要"),
    "index_generated": ("generated", "生成时间"),
    "status_done": ("done", "已完成"),
    "status_failed": ("failed", "失败"),
    "status_not_run": ("not run", "未生成"),
    "suppressed": ("suppressed", "已隐藏"),
    # ---- early-warning rules (params.warnings) and watch-list actions (analyses.watchlist.ACTIONS)
    "product_drop": ("product_drop", "产品减少"),
    "no_transaction": ("no_transaction", "无交易"),
    "outflow": ("outflow", "资金流出"),
    "complaint": ("complaint", "投诉"),
    "rm_exit": ("rm_exit", "客户经理离任"),
    "few_products": ("few_products", "持有产品少"),
    # ---- the analyses (data/capabilities.ANALYSES), as the notes name them
    "monthly KPIs": ("monthly KPIs", "月度指标"),
    "product coverage": ("product coverage", "产品覆盖度"),
    "competing risks": ("competing risks", "竞争风险"),
    "causes model": ("causes model", "流失原因模型"),
    "lifecycle": ("lifecycle", "生命周期"),
    "RM turnover": ("RM turnover", "客户经理离任"),
    "retention outcomes": ("retention outcomes", "挽留成效"),
    "early warnings": ("early warnings", "流失预警"),
    "watch list": ("watch list", "重点关注名单"),
    # ---- the source check's rules (data/rules.py), shown in the notes
    "no_balances": ("no_balances", "无余额记录"),
    "escalation_dated_by_complaint": ("escalation_dated_by_complaint", "升级日期按投诉日期"),
    "churned_before_observation_start": ("churned_before_observation_start", "观察期前流失"),
    "id_not_text": ("id_not_text", "标识符非文本"),
    "flat_calendar_table": ("flat_calendar_table", "单表数据中的日历表"),
    "supervisor follow-up of the complaint": ("supervisor follow-up of the complaint", "主管跟进投诉"),
    "handover visit by the new RM": ("handover visit by the new RM", "新客户经理交接拜访"),
    "re-activation call": ("re-activation call", "激活回访电话"),
    "call about the outflow": ("call about the outflow", "就资金流出致电客户"),
    "cross-sell a sticky product": ("cross-sell a sticky product", "交叉销售一个粘性产品"),
    "relationship review": ("relationship review", "客户关系复盘"),
    # ---- table headers of the report's sections
    "lower": ("lower", "下限"),
    "upper": ("upper", "上限"),
    "rule": ("rule", "预警规则"),
    "warnings": ("warnings", "预警数"),
    "contacted_in_target": ("contacted in target", "时限内接触"),
    "retained": ("retained", "留存"),
    "retention_rate": ("retention rate", "留存率"),
    "contacted": ("contacted", "已接触"),
    "not contacted": ("not contacted", "未接触"),
    "book": ("book", "管户数"),
    "share_in_target": ("contacted in target", "时限内接触比例"),
    "attempts": ("attempts", "尝试次数"),
    "success_rate": ("success rate", "成功率"),
    "pseudonym": ("pseudonym", "化名"),
    "aum": ("AUM", "资产"),
    "products_held": ("products held", "持有产品数"),
    "suggested_action": ("suggested action", "建议行动"),
    "churn_risk_90d": ("90-day churn risk", "90 天流失风险"),
    "median_gap_days": ("median days without RM", "无客户经理天数中位数"),
    "horizon_days": ("days", "天数"),
    "risk_ratio": ("risk ratio", "风险比值"),
    "exposed": ("exposed", "暴露组客户数"),
    "exposed_churn": ("exposed churn", "暴露组流失率"),
    "control_churn": ("control churn", "对照组流失率"),
    "controls_churn": ("controls churn", "对照组流失率"),
    "customer_months": ("customer-months", "客户月数"),
    "rate_per_customer_month": ("rate per customer month", "每客户每月流失率"),
    "events": ("events", "流失事件数"),
    "not orphaned": ("not orphaned", "未失去客户经理"),
    "(no RM)": ("(no RM)", "（无客户经理）"),
    "stage": ("stage", "阶段"),
    "ph_verdict": ("over tenure", "随开户时长的变化"),
    "ph_holds": ("holds: the hazard ratio is about the same early and late in the relationship",
                 "稳定：风险比在客户关系早期与后期基本一致"),
    "ph_later": ("changes: the association is stronger later in the relationship", "变化：关联在客户关系后期更强"),
    "ph_early": ("changes: the association is stronger early in the relationship", "变化：关联在客户关系早期更强"),
    "English": ("English", "英文"),
    "Chinese": ("中文", "中文"),
    "definition": ("definition", "定义"),
    "scope_label": ("Scope", "范围"),
    "whole_bank": ("the whole bank", "全行"),
}

_COVERAGE = {
    "0": ("no products", "无产品"),
    "1": ("1 product", "1 个产品"),
    "2": ("2 products", "2 个产品"),
    "3-4": ("3–4 products", "3–4 个产品"),
    "5+": ("5+ products", "5 个及以上产品"),
}

def check_language(language: str) -> int:
    """Validate a language code; return its column in :data:`LABELS` (0 for en, 1 for zh).

    Parameters
    ----------
    language : str
        A code of :data:`LANGUAGES`.

    Returns
    -------
    int
        0 for ``en``, 1 for ``zh``.

    Raises
    ------
    ValueError
        ``language`` is not in :data:`LANGUAGES`.

    Examples
    --------
    >>> check_language("zh")
    1
    """
    try:
        return LANGUAGES.index(language)
    except ValueError:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}") from None

def label(key: object, language: str = "en", **fields: object) -> str:
    """The text of ``key`` in ``language``; the key itself (as text) when it has no entry.

    Parameters
    ----------
    key : object
        A code or label key (``"key"``, ``"transfer"``, ``"hazard_ratio"``…).
        ``None`` and NaN read as "not recorded".
    language : {"en", "zh"}
    **fields
        Values for placeholders in the text (``label("churned_within", months=12)``).

    Returns
    -------
    str

    Examples
    --------
    >>> label("private", "zh")
    '私人银行客户'
    >>> label("churned_within", "en", months=12)
    'churned within 12 months'
    >>> label("no such code")
    'no such code'
    """
    i = check_language(language)
    if key is None or (isinstance(key, float) and math.isnan(key)):
        key = "not_recorded"
    entry = (LABELS.get(key) or REPORT_TEXT.get(key)) if isinstance(key, str) else None  # one catalog, labels first
    text = entry[i] if entry else str(key)
    return text.format(**fields) if fields else text

def labels(keys: Iterable[object], language: str = "en") -> list[str]:
    """:func:`label` of every key.

    Parameters
    ----------
    keys : iterable
        Codes or label keys.
    language : {"en", "zh"}

    Returns
    -------
    list of str

    Examples
    --------
    >>> labels(["transfer", "natural"], "zh")
    ['转移流失', '自然流失']
    """
    return [label(k, language) for k in keys]

def coverage_group_label(group: object, language: str = "en") -> str:
    """A product-coverage group (``0, 1, 2, 3-4, 5+``) as words; other values via :func:`label`.

    Parameters
    ----------
    group : object
        A group of :data:`COVERAGE_GROUPS` (or anything else).
    language : {"en", "zh"}

    Returns
    -------
    str

    Examples
    --------
    >>> coverage_group_label("3-4", "en"), coverage_group_label("5+", "zh")
    ('3–4 products', '5 个及以上产品')
    """
    i = check_language(language)
    g = str(group)
    return _COVERAGE[g][i] if g in _COVERAGE else label(group, language)

def term_label(term: str, language: str = "en") -> str:
    """A model term as words: ``n_products`` or an indicator ``tier[key]`` (-> "tier: key").

    Parameters
    ----------
    term : str
        A term of a fitted model (a covariate, or ``covariate[level]``).
    language : {"en", "zh"}

    Returns
    -------
    str

    Examples
    --------
    >>> term_label("tier[private]", "en")
    'tier: private'
    >>> term_label("segment[executive]", "zh")
    '客群：企业高管'
    """
    m = re.fullmatch(r"(.+)\[(.+)\]", str(term))
    if m is None:
        return label(term, language)
    sep = "：" if language == "zh" else ": "
    return f"{label(m.group(1), language)}{sep}{label(m.group(2), language)}"

def format_percent(x: float, language: str = "en", digits: int = 1) -> str:
    """A share as a percentage (``0.123`` -> ``12.3%``); NaN as an en dash.

    Parameters
    ----------
    x : float
        A share (0.123 for 12.3%).
    language : {"en", "zh"}
    digits : int
        Decimals shown.

    Returns
    -------
    str

    Examples
    --------
    >>> format_percent(0.1234)
    '12.3%'
    """
    check_language(language)
    if x is None or not math.isfinite(x):
        return "–"
    return f"{100 * x:.{digits}f}%"

def format_count(n: float, language: str = "en") -> str:
    """A count with thousands separators (the same in both languages).

    Parameters
    ----------
    n : float
        The count (rounded); NaN or None gives an en dash.
    language : {"en", "zh"}

    Returns
    -------
    str

    Examples
    --------
    >>> format_count(12345)
    '12,345'
    """
    check_language(language)
    if n is None or not math.isfinite(n):
        return "–"
    return f"{round(n):,}"

def format_amount(x: float, language: str = "en", *, unit: bool = True) -> str:
    """An amount in CNY: compact in English (``1.2M``), in 万元 in Chinese (``123.5万``).

    Parameters
    ----------
    x : float
        Amount in CNY.
    unit : bool
        Append the unit (``CNY`` / ``万元``); tick labels leave it to the axis title.

    Returns
    -------
    str
        An en dash for NaN or None.

    Examples
    --------
    >>> format_amount(1_234_567), format_amount(1_234_567, "zh")
    ('CNY 1.23M', '123.5万元')
    >>> format_amount(1_234_567, "zh", unit=False)
    '123.5万'
    """
    i = check_language(language)
    if x is None or not math.isfinite(x):
        return "–"
    if i == 1:
        return f"{x / 1e4:,.1f}{'万元' if unit else '万'}"
    a = abs(x)
    text = (f"{x / 1e9:.2f}B" if a >= 1e9 else f"{x / 1e6:.2f}M" if a >= 1e6
            else f"{x / 1e3:.1f}K" if a >= 1e3 else f"{x:,.0f}")  # fmt: skip
    return f"CNY {text}" if unit else text

def format_month(month: str, language: str = "en") -> str:
    """A ``YYYY-MM`` month for the language (``2026-10`` / ``2026年10月``).

    Parameters
    ----------
    month : str
        ``YYYY-MM``; anything else is returned as it is.
    language : {"en", "zh"}

    Returns
    -------
    str

    Examples
    --------
    >>> format_month("2026-03", "zh")
    '2026年3月'
    """
    i = check_language(language)
    m = re.fullmatch(r"(\d{4})-(\d{2})", str(month))
    if m is None:
        return str(month)
    return f"{m.group(1)}年{int(m.group(2))}月" if i == 1 else str(month)


# --------------------------------------------------------------------------- the reports' phrases

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

REPORT_TEXT: dict[str, tuple[str, str]] = {
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
    "environment_label": ("Environment digest (every installed package)", "运行环境摘要（全部已安装软件包）"),
    "source_fp_label": ("Source fingerprint", "数据源指纹"),
    "params_digest_label": ("Parameters digest", "参数摘要"),
    "notebook_digest_label": ("Notebook digest", "笔记本摘要"),
    "code_digest_label": ("Code digest", "代码摘要"),
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
    "turnover_window": ("Exposure is a convention of the parameters, not something the data records: a customer "
                        "counts as exposed on days exit + 1 to exit + {days} after their RM's exit (the RM's last "
                        "day), {days} days in all.",
                        "“暴露”是参数设定的约定，并非数据直接记录：客户经理离任（最后工作日）后的第 1 天至第 {days} 天"
                        "（离任日 + 1 至离任日 + {days}，共 {days} 天），其客户计为暴露。"),
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
    "outcomes_title": ("Outcome cohort: customers first warned {start} to {end} and still customers {grace} day(s) "
                       "later, retained or not in the {outcome} days after that, by contact within those {grace} "
                       "day(s). Not the same customers as this month's warnings above, whose outcome is not known yet",
                       "结果队列：{start} 至 {end} 首次触发预警、{grace} 天后仍为客户的客户，其后 {outcome} 天内是否留存，"
                       "按这 {grace} 天内是否被接触划分。与上表本月预警的客户不同（本月预警的结果尚不可知）"),
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
    "glossary_title": ("Glossary", "术语表"),
    "finding": ("{where} [{rule}] {n} rows: {message}", "{where}［{rule}］{n} 行：{message}"),
    "settings": ("min cell {min_cell}; response target {target} d; grace {grace} d; outcome {outcome} d; "
                 "high-value tiers {tiers}; digest {digest}",
                 "最小单元格 {min_cell}；响应时限 {target} 天；宽限期 {grace} 天；结果观察期 {outcome} 天；"
                 "高价值层级 {tiers}；参数摘要 {digest}"),
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
    "contents": ("Contents", "目录"),
    "colon": (": ", "："),
    "about": ("About this report", "关于本报告"),
    "causes_title": ("Strongest associations with churn ({scope} model)", "与流失关联最强的因素（{scope}模型）"),
    "causes_none": ("No factor of the model has an interval that excludes no difference.",
                    "模型中没有因素的置信区间排除“无差异”。"),
    "cause_line": ("{term}: churn {direction} (HR {hr}, {lo}–{hi})", "{term}：流失风险{direction}（风险比 {hr}，{lo}–{hi}）"),
    "cause_higher": ("higher", "更高"),
    "cause_lower": ("lower", "更低"),
    "watch_count": ("{n} customers on the watch list →", "重点关注名单共 {n} 位客户 →"),
    "watch_count_none": ("Watch list withheld (no pseudonym key)", "重点关注名单未显示（未配置化名密钥）"),
    "vs_last_month": ("last month", "较上月"),
    "vs_last_year": ("last year", "较去年同月"),
    "vs_the_bank": ("the bank", "较全行"),
    "fewer": ("fewer than {n}", "少于 {n}"),
    "suppressed": ("suppressed", "已隐藏"),
    "below": ("below {x}", "低于 {x}"),
    "significant": ("p < 0.001", "p < 0.001"),
    "customers_total": ("customers", "客户数"),
    "churned_total": ("churned", "已流失"),
    "churn_share": ("share churned", "流失占比"),
    "summary_coverage_12m": ("Within 12 months of the landmark, customers with {hi} churned most ({hi_rate}) and those "
                             "with {lo} least ({lo_rate}).",
                             "基准日后 12 个月内，持有{hi}的客户流失最多（{hi_rate}），持有{lo}的客户最少（{lo_rate}）。"),
    "summary_coverage_snapshot": ("Over the whole snapshot, customers with {hi} churned most ({hi_rate}) and those "
                                  "with {lo} least ({lo_rate}).",
                                  "在整个快照期内，持有{hi}的客户流失最多（{hi_rate}），持有{lo}的客户最少（{lo_rate}）。"),
}

#: the bilingual glossary of section 9: (English term, Chinese term, English definition, Chinese definition)
GLOSSARY: tuple[tuple[str, str, str, str], ...] = (
    ("churn", "流失", "the customer's relationship ended: the recorded churn date (or asset attrition, per the parameters)",
     "客户关系终止：以登记的流失日期为准（或按参数定义的资产流失）"),
    ("active at month start", "月初有效客户", "opened before the month began and not churned before it",
     "在当月开始前开户且此前未流失的客户"),
    ("monthly churn rate", "月流失率", "customers churned in the month / customers active at its start",
     "当月流失客户数 ÷ 月初有效客户数"),
    ("AUM lost", "流失资产", "last month-end AUM before churn, summed over the month's churners",
     "当月流失客户在流失前最后一个月末的资产，合计"),
    ("AUM drained", "流失前资产流出", "peak month-end AUM in the 12 months before churn, summed over the month's churners",
     "当月流失客户在流失前 12 个月内的月末资产峰值，合计"),
    ("high-value customers", "高价值客户", "customers in the top tiers (parameter high_value_tiers)",
     "属于最高层级的客户（参数 high_value_tiers）"),
    ("product coverage", "产品覆盖度", "number of distinct products held on a day", "某一天持有的不同产品数量"),
    ("landmark", "基准日", "the day groups are formed (month end − 12 months), using only what was known then",
     "划分客户组的日期（月末前 12 个月），仅使用当日已知的信息"),
    ("sticky products", "粘性产品", "mobile banking, fund SIP, payroll, third-party custody",
     "手机银行、基金定投、代发工资、第三方存管"),
    ("orphaned", "无人维护客户", "a customer whose RM left and who has no new RM yet",
     "原客户经理已离任、尚未分配新客户经理的客户"),
    ("hazard ratio (HR)", "风险比", "how much higher the churn rate is with a factor, others held equal; 1 = no difference",
     "在其他因素相同的情况下，具有某因素时流失率高出多少；1 表示无差异"),
    ("95% interval", "95% 置信区间", "the range of values consistent with the data", "与数据相符的取值范围"),
    ("odds ratio (OR)", "比值比", "how the odds of retention differ with contact, adjusted for risk factors",
     "调整风险因素后，接触与否对应的留存几率之比"),
    ("early warning", "流失预警", "a rule of the parameters that fired for a customer on a date",
     "参数中的某条规则在某日对某客户触发"),
    ("response target", "响应时限", "contact within this many days of a warning counts as in target",
     "预警后在此天数内接触客户即视为达标"),
    ("pseudonym", "化名", "a keyed hash of the customer ID; staff holding the key can resolve it",
     "客户编号的密钥哈希；持有密钥的员工可还原"),
    ("observed / expected", "实际/预期", "churn against what the bank-wide model expects for the branch's customers",
     "实际流失与全行模型对该支行客户结构的预期流失之比"),
)

#: contract table -> Chinese name (English pages show the table's own name)
TABLE_LABELS: dict[str, str] = {
    "customers": "客户表", "branches": "支行表", "product_holdings": "产品持有表",
    "relationship_managers": "客户经理表", "rm_assignments": "客户经理分配表", "monthly_balances": "月末余额表",
    "complaints": "投诉表", "retention_actions": "挽留行动表", "transactions": "交易表", "extract": "数据提取信息表",
}  # fmt: skip

def _caveat_patterns() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for en, zh in CAVEATS:
        parts = re.split(r"\{(\w+)\}", en)
        rx = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
        out.append((re.compile(rx + r"\Z", re.DOTALL), zh))
    return out


_PATTERNS: list[tuple[re.Pattern[str], str]] = []
_EN_TO_KEY: dict[str, str] = {en: k for k, (en, _) in reversed(LABELS.items())}


def table_label(table: str, language: str = "en") -> str:
    """A contract table's name for the reader: its own name in English, its Chinese name in Chinese.

    Examples
    --------
    >>> table_label("monthly_balances", "zh"), table_label("monthly_balances", "en")
    ('月末余额表', 'monthly_balances')
    """
    return TABLE_LABELS.get(table, table) if check_language(language) == 1 else table


def translate(sentence: str, language: str = "en") -> str:
    """A caveat or note the analyses wrote in English, in ``language`` (from :data:`CAVEATS`).

    The analyses keep their caveats in English (metrics.json is read by
    systems); a report shows them through this function.  A sentence with no
    template is returned as it is (the language test of the reports fails on
    it, so every caveat a page can show gets one).

    Parameters
    ----------
    sentence : str
    language : {"en", "zh"}

    Returns
    -------
    str

    Examples
    --------
    >>> translate("Only 4 RMs left in the cohort: the intervals, clustered by RM, are rough.", "zh")
    '该队列中仅 4 位客户经理离任：按客户经理聚类的区间较为粗略。'
    >>> translate("Exit types with fewer than 5 exiting RMs (resigned, retired): no interval.", "zh")
    '离任客户经理少于 5 位的离任类型（离职、退休）：不显示区间。'
    """
    if check_language(language) == 0:
        return sentence
    if not _PATTERNS:
        _PATTERNS.extend(_caveat_patterns())
    for rx, zh in _PATTERNS:
        m = rx.match(sentence)
        if m is None:
            continue
        fields = {}
        for k, v in m.groupdict().items():
            if k.endswith("_codes"):
                v = "、".join(label(x.strip(), language) for x in v.split(","))
            elif k.endswith("_code"):
                v = label(v, language)
            elif k.endswith("_text"):
                v = translate(v, language)
            elif k.endswith("_labels"):  # English labels (label(code, "en")), back to their codes
                v = "、".join(label(_EN_TO_KEY.get(x.strip(), x.strip()), language) for x in v.split(","))
            elif k.endswith("_table"):
                v = table_label(v, language)
            fields[k] = v
        return zh.format(**fields)
    return sentence


def text(key: str, language: str = "en", **fields: Any) -> str:
    """A report phrase of :data:`REPORT_TEXT` (or a section title of :data:`SECTIONS`) in ``language``.

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
    entry = SECTIONS.get(key) or REPORT_TEXT.get(key) or LABELS.get(key)  # one catalog, section titles first
    s = entry[i] if entry else key
    return s.format(**fields) if fields else s
