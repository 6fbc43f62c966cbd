"""Counting-process episodes and the customer table (crmresearch.survival.episodes).

Each case writes a tiny hand-made source (a directory of CSV files) and loads
it with :func:`crmresearch.data.contract.load_source`.  The expected episodes are
built independently of the package: a base frame ``(id, start=entry,
stop=duration, event)`` computed in Python from the contract's rules, split by
``lifelines.utils.add_covariate_to_timeline`` at covariate change points that
each test lists by hand, in calendar days ("from day d on the value is v").
Both sides are then normalised the same way (consecutive episodes with
identical covariates merged) and compared exactly on ``start, stop, event``
and every covariate.

Time scale (module docstring of crmresearch.survival.episodes): tenure days since
``open_date``; calendar day ``D`` is the interval ``(D - open, D - open + 1]``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxTimeVaryingFitter
from lifelines.utils import add_covariate_to_timeline

from crmresearch.core.params import Params, load_params
from crmresearch.data.contract import Source, load_source
from crmresearch.survival.episodes import customer_table, episodes

D = dt.date.fromisoformat

# every covariate, its table and its value before the first change point
COVS: dict[str, tuple[str, object]] = {
    "n_products": ("product_holdings", 0),
    "rm_turnover_exposed": ("rm_assignments", 0),
    "orphaned": ("rm_assignments", 0),
    "complaint_escalated_90d": ("complaints", 0),
    "dormant": ("monthly_balances", 0),
    "tier": ("monthly_balances", "unknown"),
    "retention_contact_90d": ("retention_actions", 0),
}

# the contract's required columns (crmresearch.data.contract.TABLES), in file order
COLUMNS: dict[str, list[str]] = {
    "extract": ["as_of", "observation_start"],
    "branches": ["branch_id", "branch_name"],
    "customers": ["customer_id", "branch_id", "open_date", "churn_date", "churn_type"],
    "product_holdings": ["customer_id", "product", "start_date", "end_date"],
    "relationship_managers": ["rm_id", "branch_id", "hire_date", "exit_date", "exit_type"],
    "rm_assignments": ["customer_id", "rm_id", "start_date", "end_date"],
    "monthly_balances": ["customer_id", "month", "aum", "txn_count"],
    "complaints": ["complaint_id", "customer_id", "complaint_date", "severity", "escalated"],
    "retention_actions": ["action_id", "customer_id", "action_date", "action_type", "trigger"],
}

Rows = list[dict[str, object]]
Change = tuple[str, str, str, object]  # (customer_id, first day of the new value, covariate, value)


# --------------------------------------------------------------------------- building sources


def cust(cid: str, open_date: str, churn_date: str | None = None, churn_type: str | None = None) -> dict:
    if churn_date and not churn_type:
        churn_type = "transfer"
    return {"customer_id": cid, "branch_id": "B1", "open_date": open_date,
            "churn_date": churn_date, "churn_type": churn_type}  # fmt: skip


def rm(rm_id: str, hire: str, exit_date: str | None = None) -> dict:
    return {"rm_id": rm_id, "branch_id": "B1", "hire_date": hire, "exit_date": exit_date,
            "exit_type": "resigned" if exit_date else None}  # fmt: skip


def write_source(root: Path, as_of: str, obs: str, tables: dict[str, Rows],
                 params: Params | None = None) -> Source:  # fmt: skip
    """Write ``tables`` (plus extract and branches) as CSV files under ``root`` and load them."""
    root.mkdir(parents=True, exist_ok=True)
    allt: dict[str, Rows] = {
        "extract": [{"as_of": as_of, "observation_start": obs}],
        "branches": [{"branch_id": "B1", "branch_name": "Main"}],
        **tables,
    }
    for name, rows in allt.items():
        cols = list(COLUMNS[name])
        for r in rows:
            cols += [k for k in r if k not in cols]
        pd.DataFrame(rows, columns=cols).to_csv(root / f"{name}.csv", index=False)
    return load_source(root, params)


# --------------------------------------------------------------------------- expectations


def days(a: str | dt.date, b: str | dt.date) -> int:
    """``b - a`` in days."""
    a = D(a) if isinstance(a, str) else a
    b = D(b) if isinstance(b, str) else b
    return (b - a).days


def follow_up(customers: Rows, as_of: str, obs: str, churns: dict[str, str] | None = None
              ) -> dict[str, tuple[dt.date, dt.date, dt.date, int]]:  # fmt: skip
    """The contract's follow-up of each customer: ``id -> (open, entry day, end day, event)``.

    ``churns`` overrides the recorded churn dates (asset attrition).
    """
    out = {}
    t, o = D(as_of), D(obs)
    for c in customers:
        opened = D(c["open_date"])
        churn = (churns or {}).get(c["customer_id"], c.get("churn_date"))
        churn = D(churn) if churn else None
        if opened > t:
            continue  # opened after the as-of date
        event = int(churn is not None and churn <= t)
        end = churn if event else t
        entry = max(opened, o)
        if end < entry:
            continue  # churned before the observation start
        out[c["customer_id"]] = (opened, entry, end, event)
    return out


def expected_episodes(customers: Rows, as_of: str, obs: str, changes: Iterable[Change],
                      present: Iterable[str], churns: dict[str, str] | None = None
                      ) -> list[tuple]:  # fmt: skip
    """Expected episodes, via lifelines' ``add_covariate_to_timeline``.

    ``changes`` lists, per customer and covariate, the calendar day from which a
    new value applies.  ``present``: the tables supplied; covariates of absent
    tables are null throughout.
    """
    fu = follow_up(customers, as_of, obs, churns)
    base = pd.DataFrame(
        [(cid, days(o, e), days(o, x) + 1, ev) for cid, (o, e, x, ev) in fu.items()],
        columns=["id", "start", "stop", "event"],
    )
    changes = sorted(changes, key=lambda c: (c[0], c[2], D(c[1])))
    present = set(present)
    long = base
    for cov, (table, default) in COVS.items():
        if table not in present or (table == "rm_assignments" and "relationship_managers" not in present):
            long[cov] = None
            continue
        rows = []
        for cid, (o, e, x, _) in fu.items():
            mine = [(D(d), v) for c, d, name, v in changes if c == cid and name == cov]
            at_entry = default
            for d, v in mine:
                if d <= e:
                    at_entry = v
            rows.append((cid, days(o, e), at_entry))  # value known on the entry day
            rows += [(cid, days(o, d), v) for d, v in mine if e < d <= x]
        cv = pd.DataFrame(rows, columns=["id", "time", cov])
        long = add_covariate_to_timeline(long, cv, duration_col="time", id_col="id", event_col="event")
    return normalise(long)


def normalise(df: pd.DataFrame) -> list[tuple]:
    """Sorted tuples ``(id, start, stop, event, *covariates)``, identical neighbours merged."""
    df = df.rename(columns={"customer_id": "id"}).sort_values(["id", "start"])
    out: list[list] = []
    for r in df.itertuples(index=False):
        covs = [None if pd.isna(getattr(r, c)) else (str(getattr(r, c)) if c == "tier"
                else int(getattr(r, c))) for c in COVS]  # fmt: skip
        row = [str(r.id), int(r.start), int(r.stop), int(r.event), *covs]
        if out and out[-1][0] == row[0] and out[-1][2] == row[1] and out[-1][4:] == row[4:]:
            out[-1][2], out[-1][3] = row[2], row[3]
        else:
            out.append(row)
    return [tuple(r) for r in out]


def actual(src: Source, params: Params | None = None, as_of: dt.date | None = None) -> list[tuple]:
    """The package's episodes, normalised; also checks their own consistency."""
    ep = episodes(src, params, as_of=as_of)
    opened = dict(src.con.execute("SELECT customer_id, open_date FROM customers").fetchall())
    for r in ep.itertuples(index=False):
        o = opened[r.customer_id]
        assert r.start_date.date() == o + dt.timedelta(days=int(r.start)), r
        assert r.stop_date.date() == o + dt.timedelta(days=int(r.stop) - 1), r
        assert r.start < r.stop, r
    # episodes of a customer are contiguous, and only the last may carry the event
    for _, g in ep.groupby("customer_id"):
        assert (g["start"].to_numpy()[1:] == g["stop"].to_numpy()[:-1]).all(), g
        assert g["event"].to_numpy()[:-1].sum() == 0, g
    return normalise(ep)


def by_id(rows: list[tuple], cid: str) -> list[tuple]:
    return [r for r in rows if r[0] == cid]


# --------------------------------------------------------------------------- 1. RM turnover


def test_rm_exit_on_assignment_last_day(tmp_path):
    as_of, obs = "2023-12-31", "2023-01-01"
    customers = [cust("A", "2023-01-01"), cust("B", "2023-01-01"), cust("C", "2023-01-01")]
    tables = {
        "customers": customers,
        "relationship_managers": [rm("R1", "2020-01-01", "2023-03-31"), rm("R2", "2020-01-01")],
        "rm_assignments": [
            # A: assignment ends on R1's exit date -> assigned on the exit date
            {"customer_id": "A", "rm_id": "R1", "start_date": "2023-01-01", "end_date": "2023-03-31"},
            {"customer_id": "A", "rm_id": "R2", "start_date": "2023-05-10", "end_date": None},
            # B: assignment ended the day before R1's exit -> not exposed, not orphaned
            {"customer_id": "B", "rm_id": "R1", "start_date": "2023-01-01", "end_date": "2023-03-30"},
            {"customer_id": "B", "rm_id": "R2", "start_date": "2023-04-15", "end_date": None},
            # C: open-ended assignment to R1, never reassigned -> orphaned to the end
            {"customer_id": "C", "rm_id": "R1", "start_date": "2023-02-01", "end_date": None},
        ],
    }
    src = write_source(tmp_path, as_of, obs, tables)
    # exit 03-31: exposed on 04-01 .. 04-01+89 = 06-29, so 0 again from 06-30
    changes = [
        ("A", "2023-04-01", "rm_turnover_exposed", 1), ("A", "2023-06-30", "rm_turnover_exposed", 0),
        ("A", "2023-04-01", "orphaned", 1), ("A", "2023-05-10", "orphaned", 0),
        ("C", "2023-04-01", "rm_turnover_exposed", 1), ("C", "2023-06-30", "rm_turnover_exposed", 0),
        ("C", "2023-04-01", "orphaned", 1),
    ]  # fmt: skip
    exp = expected_episodes(customers, as_of, obs, changes, tables)
    got = actual(src)
    assert got == exp
    # spelled out for A: (0, 90] none, (90, 129] exposed+orphaned, (129, 180] exposed, then none
    assert [r[1:4] + r[5:7] for r in by_id(got, "A")] == [
        (0, 90, 0, 0, 0), (90, 129, 0, 1, 1), (129, 180, 0, 1, 0), (180, 365, 0, 0, 0)]
    assert [r[5:7] for r in by_id(got, "B")] == [(0, 0)]


# --------------------------------------------------------------------------- 2. products


def test_product_dropped_readded_and_duplicate_holding(tmp_path):
    as_of, obs = "2023-12-31", "2023-01-01"
    customers = [cust("P", "2023-01-01")]
    h = [
        ("current_account", "2023-01-01", "2023-03-10"),  # dropped: counts through 03-10
        ("current_account", "2023-04-01", None),  # re-added after a gap
        ("time_deposit", "2023-02-01", "2023-06-30"),
        ("time_deposit", "2023-05-01", "2023-08-31"),  # overlapping duplicate: counts once
        ("credit_card", "2023-02-01", "2023-05-31"),
        ("credit_card", "2023-06-01", "2023-07-15"),  # adjoining holding: no break
    ]
    tables = {
        "customers": customers,
        "product_holdings": [{"customer_id": "P", "product": p, "start_date": s, "end_date": e}
                             for p, s, e in h],
    }  # fmt: skip
    src = write_source(tmp_path, as_of, obs, tables)
    changes = [
        ("P", "2023-01-01", "n_products", 1),
        ("P", "2023-02-01", "n_products", 3),  # + time_deposit + credit_card
        ("P", "2023-03-11", "n_products", 2),  # current_account dropped the day after its end
        ("P", "2023-04-01", "n_products", 3),  # re-added
        ("P", "2023-07-16", "n_products", 2),  # credit_card ends 07-15
        ("P", "2023-09-01", "n_products", 1),  # time_deposit (both holdings) ends 08-31
    ]
    exp = expected_episodes(customers, as_of, obs, changes, tables)
    got = actual(src)
    assert got == exp
    assert [r[1:5] for r in got] == [(0, 31, 0, 1), (31, 69, 0, 3), (69, 90, 0, 2), (90, 196, 0, 3),
                                     (196, 243, 0, 2), (243, 365, 0, 1)]  # fmt: skip


# --------------------------------------------------------------------------- 3. complaints


def test_escalated_complaints(tmp_path):
    as_of, obs = "2023-12-31", "2023-01-01"
    customers = [cust("K", "2023-02-01")]
    tables = {
        "customers": customers,
        "complaints": [
            # escalated on the open date (no escalated_date: counts from complaint_date)
            {"complaint_id": "1", "customer_id": "K", "complaint_date": "2023-02-01", "severity": "high",
             "escalated": "true", "escalated_date": None},
            # escalated later than filed: counts from escalated_date
            {"complaint_id": "2", "customer_id": "K", "complaint_date": "2023-06-01", "severity": "medium",
             "escalated": "true", "escalated_date": "2023-06-20"},
            # not escalated: ignored
            {"complaint_id": "3", "customer_id": "K", "complaint_date": "2023-11-01", "severity": "low",
             "escalated": "false", "escalated_date": None},
        ],
    }  # fmt: skip
    src = write_source(tmp_path, as_of, obs, tables)
    changes = [
        ("K", "2023-02-01", "complaint_escalated_90d", 1),
        ("K", "2023-05-02", "complaint_escalated_90d", 0),  # 02-01 + 90 days
        ("K", "2023-06-20", "complaint_escalated_90d", 1),
        ("K", "2023-09-18", "complaint_escalated_90d", 0),  # 06-20 + 90 days
    ]
    exp = expected_episodes(customers, as_of, obs, changes, tables)
    got = actual(src)
    assert got == exp
    assert got[0][1:3] == (0, 90) and got[0][7] == 1  # covariate 1 from start 0
    assert [r[1:3] for r in got] == [(0, 90), (90, 139), (139, 229), (229, 334)]


# --------------------------------------------------------------------------- 4. churn on a boundary


def test_churn_on_covariate_change_day(tmp_path):
    as_of, obs = "2023-12-31", "2023-01-01"
    customers = [cust("X", "2023-01-01", "2023-04-01"), cust("Y", "2023-01-01", "2023-03-01")]
    tables = {
        "customers": customers,
        "product_holdings": [
            {"customer_id": "X", "product": "current_account", "start_date": "2023-01-01", "end_date": None},
            # starts on the churn day: the last episode is that one day
            {"customer_id": "X", "product": "mutual_fund", "start_date": "2023-04-01", "end_date": None},
            # starts after the churn (still in the extract): no episode after the churn
            {"customer_id": "X", "product": "insurance", "start_date": "2023-05-01", "end_date": None},
            {"customer_id": "Y", "product": "current_account", "start_date": "2023-01-01",
             "end_date": "2023-03-01"},
        ],
        "monthly_balances": [
            {"customer_id": "X", "month": "2023-01", "aum": 1000, "txn_count": 3},
            {"customer_id": "X", "month": "2023-02", "aum": 1000, "txn_count": 3},
            {"customer_id": "X", "month": "2023-03", "aum": 1000, "txn_count": 3},
            # Y: February closes -> tier changes on 03-01, Y's churn day
            {"customer_id": "Y", "month": "2023-01", "aum": 10_000, "txn_count": 3},
            {"customer_id": "Y", "month": "2023-02", "aum": 60_000, "txn_count": 3},
        ],
    }  # fmt: skip
    src = write_source(tmp_path, as_of, obs, tables)
    changes = [
        ("X", "2023-01-01", "n_products", 1), ("X", "2023-04-01", "n_products", 2),
        ("X", "2023-05-01", "n_products", 3),
        ("X", "2023-02-01", "tier", "mass"),
        ("Y", "2023-01-01", "n_products", 1), ("Y", "2023-03-02", "n_products", 0),
        ("Y", "2023-02-01", "tier", "mass"), ("Y", "2023-03-01", "tier", "general"),
        ("Y", "2023-04-01", "tier", "unknown"),  # March missing (closed by the as-of date)
    ]  # fmt: skip
    exp = expected_episodes(customers, as_of, obs, changes, tables)
    got = actual(src)
    assert got == exp
    x, y = by_id(got, "X"), by_id(got, "Y")
    assert x[-1][1:5] == (90, 91, 1, 2)  # 04-01 is tenure (90, 91], event, 2 products
    assert all(r[3] == 0 for r in x[:-1]) and max(r[2] for r in x) == 91
    assert y[-1][1:4] == (59, 60, 1) and y[-1][9] == "general"
    assert y[-2][1:4] == (31, 59, 0)


# --------------------------------------------------------------------------- 5. delayed entry


def test_delayed_entry_starts_at_observation_start_with_known_state(tmp_path):
    as_of, obs = "2023-12-31", "2023-01-01"
    customers = [cust("L", "2018-05-20"), cust("Gone", "2018-05-20", "2022-12-31")]
    tables = {
        "customers": customers,
        "product_holdings": [
            {"customer_id": "L", "product": "current_account", "start_date": "2019-01-01", "end_date": None},
            {"customer_id": "L", "product": "mortgage", "start_date": "2020-01-01", "end_date": "2022-06-30"},
            {"customer_id": "L", "product": "fund_sip", "start_date": "2023-03-15", "end_date": None},
            {"customer_id": "Gone", "product": "current_account", "start_date": "2019-01-01",
             "end_date": "2022-12-31"},
        ],
        "relationship_managers": [rm("R1", "2015-01-01", "2022-11-30"), rm("R2", "2015-01-01")],
        "rm_assignments": [
            {"customer_id": "L", "rm_id": "R1", "start_date": "2018-05-20", "end_date": "2022-11-30"},
            {"customer_id": "L", "rm_id": "R2", "start_date": "2023-02-01", "end_date": None},
        ],
        "complaints": [
            {"complaint_id": "c1", "customer_id": "L", "complaint_date": "2022-12-01", "severity": "high",
             "escalated": "true"},
        ],
        "monthly_balances": [
            {"customer_id": "L", "month": "2022-11", "aum": 100_000, "txn_count": 0},
            {"customer_id": "L", "month": "2022-12", "aum": 100_000, "txn_count": 0},
            {"customer_id": "L", "month": "2023-01", "aum": 100_000, "txn_count": 4},
        ],
        "retention_actions": [
            {"action_id": "a1", "customer_id": "L", "action_date": "2022-11-15", "action_type": "call",
             "trigger": "rm_exit"},
        ],
    }  # fmt: skip
    src = write_source(tmp_path, as_of, obs, tables)
    changes = [
        ("L", "2019-01-01", "n_products", 1), ("L", "2020-01-01", "n_products", 2),
        ("L", "2022-07-01", "n_products", 1), ("L", "2023-03-15", "n_products", 2),
        # R1 left 2022-11-30: exposed 12-01 .. 02-28 (12-01 + 89), orphaned until 01-31
        ("L", "2022-12-01", "rm_turnover_exposed", 1), ("L", "2023-03-01", "rm_turnover_exposed", 0),
        ("L", "2022-12-01", "orphaned", 1), ("L", "2023-02-01", "orphaned", 0),
        ("L", "2022-12-01", "complaint_escalated_90d", 1), ("L", "2023-03-01", "complaint_escalated_90d", 0),
        # Nov + Dec closed with no transactions: dormant from 01-01; January active: not from 02-01
        ("L", "2022-12-01", "tier", "general"),
        ("L", "2023-01-01", "dormant", 1), ("L", "2023-02-01", "dormant", 0),
        ("L", "2023-03-01", "tier", "unknown"),  # February missing
        ("L", "2022-11-15", "retention_contact_90d", 1), ("L", "2023-02-13", "retention_contact_90d", 0),
    ]  # fmt: skip
    exp = expected_episodes(customers, as_of, obs, changes, tables)
    got = actual(src)
    assert got == exp
    entry = days("2018-05-20", obs)
    assert entry == 1687
    assert got[0][:3] == ("L", entry, days("2018-05-20", "2023-01-31") + 1)
    # on the entry day: 1 product, exposed, orphaned, escalated, dormant, general, contacted
    assert got[0][4:] == (1, 1, 1, 1, 1, "general", 1)
    assert got[-1][2] == days("2018-05-20", as_of) + 1
    assert {r[0] for r in got} == {"L"}  # churned before the observation start: left out
    ct = customer_table(src)
    assert ct[["customer_id", "entry", "duration", "event"]].values.tolist() == [
        ["L", entry, days("2018-05-20", as_of) + 1, 0]]
    assert ct.loc[0, "n_products_at_entry"] == 1 and ct.loc[0, "tier_at_entry"] == "general"


# --------------------------------------------------------------------------- 6. monthly figures


def test_monthly_tier_and_dormancy(tmp_path):
    as_of, obs = "2023-12-31", "2023-01-01"
    customers = [cust("M", "2023-01-01")]
    months = [  # month, aum, avg_daily_aum, txn_count
        ("2023-01", 30_000, None, 5),  # potential, active
        ("2023-02", 30_000, 60_000, 0),  # tier from avg_daily_aum: general; one idle month
        ("2023-03", 250_000, None, 0),  # avg missing: aum -> key; 2 idle months -> dormant
        ("2023-04", 250_000, None, 0),  # unchanged
        ("2023-05", 1_000_000, None, 2),  # private (boundary), active
        ("2023-06", 19_999, None, 0),  # mass
        # 2023-07 missing
        ("2023-08", 20_000, None, 0),  # potential (boundary); July missing -> not dormant
        ("2023-09", 199_999.99, None, 0),  # general; Aug + Sep idle -> dormant
        # 2023-10 missing (closed by the as-of date)
    ]
    tables = {
        "customers": customers,
        "monthly_balances": [{"customer_id": "M", "month": m, "aum": a, "avg_daily_aum": g, "txn_count": n}
                             for m, a, g, n in months],
    }  # fmt: skip
    src = write_source(tmp_path, as_of, obs, tables)
    changes = [
        ("M", "2023-02-01", "tier", "potential"),
        ("M", "2023-03-01", "tier", "general"),
        ("M", "2023-04-01", "tier", "key"), ("M", "2023-04-01", "dormant", 1),
        ("M", "2023-06-01", "tier", "private"), ("M", "2023-06-01", "dormant", 0),
        ("M", "2023-07-01", "tier", "mass"),
        ("M", "2023-08-01", "tier", "unknown"),  # July missing
        ("M", "2023-09-01", "tier", "potential"),
        ("M", "2023-10-01", "tier", "general"), ("M", "2023-10-01", "dormant", 1),
        ("M", "2023-11-01", "tier", "unknown"), ("M", "2023-11-01", "dormant", 0),  # October missing
    ]  # fmt: skip
    exp = expected_episodes(customers, as_of, obs, changes, tables)
    got = actual(src)
    assert got == exp
    assert [(r[1], r[8], r[9]) for r in got] == [
        (0, 0, "unknown"), (31, 0, "potential"), (59, 0, "general"), (90, 1, "key"),
        (151, 0, "private"), (181, 0, "mass"), (212, 0, "unknown"), (243, 0, "potential"),
        (273, 1, "general"), (304, 0, "unknown")]  # fmt: skip


# --------------------------------------------------------------------------- 7. retention


def test_winback_is_not_a_retention_contact(tmp_path):
    as_of, obs = "2023-12-31", "2023-01-01"
    customers = [cust("W", "2023-01-01", "2023-06-30"), cust("V", "2023-01-01")]
    tables = {
        "customers": customers,
        "retention_actions": [
            {"action_id": "1", "customer_id": "W", "action_date": "2023-03-01", "action_type": "call",
             "trigger": "early_warning"},
            {"action_id": "2", "customer_id": "W", "action_date": "2023-04-15", "action_type": "visit",
             "trigger": "complaint"},  # overlaps the first window: extends it
            {"action_id": "3", "customer_id": "W", "action_date": "2023-07-15", "action_type": "offer",
             "trigger": "winback"},
            # a win-back only: never a retention contact
            {"action_id": "4", "customer_id": "V", "action_date": "2023-05-01", "action_type": "offer",
             "trigger": "winback"},
        ],
    }  # fmt: skip
    src = write_source(tmp_path, as_of, obs, tables)
    changes = [
        ("W", "2023-03-01", "retention_contact_90d", 1),
        ("W", "2023-07-14", "retention_contact_90d", 0),  # 04-15 + 90 days, after the churn anyway
    ]
    exp = expected_episodes(customers, as_of, obs, changes, tables)
    got = actual(src)
    assert got == exp
    assert [r[1:4] + r[10:] for r in by_id(got, "W")] == [(0, 59, 0, 0), (59, 181, 1, 1)]
    assert [r[1:4] + r[10:] for r in by_id(got, "V")] == [(0, 365, 0, 0)]


# --------------------------------------------------------------------------- 8. customer table


def test_customer_table_entry_duration_event(tmp_path):
    as_of, obs = "2023-12-31", "2023-01-01"
    customers = [
        cust("A", "2022-06-01", "2023-03-10", "natural"),  # churned, delayed entry
        cust("B", "2023-02-01"),  # censored
        cust("C", "2023-05-05", "2023-05-05"),  # churned on the open day
        cust("D", "2023-12-31"),  # opened on the as-of date
        cust("E", "2020-01-01", "2022-12-31"),  # churned before the observation start
        cust("F", "2023-01-01", "2023-01-01"),  # churned on the observation start
        cust("G", "2021-01-01", "2023-01-01"),  # idem, delayed entry
        cust("H", "2023-07-01"),  # opened after the as_of= below
        cust("I", "2023-02-01", "2023-09-01", "unknown"),  # churn after the as_of= below
    ]
    src = write_source(tmp_path, as_of, obs, {"customers": customers})
    cols = ["customer_id", "entry", "duration", "event", "churn_type"]
    ct = customer_table(src)
    assert ct[cols].values.tolist() == [
        ["A", 214, 283, 1, "natural"],  # 2022-06-01 -> 2023-01-01: 214 days; -> 03-10: 282 + 1
        ["B", 0, 334, 0, None],  # 2023-02-01 .. 12-31 inclusive
        ["C", 0, 1, 1, "transfer"],
        ["D", 0, 1, 0, None],
        ["F", 0, 1, 1, "transfer"],
        ["G", 730, 731, 1, "transfer"],
        ["H", 0, 184, 0, None],  # 2023-07-01 .. 12-31
        ["I", 0, 213, 1, "unknown"],  # 2023-02-01 .. 09-01
    ]
    ct = customer_table(src, as_of=D("2023-06-30"))
    assert ct[cols].values.tolist() == [
        ["A", 214, 283, 1, "natural"],
        ["B", 0, 150, 0, None],  # 2023-02-01 .. 06-30
        ["C", 0, 1, 1, "transfer"],
        ["F", 0, 1, 1, "transfer"],
        ["G", 730, 731, 1, "transfer"],
        ["I", 0, 150, 0, None],  # churns after the as_of: censored
    ]
    assert ct["end_date"].dt.date.tolist() == [D(x) for x in (
        "2023-03-10", "2023-06-30", "2023-05-05", "2023-01-01", "2023-01-01", "2023-06-30")]  # fmt: skip
    # independently: the contract's rule in Python
    for a in ("2023-06-30", as_of):
        fu = follow_up(customers, a, obs)
        ct = customer_table(src, as_of=D(a))
        assert {r.customer_id: (r.entry, r.duration, r.event) for r in ct.itertuples()} == {
            cid: (days(o, e), days(o, x) + 1, ev) for cid, (o, e, x, ev) in fu.items()}
        # without covariate tables each customer is one episode (entry, duration]
        assert actual(src, as_of=D(a)) == expected_episodes(customers, a, obs, [], ["customers"])


# --------------------------------------------------------------------------- 9. no look-ahead


def _full_source(root: Path) -> tuple[Source, Rows]:
    """A small source with every covariate table, churns and changes all over 2023."""
    customers = [
        cust("001", "2021-03-15", "2023-07-20"),
        cust("002", "2023-02-10"),
        cust("003", "2022-11-01", "2023-04-01"),
        cust("004", "2023-05-31", "2023-10-31"),
        cust("005", "2020-01-01"),
    ]
    ph = [
        ("001", "current_account", "2021-03-15", None), ("001", "time_deposit", "2023-01-10", "2023-04-30"),
        ("001", "time_deposit", "2023-06-01", None), ("002", "current_account", "2023-02-10", None),
        ("002", "credit_card", "2023-03-31", "2023-08-31"), ("003", "mutual_fund", "2022-12-01", "2023-03-31"),
        ("004", "payroll", "2023-06-01", "2023-09-30"), ("004", "payroll", "2023-07-01", "2023-10-15"),
        ("005", "trust", "2023-04-01", "2023-04-01"), ("005", "trust", "2023-04-03", None),
    ]  # fmt: skip
    asg = [
        ("001", "R1", "2021-03-15", None), ("002", "R1", "2023-02-10", "2023-04-30"),
        ("002", "R3", "2023-07-01", None), ("003", "R2", "2022-11-01", "2023-03-31"),
        ("004", "R2", "2023-05-31", None), ("005", "R1", "2022-01-01", "2023-04-29"),
        ("005", "R3", "2023-04-30", None),
    ]  # fmt: skip
    comp = [
        ("k1", "001", "2023-02-14", True, "2023-03-20"), ("k2", "002", "2023-05-15", True, None),
        ("k3", "004", "2023-06-10", True, "2023-09-01"), ("k4", "005", "2023-08-31", False, None),
        ("k5", "005", "2023-08-31", True, "2023-08-31"),
    ]  # fmt: skip
    ret = [
        ("a1", "001", "2023-04-30", "proactive"), ("a2", "002", "2023-05-01", "rm_exit"),
        ("a3", "003", "2023-05-01", "winback"), ("a4", "005", "2023-06-30", "maturity"),
        ("a5", "005", "2023-08-15", "complaint"),
    ]  # fmt: skip
    rng = np.random.default_rng(7)
    bal = []
    for cid, first in (("001", 1), ("002", 2), ("003", 1), ("004", 6), ("005", 1)):
        for m in range(first, 13):
            if (cid, m) in {("001", 5), ("005", 9), ("002", 11)}:
                continue  # missing months
            aum = float(rng.choice([5_000, 30_000, 80_000, 300_000, 2_000_000]))
            bal.append({"customer_id": cid, "month": f"2023-{m:02d}", "aum": aum,
                        "txn_count": int(rng.choice([0, 0, 3]))})  # fmt: skip
    tables = {
        "customers": customers,
        "product_holdings": [{"customer_id": c, "product": p, "start_date": s, "end_date": e}
                             for c, p, s, e in ph],
        "relationship_managers": [rm("R1", "2010-01-01", "2023-04-29"), rm("R2", "2010-01-01", "2023-06-15"),
                                  rm("R3", "2023-01-01")],
        "rm_assignments": [{"customer_id": c, "rm_id": r, "start_date": s, "end_date": e}
                           for c, r, s, e in asg],
        "complaints": [{"complaint_id": k, "customer_id": c, "complaint_date": d, "severity": "high",
                        "escalated": str(esc).lower(), "escalated_date": ed} for k, c, d, esc, ed in comp],
        "retention_actions": [{"action_id": a, "customer_id": c, "action_date": d, "action_type": "call",
                               "trigger": t} for a, c, d, t in ret],
        "monthly_balances": bal,
    }  # fmt: skip
    return write_source(root, "2023-12-31", "2023-01-01", tables), customers


def _clip(ep: pd.DataFrame, t: dt.date) -> pd.DataFrame:
    """Full-data episodes restricted to days <= t: stop clipped, event 0 if censored by t."""
    ts = pd.Timestamp(t)
    ep = ep[ep["start_date"] <= ts].astype({"stop": "int64", "event": "int64"})
    late = ep["stop_date"] > ts
    ep.loc[late, "stop"] = ep.loc[late, "stop"] - (ep.loc[late, "stop_date"] - ts).dt.days
    ep.loc[late, "event"] = 0
    ep.loc[late, "stop_date"] = ts
    return ep


# the observation start, month ends and starts, churn days, RM exits and the day after
CUT_DAYS = ("2023-01-01", "2023-03-31", "2023-04-01", "2023-04-29", "2023-04-30", "2023-06-15",
            "2023-07-01", "2023-07-20", "2023-08-31", "2023-10-31")  # fmt: skip


def _survival_at(src: Source, t: dt.date, **params) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = load_params(None, params)
    ep = episodes(src, p, as_of=t).sort_values(["customer_id", "start"], ignore_index=True)
    return customer_table(src, p, as_of=t), ep


def _built_and_cut(root: Path, t: dt.date, *, later: dt.date | None = None, **params):
    """The survival data at ``t`` built from scratch, and derived from a build at ``later`` (default: the end)."""
    fresh = load_source(root)
    built = _survival_at(fresh, t, **params)
    fresh.close()
    src = load_source(root)
    p = load_params(None, params)
    episodes(src, p, as_of=later)  # the later build is cached first ...
    cut = _survival_at(src, t, **params)  # ... so t is derived from it
    derived = src.cache["survival"][(t, p.model_dump_json())]
    kinds = {r[0]: r[1] for r in src.con.execute("SELECT table_name, table_type FROM information_schema.tables "
                                                  "WHERE table_name LIKE '__sv_%'").fetchall()}  # fmt: skip
    src.close()
    return built, cut, [kinds[n] for n in derived]


def test_the_survival_data_at_an_earlier_day_is_the_later_builds_cut(tmp_path):
    """materialize derives an earlier as-of from a later build: the same tables as building it."""
    _full_source(tmp_path)
    for t in CUT_DAYS:
        built, cut, kinds = _built_and_cut(tmp_path, D(t))
        assert kinds == ["VIEW", "VIEW"], t  # derived, not built again
        pd.testing.assert_frame_equal(cut[0], built[0], obj=f"customer table at {t}")
        pd.testing.assert_frame_equal(cut[1], built[1], obj=f"episodes at {t}")
        assert len(built[1]) > 0 and built[0]["event"].sum() == sum(D(t) >= D(c) for c in
                                                                     ("2023-07-20", "2023-04-01", "2023-10-31"))
    # a cut of a cut: the earliest later build is the one cut
    built, cut, kinds = _built_and_cut(tmp_path, D("2023-04-29"), later=D("2023-08-31"))
    pd.testing.assert_frame_equal(cut[1], built[1])


def test_the_cut_equals_the_build_on_a_whole_demo_bank(tmp_path, small_demo: Path):
    """Every customer, every covariate of the demo bank: 90 days before its end and at a mid-month day."""
    src = load_source(small_demo)
    end = src.as_of
    src.close()
    for t in (end - dt.timedelta(days=90), dt.date(end.year - 1, 6, 15)):
        built, cut, kinds = _built_and_cut(small_demo, t)
        assert kinds == ["VIEW", "VIEW"]
        assert built[0]["event"].sum() > 100 and (built[0]["end_date"] <= pd.Timestamp(t)).all()
        pd.testing.assert_frame_equal(cut[0], built[0], obj=f"customer table at {t}")
        pd.testing.assert_frame_equal(cut[1], built[1], obj=f"episodes at {t}")


def test_asset_attrition_is_built_not_cut(tmp_path, small_demo: Path):
    """An attrition is confirmed months after its date: an earlier as-of is built from scratch, and differs."""
    src = load_source(small_demo)
    end = src.as_of
    src.close()
    t = end - dt.timedelta(days=90)
    built, cut, kinds = _built_and_cut(small_demo, t, **{"churn.definition": "asset_attrition"})
    assert kinds == ["LOCAL TEMPORARY", "LOCAL TEMPORARY"]  # tables, built
    pd.testing.assert_frame_equal(cut[1], built[1])
    # why: some attritions dated before t are confirmed only after it (so a cut of the later build would differ)
    fresh = load_source(small_demo)
    p = load_params(None, {"churn.definition": "asset_attrition"})
    later = customer_table(fresh, p)
    fresh.close()
    known_later = set(later.loc[(later["event"] == 1) & (later["end_date"] <= pd.Timestamp(t)), "customer_id"])
    known_at_t = set(built[0].loc[built[0]["event"] == 1, "customer_id"])
    assert known_at_t < known_later


def test_no_look_ahead(tmp_path):
    src, _ = _full_source(tmp_path)
    full = episodes(src)
    assert full["event"].sum() == 3
    assert len(full) > 40  # every covariate changes somewhere
    for name in COVS:
        assert full[name].nunique() > 1, name
    cols = ["customer_id", "start", "stop", "event", *COVS, "start_date", "stop_date"]
    # the observation start, month ends and starts, churn days, RM exits and the day after
    for t in CUT_DAYS:
        built = load_source(tmp_path)  # nothing cached: the builders run at t (not a cut of the full build)
        cut = episodes(built, as_of=D(t))
        built.close()
        want = _clip(full, D(t))
        assert normalise(cut) == normalise(want), t
        pd.testing.assert_frame_equal(cut[cols].reset_index(drop=True), want[cols].reset_index(drop=True),
                                      check_dtype=False)  # fmt: skip
        if t not in ("2023-01-01", "2023-04-01", "2023-07-20", "2023-10-31"):  # churn days
            continue
        ct = customer_table(src, as_of=D(t))
        first = want.groupby("customer_id")["start"].min()
        last = want.groupby("customer_id")[["stop", "event"]].last()
        assert ct.set_index("customer_id")["entry"].to_dict() == first.to_dict(), t
        assert ct.set_index("customer_id")["duration"].to_dict() == last["stop"].to_dict(), t
        assert ct.set_index("customer_id")["event"].to_dict() == last["event"].to_dict(), t


# --------------------------------------------------------------------------- 10. asset attrition


def _months(start: str, values: list[float]) -> list[str]:
    p = pd.Period(start, "M")
    return [str(p + i) for i in range(len(values))]


def test_asset_attrition(tmp_path):
    as_of, obs = "2023-12-31", "2022-01-01"
    high, low = [100_000.0] * 12, [10_000.0]
    series = {
        "A": high + low * 12,  # 3+ low months from 2023-01: churns 2023-01-31
        "B": high + low * 2 + [100_000.0] * 10,  # only 2 low months
        "C": [40_000.0] * 12 + [1_000.0] * 12,  # reference 40,000 < 50,000
        "D": high + low * 12,  # recorded churn 2023-01-15 is earlier: it wins
        "E": high + low * 12,  # recorded churn 2023-06-15 is later: attrition wins
        "F": [50_000.0] * 12 + [5_000.0] * 12,  # reference exactly 50,000: counts
        "G": high + low + [None] + low * 10,  # February missing: the run starts in March
        "H": high + [19_999.0, 10_000.0, 20_000.0] + [100.0] * 9,  # 20,000 is not below 20%
    }
    recorded = {"D": ("2023-01-15", "natural"), "E": ("2023-06-15", "natural")}
    customers = [cust(c, "2021-06-01", *recorded.get(c, (None, None))) for c in series]
    bal = [{"customer_id": c, "month": m, "aum": v, "txn_count": 1}
           for c, vals in series.items() for m, v in zip(_months("2022-01", vals), vals, strict=True)
           if v is not None]  # fmt: skip
    tables = {"customers": customers, "monthly_balances": bal}
    params = load_params(overrides={"churn.definition": "asset_attrition"})
    src = write_source(tmp_path, as_of, obs, tables)

    ct = customer_table(src, params)
    got = {r.customer_id: (str(r.end_date.date()), r.event, r.churn_type) for r in ct.itertuples()}
    assert got == {
        "A": ("2023-01-31", 1, "transfer"),
        "B": (as_of, 0, None),
        "C": (as_of, 0, None),
        "D": ("2023-01-15", 1, "natural"),
        "E": ("2023-01-31", 1, got["E"][2]),  # the type of this case is not pinned by the contract
        "F": ("2023-01-31", 1, "transfer"),
        "G": ("2023-03-31", 1, "transfer"),
        "H": ("2023-04-30", 1, "transfer"),  # run April-June: 100 < 20,000
    }
    assert ct.set_index("customer_id").loc["A", "duration"] == days("2021-06-01", "2023-01-31") + 1
    # the recorded definition sees none of the attrition
    assert customer_table(src)["event"].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]

    # a run is only known once its 3rd month has closed
    for t, event in (("2023-02-28", 0), ("2023-03-30", 0), ("2023-03-31", 1)):
        ct = customer_table(src, params, as_of=D(t)).set_index("customer_id")
        assert ct.loc["A", "event"] == event, t
        assert ct.loc["A", "end_date"].date() == D("2023-01-31" if event else t), t
        assert ct.loc["D", "event"] == 1  # a recorded churn is known at once

    # episodes end at the attrition date with the event; tier/dormant as usual
    churns = {"A": "2023-01-31", "D": "2023-01-15", "E": "2023-01-31", "F": "2023-01-31",
              "G": "2023-03-31", "H": "2023-04-30"}  # fmt: skip
    changes: list[Change] = []
    tier = {100_000.0: "general", 10_000.0: "mass", 40_000.0: "potential", 1_000.0: "mass",
            50_000.0: "general", 5_000.0: "mass", 19_999.0: "mass", 20_000.0: "potential", 100.0: "mass"}
    for c, vals in series.items():
        prev = "unknown"
        for m, v in zip(_months("2022-01", vals), vals, strict=True):
            now = "unknown" if v is None else tier[v]
            if now != prev:
                changes.append((c, str((pd.Period(m, "M") + 1).start_time.date()), "tier", now))
            prev = now
    exp = expected_episodes(customers, as_of, obs, changes, tables, churns=churns)
    got_ep = actual(src, params)
    assert got_ep == exp
    assert by_id(got_ep, "A")[-1][2:4] == (days("2021-06-01", "2023-01-31") + 1, 1)


# --------------------------------------------------------------------------- fitting


@pytest.mark.filterwarnings("ignore::lifelines.exceptions.ConvergenceWarning")
def test_episodes_fit_cox_time_varying(tmp_path):
    rng = np.random.default_rng(2023)
    start = D("2021-01-01")
    as_of = D("2023-12-31")
    customers, ph, asg, comp, ret, bal = [], [], [], [], [], []
    for i in range(40):
        cid = f"{i:04d}"
        opened = start + dt.timedelta(days=int(rng.integers(0, 900)))
        churn = opened + dt.timedelta(days=int(rng.integers(30, 1000)))
        churned = rng.random() < 0.5 and churn <= as_of
        customers.append(cust(cid, str(opened), str(churn) if churned else None))
        last = churn if churned else as_of
        for j, prod in enumerate(rng.choice(["current_account", "time_deposit", "mutual_fund",
                                             "insurance", "credit_card"], size=3, replace=False)):
            s = min(opened + dt.timedelta(days=int(rng.integers(0, 200)) * (j > 0)), last)
            e = s + dt.timedelta(days=int(rng.integers(20, 600)))
            ph.append({"customer_id": cid, "product": str(prod), "start_date": str(s),
                       "end_date": str(e) if e <= last else None})  # fmt: skip
        rm_id = f"R{i % 4}" if opened <= D("2022-12-31") else "R1"
        asg.append({"customer_id": cid, "rm_id": rm_id, "start_date": str(opened),
                    "end_date": "2022-12-31" if rm_id == "R0" else None})  # fmt: skip
        if rm_id == "R0" and i % 8 == 0:  # R0 left on 2022-12-31; some get a new RM
            asg.append({"customer_id": cid, "rm_id": "R1", "start_date": "2023-02-15", "end_date": None})
        if rng.random() < 0.4:
            d = opened + dt.timedelta(days=int(rng.integers(0, 300)))
            if d <= as_of:
                comp.append({"complaint_id": f"k{i}", "customer_id": cid, "complaint_date": str(d),
                             "severity": "medium", "escalated": "true"})  # fmt: skip
        if rng.random() < 0.4:
            d = opened + dt.timedelta(days=int(rng.integers(0, 300)))
            if d <= as_of:
                ret.append({"action_id": f"a{i}", "customer_id": cid, "action_date": str(d),
                            "action_type": "call", "trigger": "proactive"})  # fmt: skip
        for p in pd.period_range("2021-01", "2023-11", freq="M"):
            if p.end_time.date() >= opened:
                bal.append({"customer_id": cid, "month": str(p), "aum": float(rng.integers(1, 400) * 1000),
                            "txn_count": int(rng.choice([0, 0, 1, 5]))})  # fmt: skip
    tables = {
        "customers": customers, "product_holdings": ph,
        "relationship_managers": [rm("R0", "2015-01-01", "2022-12-31")] + [rm(f"R{k}", "2015-01-01")
                                                                          for k in (1, 2, 3)],
        "rm_assignments": asg, "complaints": comp, "retention_actions": ret, "monthly_balances": bal,
    }  # fmt: skip
    src = write_source(tmp_path, str(as_of), "2021-01-01", tables)
    ep = episodes(src)
    assert ep["customer_id"].nunique() == 40
    assert ep["event"].sum() == sum(1 for c in customers if c["churn_date"])
    cols = ["n_products", "rm_turnover_exposed", "orphaned", "complaint_escalated_90d", "dormant",
            "retention_contact_90d"]  # fmt: skip
    for c in cols:
        assert ep[c].notna().all(), c
    df = ep[["customer_id", "start", "stop", "event", *cols]].astype({c: float for c in cols})
    ctv = CoxTimeVaryingFitter(penalizer=0.1)
    ctv.fit(df, id_col="customer_id", start_col="start", stop_col="stop", event_col="event")
    assert np.isfinite(ctv.params_.to_numpy()).all()
    assert list(ctv.params_.index) == cols


# --------------------------------------------------------------------------- 11. sticky products


def test_sticky_product_indicators(tmp_path):
    from crmresearch.timelines.products import STICKY_COVARIATES, STICKY_PRODUCTS

    assert STICKY_PRODUCTS == ("mobile_banking", "fund_sip", "payroll", "third_party_custody")
    as_of, obs = "2023-12-31", "2023-01-01"
    customers = [cust("S", "2023-01-01"), cust("T", "2020-06-01", "2023-08-15"), cust("U", "2023-01-01")]
    h = [
        ("S", "current_account", "2023-01-01", None),
        ("S", "payroll", "2023-02-01", "2023-04-30"),  # held, dropped (0 from 05-01) ...
        ("S", "payroll", "2023-07-01", None),  # ... and re-taken
        ("S", "mobile_banking", "2023-03-01", "2023-06-30"),
        ("S", "mobile_banking", "2023-05-01", "2023-08-31"),  # overlapping holding: no change
        ("S", "mobile_banking", "2023-09-01", "2023-09-30"),  # adjoining holding: no break; 0 from 10-01
        ("S", "third_party_custody", "2023-06-01", None),
        ("S", "time_deposit", "2023-10-01", None),  # not sticky: the count stays 4 on 10-01
        ("T", "fund_sip", "2021-01-01", "2022-12-31"),  # dropped on the entry day
        ("T", "mobile_banking", "2022-05-01", None),  # held at entry (delayed entry)
        ("T", "payroll", "2023-08-15", None),  # taken on the churn day: a one-day last episode
        ("T", "fund_sip", "2023-09-01", None),  # after the churn: never seen
        ("U", "precious_metals", "2023-01-01", None),  # not sticky: no indicator, no column
        ("U", "payroll_card", "2023-03-01", None),  # not sticky either (exact product names)
    ]
    tables = {
        "customers": customers,
        "product_holdings": [{"customer_id": c, "product": p, "start_date": s, "end_date": e}
                             for c, p, s, e in h],
    }  # fmt: skip
    src = write_source(tmp_path, as_of, obs, tables)
    ep = episodes(src)
    sticky = list(STICKY_COVARIATES)
    assert sticky == ["holds_mobile_banking", "holds_fund_sip", "holds_payroll", "holds_third_party_custody"]
    assert [c for c in ep.columns if c.startswith("holds_")] == sticky
    cols = ["start", "stop", "event", "n_products", *sticky]
    got = {cid: [tuple(int(v) for v in r) for r in g[cols].itertuples(index=False)]
           for cid, g in ep.groupby("customer_id")}  # fmt: skip
    # S opened 2023-01-01: 02-01 is day 31, 03-01 59, 05-01 120, 06-01 151, 07-01 181, 10-01 273
    #            start stop ev  n  mob sip pay cust
    assert got["S"] == [(0, 31, 0, 1, 0, 0, 0, 0),
                        (31, 59, 0, 2, 0, 0, 1, 0),  # payroll
                        (59, 120, 0, 3, 1, 0, 1, 0),  # + mobile banking
                        (120, 151, 0, 2, 1, 0, 0, 0),  # payroll dropped the day after 04-30
                        (151, 181, 0, 3, 1, 0, 0, 1),  # + custody
                        (181, 273, 0, 4, 1, 0, 1, 1),  # payroll re-taken
                        (273, 365, 0, 4, 0, 0, 1, 1)]  # mobile banking dropped: split, same count
    entry, churn = days("2020-06-01", obs), days("2020-06-01", "2023-08-15")
    assert got["T"] == [(entry, churn, 0, 1, 1, 0, 0, 0), (churn, churn + 1, 1, 2, 1, 0, 1, 0)]
    assert got["U"] == [(0, 59, 0, 1, 0, 0, 0, 0), (59, 365, 0, 2, 0, 0, 0, 0)]  # split by the count only
    # split only where some covariate changes
    covs = ep.drop(columns=["customer_id", "branch_id", "start", "stop", "event", "start_date", "stop_date"])
    same = ep["customer_id"].eq(ep["customer_id"].shift())
    assert not (same & (covs == covs.shift()).all(axis=1)).any()
    # no look-ahead: cut at each change day and the day before; the episodes before agree
    for t in ("2023-04-30", "2023-05-01", "2023-09-30", "2023-10-01", "2023-08-14", "2023-08-15"):
        cut = episodes(src, as_of=D(t))
        want = _clip(ep, D(t))
        pd.testing.assert_frame_equal(cut[["customer_id", *cols]].reset_index(drop=True),
                                      want[["customer_id", *cols]].reset_index(drop=True),
                                      check_dtype=False)  # fmt: skip
    # without product_holdings the indicators are unknown (null), like n_products
    bare = episodes(write_source(tmp_path / "bare", as_of, obs, {"customers": customers}))
    assert bare[["n_products", *sticky]].isna().all().all()


def test_sticky_product_indicators_have_no_look_ahead(tmp_path):
    """The full source of test_no_look_ahead (customer 004: overlapping payroll holdings),
    cut at dates around the payroll changes."""
    from crmresearch.timelines.products import STICKY_COVARIATES

    src, _ = _full_source(tmp_path)
    full = episodes(src)
    # 004: payroll 06-01..09-30 and 07-01..10-15 merge into one spell; opened 05-31, churned 10-31
    p = full[full["customer_id"] == "004"]
    runs = p.groupby((p["holds_payroll"] != p["holds_payroll"].shift()).cumsum()).agg(
        v=("holds_payroll", "first"), a=("start_date", "min"), b=("stop_date", "max"))
    assert [(r.v, str(r.a.date()), str(r.b.date())) for r in runs.itertuples()] == [
        (0, "2023-05-31", "2023-05-31"), (1, "2023-06-01", "2023-10-15"), (0, "2023-10-16", "2023-10-31")]
    cols = ["customer_id", "start", "stop", "event", "n_products", *STICKY_COVARIATES]
    for t in ("2023-05-31", "2023-06-01", "2023-06-30", "2023-07-01", "2023-09-30", "2023-10-15", "2023-10-16"):
        cut = episodes(src, as_of=D(t))
        want = _clip(full, D(t))
        pd.testing.assert_frame_equal(cut[cols].reset_index(drop=True), want[cols].reset_index(drop=True),
                                      check_dtype=False)  # fmt: skip


def test_shared_change_points_are_built_once_and_equal_the_builders(small_demo: Path):
    """The episodes and the early warnings read one table per shared builder, equal to the builder's own query."""
    from crmresearch.analyses.early_warnings import _warnings_sql, early_warnings
    from crmresearch.survival.episodes import SHARED_CHANGES, change_points, context, materialize

    src = load_source(small_demo)
    try:
        ctx = context(src)
        cust, _ = materialize(src, ctx)
        tables = {b: change_points(src, ctx, b) for b in SHARED_CHANGES}
        assert all(tables.values()) and len(set(tables.values())) == len(SHARED_CHANGES)
        assert len(src.cache["change_points"]) == len(SHARED_CHANGES)  # made by the episodes' build
        order = "ORDER BY ALL"
        for builder, table in tables.items():
            own = src.con.execute(f"SELECT * FROM ({builder(ctx)}) {order}").df()
            assert len(own) > 100
            pd.testing.assert_frame_equal(src.con.execute(f"SELECT * FROM {table} {order}").df(), own)
        warned = early_warnings(src)
        assert len(src.cache["change_points"]) == len(SHARED_CHANGES)  # read, not made again
        inline = src.con.execute(_warnings_sql(ctx, cust) + " ORDER BY warning_date, customer_id, rule").df()
        assert {"no_transaction", "product_drop"} <= set(warned["rule"])
        for c in ("warning_date", "active_until", "first_contact_date"):
            if not pd.api.types.is_datetime64_dtype(inline[c]):
                inline[c] = pd.to_datetime(inline[c])
        pd.testing.assert_frame_equal(warned[list(inline.columns)], inline)
        # another as-of: its own tables
        early = src.as_of - dt.timedelta(days=90)
        assert change_points(src, context(src, as_of=early), SHARED_CHANGES[0]) not in tables.values()
    finally:
        src.close()
