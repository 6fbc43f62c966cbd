"""The month bundle: what every report of a month needs from the whole bank, computed once.

A monthly run renders hundreds or thousands of branch reports from one
source.  Fitting the bank-wide causes model, computing the KPI tables of every
branch and validating the source once per report would make each report cost
as much as the whole bank, so the run is split in two stages:

1. **bank stage** (:func:`build_bundle`, once per month and input): load and
   validate the source; compute the :class:`BankContext` — the bank-wide
   causes model, the KPI trend and comparison tables and the churn breakdowns
   of every branch (one SQL pass each), the watch list's out-of-time check,
   the branches' observed and expected churn for the funnel plot; and write
   each branch's slice of the source (its customers and their rows, without
   names) as Parquet partitions;
2. **branch stage**: each branch report opens the bundle
   (:func:`open_bundle`) and reads only its own slice
   (:meth:`Bundle.branch_source`), so its cost stays flat as the bank grows.

The bundle holds customer-level rows: it lives in a cache folder outside the
published ``reports/`` tree (see :func:`default_cache_dir`), owner-only
(:func:`private_dir` refuses a cache others can write to).  It is data only:
``bundle.json`` (metadata, parameters, the bank-wide results as tagged JSON)
and Parquet files (the results' tables and the slices), written and read by
:mod:`crmresearch.core.store`, which rebuilds a fixed list of result classes from
their attributes and never runs code named by a file.  Every table and
column name and every path in its SQL is quoted (:mod:`crmresearch.core.sql`):
the extra columns of a source, whatever their names, are carried as they are.

A branch's slice gives the same results for that branch as the whole source
does (every branch analysis uses only the branch's customers, its RMs and
the bank-wide model), which ``tests/report/test_reporting.py::test_branch_metrics_from_the_bundle_equal_the_whole_source`` checks; the
``metrics.json`` of :mod:`crmresearch.month.metrics` is computed through this same
path, so the runner and ``crmresearch metrics`` write identical files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from crmresearch.core.errors import InputError
from crmresearch.core.io import atomic_dir
from crmresearch.core.params import Params
from crmresearch.core.sql import ident, idents, literal
from crmresearch.core.version import __version__
from crmresearch.data.contract import Source, _connect
from crmresearch.month.slices import SHARED_TABLES, _columns, _customer_tables, slice_source

__all__ = [
    "BREAKDOWN_BY",
    "BankContext",
    "Bundle",
    "bank_context",
    "build_bundle",
    "default_cache_dir",
    "open_bundle",
    "private_dir",
    "slice_source",
]

BUNDLE_FORMAT = 3  # 3: empty tables from zero-row Parquet files; 2: JSON + Parquet (1 was a pickle, never read)
#: the bundle's index: its metadata, parameters and bank-wide results (tables in ``context/*.parquet``)
BUNDLE_FILE = "bundle.json"
BREAKDOWN_BY = ("tier", "segment", "channel", "churn_type", "reason")


@dataclass
class BankContext:
    """The bank-wide results every report of a month reuses.

    Attributes
    ----------
    month : str or None
        ``YYYY-MM`` (None for a flat extract).
    as_of : datetime.date or None
        The month's last day (None for a flat extract).
    model : TimeVaryingCox or None
        The bank-wide causes model (§5) fitted on data up to ``as_of``; None
        when it could not be fitted (``caveats`` says why).
    kpi_trend, kpi_comparison : DataFrame or None
        :func:`kpis.kpi_trend` / :func:`kpis.kpi_comparison` of every branch
        and the bank (None for a flat extract).
    breakdowns : DataFrame or None
        :func:`kpis.churn_breakdown` of every branch and the bank, for each
        of :data:`BREAKDOWN_BY`, stacked.
    backtest : dict or None
        The watch list's out-of-time check of the bank-wide model.
    branch_risk : DataFrame or None
        Observed and expected churn per branch (:func:`risk_adjustment.observed_expected`).
    sticky : StickyProductsResult or None
        The bank-wide hazard ratios of each additional product and of the sticky products.
    caveats : list of str
        What could not be computed and why.
    bank : dict or None
        The bank summary's results, computed here on the whole bank with the
        episodes already built (:func:`crmresearch.month.results.bank_results`:
        ``metrics`` and the sections' results), so that the bank summary
        renders them instead of rebuilding the bank from the slices.
    branches : DataFrame
        ``branch_id, branch_name, region, customers`` of every branch.
    validation : ValidationReport
        The source's validation findings (rows used and excluded).

    Examples
    --------
    >>> ctx = bank_context(src, Params(), month="2026-10")  # doctest: +SKIP
    >>> ctx.model.hazard_ratios()  # doctest: +SKIP
    """

    month: str | None
    as_of: dt.date | None
    model: object | None
    kpi_trend: pd.DataFrame | None
    kpi_comparison: pd.DataFrame | None
    breakdowns: pd.DataFrame | None
    backtest: dict | None
    branch_risk: pd.DataFrame | None
    branches: pd.DataFrame
    validation: object
    data_as_of: dt.date | None = None
    sticky: object | None = None
    caveats: list[str] = field(default_factory=list)
    bank: dict | None = None


def bank_context(source: Source, params: Params | None = None, *, month: str | None,
                 bank_summary: bool = True) -> BankContext:  # fmt: skip
    """Compute the bank-wide results of ``month`` (the bank stage, without writing anything).

    Parameters
    ----------
    source : Source
        The whole bank's validated source.
    params : Params, optional
        Parameters.
    month : str or None
        ``YYYY-MM``; None for a flat extract.
    bank_summary : bool
        Also compute the bank summary's results (:attr:`BankContext.bank`).

    Returns
    -------
    BankContext

    Examples
    --------
    >>> ctx = bank_context(src, month="2026-10")  # doctest: +SKIP
    >>> ctx.kpi_comparison.query("scope == 'bank'")  # doctest: +SKIP
    """
    from crmresearch.analyses.causes import causes_frame, causes_model
    from crmresearch.analyses.kpis import churn_breakdown, kpi_comparison, kpi_trend
    from crmresearch.analyses.risk_adjustment import observed_expected
    from crmresearch.core.calendar import month_bounds
    from crmresearch.survival.cox import ConvergenceError

    params = params or Params()
    caveats: list[str] = []
    branches = _branch_list(source)
    if not source.can("calendar"):
        if month is not None:
            raise InputError(f"--month {month}: a flat extract has no calendar (omit --month)")
        last = None
    else:
        if month is None:
            raise InputError("a month (YYYY-MM) is needed for a source with a calendar")
        _, last = month_bounds(month)
    model = frame = None
    try:
        if source.can("calendar"):
            from crmresearch.timelines.products import STICKY_COVARIATES

            # one read of the episodes for the causes model and the sticky products (the same rows)
            frame = causes_frame(source, params, as_of=last, covariates=STICKY_COVARIATES)
        model = causes_model(source, params, as_of=last, frame=frame)
    except (InputError, ConvergenceError, ValueError) as exc:
        caveats.append(f"The causes model could not be fitted: {exc}")
    trend = comparison = breakdowns = backtest = risk = sticky = None
    if source.can("calendar"):
        from crmresearch.analyses.product_coverage import sticky_products

        try:
            sticky = sticky_products(source, params, as_of=last, frame=frame)
            sticky.model = None  # its fitting data stays behind; the table and caveats are what reports show
        except (InputError, ConvergenceError, ValueError) as exc:
            caveats.append(f"The hazard ratios of the sticky products could not be estimated: {exc}")
        del frame  # the models keep what they need (patterns and risk sets), not the episodes
        trend = kpi_trend(source, params, month=month)
        comparison = kpi_comparison(source, params, month=month)
        breakdowns = pd.concat([churn_breakdown(source, params, month=month, by=b) for b in BREAKDOWN_BY],
                               ignore_index=True)  # fmt: skip
        from crmresearch.analyses.watchlist import backtest as wl_backtest

        try:
            backtest = wl_backtest(source, params, as_of=last)
        except (InputError, ConvergenceError, ValueError) as exc:
            caveats.append(f"The watch list's out-of-time check could not be run: {exc}")
        if model is not None:
            try:
                risk = observed_expected(source, params, model, as_of=last)
            except (InputError, ValueError) as exc:
                caveats.append(f"The risk-adjusted comparison of branches could not be computed: {exc}")
    model = model.slim() if model is not None else None  # the fitting data stays behind
    bank = None
    if bank_summary:
        from crmresearch.month.results import bank_results

        bank = bank_results(source, params, month=month, as_of=last, model=model)
    return BankContext(month, last, model, trend, comparison, breakdowns, backtest, risk, branches,
                       source.report, source.as_of, sticky, caveats, bank)  # fmt: skip


def _branch_list(source: Source) -> pd.DataFrame:
    if source.has("branches"):
        q = """SELECT b.branch_id, b.branch_name, b.region, count(c.customer_id) AS customers FROM branches b
               LEFT JOIN customers c USING (branch_id) GROUP BY ALL ORDER BY b.branch_id"""
    else:
        q = """SELECT branch_id, NULL AS branch_name, NULL AS region, count(*) AS customers FROM customers
               GROUP BY ALL ORDER BY branch_id"""
    out = source.sql(q)
    out["branch_id"] = out["branch_id"].astype(str)
    return out


def _open(path: Path, tables: dict[str, list[Path]], meta: dict, params: Params | None, *,
          lazy: bool = False) -> Source:  # fmt: skip
    """A Source over Parquet files already validated (the bundle's own output): no re-validation.

    Each table reads its files as listed (never a glob of the path, which may
    hold ``*``, ``?`` or ``[``) and without Hive partitioning (the slices'
    partition folders add no column).  ``lazy``: views over the files
    instead of tables loaded into memory (the bank summary, which reads few
    rows itself: its results come with the bundle).
    """
    con = _connect(params)
    counts = {}
    kind = "VIEW" if lazy else "TABLE"
    for name, files in tables.items():
        listing = "[" + ", ".join(literal(f) for f in files) + "]"
        con.execute(f"CREATE {kind} {ident(name)} AS SELECT * FROM "
                    f"read_parquet({listing}, hive_partitioning = false, union_by_name = false)")  # fmt: skip
        counts[name] = con.execute(f"SELECT count(*) FROM {ident(name)}").fetchone()[0]
    return Source(path, con, counts, meta["as_of"], meta["observation_start"], meta["flat"], meta["validation"])


def default_cache_dir() -> Path:
    """Where month bundles are cached: ``$CRMRESEARCH_CACHE``, else ``$XDG_CACHE_HOME/crmresearch``, else ``~/.cache/crmresearch``.

    Examples
    --------
    >>> default_cache_dir().name in ("crmresearch",) or "CRMRESEARCH_CACHE" in os.environ
    True
    """
    if os.environ.get("CRMRESEARCH_CACHE"):
        return Path(os.environ["CRMRESEARCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "crmresearch"


def private_dir(path: str | Path, *, create: bool = True, what: str = "cache folder") -> Path:
    """Check (and create, owner-only) a folder that holds customer-level data: the cache or a bundle.

    A missing folder is created with mode 0700 (its parents as usual).  An
    existing one must be a folder owned by the user running this, and
    writable by nobody else: in a folder others can write to, they could
    replace a month bundle (and with it what the reports say).

    Parameters
    ----------
    path : str or Path
        The folder.
    create : bool
        Create it when missing (else a missing folder is left alone).
    what : str
        What the folder is, for the message.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        The path is not a folder, is owned by someone else, or is writable
        by its group or by others (the message names the path and what is
        wrong).

    Examples
    --------
    >>> import tempfile
    >>> d = private_dir(Path(tempfile.mkdtemp()) / "cache")
    >>> oct(d.stat().st_mode & 0o777)
    '0o700'
    """
    path = Path(path)
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile (another run): checked below like any existing one
            pass
    if not path.exists():
        return path
    st = path.stat()  # follows a link: what counts is the folder the data goes into
    if not path.is_dir():
        raise InputError(f"{what} {path} is not a folder")
    problems = []
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        try:
            import pwd

            owner = pwd.getpwuid(st.st_uid).pw_name
        except (ImportError, KeyError):
            owner = f"uid {st.st_uid}"
        problems.append(f"it is owned by {owner}, not by you")
    if st.st_mode & 0o022:
        who = " and ".join(w for w, bit in (("its group", 0o020), ("others", 0o002)) if st.st_mode & bit)
        problems.append(f"it is writable by {who} (mode {st.st_mode & 0o777:04o})")
    if problems:
        raise InputError(f"{what} {path}: {'; '.join(problems)}. It holds customer-level data that other users "
                         f"could read or replace; use a folder of your own (chmod 700 {path}) or another "
                         "--cache-dir")  # fmt: skip
    return path


@dataclass
class Bundle:
    """An opened month bundle (see the module docstring).

    Attributes
    ----------
    path : Path
        The bundle's folder.
    context : BankContext
        The bank-wide results.
    params : Params
        The parameters it was computed with.
    key : str
        Its cache key (input fingerprint, parameters, month, package version).

    Examples
    --------
    >>> b = open_bundle(path)  # doctest: +SKIP
    >>> src = b.branch_source("B001")  # doctest: +SKIP
    """

    path: Path
    context: BankContext
    params: Params
    key: str
    meta: dict

    @property
    def branch_ids(self) -> list[str]:
        """Every branch of the bank, sorted.

        Examples
        --------
        >>> open_bundle(path).branch_ids[:2]  # doctest: +SKIP
        ['B001', 'B002']
        """
        return sorted(self.meta["partitions"])

    def branch_source(self, branch: str) -> Source:
        """The slice of one branch (its customers only), as a Source.

        Parameters
        ----------
        branch : str
            A branch of the bank.

        Returns
        -------
        Source

        Raises
        ------
        InputError
            An unknown branch (the message lists the known ones).

        Examples
        --------
        >>> open_bundle(path).branch_source("B001").tables["customers"]  # doctest: +SKIP
        """
        parts = self.meta["partitions"]
        if branch not in parts:
            known = ", ".join(sorted(parts)[:20]) + (" ..." if len(parts) > 20 else "")
            raise InputError(f"unknown branch {branch!r}; known: {known}")
        tables: dict[str, list[Path]] = {}
        for t in self.meta["tables"]:
            if t in self.meta["shared"]:
                tables[t] = [self.path / "shared" / f"{t}.parquet"]
            else:
                part = self.path / "slices" / t / f"{self.meta['partition_column']}={parts[branch]}"
                tables[t] = sorted(part.glob("*.parquet")) if part.is_dir() else []
        src = self._source(tables)
        src.cache["slice_of"] = branch
        return src

    def bank_source(self) -> Source:
        """The whole bank (names dropped), as a Source: for the bank summary.

        Examples
        --------
        >>> open_bundle(path).bank_source().tables["customers"]  # doctest: +SKIP
        """
        tables = {t: [self.path / "shared" / f"{t}.parquet"] if t in self.meta["shared"]
                  else sorted((self.path / "slices" / t).glob("*/*.parquet")) for t in self.meta["tables"]}  # fmt: skip
        return self._source(tables, lazy=self.context.bank is not None)

    def _source(self, tables: dict[str, list[Path]], *, lazy: bool = False) -> Source:
        present = {t: files for t, files in tables.items() if files}
        src = _open(self.path, present, self.meta, self.params, lazy=lazy)
        for t, files in tables.items():  # a branch without rows in a table: an empty table of the same columns
            if not files:  # its columns and types from a zero-row file: no type name from the bundle becomes SQL
                empty = literal(self.path / "empty" / f"{t}.parquet")
                src.con.execute(f"CREATE TABLE {ident(t)} AS SELECT * FROM read_parquet({empty})")
                src.tables[t] = 0
        return src


def _write_tables(source: Source, path: Path, partitions: dict[str, int]) -> dict:
    con = source.con
    (path / "shared").mkdir(parents=True, mode=0o700)
    (path / "slices").mkdir(mode=0o700)
    (path / "empty").mkdir(mode=0o700)
    pmap = pd.DataFrame({"branch_id": list(partitions), "p": list(partitions.values())})
    con.register("__parts", pmap)
    schemas, shared = {}, []
    # the partition column: a name no table has (extra columns of the data may be named anything)
    names = {c.lower() for t in source.tables for c in _columns(source, t)}
    part = "__bundle_part"
    while part.lower() in names:
        part += "_"
    try:
        for t in source.tables:
            cols = _columns(source, t)
            schemas[t] = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT {idents(cols)} FROM {ident(t)}").fetchall()]
            if t in SHARED_TABLES or (t != "customers" and t not in _customer_tables(source)):
                target = literal(path / "shared" / f"{t}.parquet")
                con.execute(f"COPY (SELECT {idents(cols)} FROM {ident(t)}) TO {target} (FORMAT PARQUET)")
                shared.append(t)
                continue
            if t == "customers":
                q = (f"SELECT {idents(cols, 'x.')}, p.p AS {ident(part)} FROM customers x "
                     "JOIN __parts p USING (branch_id) ORDER BY x.customer_id")  # fmt: skip
            else:
                q = (f"SELECT {idents(cols, 'x.')}, p.p AS {ident(part)} FROM {ident(t)} x "
                     "JOIN customers c USING (customer_id) JOIN __parts p ON p.branch_id = c.branch_id")  # fmt: skip
            empty = literal(path / "empty" / f"{t}.parquet")  # a branch without rows in it gets this (no rows)
            con.execute(f"COPY (SELECT {idents(cols)} FROM {ident(t)} LIMIT 0) TO {empty} (FORMAT PARQUET)")
            con.execute(f"COPY ({q}) TO {literal(path / 'slices' / t)} (FORMAT PARQUET, PARTITION_BY ({ident(part)}))")
    finally:
        con.unregister("__parts")
    return {"schemas": schemas, "shared": shared, "partition_column": part}


def build_bundle(source: Source, params: Params, *, month: str | None, path: str | Path,
                 key: str = "") -> Bundle:  # fmt: skip
    """Run the bank stage and write the bundle to ``path`` (atomically: a complete folder or none).

    Parameters
    ----------
    source : Source
        The whole bank's validated source.
    params : Params
        Parameters.
    month : str or None
        ``YYYY-MM`` (None for a flat extract).
    path : str or Path
        The bundle's folder; must not exist.
    key : str
        The cache key recorded in the bundle.

    Returns
    -------
    Bundle

    Examples
    --------
    >>> b = build_bundle(src, Params(), month="2026-10", path="/tmp/cache/x")  # doctest: +SKIP
    """
    path = Path(path)
    context = bank_context(source, params, month=month)
    ids = context.branches.loc[context.branches["customers"] > 0, "branch_id"].tolist()
    partitions = {b: i for i, b in enumerate(ids)}
    private_dir(path.parent)
    with atomic_dir(path) as tmp:
        os.chmod(tmp, 0o700)  # owner-only from the start: it is renamed into place as it is
        layout = _write_tables(source, tmp, partitions)
        meta = {"format": BUNDLE_FORMAT, "version": __version__, "key": key, "month": month,
                "tables": list(source.tables), "partitions": partitions, "as_of": source.as_of,
                "observation_start": source.observation_start, "flat": not source.can("calendar"),
                "source": source.path if isinstance(source.path, str) else str(Path(source.path).resolve()),
                "validation": source.report, **layout}  # fmt: skip
        _write_index(tmp, meta, context, params)
    return open_bundle(path)


def _write_index(folder: Path, meta: dict, context: BankContext, params: Params) -> None:
    """``bundle.json`` and the context's tables as Parquet: data only (:mod:`crmresearch.core.store`)."""
    from crmresearch.core.store import dump

    (folder / "context").mkdir(mode=0o700)
    tree = {"meta": dump(meta, folder / "context", "meta"), "params": dump(params.to_dict(), folder / "context", "params"),
            "context": dump(context, folder / "context", "context")}  # fmt: skip
    (folder / BUNDLE_FILE).write_text(json.dumps(tree, ensure_ascii=False, allow_nan=False), encoding="utf-8")


def _read_meta(path: Path) -> tuple[dict, dict]:
    """A bundle's metadata and its whole index (``bundle.json``), read as data; InputError if it is not one."""
    from crmresearch.core.store import StoreError, load

    try:
        tree = json.loads((path / BUNDLE_FILE).read_text(encoding="utf-8"))
        meta = load(tree["meta"], path / "context") if isinstance(tree, dict) else None
    except FileNotFoundError:
        raise InputError(f"{path} is not a month bundle (no {BUNDLE_FILE})") from None
    except (OSError, ValueError, KeyError, TypeError, StoreError) as exc:
        raise InputError(f"{path / BUNDLE_FILE} is not a readable month bundle ({exc}); rebuild it") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path / BUNDLE_FILE} is not a month bundle; rebuild it")
    return meta, tree


def open_bundle(path: str | Path) -> Bundle:
    """Open a bundle written by :func:`build_bundle`.

    Parameters
    ----------
    path : str or Path
        The bundle's folder.

    Returns
    -------
    Bundle

    Raises
    ------
    InputError
        ``path`` is not a bundle of this package version.

    Examples
    --------
    >>> b = open_bundle("~/.cache/crmresearch/2026-10-ab12cd")  # doctest: +SKIP
    """
    from crmresearch.core.store import StoreError, load

    path = Path(path).expanduser()
    private_dir(path, create=False, what="month bundle")
    meta, tree = _read_meta(path)
    if meta.get("format") != BUNDLE_FORMAT or meta.get("version") != __version__:
        raise InputError(f"{path} was written by crmresearch {meta.get('version')}; rebuild it")
    try:
        context = load(tree["context"], path / "context")
        params = Params.model_validate(load(tree["params"], path / "context"))
    except (OSError, ValueError, KeyError, TypeError, StoreError) as exc:
        raise InputError(f"{path / BUNDLE_FILE} is not a readable month bundle ({exc}); rebuild it") from None
    if not isinstance(context, BankContext):
        raise InputError(f"{path / BUNDLE_FILE} holds no bank context; rebuild it")
    return Bundle(path, context, params, meta.get("key", ""), meta)


def latest_bundle(month: str | None, *, source: str | Path | None = None,
                  cache_dir: str | Path | None = None) -> Path | None:  # fmt: skip
    """The bundle of ``month`` that the last ``crmresearch report`` run wrote or used, from the cache.

    For an analyst who takes one branch's month from it (``open_bundle(path).branch_source("B001")``,
    ``BranchReport.open(path, "B001")``) without recomputing the bank. Only each bundle's
    ``bundle.json`` is read, as data.

    Parameters
    ----------
    month : str or None
        ``YYYY-MM`` (None: the snapshot of a flat extract).
    source : str or Path, optional
        Only bundles of this source (default: any).
    cache_dir : str or Path, optional
        The cache (default: :func:`default_cache_dir`, as ``crmresearch report``).

    Returns
    -------
    Path or None
        The newest matching bundle (by when its ``bundle.json`` was written), or None.

    Examples
    --------
    >>> latest_bundle("2026-10", cache_dir="/no/such/cache") is None
    True
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = re.compile(re.escape(f"{month or 'snapshot'}-") + "[0-9a-f]{16}")
    want = str(Path(source).resolve()) if source is not None else None
    found = []
    for p in cache.glob(f"{month or 'snapshot'}-*") if cache.is_dir() else []:
        if not name.fullmatch(p.name) or p.is_symlink() or not (p / BUNDLE_FILE).is_file():
            continue
        try:
            meta, _ = _read_meta(p)
        except InputError:
            continue
        if meta.get("month") == month and (want is None or meta.get("source") == want):
            found.append(((p / BUNDLE_FILE).stat().st_mtime_ns, p))
    return max(found)[1] if found else None


def prune(cache: Path, keep: Path) -> list[Path]:
    """Remove older bundles of the same source and month from ``cache``; returns what was removed.

    A bundle is superseded when the source's data or the parameters changed
    (its key changed); bundles of other sources, other months and snapshots
    of other flat extracts are kept.  Only each bundle's ``bundle.json`` is
    read, as data; a folder of the month that holds a ``bundle.pkl`` (the
    format of crmresearch before bundles were data-only, never opened by
    this version) is removed without being read.

    Examples
    --------
    >>> prune(Path("/tmp/cache"), Path("/tmp/cache/2026-10-abc"))  # doctest: +SKIP
    []
    """
    mine, _ = _read_meta(keep)
    removed = []
    prefix = keep.name.rsplit("-", 1)[0] + "-"
    name = re.compile(re.escape(prefix) + "[0-9a-f]{16}")
    for p in cache.glob(prefix + "*"):
        if p == keep or not name.fullmatch(p.name) or p.is_symlink() or not p.is_dir():
            continue
        if (p / BUNDLE_FILE).is_file():
            try:
                meta, _ = _read_meta(p)
            except InputError:  # not a bundle of ours: left alone, never trusted
                continue
            superseded = meta.get("source") == mine.get("source") and meta.get("month") == mine.get("month")
        else:
            superseded = (p / "bundle.pkl").is_file()  # the old pickle format: removed unread
        if superseded:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed
