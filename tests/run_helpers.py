"""Helpers of the tests that run reports: the command line of a run, and tiny report notebooks.

The tiny notebooks open the bundle and write a metrics.json, nothing else;
``TINY_SLEEP`` (seconds, in the environment) makes them wait first, for timeout tests.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

_TINY = """import json, os, time
from crmresearch.month.bundle import open_bundle
time.sleep(float(os.environ.get("TINY_SLEEP", "0")))
b = open_bundle(bundle)
with open(metrics_out, "w") as f:
    json.dump({"scope": "branch" if branch else "bank", "branch_id": branch, "kpis": None}, f)
"""


def tiny_notebooks(folder: Path) -> dict[str, Path]:
    """A branch and a bank notebook in ``folder``, with the report notebooks' parameters."""
    paths = {}
    for kind in ("branch", "bank"):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("bundle = None\nbranch = None\nlanguage = 'en'\nparams_json = None\n"
                                         "key_file = None\nmetrics_out = None\ngenerated_at = None")  # fmt: skip
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell("## 1. Headline"), cell, nbformat.v4.new_code_cell(_TINY)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        paths[kind] = folder / f"{kind}.ipynb"
        nbformat.write(nb, paths[kind])
    return paths


def report_args(source: Path, out: Path, key: Path, cache: Path, *more: str, month: str) -> list[str]:
    """The arguments of ``crmresearch report`` for ``month`` of ``source`` into ``out``."""
    return ["report", str(source), "--month", month, "--out", str(out), "--key-file", str(key),
            "--cache-dir", str(cache), *more]  # fmt: skip
