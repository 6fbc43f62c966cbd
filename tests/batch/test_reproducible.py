"""A past month made again (issue 17): the same inputs in the same environment give the same files.

The demo month (2 branches x 300 customers, in Chinese: the pages embed a CJK font subset) is
rendered twice by the real command line, each run in its own process with its own cache and
output folder. Its exact metrics.json files are byte-identical and its pages identical but for
the generation time (stripped). The test venv is installed from the dev lock (``make test``,
CI), so this is the lock's environment; the manifest and every page's "About this report"
record it (package version, environment digest, source fingerprint, parameters and notebook
digests), and ``crmresearch report --check-environment`` compares this environment with it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from crmresearch.core.fingerprint import file_digest, source_fingerprint
from crmresearch.core.params import load_params
from crmresearch.core.provenance import environment, params_digest
from crmresearch.data.demo import DemoConfig, write_demo_bank
from run_helpers import report_args
from visible_text import english_words

MONTH = "2026-10"
#: the generation time ("YYYY-MM-DD HH:MM", the only text of a page that differs from one run to the next)
GENERATED = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")
PAGES = ["index.html", "bank.html", "branches/B001.html", "branches/B002.html"]


def _crmresearch(*args: object, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crmresearch.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={k: v for k, v in os.environ.items() if not k.startswith("CRMRESEARCH_TEST")})  # fmt: skip


@dataclass
class Runs:
    source: Path
    out: list[Path]  # <out>/<month> of each run
    metrics: list[Path]  # <metrics-dir>/<month> of each run


@pytest.fixture(scope="module")
def runs(key: Path, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("reproducible")
    source = write_demo_bank(root / "bank", DemoConfig(branches=2, customers_per_branch=300, months=15, seed=3))
    outs, metrics = [], []
    for i in (1, 2):
        out, mdir = root / f"reports{i}", root / f"metrics{i}"
        res = _crmresearch(*report_args(source, out, key, root / f"cache{i}", "--language", "zh", "--workers", "2",
                                        "--metrics-dir", mdir, month=MONTH))  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        outs.append(out / MONTH)
        metrics.append(mdir / MONTH)
    return Runs(source, outs, metrics)


@pytest.mark.slow
def test_the_month_made_twice_gives_the_same_metrics_and_pages(runs: Runs) -> None:
    names = sorted(p.name for p in runs.metrics[0].glob("*.json"))
    assert names == ["B001.json", "B002.json", "bank.json"]
    for name in names:
        assert (runs.metrics[0] / name).read_bytes() == (runs.metrics[1] / name).read_bytes(), name
    for page in PAGES:
        first, second = ((out / page).read_text(encoding="utf-8") for out in runs.out)
        assert GENERATED.search(first), f"{page}: no generation time to strip"
        assert GENERATED.sub("<generated>", first) == GENERATED.sub("<generated>", second), page
        assert "<img" in first or page == "index.html"


@pytest.mark.slow
def test_the_manifest_records_the_provenance(runs: Runs) -> None:
    manifest = json.loads((runs.out[0] / "manifest.json").read_text(encoding="utf-8"))
    env = environment()
    nbs = Path(sys.modules["crmresearch"].__file__).parent / "report" / "notebooks"
    assert manifest["crmresearch_version"] and manifest["python"] == env["python"]
    assert manifest["environment_digest"] == env["environment_digest"]
    assert manifest["environment"] == env["environment"] and list(manifest)[-1] == "environment"
    assert manifest["source_fingerprint"] == source_fingerprint(runs.source)
    params = load_params(None, {"language": "zh"})
    assert manifest["params_digest"] == params_digest(params)
    assert manifest["notebook_digests"] == {"bank": file_digest(nbs / "bank_report.ipynb"),
                                            "branch": file_digest(nbs / "branch_report.ipynb")}  # fmt: skip
    for name in ("bank", "B001", "B002"):
        entry = manifest["reports"][name]
        assert entry["environment_digest"] == env["environment_digest"] and entry["package_version"]
        assert entry["params_digest"] == params_digest(params)
        assert entry["notebook_digest"] == manifest["notebook_digests"]["bank" if name == "bank" else "branch"]
    second = json.loads((runs.out[1] / "manifest.json").read_text(encoding="utf-8"))
    keys = ("crmresearch_version", "python", "environment_digest", "environment", "source_fingerprint", "params_digest",
            "notebook_digests", "code_digest")  # fmt: skip
    assert {k: second[k] for k in keys} == {k: manifest[k] for k in keys}


@pytest.mark.slow
def test_about_this_report_shows_the_provenance_in_chinese(runs: Runs) -> None:
    manifest = json.loads((runs.out[0] / "manifest.json").read_text(encoding="utf-8"))
    for page, scope in (("branches/B001.html", "branch"), ("bank.html", "bank")):
        html = (runs.out[0] / page).read_text(encoding="utf-8")
        start = html.rindex("<section", 0, html.index('id="about"'))
        about = html[start:html.index("</section>", start) + len("</section>")]
        for label, value in (("crmresearch 版本", manifest["crmresearch_version"]),
                             ("运行环境摘要（全部已安装软件包）", manifest["environment_digest"]),
                             ("数据源指纹", manifest["source_fingerprint"]),
                             ("参数摘要", manifest["params_digest"]),
                             ("笔记本摘要", manifest["notebook_digests"][scope]),
                             ("代码摘要", manifest["code_digest"])):  # fmt: skip
            assert f"<th>{label}</th><td>{value}</td>" in about, (page, label)
        assert not english_words(about), english_words(about)
    index = (runs.out[0] / "index.html").read_text(encoding="utf-8")
    assert f"运行环境摘要: {manifest['environment_digest']}" in index or f"运行环境摘要：{manifest['environment_digest']}" in index


@pytest.mark.slow
def test_check_environment_matches_this_environment_and_lists_differences(runs: Runs, tmp_path: Path) -> None:
    res = _crmresearch("report", "--check-environment", runs.out[0] / "manifest.json", timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith(f"environment matches the run of {MONTH}") and environment()["environment_digest"] in res.stdout
    assert _crmresearch("report", "--check-environment", runs.out[0], timeout=120).returncode == 0  # the month folder

    manifest = json.loads((runs.out[0] / "manifest.json").read_text(encoding="utf-8"))
    lines = [x for x in manifest["environment"] if not x.startswith("jinja2==")]
    lines = [("pandas==0.0.1" if x.startswith("pandas==") else x) for x in lines] + ["left-pad==1.0"]
    from crmresearch.core.provenance import environment_digest

    other = {**manifest, "python": "3.11.0", "environment": sorted(lines), "environment_digest": environment_digest(lines)}
    edited = tmp_path / "manifest.json"
    edited.write_text(json.dumps(other), encoding="utf-8")
    res = _crmresearch("report", "--check-environment", edited, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "environment differs from the run of 2026-10" in res.stdout and "4 difference(s)" in res.stdout
    jinja2 = next(x for x in manifest["environment"] if x.startswith("jinja2=="))
    pandas = next(x for x in manifest["environment"] if x.startswith("pandas==")).split("==")[1]
    for line in ("changed: python 3.11.0 -> ", f"changed: pandas 0.0.1 -> {pandas}", f"added: {jinja2}",
                 "missing: left-pad==1.0"):  # fmt: skip
        assert line in res.stdout, res.stdout
