"""Where the bank stage's time goes: each bank-wide analysis of ``build_bundle`` timed on its own.

Wraps the bank stage's calls (the causes model, the sticky products, the KPI tables, the backtest,
observed vs expected, the bank's metrics, each section result of ``month/results.py`` and the
bundle's Parquet slices), runs ``build_bundle`` once on SOURCE into a temporary folder, and prints
each call's seconds and the process's peak memory after it; ``--cprofile`` adds cProfile's top
functions. A profiling aid for docs/performance.md, not a benchmark of record (the wrappers add
nothing measurable, cProfile does).

    .venv/bin/python benchmarks/profile_bank_stage.py /work/bench/bank-200
"""

from __future__ import annotations

import argparse
import functools
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import crmresearch.analyses.causes as causes
import crmresearch.analyses.kpis as kpis
import crmresearch.analyses.product_coverage as coverage
import crmresearch.analyses.risk_adjustment as risk
import crmresearch.analyses.watchlist as watchlist
import crmresearch.month.bundle as bundle
import crmresearch.month.metrics as metrics
import crmresearch.month.results as results
import crmresearch.survival.cox as cox
import crmresearch.survival.episodes as episodes
from crmresearch.core.params import load_params
from crmresearch.data.contract import load_source

TIMES: dict[str, float] = {}


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _timed(label: str, f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            d = time.perf_counter() - t
            TIMES[label] = TIMES.get(label, 0.0) + d
            print(f"  {label}: {d:.1f} s (peak {_peak_gib():.2f} GiB)", file=sys.stderr, flush=True)

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--cprofile", action="store_true", help="also print cProfile's top 40 by cumulative time")
    a = ap.parse_args()
    for mod, name in ((causes, "causes_model"), (kpis, "kpi_trend"), (kpis, "kpi_comparison"),
                      (kpis, "churn_breakdown"), (risk, "observed_expected"), (coverage, "sticky_products"),
                      (watchlist, "backtest"), (metrics, "metrics"), (bundle, "_write_tables")):  # fmt: skip
        setattr(mod, name, _timed(name, getattr(mod, name)))
    # inside them: the episodes' build, the frames the models read, the Cox fits
    for mod, name, label in ((episodes, "materialize", "  episodes: materialize"),
                             (causes, "episode_frame", "  causes_model: episode_frame"),
                             (cox.TimeVaryingCox, "fit", "  TimeVaryingCox.fit")):  # fmt: skip
        setattr(mod, name, _timed(label, getattr(mod, name)))
    compute = results._compute
    results._compute = lambda name, *args, **kw: _timed(f"section {name}", compute)(name, *args, **kw)

    t0 = time.perf_counter()
    params = load_params(None, {})
    src = load_source(a.source, params)
    TIMES["load and validate"] = time.perf_counter() - t0
    month = f"{src.as_of:%Y-%m}"
    tmp = Path(tempfile.mkdtemp(prefix="profile-bank-"))
    prof = None
    if a.cprofile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t1 = time.perf_counter()
    try:
        bundle.build_bundle(src, params, month=month, path=tmp / "bundle")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - t0
    if prof is not None:
        import pstats

        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    print(f"build_bundle {time.perf_counter() - t1:.1f} s; with load and validate {total:.1f} s; "
          f"peak {_peak_gib():.2f} GiB")  # fmt: skip
    for label, s in sorted(TIMES.items(), key=lambda x: -x[1]):
        print(f"{label:<36}{s:>8.1f} s")


if __name__ == "__main__":
    main()
