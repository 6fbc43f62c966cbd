"""Benchmark: validate + customer table + episodes at bank scale.

Usage::

    python benchmarks/bench_survival.py                       # 100k and 1M customers
    python benchmarks/bench_survival.py --customers 100000    # one size
    python benchmarks/bench_survival.py run SOURCE            # time one source only

Each size uses a demo bank of ``customers`` customers (200 per ... 5,000 per
branch) over 36 months, generated once into ``benchmarks/out/`` with a low
churn rate (``hazard_scale=0.15``) and 90% of customers on the book at the
start, so nearly every customer has a balance row in nearly every month
(about 34M balance rows at 1M customers, the issue's "1M customers x 36
months"). The timed part runs in a fresh process: load and validate every
table, build the customer table and the episodes, and write both to Parquet.
It prints wall time per stage, rows per second and the process's peak
resident memory (which includes DuckDB's own memory).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def prepare(customers: int) -> Path:
    from crmresearch.data.demo import DemoConfig, write_demo_bank

    per_branch = 5000
    branches = max(1, customers // per_branch)
    path = OUT / f"bank_{customers}"
    if not (path / "customers.parquet").exists():
        cfg = DemoConfig(branches=branches, customers_per_branch=customers // branches, months=36,
                         seed=1, book_share=0.9, hazard_scale=0.15)  # fmt: skip
        t = time.perf_counter()
        write_demo_bank(path, cfg, force=True, progress=True)
        print(f"generated {path} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path


def run(source: Path) -> dict:
    from crmresearch import load_source
    from crmresearch.core.params import Params
    from crmresearch.survival.episodes import write_survival_table

    params = Params()
    stages = {}
    t0 = time.perf_counter()
    src = load_source(source, params)
    stages["load_validate_s"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        _, n_cust = write_survival_table(src, params, Path(tmp) / "customers.parquet")
        stages["customer_table_s"] = time.perf_counter() - t
        t = time.perf_counter()
        _, n_ep = write_survival_table(src, params, Path(tmp) / "episodes.parquet", episodes=True)
        stages["episodes_s"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    input_rows = sum(src.tables.values())
    return {
        "source": str(source),
        "customers": n_cust,
        "input_rows": input_rows,
        "balance_rows": src.tables.get("monthly_balances", 0),
        "episodes": n_ep,
        **{k: round(v, 2) for k, v in stages.items()},
        "total_s": round(total, 2),
        "input_rows_per_s": round(input_rows / total),
        "customers_per_s": round(n_cust / total),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", choices=["all", "run"], default="all")
    ap.add_argument("source", nargs="?", type=Path)
    ap.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    args = ap.parse_args()
    if args.mode == "run":
        print(json.dumps(run(args.source)))
        return
    for n in args.customers:
        path = prepare(n)
        # a fresh process, so peak memory is this size's alone
        res = subprocess.run([sys.executable, __file__, "run", str(path)], check=True,
                             capture_output=True, text=True)  # fmt: skip
        print(res.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
