"""The analyses' caveats and notes with their Chinese: the data behind :func:`crmresearch.viz.i18n.translate`.

The analyses write their caveats in English (metrics.json keeps them so);
a report shows each one in its language through
:func:`crmresearch.viz.i18n.translate`, which matches the sentence against
these templates.  This module is data only; :mod:`crmresearch.viz.i18n` is
the catalog's one entry point.
"""

from __future__ import annotations

__all__ = ["CAVEATS"]

#: the caveats and notes the analyses write (in English, as metrics.json keeps them), with their Chinese:
#: ``translate`` finds a caveat's template and fills its fields; a field named ``*_code`` is a code
#: (``label``), ``*_codes`` a comma-separated list of codes, ``*_labels`` a list of English labels,
#: ``*_table`` a contract table, ``*_text`` a sentence translated in turn; the first template that matches wins
CAVEATS: tuple[tuple[str, str], ...] = (
    ("AUM lost and drained are not available: monthly_balances was not supplied.",
     "流失资产与流失前资产流出无法提供：未提供月末余额表（monthly_balances）。"),
    ("Asset-attrition churns are confirmed {k} month(s) after their date: the latest months are provisional.",
     "资产流失在其日期后 {k} 个月才能确认：最近几个月的数字为暂定值。"),
    ("The odds ratio of contact is not shown: a group (contacted or not × retained or churned) has fewer than {m} "
     "customers.", "未显示接触的比值比：某一组（接触与否 × 留存或流失）客户少于 {m} 位。"),
    ("The logistic regression could not be fitted ({exc}).", "逻辑回归无法拟合（{exc}）。"),
    ("The logistic regression could not separate contact from the adjustments.", "逻辑回归无法将接触与调整变量区分开。"),
    ("Observational: contacted customers may differ from the others in ways the adjustment (products, tenure, an "
     "earlier retention contact, tier, rules fired) does not capture.",
     "观察性结果：被接触客户可能在调整变量（产品、开户时长、此前的挽留接触、层级、触发的规则）之外的方面与其他客户不同。"),
    ("The out-of-time check could not be run: {exc}", "样本外检验无法运行：{exc}"),
    ("The watch list's out-of-time check could not be run: {exc}", "重点关注名单的样本外检验无法运行：{exc}"),
    ("{product_code} is left out: held by fewer than {m} customers.", "{product_code}未纳入：持有客户少于 {m} 位。"),
    ("{product_code} is left out: held by every customer throughout (nothing to compare with).",
     "{product_code}未纳入：所有客户始终持有（无可比较对象）。"),
    ("The number of products does not vary among these customers: no ratio per product.",
     "这些客户的持有产品数没有差异：无法估计每个产品的风险比。"),
    ("Adjusted for {terms_labels}; on the tenure time scale (the lifecycle stage is the baseline hazard).",
     "已调整：{terms_labels}；以开户时长为时间尺度（生命周期阶段体现在基线风险中）。"),
    ("Associations, not effects: customers who take these products may differ in ways the model does not see.",
     "这是关联而非因果：持有这些产品的客户可能在模型未观察到的方面与其他客户不同。"),
    ("No customer was assigned to an RM who left between {start} and {end}.",
     "{start} 至 {end} 期间没有客户的客户经理离任。"),
    ("1 customer whose RM left had no comparable customer (same branch, tier and tenure band, RM stayed): left out "
     "of the comparison.", "1 位客户经理离任的客户没有可比客户（同支行、同层级、同开户时长段、客户经理在职）：未纳入比较。"),
    ("{n} customers whose RM left had no comparable customer (same branch, tier and tenure band, RM stayed): left "
     "out of the comparison.", "{n} 位客户经理离任的客户没有可比客户（同支行、同层级、同开户时长段、客户经理在职）：未纳入比较。"),
    ("Fewer than {m} customers whose RM left were matched: counts only, no risk difference or ratio.",
     "匹配到的客户经理离任客户少于 {m} 位：仅显示计数，不显示风险差或风险比。"),
    ("Only 1 RM left in the cohort: too few for an interval clustered by RM (at least {k} are needed), so none is "
     "shown.", "该队列中仅 1 位客户经理离任：不足以按客户经理聚类估计区间（至少需要 {k} 位），故不显示区间。"),
    ("Only {n} RMs left in the cohort: too few for an interval clustered by RM (at least {k} are needed), so none "
     "is shown.", "该队列中仅 {n} 位客户经理离任：不足以按客户经理聚类估计区间（至少需要 {k} 位），故不显示区间。"),
    ("Only {n} RMs left in the cohort: the intervals, clustered by RM, are rough.",
     "该队列中仅 {n} 位客户经理离任：按客户经理聚类的区间较为粗略。"),
    ("Exit types with fewer than {m} matched customers ({kinds_codes}): counts only.",
     "匹配客户少于 {m} 位的离任类型（{kinds_codes}）：仅显示计数。"),
    ("Exit types with fewer than {k} exiting RMs ({kinds_codes}): no interval.",
     "离任客户经理少于 {k} 位的离任类型（{kinds_codes}）：不显示区间。"),
    ("Product coverage is not available: {exc}", "产品覆盖度无法提供：{exc}"),
    ("The branch's own causes model could not be fitted ({exc}); the bank-wide model is shown.",
     "本支行的流失原因模型无法拟合（{exc}）；显示全行模型。"),
    ("The causes model could not be fitted on the bank's data up to the month's end.",
     "截至月末的全行数据无法拟合流失原因模型。"),
    ("The causes model could not be fitted: {exc}", "流失原因模型无法拟合：{exc}"),
    ("The causes model leaves out {covariates_codes}: some customers have no value (every covariate of the model "
     "needs a value for every customer).",
     "流失原因模型未纳入{covariates_codes}：部分客户缺少该变量的取值（模型中的每个变量都需要每位客户有取值）。"),
    ("The causes model leaves out what looks like a model score or leaks the outcome: {covariates_codes} (by name, "
     "or a rank correlation of at least {rho} in size with churn); name a column as a covariate to use it.",
     "流失原因模型未纳入看起来是模型评分或泄露流失结果的列：{covariates_codes}（依据列名，或与流失的秩相关系数绝对值不低于 {rho}）；"
     "如需使用，请明确将该列指定为模型变量。"),
    ("The causes model leaves out {covariates_codes}: no customer has a value.",
     "流失原因模型未纳入{covariates_codes}：没有任何客户有该变量的取值。"),
    ("Contact speed and retention outcomes are not available: retention_actions was not supplied.",
     "接触时效与挽留成效无法提供：未提供挽留行动表（retention_actions）。"),
    ("Retention outcomes are not available: {exc}", "挽留成效无法提供：{exc}"),
    ("The hazard ratios of the sticky products could not be estimated: {exc}", "粘性产品的风险比无法估计：{exc}"),
    ("The risk-adjusted comparison of branches could not be computed: {exc}", "支行风险调整对比无法计算：{exc}"),
    ("Churn per customer-month by tenure stage describes when customers leave; the stages differ in more than tenure "
     "(who joined when), so differences are associations.",
     "按开户时长阶段的每客户每月流失率描述客户何时离开；各阶段的差异不仅在于开户时长（还在于何时入行的客户），"
     "因此差异属于关联。"),
    # why an analysis cannot run on a flat extract (data/capabilities.FLAT_REASONS), and metrics.json's form of it
    ("a flat extract has no dates: there are no months to count active and churned customers in, and no month-end "
     "balances for the money lost", "单表数据没有日期：既没有可用于统计有效客户与流失客户的月份，也没有用于计算流失资产的月末余额"),
    ("the extract has no n_products column, so customers cannot be grouped by the number of products they hold",
     "数据中没有 n_products 列，无法按持有产品数对客户分组"),
    ("no churn types and no landmark date: competing risks split churn into transfer and natural among customers "
     "followed from a landmark date, and a flat extract has no dates (its coverage view runs on tenure and carries no "
     "churn types)", "没有流失类型和基准日：竞争风险分析需要从基准日起随访客户，将流失分为转移流失与自然流失，"
     "而单表数据没有日期（其产品覆盖分析按开户时长进行，不含流失类型）"),
    ("no attribute can enter the model: every column other than the identifiers and the outcome has missing values, "
     "takes a single value or repeats another one", "没有属性可以进入模型：除标识符和结果外，每一列都有缺失值、只有一个取值或与另一列重复"),
    ("a flat extract holds only the customers present at its snapshot (and those who left just around it): customers "
     "who left earlier are missing and nobody is followed from opening, so churn per customer-month by tenure stage and "
     "the share of new customers lost within 3 months would come out too low",
     "单表数据只包含快照时点的客户（以及前后刚流失的客户）：更早流失的客户缺失，也没有客户从开户起被随访，"
     "因此按生命周期阶段的每客户每月流失率和新客户 3 个月内流失比例会被低估"),
    ("a flat extract has no relationship managers and no dates: who served each customer, and when an RM left, is "
     "unknown", "单表数据没有客户经理信息和日期：无从得知每位客户由谁服务、客户经理何时离任"),
    ("a flat extract has no early warnings, no retention contacts and no dates, so contact within the response target "
     "and retention 90 days later cannot be measured", "单表数据没有流失预警、挽留接触记录和日期，无法衡量响应时限内的接触及 90 天后的留存"),
    ("early warnings are dated events in a customer's monthly history (months without transactions, an outflow, a "
     "complaint, an RM exit, a falling product count), and a flat extract has one row per customer and no dates",
     "流失预警是客户月度历史中带日期的事件（无交易的月份、资金流出、投诉、客户经理离任、持有产品减少），"
     "而单表数据每位客户只有一行且没有日期"),
    ("the watch list scores customers at the report month's end and is validated out of time (scored at an earlier "
     "date, checked on who left afterwards), and a flat extract has no dates and no early warnings",
     "重点关注名单在报告月末为客户评分，并做样本外验证（在更早日期评分，再以之后的流失检验），而单表数据没有日期和流失预警"),
    ("never: a flat extract's metrics.json holds the coverage groups and the static model's hazard ratios, with KPIs "
     "and retention null (no dates) and caveats saying why",
     "始终可用：单表数据的 metrics.json 包含产品覆盖分组和静态模型的风险比，月度指标和挽留成效为空（没有日期），并在注意事项中说明原因"),
    ("not built yet", "尚未实现"),
    ("no attributes", "数据中没有可用于分组的客户属性（客群、渠道）"),
    ("no model", "没有可用的模型"),
    # the source check's cautions (data/rules.py, data/loader.py), shown in the notes
    ("customer has no monthly balances at all", "客户没有任何月末余额记录"),
    ("escalated complaint without escalated_date: the escalation counts from complaint_date",
     "已升级投诉缺少升级日期（escalated_date）：升级时间按投诉日期（complaint_date）计"),
    ("churned before the observation start {obs}: not in follow-up, left out of the survival data",
     "在观察期开始日 {obs} 之前已流失：不在随访范围内，未纳入生存数据"),
    ("identifier stored as {type}; read as text, but any leading zeros were already lost in the file",
     "标识符以 {type} 类型存储；已按文本读取，但文件中的前导零已丢失"),
    ("a flat extract has no calendar: this table is ignored", "单表数据没有日历：此表被忽略"),
    # last, as it matches any "name: sentence.": metrics.json's "<analysis>: <why not on a flat extract>."
    ("{analysis_code}: {reason_text}.", "{analysis_code}：{reason_text}。"),
)
