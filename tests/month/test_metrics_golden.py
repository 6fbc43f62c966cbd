"""Golden test: the demo bank's exact ``metrics.json`` for 2026-10 stays what it is (issue 13).

``make report`` builds the demo bank (``crmresearch demo-data data/demo``) and
renders the month 2026-10 with ``params/defaults.yaml``; with
``--metrics-dir`` it also writes each report's exact ``metrics.json``.  This
test computes those same files and compares them with the committed ones in
``tests/golden/metrics/`` (``bank.json`` and one ``<branch_id>.json`` per
branch), so a restructure of the package that changes any number fails here.

How the numbers are computed: the test runs, in-process, what the report run
does, minus the rendering:

1. ``crmresearch demo-data DIR`` (:func:`crmresearch.cli.main`, the command
   ``make report`` runs, with its default sizes and seed);
2. the bank stage: :func:`crmresearch.data.contract.load_source` and
   :func:`crmresearch.month.bundle.build_bundle` with the parameters of
   ``params/defaults.yaml`` (and any per-branch file of ``params/branches/``,
   via :func:`crmresearch.core.params.branch_params`, as the runner merges them);
3. per report, what the first cell of ``notebooks/branch_report.ipynb`` and
   ``notebooks/bank_report.ipynb`` runs: ``BranchReport.open(bundle, branch,
   language=..., params_json=..., key_file=...)`` (``BankReport.open`` for the
   bank) and ``report.write_metrics(path)``.

These files are byte-identical to what ``crmresearch report ... --metrics-dir``
writes (checked when the golden files were made); computing them without
papermill and HTML rendering takes about 15 s instead of about 45 s.

The comparison is structural: the same keys, the same list lengths, ints,
strings, booleans and nulls equal, floats equal to a relative tolerance of
1e-9 (NaN equals NaN).  Fields that are inherently run-specific are dropped
before comparing and are not in the golden files: :data:`RUN_SPECIFIC_FIELDS`
(``package_version``: a version bump is not a change of results).
``metrics.json`` holds no timestamp and no path (``generated_at`` and the
bundle's path appear only in the HTML and the executed notebooks), so nothing
else is dropped.  A mismatch names the golden file and the JSON paths
(``$.kpis.monthly_churn_rate``) of the first differences.

Regenerating the golden files (only when a change of results is intended;
say why in the commit)::

    CRMRESEARCH_UPDATE_GOLDEN=1 python -m pytest tests/month/test_metrics_golden.py

rewrites every file in ``tests/golden/metrics/`` (and removes files of reports
that no longer exist); those tests then report "skipped" with the reason.
Review the diff with ``git diff tests/golden/metrics`` before committing.

Runtime: about 15 s on one machine (demo bank 2 s, the bank stage most of the
rest, nine reports' metrics a few seconds), once per module (a module-scoped
fixture); the comparisons themselves take milliseconds.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmresearch.cli import main
from crmresearch.core.params import branch_params, load_params
from crmresearch.data.contract import load_source
from crmresearch.data.demo import DemoConfig
from crmresearch.month.bundle import build_bundle
from crmresearch.report.reports import BankReport, BranchReport

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = ROOT / "tests" / "golden" / "metrics"
PARAMS = ROOT / "params" / "defaults.yaml"  # what `make report` passes as --params
MONTH = "2026-10"  # MONTH of the Makefile
UPDATE_ENV = "CRMRESEARCH_UPDATE_GOLDEN"
#: top-level fields of metrics.json that are inherently run-specific: dropped before comparing
RUN_SPECIFIC_FIELDS = ("package_version",)
REL_TOL = 1e-9
MAX_SHOWN = 10  # differences listed in a failure message
#: the reports of the demo bank: the bank summary and every branch (B001 ... of the default config)
REPORTS = ["bank", *(f"B{i:03d}" for i in range(1, DemoConfig().branches + 1))]


def _updating() -> bool:
    return os.environ.get(UPDATE_ENV, "") not in ("", "0")


def _comparable(text: str) -> dict[str, Any]:
    """A metrics.json text as the golden files hold it: parsed, run-specific fields dropped."""
    content = json.loads(text)
    for field in RUN_SPECIFIC_FIELDS:
        content.pop(field, None)
    return content


def _golden_text(content: dict[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def _differences(golden: Any, actual: Any, path: str = "$") -> Iterator[str]:
    """Every difference between two parsed JSON values, as ``<json path>: <what differs>``."""
    if isinstance(golden, dict) and isinstance(actual, dict):
        missing = [k for k in golden if k not in actual]
        extra = [k for k in actual if k not in golden]
        if missing:
            yield f"{path}: keys missing (only in the golden file): {missing}"
        if extra:
            yield f"{path}: keys added (not in the golden file): {extra}"
        for k in golden:
            if k in actual:
                yield from _differences(golden[k], actual[k], f"{path}.{k}")
    elif isinstance(golden, list) and isinstance(actual, list):
        if len(golden) != len(actual):
            yield f"{path}: {len(actual)} items, golden {len(golden)}"
        for i, (g, a) in enumerate(zip(golden, actual, strict=False)):
            yield from _differences(g, a, f"{path}[{i}]")
    elif type(golden) is not type(actual):  # bool vs int, int vs float, null vs number ...
        yield f"{path}: {actual!r} ({type(actual).__name__}), golden {golden!r} ({type(golden).__name__})"
    elif isinstance(golden, float):
        if not (math.isnan(golden) and math.isnan(actual)
                or math.isclose(golden, actual, rel_tol=REL_TOL, abs_tol=0.0)):  # fmt: skip
            yield f"{path}: {actual!r}, golden {golden!r} (relative tolerance {REL_TOL:g})"
    elif golden != actual:  # int, str, bool, None
        yield f"{path}: {actual!r}, golden {golden!r}"


def _mismatch_message(name: str, diffs: list[str]) -> str:
    rel = (GOLDEN_DIR / name).relative_to(ROOT)
    shown = "\n  ".join(diffs[:MAX_SHOWN])
    more = f"\n  ... and {len(diffs) - MAX_SHOWN} more" if len(diffs) > MAX_SHOWN else ""
    return (f"{rel}: {len(diffs)} difference(s) from the demo bank's metrics.json of {MONTH}:\n  {shown}{more}\n"
            f"If the change of results is intended, regenerate: {UPDATE_ENV}=1 python -m pytest "
            f"tests/month/test_metrics_golden.py")  # fmt: skip


@pytest.fixture(scope="module")
def demo_metrics(tmp_path_factory: pytest.TempPathFactory, key: Path) -> dict[str, str]:
    """The exact metrics.json text of every report of the demo bank's month, by report name."""
    root = tmp_path_factory.mktemp("golden")
    demo = root / "demo"
    assert main(["demo-data", str(demo)]) == 0  # as `make report` builds data/demo
    params = load_params(PARAMS)
    source = load_source(demo, params)
    try:
        ids = source.df("branches")["branch_id"].astype(str).tolist()
        per_branch = branch_params(params, PARAMS.parent / "branches", ids)
        bundle = build_bundle(source, params, month=MONTH, path=root / "cache" / "bundle")
    finally:
        source.close()
    out: dict[str, str] = {}
    for name in ["bank", *bundle.branch_ids]:
        p = params if name == "bank" else per_branch.get(name, params)
        opts = {"language": p.language, "params_json": json.dumps(p.to_dict(), sort_keys=True),
                "key_file": str(key)}  # fmt: skip
        report = BankReport.open(str(bundle.path), **opts) if name == "bank" else \
            BranchReport.open(str(bundle.path), name, **opts)  # fmt: skip
        target = root / "metrics" / f"{name}.json"
        target.parent.mkdir(exist_ok=True)
        report.write_metrics(target)
        out[name] = target.read_text(encoding="utf-8")
    return out


def test_golden_files_are_the_demo_banks_reports(demo_metrics: dict[str, str]) -> None:
    """One golden file per report of the month, no more: a report that appears or goes is a change too."""
    assert sorted(demo_metrics) == sorted(REPORTS), "the demo bank's reports changed: update REPORTS"
    if _updating():
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        for f in GOLDEN_DIR.glob("*.json"):
            if f.stem not in demo_metrics:
                f.unlink()
        pytest.skip(f"{UPDATE_ENV} is set: stale golden files removed")
    have = sorted(f.stem for f in GOLDEN_DIR.glob("*.json"))
    assert have == sorted(demo_metrics), (f"{GOLDEN_DIR.relative_to(ROOT)} holds {have}; the demo bank's reports "
                                          f"are {sorted(demo_metrics)}")  # fmt: skip


@pytest.mark.parametrize("name", REPORTS)
def test_metrics_match_golden(demo_metrics: dict[str, str], name: str) -> None:
    """The report's exact metrics.json equals the committed golden file (structurally, see the module docstring)."""
    actual = _comparable(demo_metrics[name])
    path = GOLDEN_DIR / f"{name}.json"
    if _updating():
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(_golden_text(actual), encoding="utf-8")
        pytest.skip(f"{UPDATE_ENV} is set: {path.relative_to(ROOT)} regenerated")
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing; create it with {UPDATE_ENV}=1"
    golden = json.loads(path.read_text(encoding="utf-8"))
    diffs = list(_differences(golden, actual))
    if diffs:
        pytest.fail(_mismatch_message(path.name, diffs))


def test_differences_name_the_json_paths() -> None:
    """The comparison itself: tolerance, NaN, types, keys and list lengths, each named by its JSON path."""
    golden = {"a": 1, "b": [{"x": 0.1, "y": float("nan")}, {"x": 2.0}], "c": "s", "d": None, "e": True}
    assert list(_differences(golden, json.loads(json.dumps(golden)))) == []
    assert list(_differences(golden, golden | {"b": [{"x": 0.1 * (1 + 1e-12), "y": float("nan")}, {"x": 2.0}]})) == []
    bad = {"a": 2, "b": [{"x": 0.1 * (1 + 1e-6), "y": 1.0}], "c": "t", "d": 0, "e": 1, "f": 1}
    diffs = list(_differences(golden, bad))
    assert [d.split(":")[0] for d in diffs] == ["$", "$.a", "$.b", "$.b[0].x", "$.b[0].y", "$.c", "$.d", "$.e"]
    assert "$.a: 2, golden 1" in diffs
    assert "tests/golden/metrics/B001.json: 8 difference(s)" in _mismatch_message("B001.json", diffs)
