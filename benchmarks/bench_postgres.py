"""Benchmark: load + validate the demo bank from PostgreSQL on loopback vs the same bank from Parquet (issue 15).

Usage::

    python benchmarks/bench_postgres.py                         # 100k customers (20 branches x 5,000, 24 months)
    python benchmarks/bench_postgres.py --customers 1000000     # the issue's 1M bank (~40M rows)

The demo bank (``--branches N/5000 --customers-per-branch 5000 --months 24
--seed 11``) is generated once into ``benchmarks/out/pg_bank_<N>/`` as
Parquet. A throwaway PostgreSQL cluster is started (``tests/postgres_server.py``:
127.0.0.1, scram-sha-256, removed at exit) and the same tables are copied into
it. Then, side by side in one run, each in a fresh process (so its peak
memory is its own): ``load_source`` of the Parquet folder, and of the
``postgresql://`` URI (the password through ``PGPASSWORD``, never on the
command line). Stages: *transfer* (the ADBC read of every table to Arrow, one
REPEATABLE READ READ ONLY transaction), *digest* (the fingerprint of what was
read, which only ``report`` needs), *load* (typed DuckDB tables; for Parquet
this includes reading the files) and *validate* (every contract rule). ``db`` and
``parquet`` are what ``validate``/``metrics``/``survival-table`` do;
``db-report`` and ``parquet-report`` add the source fingerprint first, as
``report`` does (the database then is read whole before it is loaded). Rows per second is the rows of
every table over the total. Results go to ``benchmarks/out/bench_postgres-<N>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PER_BRANCH = 5000
# parquet, db: load + validate (validate, metrics, survival-table); *-report: with the fingerprint first (report)
KINDS = ("parquet", "db", "parquet-report", "db-report")


def prepare(customers: int, months: int, seed: int) -> Path:
    """The demo bank as Parquet (generated once)."""
    from crmresearch.data.demo import DemoConfig, write_demo_bank

    path = OUT / f"pg_bank_{customers}"
    if not (path / "customers.parquet").exists():
        cfg = DemoConfig(branches=max(1, customers // PER_BRANCH), customers_per_branch=min(customers, PER_BRANCH),
                         months=months, seed=seed)  # fmt: skip
        t = time.perf_counter()
        write_demo_bank(path, cfg, force=True, progress=True)
        print(f"generated {path} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path


def copy_to_database(folder: Path, uri: str) -> float:
    """Copy every table file into the database (ADBC bulk ingest), one table at a time; seconds."""
    import adbc_driver_postgresql.dbapi as pg
    import pyarrow.parquet as pq

    t = time.perf_counter()
    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        for f in sorted(folder.glob("*.parquet")):
            cur.adbc_ingest(f.stem, pq.read_table(f), mode="replace")
        cur.execute("ANALYZE")
    return time.perf_counter() - t


def measure(kind: str, source: str) -> dict:
    """Load and validate one source in this process; the stages' seconds, rows and peak memory."""
    from crmresearch.core.params import Params
    from crmresearch.data import loader

    stages: dict[str, float] = {}

    def timed(name: str, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    loader.read_database = timed("read", loader.read_database)
    loader._load_readable = timed("load", loader._load_readable)
    loader._run_rules = timed("validate", loader._run_rules)
    params = Params()
    t0 = time.perf_counter()
    if kind == "db":  # as validate / metrics / survival-table: every table read, then loaded
        src = loader.load_source(source, params)
        stages["transfer"] = stages.pop("read", 0.0)
    elif kind == "db-report":  # as report: every table read and fingerprinted first, then loaded
        from crmresearch.data.database import read_database

        read = read_database(source, timeout=params.engine.database_timeout_seconds)
        read.fingerprint  # noqa: B018 - the digest, timed in read.seconds
        stages.update(read.seconds)
        src = loader.load_source(read, params)
    elif kind == "parquet-report":
        from crmresearch.core.fingerprint import source_fingerprint

        t = time.perf_counter()
        source_fingerprint(source)
        stages["digest"] = time.perf_counter() - t
        src = loader.load_source(source, params)
    else:
        src = loader.load_source(source, params)
    total = time.perf_counter() - t0
    rows = sum(src.tables.values())
    src.close()
    peak_mb = _peak_mb()
    return {"kind": kind, "rows": rows, "total_s": round(total, 2), "rows_per_s": round(rows / total),
            "peak_rss_mb": round(peak_mb), **{f"{k}_s": round(v, 2) for k, v in stages.items()}}  # fmt: skip


def _peak_mb() -> float:
    """This process's own peak resident memory, MB: VmHWM of /proc/self/status.

    Not ``ru_maxrss``: Linux carries it over ``exec`` from the forking parent,
    so a child of a parent that generated the bank reports the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, source: str, env: dict) -> dict:
    res = subprocess.run([sys.executable, __file__, "measure", kind, source], env=env, capture_output=True,
                         text=True, timeout=3600)  # fmt: skip
    if res.returncode:
        raise SystemExit(f"{kind} measurement failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--repeat", type=int, default=1, help="measure each source this many times (best kept)")
    args = ap.parse_args()
    folder = prepare(args.customers, args.months, args.seed)
    sys.path.insert(0, str(HERE.parent / "tests"))
    from postgres_server import start, stop

    server = start()
    try:
        server.createdb("bank")
        copy_s = copy_to_database(folder, server.uri("bank"))
        print(f"copied the bank into PostgreSQL in {copy_s:.1f} s", file=sys.stderr)
        env = {**os.environ, "PGPASSWORD": server.password}
        runs: dict[str, list[dict]] = {k: [] for k in KINDS}
        for _ in range(args.repeat):
            for k in KINDS:
                where = str(folder) if k.startswith("parquet") else server.uri("bank", password=False)
                runs[k].append(_child(k, where, env))
        best = {k: min(v, key=lambda r: r["total_s"]) for k, v in runs.items()}
    finally:
        stop(server)
    result = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": platform.platform(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "customers": args.customers,
        "months": args.months, "copy_into_postgres_s": round(copy_s, 1), **best,
        "ratio_db_over_parquet": round(best["db"]["total_s"] / best["parquet"]["total_s"], 2),
        "ratio_report_db_over_parquet": round(best["db-report"]["total_s"] / best["parquet-report"]["total_s"], 2),
    }  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / f"bench_postgres-{args.customers}.json").write_text(json.dumps(result, indent=2))
    cols = ["total_s", "rows_per_s", "peak_rss_mb", "transfer_s", "digest_s", "load_s", "validate_s"]
    print(f"{'source':16}" + "".join(f"{c:>13}" for c in cols))
    for k in KINDS:
        print(f"{k:16}" + "".join(f"{best[k].get(c, '-')!s:>13}" for c in cols))
    print(f"rows: {best['db']['rows']:,}; database / Parquet = {result['ratio_db_over_parquet']}x "
          f"(load + validate), {result['ratio_report_db_over_parquet']}x (with the fingerprint, as report)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3])))
    else:
        main()
