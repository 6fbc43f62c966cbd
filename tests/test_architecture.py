"""The package's shape (issue 13): layers, no import circle, units within their limits, no flat tests
outside the data layer, and a wheel that installs and renders a report like any package.

The layer rule itself lives in pyproject.toml (``[tool.importlinter]``: each package imports only the
packages to its left, at module level and inside functions); this test runs import-linter on it.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "crmresearch"
LAYERS = ["core", "data", "timelines", "survival", "viz", "analyses", "month", "report", "batch", "cli"]

MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 900, 600, 120


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer() -> None:
    stray = [p.relative_to(PACKAGE) for p in _modules()
             if p.relative_to(PACKAGE).parts[0].removesuffix(".py") not in [*LAYERS, "__init__"]]  # fmt: skip
    assert not stray, f"modules outside the layers of docs/architecture.md: {stray}"


def test_import_linter_layers_contract_is_kept() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 kept, 0 broken" in res.stdout, res.stdout


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_between_any_two_modules() -> None:
    g = grimp.build_graph("crmresearch", cache_dir=None)  # imports inside functions count too
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    assert _cycles(graph) == []


def _units(path: Path) -> list[tuple[str, int, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            out.append(("class" if isinstance(node, ast.ClassDef) else "function", node.end_lineno - node.lineno + 1,
                        node.lineno))  # fmt: skip
    return out


def test_no_unit_over_the_limits() -> None:
    over = []
    for p in _modules():
        rel = p.relative_to(ROOT)
        n = len(p.read_text(encoding="utf-8").splitlines())
        if n > MAX_MODULE:
            over.append(f"{rel}: module of {n} lines (at most {MAX_MODULE})")
        for kind, size, line in _units(p):
            limit = MAX_CLASS if kind == "class" else MAX_FUNCTION
            if size > limit:
                over.append(f"{rel}:{line}: {kind} of {size} lines (at most {limit})")
    assert not over, "\n".join(over)


def test_no_flat_test_outside_the_data_layer() -> None:
    """Analyses ask a source what it can answer (``source.can``/``source.require``), never ``.flat``."""
    found = []
    for p in _modules():
        if p.relative_to(PACKAGE).parts[0] == "data":
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "flat":
                found.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert not found, found


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{argv}: exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_a_wheel_installed_in_a_fresh_venv_renders_a_branch_report(tmp_path: Path) -> None:
    """``pip wheel . && pip install dist/*.whl`` into a fresh venv, run from another folder (no source tree)."""
    dist = tmp_path / "dist"
    tree = tmp_path / "tree"  # a clean copy: no build/ or egg-info of earlier builds can leak into the wheel
    for name in ("pyproject.toml", "README.md"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(tree)], tmp_path, env)
    (wheel,) = dist.glob("crmresearch-*.whl")
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    py = target / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], tmp_path, env, timeout=1500)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**env, "HOME": str(tmp_path / "home"), "PATH": f"{target / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    where = _run([str(py), "-c", "import crmresearch, sys; print(crmresearch.__file__)"], work, env).stdout.strip()
    assert Path(where).is_relative_to(target), f"imported {where}, not the wheel's install"
    cli = str(target / "bin" / "crmresearch")
    _run([cli, "demo-data", "bank", "--branches", "2", "--customers-per-branch", "300", "--months", "15",
          "--as-of", "2026-10-31", "--seed", "3"], work, env)  # fmt: skip
    _run([cli, "keygen", "pseudonym.key"], work, env)
    _run([cli, "report", "bank", "--month", "2026-10", "--branch", "B001", "--key-file", "pseudonym.key",
          "--out", "reports", "--workers", "1", "--cache-dir", str(tmp_path / "cache")], work, env)  # fmt: skip
    page = (work / "reports" / "2026-10" / "branches" / "B001.html").read_text(encoding="utf-8")
    assert "B001" in page and "<img" in page and "Traceback" not in page
    assert (work / "reports" / "2026-10" / "index.html").is_file()
