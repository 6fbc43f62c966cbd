"""Project rules: dependencies locked and in step, notebooks without outputs, docs in step, lint clean."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from crmresearch.data.contract import FLAT_CUSTOMERS, TABLES

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"python-duckdb": "duckdb"}
LOCK, LOCK_DEV = "py311.lock", "py311-dev.lock"


def _name_spec(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _sync_module():
    """requirements/sync_environment.py, the one reader of the lock files (``make lock`` runs it)."""
    spec = importlib.util.spec_from_file_location("sync_environment", ROOT / "requirements" / "sync_environment.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _requirements() -> tuple[dict[str, str], dict[str, str]]:
    """pyproject.toml's ranges: (the package's dependencies, every dependency of the package and its extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == ">=3.11"
    base = dict(_name_spec(r) for r in project["dependencies"])
    everything = dict(base)
    for extra in project["optional-dependencies"].values():
        everything.update(_name_spec(r) for r in extra)
    return base, everything


def _lock(name: str) -> dict[str, str]:
    return _sync_module().lock_pins((ROOT / "requirements" / name).read_text(encoding="utf-8"))


def test_environment_yml_pins_the_locks_versions() -> None:
    """environment.yml names every dependency of pyproject.toml (extras too), pinned to the dev lock's version."""
    _, wanted = _requirements()
    pins = _lock(LOCK_DEV)
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    conda = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, spec = _name_spec(dep)
            if name == "python":
                assert spec == "=3.11", "environment.yml: python=3.11, the lock's Python"
            elif name != "pip":
                conda[CONDA_NAMES.get(name, name)] = spec
        elif isinstance(dep, dict):  # the pip section: packages conda-forge does not carry
            for req in dep.get("pip", []):
                if not req.startswith("-"):  # not "-e ." or other pip options
                    name, spec = _name_spec(req)
                    conda[name] = spec
    assert conda == {n: f"=={pins[n]}" for n in wanted}, "run make lock (it rewrites environment.yml's pins)"


def test_locks_pin_every_dependency_within_pyproject_ranges_with_hashes() -> None:
    """Both locks pin (==, with hashes) every dependency inside pyproject's range, and agree on every version."""
    from packaging.specifiers import SpecifierSet

    base, everything = _requirements()
    dev, lock = _lock(LOCK_DEV), _lock(LOCK)
    for wanted, pins, name in ((everything, dev, LOCK_DEV), (base, lock, LOCK)):
        missing = sorted(set(wanted) - set(pins))
        assert not missing, f"{name} lacks {missing}: run make lock"
        outside = {n: pins[n] for n, spec in wanted.items() if pins[n] not in SpecifierSet(spec.split(";")[0])}
        assert not outside, f"{name}: pins outside pyproject's ranges {outside}: run make lock"
    assert {n: v for n, v in lock.items() if dev.get(n) != v} == {}, f"{LOCK} and {LOCK_DEV} differ: run make lock"
    for name in (LOCK, LOCK_DEV):
        text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
        assert "#    make lock" in text, f"{name} was not made by make lock"
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        unhashed = [b.split()[0] for b in blocks if b.strip() and ("==" not in b.split()[0] or "--hash=sha256:" not in b)]
        assert not unhashed, f"{name}: requirements without an exact version and hashes: {unhashed}"


def test_make_and_ci_install_from_the_locks() -> None:
    """make report, make test (CI's command) and make lab install the lock with --require-hashes, then the package."""
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"LOCK     := requirements/{LOCK}" in make and f"LOCK_DEV := requirements/{LOCK_DEV}" in make
    for stamp, lock in ((".installed:", "$(LOCK)"), (".installed-test:", "$(LOCK_DEV)")):
        recipe = make.split(f"$(VENV)/{stamp}", 1)[1].split("\n\n", 1)[0]
        assert f"pip install --quiet --require-hashes -r {lock}" in recipe, recipe
        assert "pip install --quiet --no-deps -e ." in recipe, recipe
        assert recipe.count("pip install") == 2, f"{stamp} installs something besides the lock and the package"
    assert re.search(r"^report: \$\(VENV\)/\.installed ", make, re.M)
    assert re.search(r"^test: \$\(VENV\)/\.installed-test$", make, re.M)
    assert re.search(r"^lab: \$\(VENV\)/\.installed-test$", make, re.M)
    assert re.search(r"^lock: ", make, re.M) and "--generate-hashes" in make


def test_this_environment_is_the_dev_lock() -> None:
    """The test venv holds exactly the dev lock's versions (plus the package, pip and setuptools): CI tests what users get."""
    from packaging.markers import Marker

    if not (os.environ.get("CI") or Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()):
        pytest.skip("not the project's .venv (make test) nor CI")
    from crmresearch.core.provenance import installed_distributions

    installed = dict(line.split("==", 1) for line in installed_distributions())
    text = (ROOT / "requirements" / LOCK_DEV).read_text(encoding="utf-8")
    wanted = {}
    for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)\s*(?:;\s*([^\\\n]*))?", text, re.M):
        if not m.group(3) or Marker(m.group(3).strip()).evaluate():
            wanted[_name_spec(m.group(1))[0]] = m.group(2)
    differ = {n: (v, installed.get(n)) for n, v in wanted.items() if installed.get(n) != v}
    extra = sorted(set(installed) - set(wanted) - {"crmresearch", "pip", "setuptools"})
    assert not differ and not extra, f"(lock, installed): {differ}; not in the lock: {extra} (make clean-venv test)"


def _notebooks() -> list[Path]:
    return sorted([*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "src/crmresearch/report/notebooks").glob("*.ipynb")])


def test_there_are_notebooks() -> None:
    assert _notebooks()


@pytest.mark.parametrize("nb_path", _notebooks(), ids=lambda p: p.name)
def test_notebook_committed_without_outputs_and_with_parameters_cell(nb_path: Path) -> None:
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{nb_path.name}: code cells {dirty} hold outputs; clear them before committing"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb_path.name}: needs exactly one cell tagged 'parameters'"


def test_data_contract_doc_names_every_table_and_column() -> None:
    doc = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    for spec in (*TABLES.values(), FLAT_CUSTOMERS):
        assert f"### {spec.name}" in doc, spec.name
        for col in spec.columns:
            if spec is FLAT_CUSTOMERS and col.name in {c.name for c in TABLES["customers"].columns}:
                continue
            assert re.search(rf"\b{col.name}\b", doc), f"{spec.name}.{col.name} is not documented"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in readme and "make report" in readme
    assert re.search(r"^make test$", ci, re.M)


def test_docs_pictures_exist_and_have_their_script() -> None:
    """Every picture docs/ shows is a file beside it, and the screenshots come with the script that makes them."""
    shown = []
    for md in (ROOT / "docs").glob("*.md"):
        for src in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", md.read_text(encoding="utf-8")):
            shown.append(src)
            assert (md.parent / src).is_file(), f"{md.name} shows {src}, which does not exist"
    assert {"img/branch-zh.png", "img/bank-zh.png", "img/index-zh.png"} <= set(shown)
    script = (ROOT / "docs" / "img" / "make_screenshots.py").read_text(encoding="utf-8")
    for name in ("branch-zh.png", "bank-zh.png", "index-zh.png"):
        assert name in script
        assert (ROOT / "docs" / "img" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    res = subprocess.run([ruff, "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _run_notebook(name: str, parameters: dict, tmp_path: Path) -> str:
    """Execute a notebook with papermill; return its JSON text (fails on any cell error)."""
    papermill = pytest.importorskip("papermill")
    out = tmp_path / name
    papermill.execute_notebook(str(ROOT / "notebooks" / name), str(out), parameters=parameters,
                               cwd=str(ROOT / "notebooks"), kernel_name="python3", progress_bar=False)  # fmt: skip
    return out.read_text(encoding="utf-8")


@pytest.mark.slow
def test_survival_notebook_runs_with_papermill(small_demo: Path, tmp_path: Path) -> None:
    text = _run_notebook("survival_data.ipynb", {"source": str(small_demo),
                         "params_file": str(ROOT / "params" / "defaults.yaml")}, tmp_path)  # fmt: skip
    assert "source is valid" in text and "image/png" in text


@pytest.mark.slow
def test_exploration_notebook_runs_with_papermill(small_demo: Path, tmp_path: Path) -> None:
    """The analyst's tour runs on the demo bank in under a minute, results showing themselves (issue 17).

    Its last section opens the bundle of "the last run" (one is built first, as ``crmresearch report``
    would, in a temporary cache) and takes one branch's month from it without recomputing the bank.
    """
    from crmresearch import load_source
    from crmresearch.core.params import Params
    from crmresearch.month.bundle import build_bundle

    cache = tmp_path / "cache"
    src = load_source(small_demo)
    try:
        build_bundle(src, Params(), month="2026-10", path=cache / "2026-10-0123456789abcdef")
    finally:
        src.close()
    t0 = time.perf_counter()
    text = _run_notebook("explore_library.ipynb", {"source": str(small_demo), "month": "2026-10",
                                                   "cache_dir": str(cache)}, tmp_path)  # fmt: skip
    wall = time.perf_counter() - t0
    assert "image/png" in text and "concordance" in text and "verdict" in text
    assert "naive (biased)" in text and "auc" in text and "suggested_action" in text
    assert "hazard_ratios_scope" in text and "share_in_target" in text
    nb = json.loads(text)
    html = [o["data"]["text/html"] for c in nb["cells"] for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert sum("<table" in "".join(h) for h in html) >= 10, "results show themselves as tables (_repr_html_)"
    assert any("客户" in "".join(h) for h in html), "a result in the other language (to_summary('zh'))"
    assert "B001: 800 customers; bank-wide model and context from the bundle" in text
    assert 'id="header"' in text or "kpi-tiles" in text, "the branch report's first screen, from the bundle"
    cells = sum(c["metadata"]["papermill"]["duration"] or 0 for c in nb["cells"] if c["cell_type"] == "code")
    assert cells < 60, f"the notebook's cells took {cells:.0f} s (the kernel's start included: {wall:.0f} s)"
