"""The watch list: ranked by the model's risk, masked, and validated out of time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmresearch import load_source
from crmresearch.analyses.watchlist import suggested_actions, watch_list
from crmresearch.core.privacy import pseudonymize, resolve_pseudonyms
from crmresearch.survival.episodes import customer_table


@pytest.fixture(scope="module")
def listed(small_demo: Path):
    src = load_source(small_demo)
    return src, watch_list(src, month="2026-10", branch="B002", top=40, key=b"test-key")


def test_ranked_active_branch_customers_only(listed) -> None:
    src, wl = listed
    t = wl.table
    assert len(t) == 40 and t["rank"].tolist() == list(range(1, 41))
    assert t["churn_risk_90d"].is_monotonic_decreasing and t["churn_risk_90d"].between(0, 1).all()
    cust = customer_table(src).set_index("customer_id")
    assert (cust.loc[t["customer_id"], "branch_id"] == "B002").all()
    assert (cust.loc[t["customer_id"], "event"] == 0).all(), "a churned customer is not at risk"
    assert t["suggested_action"].str.len().gt(0).all()


def test_masked_output(listed, small_demo: Path) -> None:
    src, wl = listed
    s = wl.summary
    assert "customer_id" not in s.columns and s["pseudonym"].str.match(r"^P[0-9a-f]{16}$").all()
    names = set(pd.read_parquet(small_demo / "customers.parquet")["name"])
    assert not any(v in names for v in s.astype(str).to_numpy().ravel())
    back = resolve_pseudonyms(s["pseudonym"], src.df("customers")["customer_id"], b"test-key")
    assert back["customer_id"].tolist() == wl.table["customer_id"].tolist()
    assert pseudonymize(["x"], b"other")[0] != pseudonymize(["x"], b"test-key")[0]


def test_out_of_time_backtest_beats_chance(listed) -> None:
    _, wl = listed
    b = wl.backtest
    assert b is not None and b["scoring_date"] == "2026-08-02"  # 90 days before the month's end
    assert b["churned"] > 10 and b["auc_lower"] > 0.5 and b["concordance"] > 0.55
    assert 0.5 < b["expected"] / b["observed"] < 2, "the 90-day risks are roughly calibrated"


def test_actions_follow_the_signals() -> None:
    s = pd.DataFrame({"complaint": [0, 0, 1], "rm_exit": [0, 1, 0], "orphaned": [0, 1, 0],
                      "dormant": [1, 0, 0], "few_products": [0, 0, 1]})  # fmt: skip
    assert suggested_actions(s).tolist() == [
        "re-activation call", "handover visit by the new RM",
        "supervisor follow-up of the complaint; cross-sell a sticky product"]
    assert np.all(suggested_actions(pd.DataFrame({"dormant": [0]})) == "relationship review")


def test_keygen_and_unmask_cli(small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from crmresearch.cli import main
    from crmresearch.core.privacy import load_key

    key_file = tmp_path / "secret" / "pseudonym.key"
    assert main(["keygen", str(key_file)]) == 0
    assert key_file.stat().st_mode & 0o077 == 0, "the key is readable by its owner only"
    assert main(["keygen", str(key_file)]) == 2, "an existing key is never replaced silently"
    ids = ["0000000005", "0000000017"]
    tokens = pseudonymize(ids, load_key(key_file)).tolist()
    capsys.readouterr()
    assert main(["unmask", str(small_demo), *tokens, "--key-file", str(key_file)]) == 0
    out = capsys.readouterr().out.split()
    assert out == [tokens[0], ids[0], tokens[1], ids[1]]
    monkeypatch.setenv("CRMRESEARCH_PSEUDONYM_KEY", "another-key-" + "0" * 32)
    assert main(["unmask", str(small_demo), tokens[0]]) == 2  # the wrong key resolves nothing: bad input
    assert "(not found)" in capsys.readouterr().out


def test_pooled_baseline_gives_every_active_customer_a_risk(listed) -> None:
    """Far out in tenure the raw Breslow steps rest on a few customers (a 90-day window catches
    one jump or none); the pooled band rates give every customer a positive, finite risk."""
    from crmresearch.analyses.causes import causes_model
    from crmresearch.analyses.watchlist import pooled_baseline

    src, _ = listed
    pooled = pooled_baseline(causes_model(src, as_of=pd.Timestamp("2026-10-31").date()))
    assert (pooled["rate_per_day"] > 0).all() and np.isfinite(pooled["rate_per_day"]).all()
    everyone = watch_list(src, month="2026-10", branch="B002", top=10**6, validate=False).table
    assert (everyone["churn_risk_90d"] > 0).all()
    with pytest.raises(Exception, match="unknown branch"):
        watch_list(src, month="2026-10", branch="NOPE")
