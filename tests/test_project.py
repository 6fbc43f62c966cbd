"""Project rules: dependencies in step, notebooks without outputs, docs in step, lint clean."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from crmresearch.data.contract import FLAT_CUSTOMERS, TABLES

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"python-duckdb": "duckdb"}


def _name_spec(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = dict(_name_spec(r) for r in project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted.update(_name_spec(r) for r in extra)
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    conda = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, spec = _name_spec(dep)
            if name not in ("python", "pip"):
                conda[CONDA_NAMES.get(name, name)] = spec
        elif isinstance(dep, dict):  # the pip section: packages conda-forge does not carry
            for req in dep.get("pip", []):
                if not req.startswith("-"):  # not "-e ." or other pip options
                    name, spec = _name_spec(req)
                    conda[name] = spec
    assert conda == wanted
    assert project["requires-python"] == ">=3.11"


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
    text = _run_notebook("explore_library.ipynb", {"source": str(small_demo), "month": "2026-10"}, tmp_path)
    assert "image/png" in text and "concordance" in text and "verdict" in text
    assert "naive (biased)" in text and "auc" in text and "suggested_action" in text
    assert "hazard_ratios_scope" in text and "share_in_target" in text
