"""The demo bank: a deterministic, vectorised generator of every contract table.

It imitates a Chinese bank's branch network as the seed articles describe it:
branch names in Chinese, the seeds' customer groups and acquisition channels,
daily-average-AUM tiers, products added and dropped over time (coverage
strongly protective), relationship managers who resign or transfer and whose
customers are handed over after a gap, complaints (some escalated), transfer
vs natural churn with reason codes, high churn in the first three months of
tenure, early-warning-triggered retention contacts that help, a pre-existing
book of customers who opened long before the extract's observation start
(delayed entry), silent asset attrition, and customer names (personal data that
reports must mask).

How churn is simulated
----------------------
Every process except churn is *exogenous*: product holdings, RM careers and
handovers, complaints, monthly activity and contacts are generated first, for
the whole window, as if nobody left.  Churn is then drawn day by day from a
proportional-hazards model on the tenure time scale::

    h_i(t) = h0(tenure) * exp(x_i(t) @ beta + branch_b)

where ``x_i(t)`` holds exactly the covariates the survival tables define,
computed from data dated on or before day ``t`` (products held that day, RM
exit in the last 90 days, days orphaned so far (0–7, 8–30, 31+: the longer a
customer waits for a new RM, the likelier they leave), escalated complaint in the last 90 days,
dormant after two closed months without transactions, retention contact in
the last 90 days) plus segment and channel.  Each customer churns on the first
day their cumulative hazard exceeds a unit-exponential draw.  Afterwards every
table is cut at the churn date.  ``truth.json`` records ``beta``, ``h0`` and
the branch effects, so tests can check that the survival tables let a Cox
model recover them.  (It is for tests only: reports never read it.)

AUM of transfer churners is drained in the months before they leave (so "AUM
drained" exceeds "AUM lost"); this makes tier an *association* with churn, not
a cause, and tier has no term in the true model.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from crmresearch.core.calendar import ORPHAN_BANDS
from crmresearch.core.io import atomic_dir
from crmresearch.core.sql import ident
from crmresearch.data.contract import PRODUCTS, STICKY_PRODUCTS, sticky_covariate

__all__ = ["DEFAULT_AS_OF", "DemoConfig", "TRUE_EFFECTS", "generate_demo_bank", "write_demo_bank"]

DEFAULT_AS_OF = dt.date(2026, 10, 31)

# log hazard ratios of the true model (reference: salaried, walk_in, not orphaned); the
# orphaned effect rises with the days orphaned so far (bands of crmresearch.timelines.rm_exposure).
# Holding a sticky product (crmresearch.timelines.products.STICKY_PRODUCTS) adds its own effect to
# that of one more product: payroll and mobile banking protect beyond the count, fund SIP
# and third-party custody do not (a zero effect, recorded as a truth too).
TRUE_EFFECTS: dict[str, float] = {
    "n_products": -0.5,
    "holds_mobile_banking": -0.3,
    "holds_fund_sip": 0.0,
    "holds_payroll": -0.4,
    "holds_third_party_custody": 0.0,
    "rm_turnover_exposed": 0.7,
    "orphaned_band[0-7]": 0.1,
    "orphaned_band[8-30]": 0.5,
    "orphaned_band[31+]": 1.2,
    "complaint_escalated_90d": 0.9,
    "dormant": 0.6,
    "retention_contact_90d": -0.8,
    "segment[business_owner]": 0.15,
    "segment[executive]": 0.3,
    "segment[affluent_retiree]": -0.3,
    "segment[homemaker]": -0.15,
    "channel[existing]": -0.15,
    "channel[outreach]": 0.25,
}
# baseline hazard per day at all covariates 0, by tenure stage (days)
BASELINE = {"new_1_90": 0.016, "growth_91_365": 0.005, "mature_366_plus": 0.0032}

SEGMENTS = ("salaried", "business_owner", "executive", "affluent_retiree", "homemaker")
SEGMENT_P = (0.35, 0.17, 0.10, 0.17, 0.21)
SEGMENT_AUM = (60_000, 400_000, 650_000, 500_000, 40_000)  # median AUM, CNY
SEGMENT_PRODUCTS = (0.8, 1.3, 1.6, 1.3, 0.5)  # extra products at opening (Poisson mean)
CHANNELS = ("walk_in", "existing", "outreach")
CHANNEL_P = (0.45, 0.30, 0.25)

CITIES = [("北京", "华北", ["朝阳", "海淀", "西城", "东城", "丰台"]),
          ("上海", "华东", ["浦东", "徐汇", "静安", "黄浦", "长宁"]),
          ("广州", "华南", ["天河", "越秀", "海珠", "番禺"]),
          ("深圳", "华南", ["福田", "南山", "罗湖", "宝安"]),
          ("杭州", "华东", ["西湖", "上城", "滨江"]),
          ("成都", "西南", ["锦江", "武侯", "青羊"]),
          ("武汉", "华中", ["江汉", "武昌", "洪山"]),
          ("南京", "华东", ["鼓楼", "玄武", "建邺"]),
          ("天津", "华北", ["和平", "河西", "南开"]),
          ("重庆", "西南", ["渝中", "江北", "九龙坡"])]  # fmt: skip
SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红兰建国志文利辉鹏飞慧琳晨宇浩然欣怡子涵思雨嘉")

EXIT_TYPES = ("resigned", "transferred", "retired", "dismissed")
EXIT_P = (0.55, 0.27, 0.06, 0.12)


@dataclass(frozen=True)
class DemoConfig:
    """Size and seed of the demo bank.

    Attributes
    ----------
    branches : int
        Number of branches.
    customers_per_branch : int
        Customers per branch over the whole extract (the book at the observation
        start plus those who opened later).
    months : int
        Months of history (monthly balances) ending with the as-of month.
    as_of : datetime.date, optional
        The extract's as-of date (default 2026-10-31: fixed, so a seed gives the
        same bank whenever it runs).
    seed : int
        Random seed; the same config gives byte-identical tables.
    book_share : float
        Share of customers who opened before the observation start.
    hazard_scale : float
        Multiplies the baseline hazard (e.g. 0.15 for a low-churn bank whose
        customers mostly stay the whole window, as the benchmarks use).

    Examples
    --------
    >>> DemoConfig(branches=2, customers_per_branch=500, months=12, seed=1).as_of_date
    datetime.date(2026, 10, 31)
    """

    branches: int = 8
    customers_per_branch: int = 3000
    months: int = 36
    as_of: dt.date | None = None
    seed: int = 42
    book_share: float = 0.45
    hazard_scale: float = 1.0

    def __post_init__(self) -> None:
        from crmresearch.core.errors import InputError

        if not 1 <= self.branches <= 999:
            raise InputError(f"--branches must be 1..999, got {self.branches}")
        if not 1 <= self.customers_per_branch <= 1_000_000:
            raise InputError(f"--customers-per-branch must be 1..1,000,000, got {self.customers_per_branch}")
        if not 3 <= self.months <= 240:
            raise InputError(f"--months must be 3..240, got {self.months}")
        if not 0 <= self.book_share < 1:
            raise InputError(f"book_share must be in [0, 1), got {self.book_share}")
        if not 0 < self.hazard_scale <= 10:
            raise InputError(f"hazard_scale must be in (0, 10], got {self.hazard_scale}")

    @property
    def as_of_date(self) -> dt.date:
        return self.as_of or DEFAULT_AS_OF


# --------------------------------------------------------------------------- helpers


def _month_starts(as_of: dt.date, months: int) -> pd.DatetimeIndex:
    """First days of the ``months`` balance months: the last one is the last month closed by as-of."""
    last = pd.Timestamp(as_of).to_period("M")
    if pd.Timestamp(as_of) != last.to_timestamp(how="end").normalize():
        last -= 1  # as-of is mid-month: that month has not closed, so it has no balances
    return pd.period_range(last - (months - 1), last, freq="M").to_timestamp()


def _geom0(rng: np.random.Generator, mean: np.ndarray | float, size: int | None = None) -> np.ndarray:
    """Geometric on 0, 1, 2, ... with the given mean."""
    mean = np.asarray(mean, dtype=float)
    p = 1.0 / (1.0 + mean)
    return rng.geometric(p, size=size if size is not None else mean.shape) - 1


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    s = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)]
    g1 = np.array(GIVEN)[rng.integers(0, len(GIVEN), n)]
    g2 = np.array(GIVEN)[rng.integers(0, len(GIVEN), n)]
    two = rng.random(n) < 0.7
    return np.where(two, np.char.add(np.char.add(s, g1), g2), np.char.add(s, g1))


def _branch_table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    k = 0
    while len(rows) < n:
        city, region, districts = CITIES[k % len(CITIES)]
        d = districts[(k // len(CITIES)) % len(districts)]
        suffix = "" if k < sum(len(c[2]) for c in CITIES) else f"第{k // 40 + 1}"
        rows.append((f"B{len(rows) + 1:03d}", f"{city}{d}{suffix}支行", region))
        k += 1
    return pd.DataFrame(rows, columns=["branch_id", "branch_name", "region"])


# --------------------------------------------------------------------------- generator


def generate_demo_bank(cfg: DemoConfig = DemoConfig(), *, progress: bool = False
                       ) -> tuple[dict[str, pd.DataFrame], dict]:  # fmt: skip
    """Generate every contract table of the demo bank.

    Parameters
    ----------
    cfg : DemoConfig
        Size, history length, as-of date and seed.
    progress : bool
        Show a progress bar while simulating days.

    Returns
    -------
    tables : dict of str to DataFrame
        One DataFrame per contract table (identifiers as strings, dates as
        ``datetime.date``-compatible ``datetime64``, months as ``YYYY-MM`` text).
    truth : dict
        The true model (``truth.json``).

    Examples
    --------
    >>> tables, truth = generate_demo_bank(DemoConfig(branches=1, customers_per_branch=50, months=6))
    >>> sorted(tables)[:3], truth["coefficients"]["n_products"]
    (['branches', 'complaints', 'customers'], -0.5)
    """
    rng = np.random.default_rng(cfg.seed)
    as_of = pd.Timestamp(cfg.as_of_date)
    m_starts = _month_starts(cfg.as_of_date, cfg.months)
    obs = m_starts[0]
    D = int((as_of - obs).days) + 1  # simulated days 0..D-1; day 0 = observation start
    m_start_day = np.asarray((m_starts - obs).days, dtype=np.int64)
    m_end_day = np.append(m_start_day[1:] - 1, (m_starts[-1].to_period("M").to_timestamp("M") - obs).days)
    M = cfg.months
    B = cfg.branches
    N = B * cfg.customers_per_branch

    # ---- branches and their character
    branches = _branch_table(B, rng)
    br_effect = rng.normal(0, 0.2, B).round(3)
    br_rm_tenure_years = rng.uniform(2.5, 6.0, B)  # mean RM tenure
    br_handover_mean = rng.uniform(3, 25, B)  # days from replacement hire to handover
    br_contact_rate = rng.uniform(0.35, 0.85, B)  # share of warnings followed up
    br_contact_fast = rng.uniform(0.3, 0.8, B)  # share of contacts within 1 day

    # ---- customers
    cust_branch = np.repeat(np.arange(B), cfg.customers_per_branch)
    seg = rng.choice(len(SEGMENTS), N, p=SEGMENT_P)
    chan = rng.choice(len(CHANNELS), N, p=CHANNEL_P)
    book = rng.random(N) < cfg.book_share
    open_day = np.where(
        book,
        -(90 + np.minimum(rng.exponential(4 * 365, N), 25 * 365)).astype(np.int64),
        rng.integers(0, D, N),
    ).astype(np.int64)
    birth_year = np.where(
        seg == SEGMENTS.index("affluent_retiree"),
        rng.integers(1944, 1964, N),
        rng.integers(1962, 2003, N),
    )
    names = _names(rng, N)
    static_lp = br_effect[cust_branch].copy()
    for k, s in enumerate(SEGMENTS):
        static_lp[seg == k] += TRUE_EFFECTS.get(f"segment[{s}]", 0.0)
    for k, c in enumerate(CHANNELS):
        static_lp[chan == k] += TRUE_EFFECTS.get(f"channel[{c}]", 0.0)

    # ---- covariate change events: (day, customer, variable, delta) counters
    ev_day: list[np.ndarray] = []
    ev_cust: list[np.ndarray] = []
    ev_var: list[np.ndarray] = []
    ev_delta: list[np.ndarray] = []
    V_PROD, V_RM, V_COMP, V_CONT, V_ORPH1, V_ORPH2, V_ORPH3 = range(7)
    V_STICKY = tuple(range(7, 7 + len(STICKY_PRODUCTS)))  # one 0/1 counter per sticky product
    n_vars = 7 + len(STICKY_PRODUCTS)

    def add_events(day: np.ndarray, cust: np.ndarray, var: int, delta: int | np.ndarray) -> None:
        day = np.asarray(day, dtype=np.int64)
        keep = day < D
        ev_day.append(np.maximum(day[keep], 0))
        ev_cust.append(np.asarray(cust)[keep])
        ev_var.append(np.full(int(keep.sum()), var, dtype=np.int8))
        ev_delta.append(np.broadcast_to(np.asarray(delta, dtype=np.int8), day.shape)[keep].copy())

    def window(start: np.ndarray, cust: np.ndarray, var: int, length: int | np.ndarray) -> None:
        """Indicator on days start .. start+length-1 (as a +1/-1 counter)."""
        add_events(start, cust, var, 1)
        add_events(np.asarray(start) + length, cust, var, -1)

    # ---- products: holdings with start and (maybe) end; the first is never dropped
    n_init = 1 + np.minimum(rng.poisson(np.array(SEGMENT_PRODUCTS)[seg] + 0.4 * (chan == 1)), 6)
    # cross-selling: most products are added in the first years of tenure
    n_add = np.minimum(rng.poisson(2.2, N), 12)
    n_hold = np.minimum(n_init + n_add, len(PRODUCTS))
    n_add = n_hold - n_init
    h_cust = np.repeat(np.arange(N), n_hold)
    h_idx = np.arange(len(h_cust)) - np.repeat(np.cumsum(n_hold) - n_hold, n_hold)
    h_is_init = h_idx < n_init[h_cust]
    h_start = np.where(
        h_is_init, open_day[h_cust],
        open_day[h_cust] + 1 + rng.exponential(1.5 * 365, len(h_cust)).astype(np.int64),
    )  # fmt: skip
    h_dur = rng.exponential(4 * 365, len(h_cust)).astype(np.int64) + 30
    h_end = np.where(h_idx == 0, np.iinfo(np.int64).max // 4, h_start + h_dur)
    # product names: a weighted random order per customer, current account usually first
    weights = np.array([9, 4, 2, 2, 1.5, 2, 4, 1, 1, 2, 5, 3, 1, 0.7, 0.5])
    keys = -np.log(rng.random((N, len(PRODUCTS)))) / weights
    order = np.argsort(keys, axis=1)
    h_product = np.array(PRODUCTS)[order[h_cust, h_idx]]
    add_events(h_start, h_cust, V_PROD, 1)
    add_events(h_end + 1, h_cust, V_PROD, -1)
    for var, product in zip(V_STICKY, STICKY_PRODUCTS, strict=True):  # a customer holds a product once
        held = h_product == product
        add_events(h_start[held], h_cust[held], var, 1)
        add_events(h_end[held] + 1, h_cust[held], var, -1)

    # ---- RMs: slots per branch, each a sequence of RMs; customers belong to a slot
    slots_per_branch = max(1, round(cfg.customers_per_branch / 120))
    n_slots = B * slots_per_branch
    slot_branch = np.repeat(np.arange(B), slots_per_branch)
    rm_rows = []  # (slot, gen, hire_day, exit_day or None)
    hire = -rng.integers(30, 8 * 365, n_slots)
    exit_ = rng.exponential(br_rm_tenure_years[slot_branch] * 365).astype(np.int64)
    alive_slots = np.arange(n_slots)
    gen = 0
    while alive_slots.size:
        rm_rows.append(np.column_stack([alive_slots, np.full(alive_slots.size, gen), hire, exit_]))
        cont = exit_ < D - 1
        alive_slots, prev_exit = alive_slots[cont], exit_[cont]
        hire = prev_exit + 1 + rng.integers(0, 45, alive_slots.size)
        exit_ = hire + rng.exponential(br_rm_tenure_years[slot_branch[alive_slots]] * 365).astype(np.int64)
        keep = hire < D
        alive_slots, hire, exit_ = alive_slots[keep], hire[keep], exit_[keep]
        gen += 1
    rm = np.vstack(rm_rows)
    rm = rm[np.lexsort((rm[:, 1], rm[:, 0]))]
    rm_slot, rm_gen, rm_hire, rm_exit = rm[:, 0], rm[:, 1], rm[:, 2], rm[:, 3]
    n_rm = len(rm)
    rm_exit_type = rng.choice(len(EXIT_TYPES), n_rm, p=EXIT_P)
    rm_exits = rm_exit < D  # exited on or before as-of

    cust_slot = cust_branch * slots_per_branch + rng.integers(0, slots_per_branch, N)
    # candidate assignments: every RM of the customer's slot who is still there after opening
    slot_first = np.searchsorted(rm_slot, np.arange(n_slots))
    slot_count = np.bincount(rm_slot, minlength=n_slots)
    a_cust = np.repeat(np.arange(N), slot_count[cust_slot])
    a_rm = slot_first[cust_slot[a_cust]] + (
        np.arange(len(a_cust)) - np.repeat(np.cumsum(slot_count[cust_slot]) - slot_count[cust_slot],
                                           slot_count[cust_slot]))  # fmt: skip
    keep = rm_exit[a_rm] >= np.maximum(open_day[a_cust], 0)
    a_cust, a_rm = a_cust[keep], a_rm[keep]
    delay = _geom0(rng, br_handover_mean[cust_branch[a_cust]])
    first_of_cust = np.r_[True, a_cust[1:] != a_cust[:-1]]
    replacement = rm_gen[a_rm] > 0
    a_start = np.where(
        open_day[a_cust] >= rm_hire[a_rm], open_day[a_cust],
        np.where(first_of_cust & ~(replacement & (rm_hire[a_rm] >= 0)), rm_hire[a_rm],
                 rm_hire[a_rm] + delay),
    )  # fmt: skip
    a_end = rm_exit[a_rm]
    keep = a_start <= a_end
    a_cust, a_rm, a_start, a_end = a_cust[keep], a_rm[keep], a_start[keep], a_end[keep]
    # turnover exposure and orphaned spells, from each assignment that ends with its RM's exit
    next_same = np.r_[a_cust[1:] == a_cust[:-1], False]
    a_next_start = np.where(next_same, np.r_[a_start[1:], 0], -1)
    ex = rm_exits[a_rm]
    e = a_end[ex]
    window(e + 1, a_cust[ex], V_RM, 90)
    nxt = a_next_start[ex]
    orph_end = np.where(nxt >= 0, nxt, D + 10)  # orphaned e+1 .. next_start-1
    gap_days = orph_end - e - 1  # days orphaned: e+1 .. orph_end-1
    for var, (lo, hi) in zip((V_ORPH1, V_ORPH2, V_ORPH3), ORPHAN_BANDS.values(), strict=True):
        length = np.minimum(gap_days, (hi + 1) if hi is not None else gap_days) - lo
        ok = length > 0
        window(e[ok] + 1 + lo, a_cust[ex][ok], var, length[ok])

    # ---- complaints (exogenous Poisson), some escalated
    comp_rate = np.where(seg == SEGMENTS.index("business_owner"), 0.30, 0.15) / 365
    n_comp = rng.poisson(comp_rate * (D - np.maximum(open_day, 0)))
    c_cust = np.repeat(np.arange(N), n_comp)
    c_day = np.maximum(open_day[c_cust], 0) + (
        rng.random(len(c_cust)) * (D - np.maximum(open_day[c_cust], 0))).astype(np.int64)  # fmt: skip
    c_sev = rng.choice(3, len(c_cust), p=(0.5, 0.35, 0.15))
    c_esc = rng.random(len(c_cust)) < np.array([0.12, 0.35, 0.7])[c_sev]
    c_esc_day = c_day + np.minimum(_geom0(rng, 3.0, len(c_cust)), 20)
    c_esc &= c_esc_day < D
    window(c_esc_day[c_esc], c_cust[c_esc], V_COMP, 90)

    # ---- monthly activity: dormancy spells (Markov), transactions
    active_level = rng.gamma(2.0, 5.0, N) + 1
    dorm_state = np.zeros((N, M), dtype=bool)
    state = rng.random(N) < 0.08
    for m in range(M):
        flip = rng.random(N)
        state = np.where(state, flip > 0.35, flip < 0.035)
        dorm_state[:, m] = state
    txn = np.where(dorm_state, 0, rng.poisson(active_level[:, None], (N, M)))
    has_row = open_day[:, None] <= m_end_day[None, :]  # before churn is applied
    # dormant applies from the first day of month m+1 when months m and m-1 had no transaction
    zero = (txn == 0) & has_row
    dormant_from = np.zeros((N, M), dtype=bool)  # dormant during month m
    dormant_from[:, 2:] = zero[:, 1:-1] & zero[:, :-2]

    # ---- retention contacts (exogenous: triggered by warnings and events the model knows)
    a_c: list[np.ndarray] = []
    a_d: list[np.ndarray] = []
    a_trig: list[np.ndarray] = []
    def contacts(cust: np.ndarray, day: np.ndarray, trigger: str, rate: np.ndarray) -> None:  # noqa: E306
        hit = rng.random(len(cust)) < rate
        fast = rng.random(len(cust)) < br_contact_fast[cust_branch[cust]]
        lag = np.where(fast, rng.integers(0, 2, len(cust)), 2 + _geom0(rng, 12.0, len(cust)))
        d = day + lag
        hit &= (d < D) & (d >= 0)
        a_c.append(cust[hit])
        a_d.append(d[hit])
        a_trig.append(np.full(int(hit.sum()), trigger))

    # dormancy warnings: the first month of each dormant run, dated the month's first day
    new_dorm = dormant_from.copy()
    new_dorm[:, 1:] &= ~dormant_from[:, :-1]
    wi, wm = np.nonzero(new_dorm)
    contacts(wi, m_start_day[wm], "early_warning", br_contact_rate[cust_branch[wi]])
    contacts(c_cust[c_esc], c_esc_day[c_esc], "complaint", np.full(int(c_esc.sum()), 0.6))
    contacts(a_cust[ex], e + 1, "rm_exit", br_contact_rate[cust_branch[a_cust[ex]]] * 0.8)
    n_pro = rng.poisson(0.25 * (D - np.maximum(open_day, 0)) / 365)
    p_cust = np.repeat(np.arange(N), n_pro)
    p_day = np.maximum(open_day[p_cust], 0) + (
        rng.random(len(p_cust)) * (D - np.maximum(open_day[p_cust], 0))).astype(np.int64)  # fmt: skip
    contacts(p_cust, p_day, "proactive", np.ones(len(p_cust)))
    act_cust, act_day, act_trig = np.concatenate(a_c), np.concatenate(a_d), np.concatenate(a_trig)
    window(act_day, act_cust, V_CONT, 90)

    # ---- simulate churn day by day
    day_all = np.concatenate(ev_day)
    srt = np.argsort(day_all, kind="stable")
    day_all = day_all[srt]
    cust_all = np.concatenate(ev_cust)[srt]
    var_all = np.concatenate(ev_var)[srt]
    delta_all = np.concatenate(ev_delta)[srt].astype(np.int16)
    bounds = np.searchsorted(day_all, np.arange(D + 1))
    counters = np.zeros((n_vars, N), dtype=np.int16)
    beta = np.array([TRUE_EFFECTS["n_products"], TRUE_EFFECTS["rm_turnover_exposed"],
                     TRUE_EFFECTS["complaint_escalated_90d"], TRUE_EFFECTS["retention_contact_90d"],
                     *(TRUE_EFFECTS[f"orphaned_band[{b}]"] for b in ORPHAN_BANDS),
                     *(TRUE_EFFECTS[sticky_covariate(p)] for p in STICKY_PRODUCTS)])  # fmt: skip
    threshold = rng.exponential(1.0, N)
    cumhaz = np.zeros(N)
    churn_day = np.full(N, -1, dtype=np.int64)
    alive = np.ones(N, dtype=bool)
    month_of_day = np.searchsorted(m_start_day, np.arange(D), side="right") - 1
    dormant = np.zeros(N, dtype=bool)
    it = range(D)
    if progress:
        it = tqdm(it, desc="demo bank: simulating days", unit="day", mininterval=1.0)
    for d in it:
        lo, hi = bounds[d], bounds[d + 1]
        if hi > lo:
            np.add.at(counters, (var_all[lo:hi], cust_all[lo:hi]), delta_all[lo:hi])
        if d == m_start_day[month_of_day[d]]:
            dormant = dormant_from[:, month_of_day[d]]
        at_risk = alive & (open_day <= d)
        idx = np.flatnonzero(at_risk)
        tenure = d - open_day[idx] + 1
        h0 = cfg.hazard_scale * np.where(
            tenure <= 90, BASELINE["new_1_90"],
            np.where(tenure <= 365, BASELINE["growth_91_365"], BASELINE["mature_366_plus"]))  # fmt: skip
        c = counters[:, idx]
        lp = (static_lp[idx] + beta[0] * c[V_PROD] + beta[1:].dot(c[1:] > 0)
              + TRUE_EFFECTS["dormant"] * dormant[idx])  # fmt: skip
        cumhaz[idx] += h0 * np.exp(lp)
        gone = idx[cumhaz[idx] >= threshold[idx]]
        churn_day[gone] = d
        alive[gone] = False
    churned = churn_day >= 0
    end_day = np.where(churned, churn_day, D - 1)

    # ---- churn type and reason, decided at churn from what was true then
    big = (rng.lognormal(np.log(np.array(SEGMENT_AUM)[seg]), 1.0) * (1 + 0.2 * n_init))
    retiree = seg == SEGMENTS.index("affluent_retiree")
    p_transfer = np.clip(0.6 + 0.2 * (big > 200_000) - 0.35 * retiree, 0.05, 0.95)
    u = rng.random(N)
    ctype = np.where(u < 0.05, "unknown", np.where(u < 0.05 + 0.95 * p_transfer, "transfer", "natural"))
    reason_t = rng.choice(["rate", "service", "fintech", "competitor_offer", "rm_left"], N,
                          p=(0.35, 0.15, 0.2, 0.2, 0.1))  # fmt: skip
    reason_n = rng.choice(["relocation", "death", "emigration", "life_event"], N, p=(0.45, 0.2, 0.15, 0.2))
    # reasons follow the situation at churn (recorded in the exit interview)
    exposed_at_end = np.zeros(N, dtype=bool)
    exposed_at_end[a_cust[ex][(end_day[a_cust[ex]] > e) & (end_day[a_cust[ex]] <= e + 90)]] = True
    reason_t = np.where(exposed_at_end & (rng.random(N) < 0.6), "rm_left", reason_t)
    reason = np.where(ctype == "natural", reason_n, np.where(ctype == "transfer", reason_t, None))
    reason = np.where(rng.random(N) < 0.15, None, reason)  # not every exit interview happens

    # ---- balances: AUM path, pre-churn drain for transfers, silent attrition
    base = big
    walk = np.cumsum(rng.normal(0.004, 0.05, (N, M)), axis=1)
    aum = base[:, None] * np.exp(walk)
    row = has_row & ~(churned[:, None] & (m_end_day[None, :] >= churn_day[:, None]))
    last_m = np.where(churned, np.searchsorted(m_end_day, churn_day, side="left") - 1, M - 1)
    drain_cust = churned & (ctype == "transfer") & (last_m >= 0)
    for back, (lo_f, hi_f) in enumerate(((0.03, 0.4), (0.4, 0.9))):
        mm = last_m - back
        ok = drain_cust & (mm >= 0)
        aum[np.flatnonzero(ok), mm[ok]] *= rng.uniform(lo_f, hi_f, int(ok.sum()))
    silent = (~churned) & (base > 100_000) & (rng.random(N) < 0.06)
    silent_m = rng.integers(min(6, M - 1), M, N)
    drained_after = np.arange(M)[None, :] >= silent_m[:, None]
    aum = np.where(silent[:, None] & drained_after, aum * 0.03, aum)
    prev = np.concatenate([aum[:, :1], aum[:, :-1]], axis=1)
    outflow = np.maximum(prev - aum, 0) + aum * rng.uniform(0, 0.08, (N, M))
    avg_daily = aum * rng.uniform(0.85, 1.15, (N, M))
    ri, rmo = np.nonzero(row)
    balances = pd.DataFrame({
        "customer_id": ri, "month": rmo, "aum": aum[ri, rmo].round(2),
        "avg_daily_aum": avg_daily[ri, rmo].round(2), "txn_count": txn[ri, rmo].astype(np.int64),
        "outflow": outflow[ri, rmo].round(2),
    })  # fmt: skip

    # ---- assemble tables, cut at churn
    def cid(i: np.ndarray) -> np.ndarray:
        return np.char.add("", np.char.zfill(np.asarray(i + 1).astype(str), 10))

    def day2date(d: np.ndarray) -> pd.Series:
        return pd.Series(obs + pd.to_timedelta(np.asarray(d), unit="D")).dt.normalize()

    def date_or_null(d: np.ndarray, valid: np.ndarray) -> pd.Series:
        s = day2date(np.where(valid, d, 0))
        return s.where(valid)

    customers = pd.DataFrame({
        "customer_id": cid(np.arange(N)),
        "branch_id": branches.branch_id.to_numpy()[cust_branch],
        "open_date": day2date(open_day),
        "churn_date": date_or_null(churn_day, churned),
        "churn_type": np.where(churned, ctype, None),
        "churn_reason": np.where(churned, reason, None),
        "segment": np.array(SEGMENTS)[seg],
        "channel": np.array(CHANNELS)[chan],
        "birth_year": birth_year.astype(np.int64),
        "name": names,
    })  # fmt: skip

    hk = h_start <= end_day[h_cust]
    h_end_cut = np.minimum(h_end, end_day[h_cust])
    h_open = (h_end_cut >= D - 1) & ~churned[h_cust]
    product_holdings = pd.DataFrame({
        "customer_id": cid(h_cust[hk]), "product": h_product[hk],
        "start_date": day2date(h_start[hk]),
        "end_date": date_or_null(h_end_cut[hk], ~h_open[hk]),
    })  # fmt: skip

    rm_ids = np.char.add("RM", np.char.zfill((np.arange(n_rm) + 1).astype(str), 5))
    relationship_managers = pd.DataFrame({
        "rm_id": rm_ids, "branch_id": branches.branch_id.to_numpy()[slot_branch[rm_slot]],
        "hire_date": day2date(rm_hire), "exit_date": date_or_null(rm_exit, rm_exits),
        "exit_type": np.where(rm_exits, np.array(EXIT_TYPES)[rm_exit_type], None),
    })  # fmt: skip

    ak = a_start <= end_day[a_cust]
    a_end_cut = np.minimum(a_end, end_day[a_cust])
    a_open = ~rm_exits[a_rm] & ~churned[a_cust]
    rm_assignments = pd.DataFrame({
        "customer_id": cid(a_cust[ak]), "rm_id": rm_ids[a_rm[ak]],
        "start_date": day2date(a_start[ak]),
        "end_date": date_or_null(a_end_cut[ak], ~a_open[ak]),
    })  # fmt: skip

    ck = c_day <= end_day[c_cust]
    esc_known = c_esc & (c_esc_day <= end_day[c_cust])
    complaints = pd.DataFrame({
        "complaint_id": np.char.add("CP", np.char.zfill((np.arange(len(c_cust)) + 1).astype(str), 8)),
        "customer_id": cid(c_cust), "complaint_date": day2date(c_day),
        "severity": np.array(["low", "medium", "high"])[c_sev],
        "escalated": esc_known, "escalated_date": date_or_null(c_esc_day, esc_known),
    })[ck].reset_index(drop=True)  # fmt: skip

    # contacts before churn, plus win-back attempts after it
    keep = act_day <= end_day[act_cust]
    act_cust, act_day, act_trig = act_cust[keep], act_day[keep], act_trig[keep]
    wb = np.flatnonzero(churned & (rng.random(N) < 0.3))
    wb_day = churn_day[wb] + 1 + _geom0(rng, 10.0, len(wb))
    ok = wb_day < D
    act_cust = np.concatenate([act_cust, wb[ok]])
    act_day = np.concatenate([act_day, wb_day[ok]])
    act_trig = np.concatenate([act_trig, np.full(int(ok.sum()), "winback")])
    n_act = len(act_cust)
    later_churn = churned[act_cust] & (churn_day[act_cust] <= act_day + 90) & (act_trig != "winback")
    outcome = np.where(act_day + 90 > D - 1, "pending", np.where(later_churn, "lost", "retained"))
    outcome = np.where(act_trig == "winback", np.where(rng.random(n_act) < 0.12, "won_back", "lost"), outcome)
    outcome = np.where(rng.random(n_act) < 0.25, None, outcome)
    a_type = np.where(act_trig == "rm_exit", "visit",
                      rng.choice(["call", "visit", "offer", "event", "other"], n_act, p=(0.55, 0.2, 0.15, 0.05, 0.05)))  # fmt: skip
    # the contacting RM: the customer's RM that day, when there is one
    act_rm = np.full(n_act, None, dtype=object)
    srt_a = np.lexsort((a_start, a_cust))
    a_cust_s, a_start_s, a_end_s, a_rm_s = a_cust[srt_a], a_start[srt_a], a_end[srt_a], a_rm[srt_a]
    key_a = a_cust_s.astype(np.int64) * (D + 100_000) + (a_start_s + 50_000)
    key_q = act_cust.astype(np.int64) * (D + 100_000) + (act_day + 50_000)
    pos = np.searchsorted(key_a, key_q, side="right") - 1
    okp = (pos >= 0) & (a_cust_s[np.maximum(pos, 0)] == act_cust) & (a_end_s[np.maximum(pos, 0)] >= act_day)
    act_rm[okp] = rm_ids[a_rm_s[pos[okp]]]
    o = np.lexsort((act_cust, act_day))
    retention_actions = pd.DataFrame({
        "action_id": np.char.add("RA", np.char.zfill((np.arange(n_act) + 1).astype(str), 8)),
        "customer_id": cid(act_cust[o]), "action_date": day2date(act_day[o]),
        "action_type": a_type[o], "rm_id": act_rm[o], "trigger": act_trig[o], "outcome": outcome[o],
    })  # fmt: skip

    balances["customer_id"] = cid(balances.customer_id.to_numpy())
    balances["month"] = np.asarray(m_starts.strftime("%Y-%m"))[balances.month.to_numpy()]

    extract = pd.DataFrame({"as_of": [as_of.normalize()], "observation_start": [obs]})
    tables = {
        "extract": extract, "branches": branches, "customers": customers,
        "product_holdings": product_holdings, "relationship_managers": relationship_managers,
        "rm_assignments": rm_assignments, "monthly_balances": balances, "complaints": complaints,
        "retention_actions": retention_actions,
    }  # fmt: skip
    truth = {
        "description": "True model of the demo bank (for tests; reports never read it).",
        "model": "h(t) = h0(tenure stage) * exp(sum(coefficients * x(t)) + branch_log_hazard[branch])",
        "time_scale": "tenure in days since open_date; covariates as defined by crmresearch.survival.episodes",
        "churn_definition": "recorded",
        "coefficients": TRUE_EFFECTS,
        "reference_levels": {"segment": "salaried", "channel": "walk_in", "orphaned_band": "none"},
        "baseline_hazard_per_day": {k: v * cfg.hazard_scale for k, v in BASELINE.items()},
        "branch_log_hazard": dict(zip(branches.branch_id, br_effect.tolist(), strict=True)),
        "no_effect": {"tier": "no term in the true model; associated with churn only through the "
                              "pre-churn drain of transfer churners' AUM"},
        "windows_days": {"rm_turnover": 90, "complaint": 90, "retention_contact": 90},
        "dormancy_months": 2,
        "config": {k: (str(v) if isinstance(v, dt.date) else v) for k, v in asdict(cfg).items()}
        | {"as_of": str(cfg.as_of_date)},
        "summary": {
            "customers": int(N), "churned": int(churned.sum()),
            "book_customers_at_observation_start": int(book.sum()),
            "silent_asset_attrition_customers": int(silent.sum()),
            "rm_exits_in_window": int((rm_exits & (rm_exit >= 0)).sum()),
        },
    }  # fmt: skip
    return tables, truth


def _write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        df.to_parquet(path.with_suffix(".parquet"), index=False)
    else:
        df.to_csv(path.with_suffix(".csv"), index=False, date_format="%Y-%m-%d")


def write_demo_bank(out_dir: str | Path, cfg: DemoConfig = DemoConfig(), *,
                    fmt: Literal["parquet", "csv", "duckdb"] = "parquet", force: bool = False,
                    progress: bool = False) -> Path:  # fmt: skip
    """Generate the demo bank and write it as a source, with ``truth.json`` beside it.

    The directory is written atomically: it appears complete or not at all.

    Parameters
    ----------
    out_dir : str or Path
        Directory to create.  For ``fmt='duckdb'`` it holds ``bank.duckdb``.
    cfg : DemoConfig
        What to generate.
    fmt : {'parquet', 'csv', 'duckdb'}
        File format of the tables.
    force : bool
        Replace an existing ``out_dir``; without it an existing non-empty
        directory is an error (nothing the user had is overwritten silently).
    progress : bool
        Show progress.

    Returns
    -------
    Path
        The source path: ``out_dir`` or ``out_dir/bank.duckdb``.

    Examples
    --------
    >>> write_demo_bank("data/demo", DemoConfig(seed=42))  # doctest: +SKIP
    PosixPath('data/demo')
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} exists and is not empty; pass --force to replace it")
    if out.exists() and not any(out.iterdir()):
        out.rmdir()
    tables, truth = generate_demo_bank(cfg, progress=progress)
    with atomic_dir(out) as tmp:
        if fmt == "duckdb":
            import duckdb

            con = duckdb.connect(str(tmp / "bank.duckdb"))
            for name, df in tables.items():
                con.register("df_view", df)
                con.execute(f"CREATE TABLE {ident(name)} AS SELECT * FROM df_view")
                con.unregister("df_view")
            con.close()
        else:
            for name, df in tables.items():
                _write_table(df, tmp / name, fmt)
        (tmp / "truth.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False), encoding="utf-8")
    if progress:
        s = truth["summary"]
        print(f"demo bank: {cfg.branches} branches, {s['customers']:,} customers, {s['churned']:,} churned, "
              f"{cfg.months} months to {cfg.as_of_date}", flush=True)  # fmt: skip
    return out / "bank.duckdb" if fmt == "duckdb" else out

