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


class _Sim:
    """The demo bank's simulation, one step per method, run in order by :func:`generate_demo_bank`.

    Each step reads what the earlier ones left on ``self`` and adds its own; the random draws
    happen in one fixed order (the steps' order), so a seed gives the same bank.
    """

    def __init__(self, cfg: DemoConfig, progress: bool) -> None:
        self.cfg, self.progress = cfg, progress

    def setup(self) -> None:
        self.rng = np.random.default_rng(self.cfg.seed)
        self.as_of = pd.Timestamp(self.cfg.as_of_date)
        self.m_starts = _month_starts(self.cfg.as_of_date, self.cfg.months)
        self.obs = self.m_starts[0]
        self.D = int((self.as_of - self.obs).days) + 1  # simulated days 0..D-1; day 0 = observation start
        self.m_start_day = np.asarray((self.m_starts - self.obs).days, dtype=np.int64)
        self.m_end_day = np.append(self.m_start_day[1:] - 1, (self.m_starts[-1].to_period("M").to_timestamp("M") - self.obs).days)
        self.M = self.cfg.months
        self.B = self.cfg.branches
        self.N = self.B * self.cfg.customers_per_branch

    def branches(self) -> None:
        # ---- branches and their character
        self.branches = _branch_table(self.B, self.rng)
        self.br_effect = self.rng.normal(0, 0.2, self.B).round(3)
        self.br_rm_tenure_years = self.rng.uniform(2.5, 6.0, self.B)  # mean RM tenure
        self.br_handover_mean = self.rng.uniform(3, 25, self.B)  # days from replacement hire to handover
        self.br_contact_rate = self.rng.uniform(0.35, 0.85, self.B)  # share of warnings followed up
        self.br_contact_fast = self.rng.uniform(0.3, 0.8, self.B)  # share of contacts within 1 day

    def customers(self) -> None:
        # ---- customers
        self.cust_branch = np.repeat(np.arange(self.B), self.cfg.customers_per_branch)
        self.seg = self.rng.choice(len(SEGMENTS), self.N, p=SEGMENT_P)
        self.chan = self.rng.choice(len(CHANNELS), self.N, p=CHANNEL_P)
        self.book = self.rng.random(self.N) < self.cfg.book_share
        self.open_day = np.where(
            self.book,
            -(90 + np.minimum(self.rng.exponential(4 * 365, self.N), 25 * 365)).astype(np.int64),
            self.rng.integers(0, self.D, self.N),
        ).astype(np.int64)
        self.birth_year = np.where(
            self.seg == SEGMENTS.index("affluent_retiree"),
            self.rng.integers(1944, 1964, self.N),
            self.rng.integers(1962, 2003, self.N),
        )
        self.names = _names(self.rng, self.N)
        self.static_lp = self.br_effect[self.cust_branch].copy()
        for k, s in enumerate(SEGMENTS):
            self.static_lp[self.seg == k] += TRUE_EFFECTS.get(f"segment[{s}]", 0.0)
        for k, c in enumerate(CHANNELS):
            self.static_lp[self.chan == k] += TRUE_EFFECTS.get(f"channel[{c}]", 0.0)

    def events(self) -> None:
        # ---- covariate change events: (day, customer, variable, delta) counters
        self.ev_day: list[np.ndarray] = []
        self.ev_cust: list[np.ndarray] = []
        self.ev_var: list[np.ndarray] = []
        self.ev_delta: list[np.ndarray] = []
        self.V_PROD, self.V_RM, self.V_COMP, self.V_CONT, self.V_ORPH1, self.V_ORPH2, self.V_ORPH3 = range(7)
        self.V_STICKY = tuple(range(7, 7 + len(STICKY_PRODUCTS)))  # one 0/1 counter per sticky product
        self.n_vars = 7 + len(STICKY_PRODUCTS)

        def add_events(day: np.ndarray, cust: np.ndarray, var: int, delta: int | np.ndarray) -> None:
            day = np.asarray(day, dtype=np.int64)
            keep = day < self.D
            self.ev_day.append(np.maximum(day[keep], 0))
            self.ev_cust.append(np.asarray(cust)[keep])
            self.ev_var.append(np.full(int(keep.sum()), var, dtype=np.int8))
            self.ev_delta.append(np.broadcast_to(np.asarray(delta, dtype=np.int8), day.shape)[keep].copy())
        self.add_events = add_events

        def window(start: np.ndarray, cust: np.ndarray, var: int, length: int | np.ndarray) -> None:
            """Indicator on days start .. start+length-1 (as a +1/-1 counter)."""
            self.add_events(start, cust, var, 1)
            self.add_events(np.asarray(start) + length, cust, var, -1)
        self.window = window

    def products(self) -> None:
        # ---- products: holdings with start and (maybe) end; the first is never dropped
        self.n_init = 1 + np.minimum(self.rng.poisson(np.array(SEGMENT_PRODUCTS)[self.seg] + 0.4 * (self.chan == 1)), 6)
        # cross-selling: most products are added in the first years of tenure
        n_add = np.minimum(self.rng.poisson(2.2, self.N), 12)
        n_hold = np.minimum(self.n_init + n_add, len(PRODUCTS))
        n_add = n_hold - self.n_init
        self.h_cust = np.repeat(np.arange(self.N), n_hold)
        h_idx = np.arange(len(self.h_cust)) - np.repeat(np.cumsum(n_hold) - n_hold, n_hold)
        h_is_init = h_idx < self.n_init[self.h_cust]
        self.h_start = np.where(
            h_is_init, self.open_day[self.h_cust],
            self.open_day[self.h_cust] + 1 + self.rng.exponential(1.5 * 365, len(self.h_cust)).astype(np.int64),
        )  # fmt: skip
        h_dur = self.rng.exponential(4 * 365, len(self.h_cust)).astype(np.int64) + 30
        self.h_end = np.where(h_idx == 0, np.iinfo(np.int64).max // 4, self.h_start + h_dur)
        # product names: a weighted random order per customer, current account usually first
        weights = np.array([9, 4, 2, 2, 1.5, 2, 4, 1, 1, 2, 5, 3, 1, 0.7, 0.5])
        keys = -np.log(self.rng.random((self.N, len(PRODUCTS)))) / weights
        order = np.argsort(keys, axis=1)
        self.h_product = np.array(PRODUCTS)[order[self.h_cust, h_idx]]
        self.add_events(self.h_start, self.h_cust, self.V_PROD, 1)
        self.add_events(self.h_end + 1, self.h_cust, self.V_PROD, -1)
        for var, product in zip(self.V_STICKY, STICKY_PRODUCTS, strict=True):  # a customer holds a product once
            held = self.h_product == product
            self.add_events(self.h_start[held], self.h_cust[held], var, 1)
            self.add_events(self.h_end[held] + 1, self.h_cust[held], var, -1)

    def rms(self) -> None:
        # ---- RMs: slots per branch, each a sequence of RMs; customers belong to a slot
        slots_per_branch = max(1, round(self.cfg.customers_per_branch / 120))
        n_slots = self.B * slots_per_branch
        self.slot_branch = np.repeat(np.arange(self.B), slots_per_branch)
        rm_rows = []  # (slot, gen, hire_day, exit_day or None)
        hire = -self.rng.integers(30, 8 * 365, n_slots)
        exit_ = self.rng.exponential(self.br_rm_tenure_years[self.slot_branch] * 365).astype(np.int64)
        alive_slots = np.arange(n_slots)
        gen = 0
        while alive_slots.size:
            rm_rows.append(np.column_stack([alive_slots, np.full(alive_slots.size, gen), hire, exit_]))
            cont = exit_ < self.D - 1
            alive_slots, prev_exit = alive_slots[cont], exit_[cont]
            hire = prev_exit + 1 + self.rng.integers(0, 45, alive_slots.size)
            exit_ = hire + self.rng.exponential(self.br_rm_tenure_years[self.slot_branch[alive_slots]] * 365).astype(np.int64)
            keep = hire < self.D
            alive_slots, hire, exit_ = alive_slots[keep], hire[keep], exit_[keep]
            gen += 1
        rm = np.vstack(rm_rows)
        rm = rm[np.lexsort((rm[:, 1], rm[:, 0]))]
        self.rm_slot, rm_gen, self.rm_hire, self.rm_exit = rm[:, 0], rm[:, 1], rm[:, 2], rm[:, 3]
        self.n_rm = len(rm)
        self.rm_exit_type = self.rng.choice(len(EXIT_TYPES), self.n_rm, p=EXIT_P)
        self.rm_exits = self.rm_exit < self.D  # exited on or before as-of

        cust_slot = self.cust_branch * slots_per_branch + self.rng.integers(0, slots_per_branch, self.N)
        # candidate assignments: every RM of the customer's slot who is still there after opening
        slot_first = np.searchsorted(self.rm_slot, np.arange(n_slots))
        slot_count = np.bincount(self.rm_slot, minlength=n_slots)
        self.a_cust = np.repeat(np.arange(self.N), slot_count[cust_slot])
        self.a_rm = slot_first[cust_slot[self.a_cust]] + (
            np.arange(len(self.a_cust)) - np.repeat(np.cumsum(slot_count[cust_slot]) - slot_count[cust_slot],
                                               slot_count[cust_slot]))  # fmt: skip
        keep = self.rm_exit[self.a_rm] >= np.maximum(self.open_day[self.a_cust], 0)
        self.a_cust, self.a_rm = self.a_cust[keep], self.a_rm[keep]
        delay = _geom0(self.rng, self.br_handover_mean[self.cust_branch[self.a_cust]])
        first_of_cust = np.r_[True, self.a_cust[1:] != self.a_cust[:-1]]
        replacement = rm_gen[self.a_rm] > 0
        self.a_start = np.where(
            self.open_day[self.a_cust] >= self.rm_hire[self.a_rm], self.open_day[self.a_cust],
            np.where(first_of_cust & ~(replacement & (self.rm_hire[self.a_rm] >= 0)), self.rm_hire[self.a_rm],
                     self.rm_hire[self.a_rm] + delay),
        )  # fmt: skip
        self.a_end = self.rm_exit[self.a_rm]
        keep = self.a_start <= self.a_end
        self.a_cust, self.a_rm, self.a_start, self.a_end = self.a_cust[keep], self.a_rm[keep], self.a_start[keep], self.a_end[keep]
        # turnover exposure and orphaned spells, from each assignment that ends with its RM's exit
        next_same = np.r_[self.a_cust[1:] == self.a_cust[:-1], False]
        a_next_start = np.where(next_same, np.r_[self.a_start[1:], 0], -1)
        self.ex = self.rm_exits[self.a_rm]
        self.e = self.a_end[self.ex]
        self.window(self.e + 1, self.a_cust[self.ex], self.V_RM, 90)
        nxt = a_next_start[self.ex]
        orph_end = np.where(nxt >= 0, nxt, self.D + 10)  # orphaned e+1 .. next_start-1
        gap_days = orph_end - self.e - 1  # days orphaned: e+1 .. orph_end-1
        for var, (lo, hi) in zip((self.V_ORPH1, self.V_ORPH2, self.V_ORPH3), ORPHAN_BANDS.values(), strict=True):
            length = np.minimum(gap_days, (hi + 1) if hi is not None else gap_days) - lo
            self.ok = length > 0
            self.window(self.e[self.ok] + 1 + lo, self.a_cust[self.ex][self.ok], var, length[self.ok])

    def complaints(self) -> None:
        # ---- complaints (exogenous Poisson), some escalated
        comp_rate = np.where(self.seg == SEGMENTS.index("business_owner"), 0.30, 0.15) / 365
        n_comp = self.rng.poisson(comp_rate * (self.D - np.maximum(self.open_day, 0)))
        self.c_cust = np.repeat(np.arange(self.N), n_comp)
        self.c_day = np.maximum(self.open_day[self.c_cust], 0) + (
            self.rng.random(len(self.c_cust)) * (self.D - np.maximum(self.open_day[self.c_cust], 0))).astype(np.int64)  # fmt: skip
        self.c_sev = self.rng.choice(3, len(self.c_cust), p=(0.5, 0.35, 0.15))
        self.c_esc = self.rng.random(len(self.c_cust)) < np.array([0.12, 0.35, 0.7])[self.c_sev]
        self.c_esc_day = self.c_day + np.minimum(_geom0(self.rng, 3.0, len(self.c_cust)), 20)
        self.c_esc &= self.c_esc_day < self.D
        self.window(self.c_esc_day[self.c_esc], self.c_cust[self.c_esc], self.V_COMP, 90)

    def activity(self) -> None:
        # ---- monthly activity: dormancy spells (Markov), transactions
        active_level = self.rng.gamma(2.0, 5.0, self.N) + 1
        dorm_state = np.zeros((self.N, self.M), dtype=bool)
        state = self.rng.random(self.N) < 0.08
        for m in range(self.M):
            flip = self.rng.random(self.N)
            state = np.where(state, flip > 0.35, flip < 0.035)
            dorm_state[:, m] = state
        self.txn = np.where(dorm_state, 0, self.rng.poisson(active_level[:, None], (self.N, self.M)))
        self.has_row = self.open_day[:, None] <= self.m_end_day[None, :]  # before churn is applied
        # dormant applies from the first day of month m+1 when months m and m-1 had no transaction
        zero = (self.txn == 0) & self.has_row
        self.dormant_from = np.zeros((self.N, self.M), dtype=bool)  # dormant during month m
        self.dormant_from[:, 2:] = zero[:, 1:-1] & zero[:, :-2]

    def contacts(self) -> None:
        # ---- retention contacts (exogenous: triggered by warnings and events the model knows)
        a_c: list[np.ndarray] = []
        a_d: list[np.ndarray] = []
        a_trig: list[np.ndarray] = []
        def contacts(cust: np.ndarray, day: np.ndarray, trigger: str, rate: np.ndarray) -> None:  # noqa: E306
            hit = self.rng.random(len(cust)) < rate
            fast = self.rng.random(len(cust)) < self.br_contact_fast[self.cust_branch[cust]]
            lag = np.where(fast, self.rng.integers(0, 2, len(cust)), 2 + _geom0(self.rng, 12.0, len(cust)))
            d = day + lag
            hit &= (d < self.D) & (d >= 0)
            a_c.append(cust[hit])
            a_d.append(d[hit])
            a_trig.append(np.full(int(hit.sum()), trigger))

        # dormancy warnings: the first month of each dormant run, dated the month's first day
        new_dorm = self.dormant_from.copy()
        new_dorm[:, 1:] &= ~self.dormant_from[:, :-1]
        wi, wm = np.nonzero(new_dorm)
        contacts(wi, self.m_start_day[wm], "early_warning", self.br_contact_rate[self.cust_branch[wi]])
        contacts(self.c_cust[self.c_esc], self.c_esc_day[self.c_esc], "complaint", np.full(int(self.c_esc.sum()), 0.6))
        contacts(self.a_cust[self.ex], self.e + 1, "rm_exit", self.br_contact_rate[self.cust_branch[self.a_cust[self.ex]]] * 0.8)
        n_pro = self.rng.poisson(0.25 * (self.D - np.maximum(self.open_day, 0)) / 365)
        p_cust = np.repeat(np.arange(self.N), n_pro)
        p_day = np.maximum(self.open_day[p_cust], 0) + (
            self.rng.random(len(p_cust)) * (self.D - np.maximum(self.open_day[p_cust], 0))).astype(np.int64)  # fmt: skip
        contacts(p_cust, p_day, "proactive", np.ones(len(p_cust)))
        self.act_cust, self.act_day, self.act_trig = np.concatenate(a_c), np.concatenate(a_d), np.concatenate(a_trig)
        self.window(self.act_day, self.act_cust, self.V_CONT, 90)

    def churn(self) -> None:
        # ---- simulate churn day by day
        day_all = np.concatenate(self.ev_day)
        srt = np.argsort(day_all, kind="stable")
        day_all = day_all[srt]
        cust_all = np.concatenate(self.ev_cust)[srt]
        var_all = np.concatenate(self.ev_var)[srt]
        delta_all = np.concatenate(self.ev_delta)[srt].astype(np.int16)
        bounds = np.searchsorted(day_all, np.arange(self.D + 1))
        counters = np.zeros((self.n_vars, self.N), dtype=np.int16)
        beta = np.array([TRUE_EFFECTS["n_products"], TRUE_EFFECTS["rm_turnover_exposed"],
                         TRUE_EFFECTS["complaint_escalated_90d"], TRUE_EFFECTS["retention_contact_90d"],
                         *(TRUE_EFFECTS[f"orphaned_band[{b}]"] for b in ORPHAN_BANDS),
                         *(TRUE_EFFECTS[sticky_covariate(p)] for p in STICKY_PRODUCTS)])  # fmt: skip
        threshold = self.rng.exponential(1.0, self.N)
        cumhaz = np.zeros(self.N)
        self.churn_day = np.full(self.N, -1, dtype=np.int64)
        alive = np.ones(self.N, dtype=bool)
        month_of_day = np.searchsorted(self.m_start_day, np.arange(self.D), side="right") - 1
        dormant = np.zeros(self.N, dtype=bool)
        it = range(self.D)
        if self.progress:
            it = tqdm(it, desc="demo bank: simulating days", unit="day", mininterval=1.0)
        for d in it:
            lo, hi = bounds[d], bounds[d + 1]
            if hi > lo:
                np.add.at(counters, (var_all[lo:hi], cust_all[lo:hi]), delta_all[lo:hi])
            if d == self.m_start_day[month_of_day[d]]:
                dormant = self.dormant_from[:, month_of_day[d]]
            at_risk = alive & (self.open_day <= d)
            idx = np.flatnonzero(at_risk)
            tenure = d - self.open_day[idx] + 1
            h0 = self.cfg.hazard_scale * np.where(
                tenure <= 90, BASELINE["new_1_90"],
                np.where(tenure <= 365, BASELINE["growth_91_365"], BASELINE["mature_366_plus"]))  # fmt: skip
            c = counters[:, idx]
            lp = (self.static_lp[idx] + beta[0] * c[self.V_PROD] + beta[1:].dot(c[1:] > 0)
                  + TRUE_EFFECTS["dormant"] * dormant[idx])  # fmt: skip
            cumhaz[idx] += h0 * np.exp(lp)
            gone = idx[cumhaz[idx] >= threshold[idx]]
            self.churn_day[gone] = d
            alive[gone] = False
        self.churned = self.churn_day >= 0
        self.end_day = np.where(self.churned, self.churn_day, self.D - 1)

    def churn_types(self) -> None:
        # ---- churn type and reason, decided at churn from what was true then
        self.big = (self.rng.lognormal(np.log(np.array(SEGMENT_AUM)[self.seg]), 1.0) * (1 + 0.2 * self.n_init))
        retiree = self.seg == SEGMENTS.index("affluent_retiree")
        p_transfer = np.clip(0.6 + 0.2 * (self.big > 200_000) - 0.35 * retiree, 0.05, 0.95)
        u = self.rng.random(self.N)
        self.ctype = np.where(u < 0.05, "unknown", np.where(u < 0.05 + 0.95 * p_transfer, "transfer", "natural"))
        reason_t = self.rng.choice(["rate", "service", "fintech", "competitor_offer", "rm_left"], self.N,
                              p=(0.35, 0.15, 0.2, 0.2, 0.1))  # fmt: skip
        reason_n = self.rng.choice(["relocation", "death", "emigration", "life_event"], self.N, p=(0.45, 0.2, 0.15, 0.2))
        # reasons follow the situation at churn (recorded in the exit interview)
        exposed_at_end = np.zeros(self.N, dtype=bool)
        exposed_at_end[self.a_cust[self.ex][(self.end_day[self.a_cust[self.ex]] > self.e) & (self.end_day[self.a_cust[self.ex]] <= self.e + 90)]] = True
        reason_t = np.where(exposed_at_end & (self.rng.random(self.N) < 0.6), "rm_left", reason_t)
        self.reason = np.where(self.ctype == "natural", reason_n, np.where(self.ctype == "transfer", reason_t, None))
        self.reason = np.where(self.rng.random(self.N) < 0.15, None, self.reason)  # not every exit interview happens

    def balances(self) -> None:
        # ---- balances: AUM path, pre-churn drain for transfers, silent attrition
        base = self.big
        walk = np.cumsum(self.rng.normal(0.004, 0.05, (self.N, self.M)), axis=1)
        aum = base[:, None] * np.exp(walk)
        row = self.has_row & ~(self.churned[:, None] & (self.m_end_day[None, :] >= self.churn_day[:, None]))
        last_m = np.where(self.churned, np.searchsorted(self.m_end_day, self.churn_day, side="left") - 1, self.M - 1)
        drain_cust = self.churned & (self.ctype == "transfer") & (last_m >= 0)
        for back, (lo_f, hi_f) in enumerate(((0.03, 0.4), (0.4, 0.9))):
            mm = last_m - back
            self.ok = drain_cust & (mm >= 0)
            aum[np.flatnonzero(self.ok), mm[self.ok]] *= self.rng.uniform(lo_f, hi_f, int(self.ok.sum()))
        self.silent = (~self.churned) & (base > 100_000) & (self.rng.random(self.N) < 0.06)
        silent_m = self.rng.integers(min(6, self.M - 1), self.M, self.N)
        drained_after = np.arange(self.M)[None, :] >= silent_m[:, None]
        aum = np.where(self.silent[:, None] & drained_after, aum * 0.03, aum)
        prev = np.concatenate([aum[:, :1], aum[:, :-1]], axis=1)
        outflow = np.maximum(prev - aum, 0) + aum * self.rng.uniform(0, 0.08, (self.N, self.M))
        avg_daily = aum * self.rng.uniform(0.85, 1.15, (self.N, self.M))
        ri, rmo = np.nonzero(row)
        self.balances = pd.DataFrame({
            "customer_id": ri, "month": rmo, "aum": aum[ri, rmo].round(2),
            "avg_daily_aum": avg_daily[ri, rmo].round(2), "txn_count": self.txn[ri, rmo].astype(np.int64),
            "outflow": outflow[ri, rmo].round(2),
        })  # fmt: skip

    def tables(self) -> None:
        # ---- assemble tables, cut at churn
        def cid(i: np.ndarray) -> np.ndarray:
            return np.char.add("", np.char.zfill(np.asarray(i + 1).astype(str), 10))
        self.cid = cid

        def day2date(d: np.ndarray) -> pd.Series:
            return pd.Series(self.obs + pd.to_timedelta(np.asarray(d), unit="D")).dt.normalize()

        def date_or_null(d: np.ndarray, valid: np.ndarray) -> pd.Series:
            s = day2date(np.where(valid, d, 0))
            return s.where(valid)

        self.customers = pd.DataFrame({
            "customer_id": self.cid(np.arange(self.N)),
            "branch_id": self.branches.branch_id.to_numpy()[self.cust_branch],
            "open_date": day2date(self.open_day),
            "churn_date": date_or_null(self.churn_day, self.churned),
            "churn_type": np.where(self.churned, self.ctype, None),
            "churn_reason": np.where(self.churned, self.reason, None),
            "segment": np.array(SEGMENTS)[self.seg],
            "channel": np.array(CHANNELS)[self.chan],
            "birth_year": self.birth_year.astype(np.int64),
            "name": self.names,
        })  # fmt: skip

        hk = self.h_start <= self.end_day[self.h_cust]
        h_end_cut = np.minimum(self.h_end, self.end_day[self.h_cust])
        h_open = (h_end_cut >= self.D - 1) & ~self.churned[self.h_cust]
        self.product_holdings = pd.DataFrame({
            "customer_id": self.cid(self.h_cust[hk]), "product": self.h_product[hk],
            "start_date": day2date(self.h_start[hk]),
            "end_date": date_or_null(h_end_cut[hk], ~h_open[hk]),
        })  # fmt: skip

        rm_ids = np.char.add("RM", np.char.zfill((np.arange(self.n_rm) + 1).astype(str), 5))
        self.relationship_managers = pd.DataFrame({
            "rm_id": rm_ids, "branch_id": self.branches.branch_id.to_numpy()[self.slot_branch[self.rm_slot]],
            "hire_date": day2date(self.rm_hire), "exit_date": date_or_null(self.rm_exit, self.rm_exits),
            "exit_type": np.where(self.rm_exits, np.array(EXIT_TYPES)[self.rm_exit_type], None),
        })  # fmt: skip

        ak = self.a_start <= self.end_day[self.a_cust]
        a_end_cut = np.minimum(self.a_end, self.end_day[self.a_cust])
        a_open = ~self.rm_exits[self.a_rm] & ~self.churned[self.a_cust]
        self.rm_assignments = pd.DataFrame({
            "customer_id": self.cid(self.a_cust[ak]), "rm_id": rm_ids[self.a_rm[ak]],
            "start_date": day2date(self.a_start[ak]),
            "end_date": date_or_null(a_end_cut[ak], ~a_open[ak]),
        })  # fmt: skip

        ck = self.c_day <= self.end_day[self.c_cust]
        esc_known = self.c_esc & (self.c_esc_day <= self.end_day[self.c_cust])
        self.complaints = pd.DataFrame({
            "complaint_id": np.char.add("CP", np.char.zfill((np.arange(len(self.c_cust)) + 1).astype(str), 8)),
            "customer_id": self.cid(self.c_cust), "complaint_date": day2date(self.c_day),
            "severity": np.array(["low", "medium", "high"])[self.c_sev],
            "escalated": esc_known, "escalated_date": date_or_null(self.c_esc_day, esc_known),
        })[ck].reset_index(drop=True)  # fmt: skip

        # contacts before churn, plus win-back attempts after it
        keep = self.act_day <= self.end_day[self.act_cust]
        self.act_cust, self.act_day, self.act_trig = self.act_cust[keep], self.act_day[keep], self.act_trig[keep]
        wb = np.flatnonzero(self.churned & (self.rng.random(self.N) < 0.3))
        wb_day = self.churn_day[wb] + 1 + _geom0(self.rng, 10.0, len(wb))
        self.ok = wb_day < self.D
        self.act_cust = np.concatenate([self.act_cust, wb[self.ok]])
        self.act_day = np.concatenate([self.act_day, wb_day[self.ok]])
        self.act_trig = np.concatenate([self.act_trig, np.full(int(self.ok.sum()), "winback")])
        n_act = len(self.act_cust)
        later_churn = self.churned[self.act_cust] & (self.churn_day[self.act_cust] <= self.act_day + 90) & (self.act_trig != "winback")
        outcome = np.where(self.act_day + 90 > self.D - 1, "pending", np.where(later_churn, "lost", "retained"))
        outcome = np.where(self.act_trig == "winback", np.where(self.rng.random(n_act) < 0.12, "won_back", "lost"), outcome)
        outcome = np.where(self.rng.random(n_act) < 0.25, None, outcome)
        a_type = np.where(self.act_trig == "rm_exit", "visit",
                          self.rng.choice(["call", "visit", "offer", "event", "other"], n_act, p=(0.55, 0.2, 0.15, 0.05, 0.05)))  # fmt: skip
        # the contacting RM: the customer's RM that day, when there is one
        act_rm = np.full(n_act, None, dtype=object)
        srt_a = np.lexsort((self.a_start, self.a_cust))
        a_cust_s, a_start_s, a_end_s, a_rm_s = self.a_cust[srt_a], self.a_start[srt_a], self.a_end[srt_a], self.a_rm[srt_a]
        key_a = a_cust_s.astype(np.int64) * (self.D + 100_000) + (a_start_s + 50_000)
        key_q = self.act_cust.astype(np.int64) * (self.D + 100_000) + (self.act_day + 50_000)
        pos = np.searchsorted(key_a, key_q, side="right") - 1
        okp = (pos >= 0) & (a_cust_s[np.maximum(pos, 0)] == self.act_cust) & (a_end_s[np.maximum(pos, 0)] >= self.act_day)
        act_rm[okp] = rm_ids[a_rm_s[pos[okp]]]
        o = np.lexsort((self.act_cust, self.act_day))
        self.retention_actions = pd.DataFrame({
            "action_id": np.char.add("RA", np.char.zfill((np.arange(n_act) + 1).astype(str), 8)),
            "customer_id": self.cid(self.act_cust[o]), "action_date": day2date(self.act_day[o]),
            "action_type": a_type[o], "rm_id": act_rm[o], "trigger": self.act_trig[o], "outcome": outcome[o],
        })  # fmt: skip

    def tables_rest(self) -> None:
        self.balances["customer_id"] = self.cid(self.balances.customer_id.to_numpy())
        self.balances["month"] = np.asarray(self.m_starts.strftime("%Y-%m"))[self.balances.month.to_numpy()]

        extract = pd.DataFrame({"as_of": [self.as_of.normalize()], "observation_start": [self.obs]})
        self.tables = {
            "extract": extract, "branches": self.branches, "customers": self.customers,
            "product_holdings": self.product_holdings, "relationship_managers": self.relationship_managers,
            "rm_assignments": self.rm_assignments, "monthly_balances": self.balances, "complaints": self.complaints,
            "retention_actions": self.retention_actions,
        }  # fmt: skip
        self.truth = {
            "description": "True model of the demo bank (for tests; reports never read it).",
            "model": "h(t) = h0(tenure stage) * exp(sum(coefficients * x(t)) + branch_log_hazard[branch])",
            "time_scale": "tenure in days since open_date; covariates as defined by crmresearch.survival.episodes",
            "churn_definition": "recorded",
            "coefficients": TRUE_EFFECTS,
            "reference_levels": {"segment": "salaried", "channel": "walk_in", "orphaned_band": "none"},
            "baseline_hazard_per_day": {k: v * self.cfg.hazard_scale for k, v in BASELINE.items()},
            "branch_log_hazard": dict(zip(self.branches.branch_id, self.br_effect.tolist(), strict=True)),
            "no_effect": {"tier": "no term in the true model; associated with churn only through the "
                                  "pre-churn drain of transfer churners' AUM"},
            "windows_days": {"rm_turnover": 90, "complaint": 90, "retention_contact": 90},
            "dormancy_months": 2,
            "config": {k: (str(v) if isinstance(v, dt.date) else v) for k, v in asdict(self.cfg).items()}
            | {"as_of": str(self.cfg.as_of_date)},
            "summary": {
                "customers": int(self.N), "churned": int(self.churned.sum()),
                "book_customers_at_observation_start": int(self.book.sum()),
                "silent_asset_attrition_customers": int(self.silent.sum()),
                "rm_exits_in_window": int((self.rm_exits & (self.rm_exit >= 0)).sum()),
            },
        }  # fmt: skip

    def result(self) -> tuple[dict[str, pd.DataFrame], dict]:
        """The tables and the truth (the last step's)."""
        return self.tables, self.truth


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
    sim = _Sim(cfg, progress)
    for step in (sim.setup, sim.branches, sim.customers, sim.events, sim.products, sim.rms, sim.complaints, sim.activity, sim.contacts, sim.churn, sim.churn_types, sim.balances, sim.tables, sim.tables_rest):
        step()
    return sim.result()


def _write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        df.to_parquet(path.with_suffix(".parquet"), index=False)
    else:
        df.to_csv(path.with_suffix(".csv"), index=False, date_format="%Y-%m-%d")


def _write_demo_database(out_dir: str | Path | None, cfg: DemoConfig, uri: str, *, force: bool,
                         progress: bool) -> str:  # fmt: skip
    """The demo bank as tables of a PostgreSQL database (all or nothing); truth.json into ``out_dir`` if given."""
    from crmresearch.data.database import mask_uri, write_tables

    tables, truth = generate_demo_bank(cfg, progress=progress)
    if out_dir is not None:
        out = Path(out_dir)
        if (out / "truth.json").exists() and not force:
            raise FileExistsError(f"{out / 'truth.json'} exists; pass --force to replace it")
    write_tables(uri, tables, force=force)
    if out_dir is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "truth.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False), encoding="utf-8")
    if progress:
        s = truth["summary"]
        print(f"demo bank: {cfg.branches} branches, {s['customers']:,} customers, {s['churned']:,} churned, "
              f"{cfg.months} months to {cfg.as_of_date}", flush=True)  # fmt: skip
    return mask_uri(uri)


def write_demo_bank(out_dir: str | Path | None, cfg: DemoConfig = DemoConfig(), *,
                    fmt: str = "parquet", force: bool = False,
                    progress: bool = False) -> Path | str:  # fmt: skip
    """Generate the demo bank and write it as a source, with ``truth.json`` beside it.

    The directory is written atomically: it appears complete or not at all.

    Parameters
    ----------
    out_dir : str or Path
        Directory to create.  For ``fmt='duckdb'`` it holds ``bank.duckdb``.
    cfg : DemoConfig
        What to generate.
    fmt : {'parquet', 'csv', 'duckdb'} or str
        File format of the tables, or a PostgreSQL URI: the tables are
        written into that database (its ``search_path``'s first schema) in
        one transaction, and ``truth.json`` into ``out_dir`` when given.
    force : bool
        Replace an existing ``out_dir``; without it an existing non-empty
        directory is an error (nothing the user had is overwritten silently).
    progress : bool
        Show progress.

    Returns
    -------
    Path or str
        The source path: ``out_dir`` or ``out_dir/bank.duckdb`` (or the URI, password masked).

    Examples
    --------
    >>> write_demo_bank("data/demo", DemoConfig(seed=42))  # doctest: +SKIP
    PosixPath('data/demo')
    """
    if isinstance(fmt, str) and fmt.startswith(("postgresql://", "postgres://")):
        return _write_demo_database(out_dir, cfg, fmt, force=force, progress=progress)
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

