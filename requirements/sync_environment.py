"""Write the lock's versions into environment.yml (run by ``make lock``; stdlib only).

Every dependency of pyproject.toml (the package's and every extra's) is pinned in
environment.yml to the version the lock file holds for Python 3.11, in the conda
section or the pip section where it already is; a new dependency is added to the
conda section under its PyPI name (move it, or rename it for conda-forge, by hand:
the names differ for some packages, see ``CONDA_NAMES``). tests/test_project.py
checks the result.

Usage: python requirements/sync_environment.py requirements/py311-dev.lock environment.yml
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

#: conda-forge names that differ from PyPI's (PyPI name -> conda name); tests/test_project.py has the same map
CONDA_NAMES = {"duckdb": "python-duckdb"}


def canonical(name: str) -> str:
    """A name as PEP 503 normalises it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(text: str) -> dict[str, str]:
    """``name -> version`` of a uv/pip-tools lock, for Python 3.11 (lines marked for Python >= 3.12 skipped)."""
    pins = {}
    for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)\s*(?:;\s*([^\\\n]*))?", text, re.M):
        marker = m.group(3) or ""
        if re.search(r"python_full_version\s*(>=\s*'3\.1[2-9]|==\s*'3\.1[2-9])", marker):
            continue
        pins[canonical(m.group(1))] = m.group(2)
    return pins


def direct_dependencies(pyproject: Path) -> list[str]:
    """The names of the package's dependencies and of every extra's, in order, once each."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    out: list[str] = []
    for r in reqs:
        name = canonical(re.match(r"\s*([A-Za-z0-9_.-]+)", r).group(1))
        if name not in out:
            out.append(name)
    return out


def main(lock: str, env_file: str) -> int:
    """Rewrite ``env_file``'s version specs to the lock's; return 0."""
    root = Path(env_file).resolve().parent
    pins = lock_pins(Path(lock).read_text(encoding="utf-8"))
    wanted = direct_dependencies(root / "pyproject.toml")
    lines = Path(env_file).read_text(encoding="utf-8").splitlines()
    seen = set()
    item = re.compile(r"^(\s*-\s+)([A-Za-z0-9_.-]+)\s*([<>=!~][^#]*)?(#.*)?$")
    for i, line in enumerate(lines):
        m = item.match(line)
        if not m or m.group(2) in ("python", "pip"):
            continue
        conda = m.group(2)
        pypi = next((k for k, v in CONDA_NAMES.items() if v == conda), canonical(conda))
        if pypi in pins and pypi in wanted:
            lines[i] = f"{m.group(1)}{conda}=={pins[pypi]}" + (f"  {m.group(4)}" if m.group(4) else "")
            seen.add(pypi)
    missing = [n for n in wanted if n not in seen]
    if missing:
        at = next(i for i, line in enumerate(lines) if re.match(r"^\s*-\s+pip:\s*$", line))
        for n in missing:
            lines.insert(at, f"  - {CONDA_NAMES.get(n, n)}=={pins[n]}")
            at += 1
        print(f"environment.yml: added {', '.join(missing)} to the conda section (check the conda-forge names)")
    Path(env_file).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
