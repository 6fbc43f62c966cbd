"""zh means Chinese, en means English: every text a published page shows is in the page's language.

A month of the small demo bank is rendered by the CLI in Chinese and in English (index, bank
summary, every branch), and a flat extract (a public dataset) in Chinese; on each page the
visible text (``tests/visible_text.py``: text nodes, ``alt``, ``title``, ``placeholder``) is
checked. A zh page shows no English word outside ``lang="en"`` elements and a short allow list
(AUM, RM, HR, Cox, Kaplan–Meier, ...; IDs, pseudonyms and digests hold digits and are not
words; the contract's column and parameter names are identifiers); an en page shows no Chinese
outside ``lang="zh"`` elements and the data's own names (branch and region names).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crmresearch.core.params import Params
from crmresearch.data.demo import DEFAULT_AS_OF
from crmresearch.data.spec import TABLES
from public_data import BANK_CSV
from visible_text import ALLOWED_EN, chinese_text, english_words

pytestmark = pytest.mark.slow

MONTH = f"{DEFAULT_AS_OF:%Y-%m}"


def _identifiers() -> frozenset[str]:
    """Names of the contract's tables and columns and of the parameters: code, shown as code."""
    names = set(TABLES)
    for spec in TABLES.values():
        names |= {c.name for c in spec.columns}

    def walk(d: dict) -> None:
        for k, v in d.items():
            names.add(k)
            if isinstance(v, dict):
                walk(v)

    walk(Params().to_dict())
    return frozenset(names)


ALLOWED = ALLOWED_EN | _identifiers()


def _render(source: Path, out: Path, language: str, month: str | None) -> Path:
    env = {**os.environ, "CRMRESEARCH_PSEUDONYM_KEY": secrets.token_hex(32), "CRMRESEARCH_CACHE": str(out / "cache")}
    cmd = [sys.executable, "-m", "crmresearch.cli", "report", str(source), "--out", str(out / "reports"),
           "--language", language, "--workers", "2", "--cache-dir", str(out / "cache")]  # fmt: skip
    if month:
        cmd += ["--month", month]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"crmresearch report failed ({res.returncode}):\n{res.stdout}\n{res.stderr[-4000:]}"
    return out / "reports" / (month or "snapshot")


def _pages(month_dir: Path) -> list[Path]:
    pages = [month_dir / "index.html", *sorted((month_dir / "branches").glob("*.html"))]
    if (month_dir / "bank.html").exists():
        pages.insert(1, month_dir / "bank.html")
    return pages


def _data_names(source: Path) -> set[str]:
    found = sorted(source.glob("branches.*"))
    b = pd.DataFrame() if not found else (pd.read_parquet(found[0]) if found[0].suffix == ".parquet"
                                          else pd.read_csv(found[0]))  # fmt: skip
    names = set()
    for c in ("branch_name", "region"):
        if c in b:
            names |= set(b[c].dropna().astype(str))
    return {n for n in names if n}


def _english_on(page: Path, names: set[str]) -> list[str]:
    found = english_words(page.read_text(encoding="utf-8"), ALLOWED, names)
    return sorted({f"{w!r} in [{p.section or '-'}] {p.text[:120]!r}" for w, p in found})


@pytest.fixture(scope="module")
def zh_month(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _render(small_demo, tmp_path_factory.mktemp("zh"), "zh", MONTH)


@pytest.fixture(scope="module")
def en_month(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _render(small_demo, tmp_path_factory.mktemp("en"), "en", MONTH)


def test_zh_pages_show_no_english(zh_month: Path, small_demo: Path) -> None:
    names = _data_names(small_demo)
    pages = _pages(zh_month)
    assert len(pages) >= 5  # index, bank, three branches
    problems = {p.name: _english_on(p, names) for p in pages}
    assert not any(problems.values()), "English on zh pages:\n" + "\n".join(
        f"{page}: {w}" for page, ws in problems.items() for w in ws)


def test_en_pages_show_no_chinese(en_month: Path, small_demo: Path) -> None:
    names = _data_names(small_demo)
    problems = {}
    for page in _pages(en_month):
        found = chinese_text(page.read_text(encoding="utf-8"), names)
        problems[page.name] = sorted({f"[{p.section or '-'}] {p.text[:120]!r}" for p in found})
    assert not any(problems.values()), "Chinese on en pages:\n" + "\n".join(
        f"{page}: {t}" for page, ts in problems.items() for t in ts)


def test_the_english_kept_on_purpose_is_marked(zh_month: Path) -> None:
    """The glossary's English terms stay, marked lang="en"; the checker sees them only unmarked."""
    page = sorted((zh_month / "branches").glob("*.html"))[0].read_text(encoding="utf-8")
    assert 'lang="en">hazard ratio (HR)<' in page
    assert english_words(page.replace('lang="en"', 'lang="xx"'), ALLOWED), "the checker must see unmarked English"


def test_the_bank_summary_says_its_scope(zh_month: Path, en_month: Path) -> None:
    assert "<th>范围</th><td>全行</td>" in (zh_month / "bank.html").read_text(encoding="utf-8")
    en = (en_month / "bank.html").read_text(encoding="utf-8")
    assert "<th>Scope</th><td>the whole bank</td>" in en and "<th>Branch</th><td>bank</td>" not in en


def test_a_flat_extract_in_chinese(tmp_path: Path) -> None:
    if not BANK_CSV.exists():
        pytest.skip(f"public dataset not found: {BANK_CSV}")
    from crmresearch.data.flat import import_flat

    src = import_flat(BANK_CSV, "bank-churn-modelling", tmp_path / "src")
    month_dir = _render(src, tmp_path, "zh", None)
    # the extract's own column names and category values (countries, genders) are the data's names
    cust = pd.read_parquet(src / "customers.parquet") if (src / "customers.parquet").exists() else pd.read_csv(
        next(src.glob("customers.*")))
    names = {str(v) for c in cust.columns if cust[c].dtype == object for v in cust[c].dropna().unique()[:50]}
    names |= _data_names(src)
    names = {n for n in names | set(cust.columns) if len(n) >= 3}  # a short code would hide letters of words
    problems = {p.name: _english_on(p, names) for p in _pages(month_dir)[:3]}
    assert not any(problems.values()), "English on zh flat pages:\n" + "\n".join(
        f"{page}: {w}" for page, ws in problems.items() for w in ws)


def test_text_left_numbers_right(zh_month: Path) -> None:
    """Text columns (suggested actions, tiers, pseudonyms) carry class "text" (left-aligned); numbers do not."""
    import re

    from crmresearch.viz.i18n import label

    page = sorted((zh_month / "branches").glob("*.html"))[0].read_text(encoding="utf-8")
    actions = {label(a, "zh") for a in ("relationship review", "cross-sell a sticky product", "re-activation call")}
    cells = re.findall(r"<td([^>]*)>([^<]*)</td>", page)
    shown = [attrs for attrs, v in cells if v in actions]
    assert shown and all('class="text"' in a for a in shown)
    assert all('class="text"' not in a for a, v in cells if re.fullmatch(r"[\d,.]+%?", v))
