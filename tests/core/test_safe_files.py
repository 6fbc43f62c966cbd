"""Data and files never run code (issue 12, group 2): SQL quoting, no pickle, owner-only cache, the key.

One small demo bank whose every table has an extra column with a hostile
name (quotes, a semicolon, a SQL comment, spaces, non-ASCII), and whose
branches table has a column named to break out of a quoted identifier and
``COPY`` a file, is rendered once through the real ``crmresearch report``
into a cache folder whose path holds a quote and a space, with a key file
whose path is easy to search for.  The tests check that run, then plant
pickles and fake bundles in its cache and run again.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import shutil
import stat
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmresearch.cli import main
from crmresearch.core.params import Params
from crmresearch.core.privacy import load_key, new_key_file
from crmresearch.data.contract import load_source
from crmresearch.data.demo import DemoConfig, write_demo_bank
from crmresearch.month.bundle import BankContext, bank_context, build_bundle, open_bundle, prune
from crmresearch.survival.episodes import customer_table

MONTH = "2026-10"
MIN_KEY_BYTES = 32
WEIRD = "x\" ; DROP TABLE customers; -- 'é 客户"


def _cli(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _qi(name: str) -> str:
    """A quoted identifier, written out here so the tests do not trust the code they test."""
    return '"' + name.replace('"', '""') + '"'


def _injection(target: Path) -> str:
    """A column name that, pasted into SQL between double quotes, writes ``target``."""
    return f"x\" FROM branches; COPY (SELECT 42) TO '{target}'; SELECT \"branch_id"


class _Planted:
    """A pickle that, when loaded, makes a folder: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@dataclass
class Run:
    root: Path
    source: Path
    out: Path  # <out>/<month>
    cache: Path
    key: Path
    pwned: Path
    code: int
    stderr: str


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The hostile bank, rendered once (every branch and the bank summary, one worker)."""
    root = tmp_path_factory.mktemp("safe-files")
    src = write_demo_bank(root / "bank", DemoConfig(branches=2, customers_per_branch=200, months=14, seed=3))
    pwned = root / "pwned.csv"
    for f in sorted(src.glob("*.parquet")):
        df = pd.read_parquet(f)
        df[WEIRD] = "w"
        if f.stem == "branches":
            df[_injection(pwned)] = "v"
        df.to_parquet(f, index=False)
    key = new_key_file(root / "KEYDIR-zq81" / "pseudonym-zq81.key")
    cache = root / "it's a [1] cache" / "crm"
    out = root / "reports"
    code, _, stderr = _cli("report", src, "--month", MONTH, "--out", out, "--key-file", key,
                           "--cache-dir", cache, "--workers", "1")  # fmt: skip
    return Run(root, src, out / MONTH, cache, key, pwned, code, stderr)


# --------------------------------------------------------------------------- A. SQL from names and paths


def test_quoting_escapes_quotes() -> None:
    from crmresearch.core.sql import ident, literal

    assert ident('a"b') == '"a""b"' and literal("it's") == "'it''s'"
    with pytest.raises(ValueError, match="NUL"):
        ident("a\0b")


@pytest.mark.slow
def test_hostile_column_names_in_every_table_run_no_sql_and_reports_succeed(hostile: Run) -> None:
    assert hostile.code == 0, hostile.stderr
    assert not hostile.pwned.exists(), "a column name ran as SQL"
    assert not list(hostile.root.rglob("pwned*"))
    for f in ("index.html", "bank.html", "branches/B001.html", "branches/B002.html"):
        assert (hostile.out / f).is_file(), f
    assert json.loads((hostile.out / "manifest.json").read_text())["reports"]["bank"]["status"] == "done"
    # validation sees the extra columns and accepts them; the bundle's slices carry them, untouched
    assert _cli("validate", hostile.source)[0] == 0
    bundle = open_bundle(next(p for p in hostile.cache.iterdir() if p.name.startswith(MONTH)))
    s = bundle.branch_source("B001")
    for t in s.tables:
        cols = [r[0] for r in s.con.execute(f"DESCRIBE {_qi(t)}").fetchall()]
        assert WEIRD in cols, t
        assert not any(c.startswith("__bundle_part") for c in cols), "the partition column stays out"
    assert s.con.execute(f"SELECT DISTINCT {_qi(WEIRD)} FROM customers").fetchall() == [("w",)]
    assert _injection(hostile.pwned) in [r[0] for r in s.con.execute("DESCRIBE branches").fetchall()]


def test_a_csv_source_with_hostile_headers_loads_and_slices(tmp_path: Path) -> None:
    src = write_demo_bank(tmp_path / "csv", DemoConfig(branches=2, customers_per_branch=60, months=13, seed=5),
                          fmt="csv")  # fmt: skip
    pwned = tmp_path / "pwned.csv"
    for f in sorted(src.glob("*.csv")):
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        df[WEIRD] = "w"
        if f.stem == "branches":
            df[_injection(pwned)] = "v"
        df.to_csv(f, index=False)
    source = load_source(src)
    b = build_bundle(source, Params(), month=MONTH, path=tmp_path / "cache" / f"{MONTH}-0123456789abcdef")
    s = b.branch_source("B001")
    assert all(WEIRD in s.df(t).columns for t in s.tables)
    assert _injection(pwned) in s.df("branches").columns and not pwned.exists()


def test_a_flat_extract_carries_hostile_extra_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 60
    src = tmp_path / "flat"
    src.mkdir()
    pd.DataFrame({"customer_id": [f"C{i:03d}" for i in range(n)], "branch_id": ["B1"] * 30 + ["B2"] * 30,
                  "tenure_months": rng.integers(1, 60, n).astype(float), "churned": rng.random(n) < 0.3,
                  WEIRD: rng.normal(size=n), "my note": ["a"] * n}).to_parquet(src / "customers.parquet")  # fmt: skip
    pd.DataFrame({"branch_id": ["B1", "B2"], "branch_name": ["One", "Two"], "region": ["N", "S"],
                  WEIRD: ["w", "w"]}).to_parquet(src / "branches.parquet")  # fmt: skip
    source = load_source(src)
    ct = customer_table(source)
    assert ct[WEIRD].notna().all() and (ct["my note"] == "a").all()
    b = build_bundle(source, Params(), month=None, path=tmp_path / "cache" / "snapshot-0123456789abcdef")
    assert WEIRD in b.branch_source("B1").df("customers").columns


# --------------------------------------------------------------------------- B. no pickle


def _same(a: object, b: object, where: str = "ctx") -> None:
    """Equal values of the same types, all the way down (frames: dtypes and index included)."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True, obj=where)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
        assert a.dtype == b.dtype
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif hasattr(a, "__dict__"):
        _same(vars(a), vars(b), where)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


@pytest.mark.slow
def test_the_bundle_is_data_only_and_round_trips_the_bank_context(small_demo: Path, tmp_path: Path) -> None:
    source = load_source(small_demo)
    params = Params()
    original = bank_context(source, params, month=MONTH)
    b = build_bundle(source, params, month=MONTH, path=tmp_path / "cache" / f"{MONTH}-0123456789abcdef")
    kinds = {p.suffix for p in b.path.rglob("*") if p.is_file()}
    assert kinds <= {".json", ".parquet"}, f"the bundle holds {kinds}"
    assert not list(b.path.rglob("*.pkl"))
    assert original.model is not None and original.sticky is not None and original.backtest is not None
    # the store gives back exactly what it was given (build_bundle computes its own context: DuckDB's parallel
    # sums may differ from ``original`` in the last bits, so the exact comparison is of a round trip)
    from crmresearch.core.store import dump, load

    folder = tmp_path / "round-trip"
    folder.mkdir()
    tree = json.loads(json.dumps(dump(original, folder, "context")))
    back = load(tree, folder)
    for f in fields(BankContext):
        _same(getattr(original, f.name), getattr(back, f.name), f.name)
    # the bundle's rebuilt model answers as the original does
    pd.testing.assert_frame_equal(original.model.hazard_ratios(), b.context.model.hazard_ratios(), rtol=1e-9)
    assert original.model.concordance() == pytest.approx(b.context.model.concordance(), rel=1e-12)


def test_the_store_rebuilds_only_its_own_classes(tmp_path: Path) -> None:
    from crmresearch.core.store import StoreError, dump, load

    with pytest.raises(StoreError, match="not stored"):
        dump({"f": open}, tmp_path)
    with pytest.raises(StoreError, match="unknown stored class"):
        load({"t": "obj", "cls": "Popen", "v": []}, tmp_path)
    with pytest.raises(StoreError, match="not a Parquet file"):
        load({"t": "frame", "file": "../../etc/passwd"}, tmp_path)
    with pytest.raises(StoreError, match="not numeric"):
        load({"t": "ndarray", "dtype": "|O", "shape": [1], "v": [1]}, tmp_path)


@pytest.mark.slow
def test_planted_pickles_and_fake_bundles_are_never_loaded(hostile: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = next(p for p in hostile.cache.iterdir() if re.fullmatch(rf"{MONTH}-[0-9a-f]{{16}}", p.name))
    marker = hostile.root / "unpickled"
    evil = pickle.dumps({"meta": _Planted(marker), "context": _Planted(marker), "params": {}})
    # the run's own bundle replaced by a pickle; a sibling of the same month; a fake JSON bundle
    for f in ("bundle.json", "bundle.pkl"):
        (bundle / f).unlink(missing_ok=True)
    (bundle / "bundle.pkl").write_bytes(evil)
    legacy = hostile.cache / f"{MONTH}-00000000000000aa"
    legacy.mkdir(mode=0o700)
    (legacy / "bundle.pkl").write_bytes(evil)
    fake = hostile.cache / f"{MONTH}-00000000000000bb"
    fake.mkdir(mode=0o700)
    (fake / "bundle.json").write_text(json.dumps({"meta": {"t": "obj", "cls": "Popen", "v": []}}))
    for p in (bundle, legacy):
        with pytest.raises(Exception):  # noqa: B017 - whatever it says, it must not run the pickle
            open_bundle(p)
    assert not marker.exists(), "open_bundle loaded a planted pickle"
    with pytest.raises(Exception, match="not a readable month bundle"):
        open_bundle(fake)
    # a rerun (fresh kernels this time) rebuilds the bundle, prunes the pickle folder, never loads it
    monkeypatch.setenv("CRMRESEARCH_FRESH_KERNELS", "1")
    out = hostile.root / "reports-rerun"
    code, _, stderr = _cli("report", hostile.source, "--month", MONTH, "--branch", "B001", "--out", out,
                           "--key-file", hostile.key, "--cache-dir", hostile.cache, "--workers", "1")  # fmt: skip
    assert code == 0, stderr
    assert not marker.exists(), "a planted pickle was loaded"
    assert not (bundle / "bundle.pkl").exists() and (bundle / "bundle.json").is_file()
    assert not legacy.exists(), "a folder of the old pickle format is removed, unread"
    assert fake.exists(), "a folder that is not a bundle of ours is left alone"
    assert prune(hostile.cache, bundle) == [] and not marker.exists()
    page = (out / MONTH / "branches" / "B001.html").read_text(encoding="utf-8")
    assert re.search(r"<td[^>]*>P[0-9a-f]{16}</td>", page), "the fresh kernel got the key"
    assert not any("zq81" in p.read_text(encoding="utf-8", errors="replace") for p in out.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- C. cache folder and key


@pytest.mark.slow
def test_the_cache_and_bundle_folders_are_owner_only(hostile: Run) -> None:
    assert hostile.code == 0, hostile.stderr
    assert stat.S_IMODE(hostile.cache.stat().st_mode) == 0o700
    # the run's own bundle (another test plants a fake one beside it)
    bundle = next(p for p in hostile.cache.iterdir() if p.name.startswith(MONTH) and (p / "slices").is_dir())
    for d in (bundle, bundle / "shared", bundle / "slices", bundle / "context"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


@pytest.mark.parametrize("mode, what", [(0o777, "its group and others"), (0o770, "its group"),
                                        (0o703, "others")])  # fmt: skip
def test_a_cache_folder_others_can_write_is_refused(small_demo: Path, tmp_path: Path, mode: int, what: str) -> None:
    cache = tmp_path / "shared-cache"
    cache.mkdir()
    cache.chmod(mode)
    key = new_key_file(tmp_path / "k" / "p.key")
    out = tmp_path / "out"
    code, _, stderr = _cli("report", small_demo, "--month", MONTH, "--out", out, "--key-file", key,
                           "--cache-dir", cache, "--branch", "B001")  # fmt: skip
    assert code == 2, stderr
    assert str(cache) in stderr and f"writable by {what}" in stderr and f"{mode:04o}" in stderr
    assert not out.exists() and not any(cache.iterdir())


def test_a_cache_folder_of_another_user_is_refused(small_demo: Path, tmp_path: Path) -> None:
    if os.getuid() == 0:
        cache = tmp_path / "someone-elses"
        cache.mkdir(mode=0o700)
        os.chown(cache, 65534, 65534)
    else:
        cache = Path("/")  # owned by root, not by this user
    key = new_key_file(tmp_path / "k" / "p.key")
    out = tmp_path / "out"
    code, _, stderr = _cli("report", small_demo, "--month", MONTH, "--out", out, "--key-file", key,
                           "--cache-dir", cache, "--branch", "B001")  # fmt: skip
    assert code == 2 and str(cache) in stderr and "not by you" in stderr, stderr
    assert not out.exists()


def test_a_key_inside_the_published_folder_is_refused(small_demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    key = new_key_file(out / "secret" / "pseudonym.key")
    code, _, stderr = _cli("report", small_demo, "--month", MONTH, "--out", out, "--key-file", key,
                           "--cache-dir", tmp_path / "cache", "--branch", "B001")  # fmt: skip
    assert code == 2 and "inside --out" in stderr and str(key) in stderr, stderr
    assert sorted(p.name for p in out.rglob("*")) == ["pseudonym.key", "secret"], "nothing else written"
    assert not (tmp_path / "cache").exists()


def test_a_short_key_is_refused_and_keygen_writes_a_valid_one(small_demo: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    good = new_key_file(tmp_path / "good.key")
    assert len(load_key(good)) >= MIN_KEY_BYTES
    short = tmp_path / "short.key"
    short.write_text("a" * (MIN_KEY_BYTES - 1) + "\n")
    args = ("report", small_demo, "--month", MONTH, "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache")
    code, _, stderr = _cli(*args, "--key-file", short)
    assert code == 2 and f"{MIN_KEY_BYTES - 1} bytes" in stderr and str(short) in stderr, stderr
    monkeypatch.setenv("CRMRESEARCH_PSEUDONYM_KEY", "too-short")
    code, _, stderr = _cli(*args)
    assert code == 2 and "CRMRESEARCH_PSEUDONYM_KEY" in stderr and "at least 32" in stderr, stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_the_key_path_is_never_published(hostile: Run) -> None:
    assert hostile.code == 0, hostile.stderr
    key_text = hostile.key.read_text().strip()
    published = [p for p in hostile.out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".ipynb" for p in published)
    for p in published:
        text = p.read_text(encoding="utf-8", errors="replace")
        assert "zq81" not in text and "KEYDIR" not in text and key_text not in text, p
    for nb in hostile.out.glob("notebooks/*.ipynb"):
        injected = [c for c in json.loads(nb.read_text())["cells"]
                    if "injected-parameters" in c["metadata"].get("tags", [])]  # fmt: skip
        assert injected and "key_file" not in "".join(injected[0]["source"]), nb
    page = (hostile.out / "branches" / "B001.html").read_text(encoding="utf-8")
    assert re.search(r"<td[^>]*>P[0-9a-f]{16}</td>", page), "the warm kernel got the key: the watch list is shown"


@pytest.mark.slow
def test_a_branch_without_rows_gets_empty_tables_and_no_type_name_becomes_sql(small_demo: Path, tmp_path: Path) -> None:
    """A branch with no rows in a table gets it empty, with the table's columns, from a zero-row Parquet file.

    No type name stored in the bundle is pasted into SQL: a bundle whose metadata was changed to hold a
    statement in a column type runs nothing.
    """
    src = tmp_path / "bank"
    shutil.copytree(small_demo, src)
    customers = pd.read_parquet(src / "customers.parquet")
    b001 = customers.loc[customers["branch_id"] == "B001", "customer_id"]
    complaints = pd.read_parquet(src / "complaints.parquet")
    complaints[~complaints["customer_id"].isin(b001)].to_parquet(src / "complaints.parquet", index=False)
    source = load_source(src)
    try:
        b = build_bundle(source, Params(), month=MONTH, path=tmp_path / "cache" / f"{MONTH}-0123456789abcdef")
    finally:
        source.close()
    full = b.branch_source("B002").df("complaints")
    pwned = tmp_path / "pwned.csv"
    b.meta["schemas"] = {"complaints": [["x", f"INTEGER); COPY (SELECT 42 AS x) TO '{pwned}'; CREATE TABLE zz (b INTEGER"]]}
    empty = b.branch_source("B001").df("complaints")
    assert not pwned.exists(), "a type name from the bundle ran as SQL"
    assert len(full) > 0 and len(empty) == 0
    assert list(empty.columns) == list(full.columns) and list(empty.dtypes) == list(full.dtypes)


def test_a_key_that_breaks_inside_a_report_is_not_named(small_demo: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A key file that fails inside the report's kernel (changed after the run's check) gives an error that
    names no path: the executed notebook holding it is kept in the published folder."""
    from crmresearch.core.errors import InputError
    from crmresearch.core.privacy import KEY_FILE_ENV
    from crmresearch.report.reports import BranchReport

    source = load_source(small_demo)
    try:
        b = build_bundle(source, Params(), month=MONTH, path=tmp_path / "cache" / f"{MONTH}-0123456789abcdef")
    finally:
        source.close()
    broken = tmp_path / "secret-place" / "pseudonym.key"
    broken.parent.mkdir()
    broken.write_bytes(b"short")
    monkeypatch.setenv(KEY_FILE_ENV, str(broken))
    with pytest.raises(InputError) as err:
        BranchReport.open(b, "B001")
    assert "secret-place" not in str(err.value) and "pseudonym key" in str(err.value)
