"""Benchmark: the churn-causes Cox model on a whole bank.

Usage::

    python benchmarks/bench_models.py benchmarks/out/bank_1000000            # our exact aggregated fit
    python benchmarks/bench_models.py benchmarks/out/bank_100000 --lifelines # and lifelines' CoxTimeVaryingFitter

Uses the sources prepared by ``bench_survival.py``. The episodes (with each
customer's segment) are written once to ``<source>_episodes.parquet``; the
timed process reads them into pandas and fits the model with every covariate
of the causes model:
product count, RM-turnover exposure, escalated complaint, dormancy, tier and
segment (no strata). Prints one JSON line: times, peak memory, sizes and,
with ``--lifelines``, lifelines' time and the largest difference in
coefficients.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import pandas as pd

COVARIATES = ["n_products", "rm_turnover_exposed", "complaint_escalated_90d", "dormant", "tier", "segment"]


def prepare(source: Path) -> Path:
    """Write the episodes (with segment) of a prepared bank to Parquet, once."""
    out = source.with_name(source.name + "_episodes.parquet")
    if not out.exists():
        from crmresearch import load_source
        from crmresearch.core.io import write_relation
        from crmresearch.core.params import Params
        from crmresearch.survival.episodes import _materialize, context

        src = load_source(source)
        ctx = context(src, Params())
        _, ep = _materialize(src, ctx)
        write_relation(src.con, f"SELECT e.*, c.segment FROM {ep} e JOIN customers c USING (customer_id)", out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--lifelines", action="store_true", help="also fit lifelines' CoxTimeVaryingFitter")
    args = ap.parse_args()

    from crmresearch.survival.cox import TimeVaryingCox

    path = prepare(args.source)
    t = time.perf_counter()
    ids = ["customer_id"] if args.lifelines else []  # only lifelines needs the subject id
    ep = pd.read_parquet(path, columns=[*ids, "start", "stop", "event", *COVARIATES])
    read = time.perf_counter() - t
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    t = time.perf_counter()
    model = TimeVaryingCox().fit(ep, COVARIATES)
    fit = time.perf_counter() - t
    out = {
        "source": str(args.source), "episodes": len(ep), "events": model.n_events_,
        "patterns": model.n_patterns_, "event_times": model.n_event_times_, "iterations": model.n_iter_,
        "read_s": round(read, 1), "fit_s": round(fit, 2),
        "peak_rss_gb_before_fit": round(rss_before, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
    }  # fmt: skip
    if args.lifelines:
        from lifelines import CoxTimeVaryingFitter

        X = pd.get_dummies(ep[["tier", "segment"]], prefix_sep="[", dtype=float)
        X.columns = [f"{c}]" for c in X.columns]
        X = X.drop(columns=[f"{c}[{model.references_[c]}]" for c in ("tier", "segment")])
        d = pd.concat([ep[["customer_id", "start", "stop", "event", *COVARIATES[:4]]], X], axis=1)
        t = time.perf_counter()
        ll = CoxTimeVaryingFitter().fit(d, id_col="customer_id", start_col="start", stop_col="stop",
                                        event_col="event")  # fmt: skip
        out["lifelines_fit_s"] = round(time.perf_counter() - t, 1)
        diff = (ll.params_.reindex(model.params_.index) - model.params_).abs().max()
        out["max_abs_coef_difference"] = float(diff)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
