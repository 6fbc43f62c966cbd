"""The survival tables on a whole demo bank, the CLI, formats and flat extracts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from crmresearch import load_params, load_source
from crmresearch.cli import main
from crmresearch.core.errors import InputError
from crmresearch.data.demo import DemoConfig, write_demo_bank
from crmresearch.survival.episodes import COVARIATES, customer_table, episodes
from public_data import BANK_CSV

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(small_demo: Path):
    src = load_source(small_demo)
    return src, customer_table(src), episodes(src)


def test_episodes_tile_each_customers_follow_up(demo) -> None:
    _, cust, ep = demo
    assert (ep["stop"] > ep["start"]).all()
    g = ep.sort_values(["customer_id", "start"]).groupby("customer_id")
    first, last = g.first(), g.last()
    c = cust.set_index("customer_id")
    assert (first["start"] == c.loc[first.index, "entry"]).all()
    assert (last["stop"] == c.loc[last.index, "duration"]).all()
    assert (last["event"] == c.loc[last.index, "event"]).all()
    assert ep["event"].sum() == cust["event"].sum()  # only last episodes carry events
    gaps = ep.sort_values(["customer_id", "start"])
    same = gaps["customer_id"].eq(gaps["customer_id"].shift())
    assert (gaps["start"][same] == gaps["stop"].shift()[same]).all()


def test_episodes_split_only_where_a_covariate_changes(demo) -> None:
    _, _, ep = demo
    ep = ep.sort_values(["customer_id", "start"])
    cols = list(COVARIATES)
    same_customer = ep["customer_id"].eq(ep["customer_id"].shift())
    unchanged = (ep[cols] == ep[cols].shift()).all(axis=1)
    assert not (same_customer & unchanged).any()


def test_every_covariate_varies_on_the_demo(demo) -> None:
    _, _, ep = demo
    for col in COVARIATES:
        assert ep[col].nunique() > 1, col


def test_customer_table_matches_source(demo) -> None:
    src, cust, _ = demo
    raw = src.df("customers")
    obs, as_of = pd.Timestamp(src.observation_start), pd.Timestamp(src.as_of)
    in_follow_up = raw[raw["churn_date"].isna() | (raw["churn_date"] >= obs)]
    assert set(cust["customer_id"]) == set(in_follow_up["customer_id"])
    assert cust["customer_id"].str.len().eq(10).all()  # leading zeros kept
    m = cust.merge(raw, on="customer_id", suffixes=("", "_raw"))
    end = m["churn_date"].fillna(as_of)
    assert ((end - m["open_date"]).dt.days + 1).eq(m["duration"]).all()
    assert ((m["open_date"].clip(lower=obs) - m["open_date"]).dt.days).eq(m["entry"]).all()
    assert (m["event"] == m["churn_date"].notna()).all()
    assert "name" not in cust.columns
    assert cust["tier_at_entry"].notna().all() and cust["n_products_at_entry"].ge(1).all()


def test_earlier_as_of_censors_and_drops_later_customers(demo) -> None:
    src, cust, _ = demo
    cut = dt.date(2026, 3, 15)
    early = customer_table(src, as_of=cut).set_index("customer_id")
    full = cust.set_index("customer_id")
    assert (early["end_date"] <= pd.Timestamp(cut)).all()
    assert (full.loc[early.index, "open_date"] <= pd.Timestamp(cut)).all()
    later = full[(full["open_date"] <= pd.Timestamp(cut)) & (full["end_date"] >= full["entry_date"])]
    assert set(early.index) <= set(later.index)
    churned_after = full.loc[early.index].query("event == 1 and end_date > @pd.Timestamp(@cut)").index
    assert (early.loc[churned_after, "event"] == 0).all() and len(churned_after) > 0


def test_as_of_outside_the_data_is_an_error(demo) -> None:
    src, _, _ = demo
    with pytest.raises(InputError, match="after the extract's as-of"):
        episodes(src, as_of=src.as_of + dt.timedelta(days=1))
    with pytest.raises(InputError, match="before the observation start"):
        customer_table(src, as_of=src.observation_start - dt.timedelta(days=1))


def test_missing_tables_leave_covariates_unknown(tmp_path: Path, small_demo: Path) -> None:
    part = tmp_path / "part"
    part.mkdir()
    for t in ("extract", "branches", "customers", "monthly_balances"):
        (part / f"{t}.parquet").write_bytes((small_demo / f"{t}.parquet").read_bytes())
    ep = episodes(load_source(part))
    for col in ("n_products", "rm_turnover_exposed", "orphaned", "complaint_escalated_90d",
                "retention_contact_90d"):  # fmt: skip
        assert ep[col].isna().all(), col
    assert ep["tier"].notna().all() and ep["dormant"].notna().all()


@pytest.mark.parametrize("fmt", ["csv", "duckdb"])
def test_demo_formats_give_the_same_survival_data(tmp_path: Path, fmt: str) -> None:
    cfg = DemoConfig(branches=2, customers_per_branch=200, months=12, seed=3)
    a = customer_table(load_source(write_demo_bank(tmp_path / "pq", cfg)))
    b = customer_table(load_source(write_demo_bank(tmp_path / fmt, cfg, fmt=fmt)))
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_asset_attrition_finds_silent_leavers(small_demo: Path) -> None:
    src = load_source(small_demo)
    rec = customer_table(src)
    att = customer_table(src, load_params(overrides={"churn.definition": "asset_attrition"}))
    assert att["event"].sum() > rec["event"].sum()
    # a customer cannot leave later under asset attrition than on the recorded date
    m = rec[rec.event == 1].merge(att, on="customer_id", suffixes=("_rec", "_att"))
    assert (m["end_date_att"] <= m["end_date_rec"]).all()


def test_cli_survival_table(tmp_path: Path, small_demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cust.csv"
    assert main(["survival-table", str(small_demo), "--out", str(out)]) == 0
    assert "customer table" in capsys.readouterr().err
    back = pd.read_csv(out, dtype={"customer_id": str})
    assert back["customer_id"].str.startswith("0").all()
    # no silent overwrite
    assert main(["survival-table", str(small_demo), "--out", str(out), "--episodes"]) != 0
    assert "--force" in capsys.readouterr().err
    ep_out = tmp_path / "ep.parquet"
    assert main(["survival-table", str(small_demo), "--episodes", "--as-of", "2026-06-30",
                 "--churn-definition", "asset_attrition", "--out", str(ep_out)]) == 0  # fmt: skip
    ep = pd.read_parquet(ep_out)
    assert (pd.to_datetime(ep["stop_date"]) <= pd.Timestamp("2026-06-30")).all()
    assert main(["survival-table", str(small_demo), "--out", str(tmp_path / "x.txt")]) != 0
    assert not list(tmp_path.glob(".tmp-*"))


def test_flat_extract_customer_table_and_no_episodes(tmp_path: Path) -> None:
    csv = BANK_CSV
    if not csv.exists():
        pytest.skip("public dataset not available")
    from crmresearch.data.flat import import_flat

    src = load_source(import_flat(csv, "bank-churn-modelling", tmp_path / "flat"))
    cust = customer_table(src)
    assert len(cust) == 10_000 and cust["event"].sum() == 2037
    assert cust["open_date"].isna().all() and (cust["entry"] == 0).all()
    assert "name" not in cust.columns and "Surname" not in cust.columns
    by = cust.groupby("n_products_at_entry")["event"].agg(["size", "sum"])
    assert by.loc[3].tolist() == [266, 220]
    with pytest.raises(InputError, match="flat extract"):
        episodes(src)
    assert main(["survival-table", str(tmp_path / "flat"), "--episodes", "--out", str(tmp_path / "e.parquet")]) != 0


def test_demo_with_mid_month_as_of_is_valid(tmp_path: Path) -> None:
    cfg = DemoConfig(branches=1, customers_per_branch=150, months=6, as_of=dt.date(2026, 5, 14), seed=2)
    src = load_source(write_demo_bank(tmp_path / "d", cfg))
    assert src.as_of == dt.date(2026, 5, 14)
    assert src.df("monthly_balances")["month"].max() == pd.Timestamp("2026-04-01")
    assert src.observation_start == dt.date(2025, 11, 1)


def test_handovers_table(demo) -> None:
    from crmresearch.survival.episodes import context
    from crmresearch.timelines.rm_exposure import handovers

    src, cust, ep = demo
    h = handovers(context(src))
    assert len(h) > 0 and (h["exit_date"] <= pd.Timestamp(src.as_of)).all()
    done = h.dropna(subset=["next_start"])
    assert (done["handover_gap_days"] == (done["next_start"] - done["exit_date"]).dt.days).all()
    assert (done["handover_gap_days"] >= 1).all()
    assert h["next_start"].isna().any()  # some customers are still orphaned at the as-of date
    # a customer still in follow-up after the exit is exposed to turnover the day after it
    m = h.merge(cust[["customer_id", "entry_date", "end_date"]], on="customer_id")
    followed = m[(m["end_date"] > m["exit_date"]) & (m["entry_date"] <= m["exit_date"] + pd.Timedelta(days=1))]
    exposed = set(ep.loc[ep["rm_turnover_exposed"] == 1, "customer_id"])
    assert len(followed) > 0 and set(followed["customer_id"]) <= exposed


def test_flat_customer_table_keeps_age_and_works_without_n_products(tmp_path) -> None:
    """A flat extract's own ``age`` column is the customer table's age (not a clash), and a
    flat extract without ``n_products`` still gives a table (coverage unknown)."""
    import pandas as pd

    from crmresearch import load_source
    from crmresearch.survival.episodes import customer_table

    pd.DataFrame({"branch_id": ["B1"], "branch_name": ["一"]}).to_csv(tmp_path / "branches.csv", index=False)
    pd.DataFrame({"customer_id": ["a", "b"], "branch_id": "B1", "tenure_months": [3, 10],
                  "churned": [True, False], "age": [41, 29], "score": [1.5, 2.5]}).to_csv(
        tmp_path / "customers.csv", index=False)  # fmt: skip
    ct = customer_table(load_source(tmp_path))
    assert ct["age"].tolist() == [41, 29] and "age_1" not in ct.columns
    assert ct["n_products_at_entry"].isna().all() and ct["score"].astype(float).tolist() == [1.5, 2.5]
    assert ct["event"].tolist() == [1, 0]
