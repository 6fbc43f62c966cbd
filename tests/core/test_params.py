from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crmresearch.core.params import Params, ParamsError, load_params

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_file_equals_built_in_defaults() -> None:
    data = yaml.safe_load((ROOT / "params" / "defaults.yaml").read_text(encoding="utf-8"))
    assert data == Params().to_dict()
    assert load_params(ROOT / "params" / "defaults.yaml") == Params()


def test_partial_file_is_merged_over_defaults(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("churn:\n  asset_attrition:\n    months: 4\n", encoding="utf-8")
    params = load_params(p)
    assert params.churn.asset_attrition.months == 4
    assert params.churn.asset_attrition.fraction == 0.2
    assert params.windows.rm_turnover_days == 90


def test_overrides_apply_after_file(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("windows: {rm_turnover_days: 60}\n", encoding="utf-8")
    params = load_params(p, {"churn.definition": "asset_attrition", "windows.rm_turnover_days": 30})
    assert params.churn.definition == "asset_attrition"
    assert params.windows.rm_turnover_days == 30


@pytest.mark.parametrize(
    ("text", "key", "what"),
    [
        ("churn:\n  definitoin: recorded\n", "churn.definitoin", "unknown key"),
        ("windows:\n  rm_turnover_days: ninety\n", "windows.rm_turnover_days", "integer"),
        ("churn:\n  asset_attrition:\n    fraction: 1.5\n", "churn.asset_attrition.fraction", "less than 1"),
        ("dormancy_months: 0\n", "dormancy_months", "greater than or equal to 1"),
        ("churn:\n  definition: vibes\n", "churn.definition", "recorded"),
        ("high_value_tiers: [vip]\n", "high_value_tiers", "not tier names"),
        ("tiers:\n  - {name: mass, min_aum: 0}\n  - {name: key, min_aum: 0}\n", "tiers", "increase"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path: Path, text: str, key: str, what: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError) as err:
        load_params(p)
    msg = str(err.value)
    assert str(p) in msg
    assert key.split(".")[0] in msg and what in msg


def test_missing_or_non_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="mapping"):
        load_params(p)


def test_every_command_takes_params() -> None:
    from crmresearch.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, sp in sub.choices.items():
        assert any(a.dest == "params" for a in sp._actions), name


def test_cli_reports_bad_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crmresearch.cli import main

    p = tmp_path / "bad.yaml"
    p.write_text("windows: {complaint_days: -3}\n", encoding="utf-8")
    (tmp_path / "src").mkdir()
    code = main(["validate", str(tmp_path / "src"), "--params", str(p)])
    assert code != 0
    err = capsys.readouterr().err
    assert "windows.complaint_days" in err and str(p) in err


def test_branch_overrides_are_merged_and_validated_up_front(tmp_path: Path) -> None:
    from crmresearch.core.params import branch_params

    d = tmp_path / "branches"
    d.mkdir()
    (d / "B002.yaml").write_text("retention:\n  response_target_days: 3\n", encoding="utf-8")
    base = load_params(overrides={"min_cell_size": 20})
    got = branch_params(base, d, ["B001", "B002"])
    assert set(got) == {"B002"}
    assert got["B002"].retention.response_target_days == 3 and got["B002"].min_cell_size == 20
    assert branch_params(base, tmp_path / "none", ["B001"]) == {}
    (d / "B003.yaml").write_text("min_cell_size: 5\n", encoding="utf-8")
    (d / "B001.yaml").write_text("retention:\n  grace_days: -1\n", encoding="utf-8")
    with pytest.raises(ParamsError) as err:
        branch_params(base, d, ["B001", "B002"])
    msg = str(err.value)
    assert "B003.yaml: no branch 'B003'" in msg and "B001.yaml" in msg and "retention.grace_days" in msg
