"""Input fingerprints change exactly when a report's inputs change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crmresearch import load_params
from crmresearch.core.fingerprint import report_fingerprint, source_fingerprint


def test_fingerprints(small_demo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(small_demo, copy)
    fp = source_fingerprint(small_demo)
    assert source_fingerprint(copy) == fp, "a copy (new mtimes, new folder) is the same input"
    (copy / "truth.json").write_text("{}", encoding="utf-8")
    assert source_fingerprint(copy) == fp, "files that are not tables do not count"
    (copy / "branches.parquet").write_bytes((copy / "branches.parquet").read_bytes() + b" ")
    assert source_fingerprint(copy) != fp, "a changed table changes it"

    nb = tmp_path / "nb.ipynb"
    nb.write_text('{"cells": []}', encoding="utf-8")
    base = report_fingerprint(fp, load_params(), nb, scope="B001", month="2026-10")
    assert report_fingerprint(fp, load_params(overrides={"engine.threads": 1}), nb, scope="B001",
                              month="2026-10") == base  # fmt: skip
    assert report_fingerprint(fp, load_params(overrides={"min_cell_size": 5}), nb, scope="B001",
                              month="2026-10") != base  # fmt: skip
    assert report_fingerprint(fp, load_params(), nb, scope="B002", month="2026-10") != base
    assert report_fingerprint(fp, load_params(), nb, scope="B001", month="2026-09") != base
    nb.write_text('{"cells": [1]}', encoding="utf-8")
    assert report_fingerprint(fp, load_params(), nb, scope="B001", month="2026-10") != base
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no table files"):
        source_fingerprint(empty)
