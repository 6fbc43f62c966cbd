"""Project a month of many branches from measured months of fewer (issue 16: "2,000 branches on paper").

Reads the JSON files ``benchmarks/bench_reports.py`` wrote for months of several sizes (e.g. 20, 40
and 200 branches of 5,000 customers: 100k, 200k, 1M customers), fits each stage's cost to a power
of the number of customers (least squares on the logs: ``seconds = a * customers ** b``), and
gives, for the target month, each stage's projected cost and the number of workers that renders
every branch report within the time budget:

* bank stage: one process, grows with the bank (``b`` fitted);
* branch reports: the mean warm report of each month, fitted likewise (a report reads a slice of
  the same size in any bank, but also the bank-wide results), so the branch stage is
  ``reports x seconds per report / workers``;
* bank summary: fitted like the bank stage;
* peak memory of one process (the bank stage's): fitted likewise.

    .venv/bin/python benchmarks/project_month.py benchmarks/out/bench_reports-*-B20.json \\
        benchmarks/out/bench_reports-*-B40.json benchmarks/out/bench_reports-*-B200.json \\
        --branches 2000 --customers-per-branch 5000 --budget-minutes 60
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """``(a, b)`` of ``y = a * x ** b`` by least squares on the logs."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.mean(lx), statistics.mean(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    b = sum((x - mx) * (y - my) for x, y in zip(lx, ly, strict=True)) / sxx if sxx else 1.0
    return math.exp(my - b * mx), b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="bench_reports JSON files (at least two sizes)")
    ap.add_argument("--branches", type=int, default=2000)
    ap.add_argument("--customers-per-branch", type=int, default=5000)
    ap.add_argument("--budget-minutes", type=float, default=60.0)
    a = ap.parse_args()

    runs = sorted((json.loads(p.read_text()) for p in a.runs), key=lambda r: r["branches"] * r["customers_per_branch"])
    n = [r["branches"] * r["customers_per_branch"] for r in runs]
    if len(set(n)) < 2:
        raise SystemExit("need months of at least two sizes")
    target = a.branches * a.customers_per_branch
    print(f"{'stage':<34}" + "".join(f"{x:>12,}" for x in n) + f"{'exponent':>10}{target:>14,}")
    projected = {}
    for stage, key in (("bank stage (s)", "bank_stage_seconds"), ("bank summary (s)", "bank_summary_seconds")):
        ys = [r["month"][key] for r in runs]
        ca, cb = fit(n, ys)
        projected[key] = ca * target**cb
        print(f"{stage:<34}" + "".join(f"{y:>12.1f}" for y in ys) + f"{cb:>10.2f}{projected[key]:>14.0f}")
    # the bank stage holds the whole bank in one process: its memory grows with it (the branch reports' does not)
    ys = [r["month"]["peak_process_gib"] for r in runs]
    ma, mb = fit(n, ys)
    print(f"{'peak memory, one process (GiB)':<34}" + "".join(f"{y:>12.2f}" for y in ys)
          + f"{mb:>10.2f}{ma * target**mb:>14.1f}")  # fmt: skip
    # a branch report reads a 5,000-customer slice in any bank, but also the bank-wide results (the
    # comparison with every branch, the bank's model), so its cost is fitted too rather than taken as flat
    warm = []
    for r in runs:
        per = [v for k, v in r["month"]["per_report"].items() if k not in ("bank", "index")]
        warm.append(statistics.mean(sorted(per)[: max(1, len(per) - r["workers"])]))
    ra, rb = fit(n, warm)
    per_report = ra * target**rb
    print(f"{'branch report, warm mean (s)':<34}" + "".join(f"{y:>12.2f}" for y in warm)
          + f"{rb:>10.2f}{per_report:>14.2f}")  # fmt: skip
    floors = [r["floor"]["mean"] for r in runs]
    print(f"{'floor report of each run (s)':<34}" + "".join(f"{y:>12.2f}" for y in floors))
    budget = a.budget_minutes * 60
    left = budget - projected["bank_stage_seconds"] - projected["bank_summary_seconds"]
    if left <= 0:
        print(f"the bank stage and summary alone take {budget - left:.0f} s: over the {budget:.0f} s budget")
        return
    workers = math.ceil(a.branches * per_report / left)
    print(f"branch stage: {a.branches} reports x {per_report:.2f} s = {a.branches * per_report:,.0f} worker-seconds; "
          f"{left:.0f} s left of the budget -> {workers} workers "
          f"(branch stage {a.branches * per_report / workers:.0f} s, month {budget - left + a.branches * per_report / workers:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
